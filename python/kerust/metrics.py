"""Keras metrics. Names (``"accuracy"``, ``"mae"``...) or these objects go to ``compile(metrics=[...])``; the
engine accumulates them over each epoch in Rust."""

from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from . import _core
from . import _json
from ._naming import to_snake_case, unique_name

NAMES = tuple(_core.METRIC_NAMES)
"""Metric names the engine knows (its list: the one source)."""


class Metric:
    """``keras.metrics.Metric``: the base of the built-in metrics, and of metrics you write yourself.

    A subclass makes its state with ``self.add_variable(shape, initializer, dtype=None, name=None)`` in
    ``__init__``, assigns it new values in ``update_state(y_true, y_pred, sample_weight=None)`` and computes a
    scalar from it in ``result()``, all with ``keras.ops``. Called directly on arrays it runs eagerly; passed to
    ``compile(metrics=[...])`` its ``update_state`` and ``result`` are traced into the engine, which runs them on
    every batch with no Python, starting each epoch from the state ``reset_state()`` leaves (zeros by default).
    """
    _default_name = ""
    _builtin = False

    def __init__(self, dtype: Any = None, name: Optional[str] = None, **config: Any) -> None:
        if config and not self._builtin:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(config)}")
        # Keras names an unnamed metric as a layer: its class in snake case, numbered from the second one
        self.name = name or self._default_name or unique_name(to_snake_case(type(self).__name__))
        self._dtype = _ops().standardize_dtype("float32" if dtype is None else dtype)
        self._config = config
        self._variables: List[Any] = []
        self._metrics: List["Metric"] = []
        if self._builtin:
            _core.validate("metric", _json.dumps(self._serialized()))

    def __setattr__(self, key: str, value: Any) -> None:
        metrics = self.__dict__.get("_metrics")
        if metrics is not None and isinstance(value, Metric) and all(value is not m for m in metrics):
            metrics.append(value)  # a metric held by a metric: its variables are part of this one's state
        super().__setattr__(key, value)

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def variables(self) -> List[Any]:
        """The state: this metric's variables, then those of the metrics it holds."""
        out = list(self._variables)
        for m in self._metrics:
            out.extend(m.variables)
        return out

    def add_variable(self, shape: Any, initializer: Any, dtype: Any = None, aggregation: str = "sum",
                     name: Optional[str] = None) -> Any:
        """A state variable (not trainable) of `shape`, set from `initializer` (``"zeros"``, ``"ones"``...)."""
        from ._variable import StateVariable, check_shape, free_name, initializer_config

        if "_variables" not in self.__dict__:
            raise RuntimeError("You forgot to call `super().__init__()` in the `__init__()` method. Go add it!")
        if aggregation not in ("sum", "mean", "only_first_replica", "none", None):
            raise ValueError(f"Metric '{self.name}': add_variable: invalid aggregation {aggregation!r}")
        who = f"Metric '{self.name}': add_variable"
        shape = check_shape(who, shape)
        dtype = _ops().standardize_dtype(self._dtype if dtype is None else dtype)
        init = initializer_config(who, initializer if initializer is not None else "zeros", "float32")
        flat = _core.initial_value(_json.dumps(init), list(shape))
        value = np.asarray(flat, dtype=np.float32).reshape(shape).astype(_ops()._np_dtype(dtype))
        v = StateVariable(self, value, dtype, free_name([x.name for x in self._variables], name))
        self._variables.append(v)
        return v

    def add_weight(self, shape: Any = (), initializer: Any = None, dtype: Any = None,
                   name: Optional[str] = None) -> Any:
        """An alias of `add_variable` (as in Keras)."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Add a batch into the state (subclasses define it)."""
        if self._builtin:
            raise NotImplementedError(f"{type(self).__name__}: kerust computes the built-in metrics in fit and "
                                      "evaluate only; update_state on arrays is not supported yet")
        raise NotImplementedError

    def result(self) -> Any:
        """The metric's value from the state (subclasses define it)."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Set every state variable to zeros (as Keras does)."""
        for v in self.variables:
            v.assign(np.zeros(v.shape, dtype=_ops()._np_dtype(v.dtype)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`update_state(*args, **kwargs)`, then the `result()`."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        """The metric's arguments as a dict."""
        return {"name": self.name, "dtype": self._dtype, **self._config}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        if cls._builtin:
            config = {k: v for k, v in config.items() if k != "dtype"}
        return cls(**config)

    def _serialized(self) -> dict:
        if self._builtin:
            return {"module": "keras.metrics", "class_name": type(self).__name__, "config": self.get_config(),
                    "registered_name": None}
        from ._registry import get_registered_name

        cls = type(self)
        return {"module": cls.__module__, "class_name": cls.__name__, "config": self.get_config(),
                "registered_name": get_registered_name(cls)}

    def _engine_spec(self, name: str, y_shape: list, pred_shape: list) -> dict:
        return {"stateful": _trace_stateful(self, y_shape, pred_shape), "name": name}

    def __getattr__(self, key: str) -> Any:
        config = self.__dict__.get("_config", {})
        if key in config:
            return config[key]
        raise AttributeError(key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class _BuiltinMetric(Metric):
    """A metric the engine computes itself (its arguments are its whole definition)."""
    _builtin = True

    def __init__(self, name: Optional[str] = None, dtype: Any = None, **config: Any) -> None:
        super().__init__(dtype=dtype, name=name, **config)


def _trace_stateful(metric: Metric, y_shape: list, pred_shape: list) -> dict:
    """The engine's form of a metric subclass: the graph of `update_state` then `result` on symbolic targets and
    predictions, the state `reset_state` leaves, and the result of that state (both computed here, eagerly)."""
    from ._custom import Placeholder, Trace, _constants_to_tensors, _inline, accepts
    from ._graph import KerasTensor
    from ._variable import trace_scope
    from .models import _FlatGraph

    variables = metric.variables
    saved = [v.numpy() for v in variables]
    try:
        metric.reset_state()
        initial = [v.numpy() for v in variables]
        result0 = np.asarray(_ops().convert_to_numpy(metric.result()), dtype=np.float64)
    finally:
        for v, value in zip(variables, saved):
            v._value = value
    if result0.size != 1:
        raise TypeError(f"Metric '{metric.name}': result() must return a scalar, it returned a value of shape "
                        f"{result0.shape}")
    holder = _StateUnit(metric.name, variables)
    for i, v in enumerate(variables):
        v._layer, v._index = holder, i
    yt = Placeholder(KerasTensor((None, *y_shape))).tensor
    yp = Placeholder(KerasTensor((None, *pred_shape))).tensor
    kwargs = {"sample_weight": None} if accepts(metric.update_state, "sample_weight") else {}
    with trace_scope():
        metric.update_state(yt, yp, **kwargs)
        res = _constants_to_tensors(metric.result())
        new = [v._symbolic() for v in variables]
    if not isinstance(res, KerasTensor) or any(d != 1 for d in res.shape):
        raise TypeError(f"Metric '{metric.name}': result() must return a scalar tensor made with keras.ops, it "
                        f"returned {res!r}")
    flat = _FlatGraph(2)
    if variables:
        flat.index[id(holder)] = 0
        flat.units.append(holder)
    outputs = _inline(Trace([yt, yp], new + [res]), flat, [0, 1])
    if not flat.nodes:  # a metric with no state and a constant result: give the engine one node to run
        outputs = [flat._add_op_unit("Op", {"name": "identity", "op": "identity"}, outputs)]
    return {"graph": flat.spec([list(y_shape), list(pred_shape)], outputs),
            "initial": [np.asarray(v, dtype=np.float64).ravel().tolist() for v in initial],
            "result": _json_float(float(result0.ravel()[0]))}


def _json_float(v: float) -> Any:
    """A float as JSON can carry it (non-finite values as the strings the engine reads)."""
    import math

    return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


class _StateUnit:
    """The metric's variables as one `Weights` unit of its traced graph."""
    _holds_variables = True

    def __init__(self, name: str, variables: List[Any]) -> None:
        self.name = name
        self._variables = variables


def _ops() -> Any:
    from . import ops

    return ops


class BinaryAccuracy(_BuiltinMetric):
    """The fraction of predictions on the same side of `threshold` as their 0/1 target."""
    _default_name = "binary_accuracy"

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5) -> None:
        super().__init__(name, dtype, threshold=threshold)


class CategoricalAccuracy(_BuiltinMetric):
    """The fraction of samples whose largest prediction is at the one-hot target's class."""
    _default_name = "categorical_accuracy"


class SparseCategoricalAccuracy(_BuiltinMetric):
    """The fraction of samples whose largest prediction is at the integer label."""
    _default_name = "sparse_categorical_accuracy"


class TopKCategoricalAccuracy(_BuiltinMetric):
    """The fraction of samples whose one-hot target's class is among the `k` largest predictions."""
    _default_name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name, dtype, k=k)


class SparseTopKCategoricalAccuracy(_BuiltinMetric):
    """The fraction of samples whose integer label is among the `k` largest predictions."""
    _default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name, dtype, k=k)


class MeanSquaredError(_BuiltinMetric):
    """The mean squared error, as a metric."""
    _default_name = "mean_squared_error"


class MeanAbsoluteError(_BuiltinMetric):
    """The mean absolute error, as a metric."""
    _default_name = "mean_absolute_error"


class Precision(_BuiltinMetric):
    """True positives over predicted positives, predictions counted as positive above `thresholds` (0.5 by default)."""
    _default_name = "precision"

    def __init__(self, thresholds: Optional[float] = None, top_k: Optional[int] = None,
                 class_id: Optional[int] = None, name: Optional[str] = None, dtype: Any = None) -> None:
        if top_k is not None or class_id is not None:
            raise ValueError(f"{type(self).__name__}: top_k and class_id are not supported by kerust yet")
        super().__init__(name, dtype, thresholds=thresholds)


class Recall(Precision):
    """True positives over actual positives, predictions counted as positive above `thresholds` (0.5 by default)."""
    _default_name = "recall"


class AUC(_BuiltinMetric):
    """The area under the ROC curve, from `num_thresholds` thresholds, interpolated as in Keras."""
    _default_name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: Optional[str] = None, dtype: Any = None, multi_label: bool = False, **kwargs: Any) -> None:
        if summation_method != "interpolation" or multi_label or kwargs:
            raise ValueError("AUC: only summation_method='interpolation', multi_label=False and the default "
                             "thresholds are supported by kerust yet")
        super().__init__(name, dtype, num_thresholds=num_thresholds, curve=curve)


_CLASSES = {c.__name__: c for c in (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError, Precision, Recall, AUC)}


class MeanMetricWrapper(Metric):
    """A function `fn(y_true, y_pred)` of `keras.ops` as a metric: the mean of its values over the epoch
    (Keras wraps metric functions passed to `compile` the same way). kerust traces it into the engine."""

    def __init__(self, fn: Any, name: Optional[str] = None, dtype: Any = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"MeanMetricWrapper: unexpected arguments {sorted(kwargs)}")
        self.name = str(name or getattr(fn, "__name__", "metric"))
        self._dtype = "float32"
        self._config = {}
        self.fn = fn

    def _serialized(self) -> dict:
        return {"module": "keras.metrics", "class_name": "MeanMetricWrapper", "config": self.get_config(),
                "registered_name": None}

    def get_config(self) -> dict:
        from ._registry import serialize_function

        return {"name": self.name, "dtype": "float32", "fn": serialize_function(self.fn)}

    def _engine_spec(self, name: str, y_shape: list, pred_shape: list) -> dict:
        from .losses import _trace_loss

        return {"graph": _trace_loss(self.fn, y_shape, pred_shape, name), "name": name}


def get(identifier: Any) -> Any:
    """A metric name (returned as is, after checking it) or object, a Keras metric config dict, or a function
    `fn(y_true, y_pred)` made of `keras.ops`."""
    if isinstance(identifier, Metric):
        return identifier
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)
    if isinstance(identifier, str):
        _core.validate("metric", _json.dumps(identifier))
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config") or {})
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. Expected a name "
                     f"({', '.join(NAMES)}) or one of {', '.join(_CLASSES)}")


def spec(metric: Any, name: Optional[str] = None, shape: Optional[list] = None) -> Any:
    """What the engine receives for one metric: its name or its serialized config (renamed to ``name``); a
    metric function's traced graph for outputs (and targets) of sample shape `shape`."""
    if isinstance(metric, MeanMetricWrapper) or (isinstance(metric, Metric) and not metric._builtin):
        return metric._engine_spec(name or metric.name, list(shape or []), list(shape or []))
    if isinstance(metric, Metric):
        out = metric._serialized()
        if name is not None:
            out["config"]["name"] = name
        return out
    if name is not None and name != metric:
        return {"class_name": metric, "config": {"name": name}}
    return metric


def serialize(metric: Any) -> Any:
    """A metric as Keras writes it in a `.keras` file's compile config: its name, or its class and config."""
    return metric._serialized() if isinstance(metric, Metric) else metric


def name_of(metric: Any) -> str:
    """The name a metric is reported under in the logs."""
    return metric.name if isinstance(metric, Metric) else str(metric)

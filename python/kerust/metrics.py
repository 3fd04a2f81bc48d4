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


class AUC(_BuiltinMetric):
    """The area under the ROC, PR or PRGAIN curve from the confusion counts at `num_thresholds` thresholds (or at
    `thresholds`), summed by `summation_method`; per label and averaged (by `label_weights`) with `multi_label`."""
    _default_name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: Optional[str] = None, dtype: Any = None, thresholds: Any = None, multi_label: bool = False,
                 num_labels: Optional[int] = None, label_weights: Any = None, from_logits: bool = False) -> None:
        curves = {"pr": "PR", "PR": "PR", "roc": "ROC", "ROC": "ROC", "prgain": "PRGAIN", "PRGAIN": "PRGAIN"}
        if curve not in curves:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        methods = {"interpolation": "interpolation", "Interpolation": "interpolation", "majoring": "majoring",
                   "Majoring": "majoring", "minoring": "minoring", "Minoring": "minoring"}
        if summation_method not in methods:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". '
                             'Expected values are ["interpolation", "majoring", "minoring"]')
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            num_thresholds = len(thresholds) + 2
            inner = sorted(float(t) for t in thresholds)
        else:
            if num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        curve, summation_method = curves[curve], methods[summation_method]
        simple = (curve == "ROC" and summation_method == "interpolation" and thresholds is None and not multi_label
                  and label_weights is None and not from_logits)
        self.__dict__["_builtin"] = simple  # the engine computes the plain ROC AUC itself in fit / evaluate
        if simple:
            super().__init__(name, dtype, num_thresholds=num_thresholds, curve=curve)
        else:
            Metric.__init__(self, dtype=dtype, name=name)
        self.num_thresholds = num_thresholds
        self._thresholds = [0.0 - _EPSILON] + inner + [1.0 + _EPSILON]
        self.curve = curve
        self.summation_method = summation_method
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, dtype=np.float32)
        self._from_logits = from_logits
        self._built = False
        if multi_label:
            if num_labels:
                self._build([None, num_labels])
        else:
            self._build(None)

    @property
    def thresholds(self) -> list:
        """The thresholds, with the two end points ``-epsilon`` and ``1 + epsilon``."""
        return list(self._thresholds)

    def _build(self, shape: Any) -> None:
        if self.multi_label:
            if len(shape) != 2:
                raise ValueError("`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                                 f"{len(shape)}. Full shape received for `y_pred`: {shape}")
            self._num_labels = shape[1]
            vshape: tuple = (self.num_thresholds, self._num_labels)
        else:
            vshape = (self.num_thresholds,)
        for v in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            setattr(self, v, self.add_variable(shape=vshape, initializer="zeros", name=v))
        self._built = True

    def _engine_spec(self, name: str, y_shape: list, pred_shape: list) -> dict:
        if not self._built:
            self._build([None, *pred_shape])
        return super()._engine_spec(name, y_shape, pred_shape)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch's (weighted) confusion counts at each threshold."""
        ops = _ops()
        if not self._built:
            self._build(ops.shape(y_pred))
        if self._from_logits:
            y_pred = ops.sigmoid(ops.convert_to_tensor(y_pred))
        _update_confusion({"tp": self.true_positives, "tn": self.true_negatives, "fp": self.false_positives,
                           "fn": self.false_negatives}, y_true, y_pred, self._thresholds, sample_weight=sample_weight,
                          multi_label=self.multi_label, label_weights=None if self.multi_label else self.label_weights)

    def _by_label(self, terms: Any) -> Any:
        ops = _ops()
        if not self.multi_label:
            return ops.sum(terms)
        by_label = ops.sum(terms, axis=0)
        if self.label_weights is None:
            return ops.mean(by_label)
        return ops.divide_no_nan(ops.sum(by_label * self.label_weights), float(np.sum(self.label_weights)))

    def _interpolate_pr_auc(self) -> Any:
        ops = _ops()
        tp, fp, fn = (ops.convert_to_tensor(v) for v in (self.true_positives, self.false_positives,
                                                         self.false_negatives))
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = ops.divide_no_nan(dtp, ops.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = ops.where(ops.logical_and(p[:-1] > 0, p[1:] > 0), ops.divide_no_nan(p[:-1], ops.maximum(p[1:], 0)),
                          ops.ones_like(p[1:]))
        increment = ops.divide_no_nan(slope * (dtp + intercept * ops.log(ratio)), ops.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(increment)

    def result(self) -> Any:
        """The area."""
        ops = _ops()
        if not self._built:
            return ops.convert_to_tensor(np.float32(0.0))
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = (ops.convert_to_tensor(v) for v in (self.true_positives, self.false_positives,
                                                             self.true_negatives, self.false_negatives))
        recall = ops.divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = ops.divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, ops.divide_no_nan(tp, tp + fp)
        else:
            scaling = ops.divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scaling * ops.divide_no_nan(fn, tp)
            precision_gain = 1.0 - scaling * ops.divide_no_nan(fp, tp)
            recall_gain = ops.maximum(ops.where(ops.equal(tp, 0.0), 0.0, recall_gain), 0.0)
            precision_gain = ops.where(ops.equal(tp, 0.0), 1.0, precision_gain)
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = ops.minimum(y[:-1], y[1:])
        else:
            heights = ops.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def reset_state(self) -> None:
        """Zero the counts (nothing to do before they are built)."""
        if self._built:
            super().reset_state()

    def get_config(self) -> dict:
        """Name, dtype and the AUC arguments (the engine's form, for the plain ROC AUC)."""
        if self._builtin:
            return super().get_config()
        config = {"name": self.name, "dtype": self._dtype, "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config

    def _serialized(self) -> dict:
        return {"module": "keras.metrics", "class_name": type(self).__name__, "config": self.get_config(),
                "registered_name": None}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        return cls(**config)


_CLASSES: dict = {c.__name__: c for c in (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                          TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError,
                                          MeanAbsoluteError, AUC)}


def _by_name() -> dict:
    """The metric classes made from a name alone: by class name and its snake case (Keras's ALL_OBJECTS_DICT),
    those without required arguments."""
    import inspect

    out = {}
    for cls in _CLASSES.values():
        params = inspect.signature(cls.__init__).parameters.values()
        if any(p.default is inspect.Parameter.empty and p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD
               for p in params):
            continue
        out[cls.__name__] = out[to_snake_case(cls.__name__)] = cls
    for alias, name in (("mape", "MeanAbsolutePercentageError"), ("MAPE", "MeanAbsolutePercentageError"),
                        ("msle", "MeanSquaredLogarithmicError"), ("MSLE", "MeanSquaredLogarithmicError")):
        out[alias] = _CLASSES[name]
    return out


def get(identifier: Any) -> Any:
    """A metric name (returned as is, after checking it) or object, a Keras metric config dict, or a function
    `fn(y_true, y_pred)` made of `keras.ops`."""
    if isinstance(identifier, Metric):
        return identifier
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)
    if isinstance(identifier, str):
        if identifier not in NAMES and identifier in _by_name():
            return _by_name()[identifier]()  # Keras makes the class's default instance from its name
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


# ---------------------------------------------------------------------------------------------------------------
# Keras's other metrics, written as `Metric` subclasses with `kerust.ops` (keras/src/metrics/*.py): they run eagerly
# on arrays and are traced into the engine by `compile(metrics=[...])`, as a user's metric is.

_EPSILON = 1e-7  # keras.config.epsilon()
_NEG_INF = -1e10  # keras/src/metrics/metrics_utils.NEG_INF


def _same_rank(x1: Any, x2: Any, expand_rank_1: bool = True) -> Any:
    """Keras's `squeeze_or_expand_to_same_rank`: drop (or add) a trailing axis of size 1 when ranks differ by one."""
    ops = _ops()
    r1, r2 = ops.ndim(x1), ops.ndim(x2)
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and ops.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.expand_dims(x2, axis=-1)
        else:
            x1 = ops.squeeze(x1, axis=-1)
    if r2 == r1 + 1 and ops.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.expand_dims(x1, axis=-1)
        else:
            x2 = ops.squeeze(x2, axis=-1)
    return x1, x2


def _reduce_to_samplewise(values: Any, sample_weight: Any, reduce_fn: Any, dtype: str) -> Any:
    """Keras's `reduce_to_samplewise_values`: one value per sample (and its weight)."""
    ops = _ops()
    values = ops.cast(values, dtype)
    if sample_weight is not None:
        sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), dtype)
        values, sample_weight = _same_rank(values, sample_weight)
        weight_ndim, values_ndim = ops.ndim(sample_weight), ops.ndim(values)
        if values_ndim > weight_ndim:
            values = reduce_fn(values, axis=list(range(weight_ndim, values_ndim)))
        sample_weight = ops.broadcast_to(sample_weight, ops.shape(values))
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=list(range(1, weight_ndim)))
    if ops.ndim(values) > 1:
        values = reduce_fn(values, axis=list(range(1, ops.ndim(values))))
    return values, sample_weight


class _KerasMetric(Metric):
    """A Keras metric class written with `kerust.ops` (serialized under ``keras.metrics``)."""

    def _serialized(self) -> dict:
        return {"module": "keras.metrics", "class_name": type(self).__name__, "config": self.get_config(),
                "registered_name": None}

    def get_config(self) -> dict:
        """The metric's arguments as a dict (Keras's keys)."""
        return {"name": self.name, "dtype": self._dtype}

    def reset_state(self) -> None:
        """Set every state variable to zeros (as Keras does)."""
        super().reset_state()


class _Deferred(_KerasMetric):
    """A metric whose variables are made from the first batch's shapes (Keras's `_build`)."""
    _built = False

    def _build(self, y_true_shape: tuple, y_pred_shape: tuple) -> None:
        raise NotImplementedError

    def _engine_spec(self, name: str, y_shape: list, pred_shape: list) -> dict:
        if not self._built:
            self._build((None, *y_shape), (None, *pred_shape))
        return super()._engine_spec(name, y_shape, pred_shape)


class Sum(_KerasMetric):
    """The (weighted) sum of the given values, in one variable ``total``."""

    def __init__(self, name: str = "sum", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Add the (weighted) values to ``total``."""
        ops = _ops()
        values, _ = _reduce_to_samplewise(values, sample_weight, ops.sum, self.dtype)
        self.total.assign_add(ops.sum(values))

    def result(self) -> Any:
        """``total``."""
        return _ops().cast(self.total, self.dtype)


class Mean(_KerasMetric):
    """The (weighted) mean of the given values: ``total / count``."""

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Add the (weighted) values to ``total`` and their number (or weight) to ``count``."""
        ops = _ops()
        values, sample_weight = _reduce_to_samplewise(values, sample_weight, ops.mean, self.dtype)
        self.total.assign_add(ops.sum(values))
        if sample_weight is not None:
            num = ops.sum(sample_weight)
        elif ops.ndim(values) >= 1:
            num = ops.size(values)
        else:
            num = 1
        self.count.assign_add(ops.cast(num, self.dtype))

    def result(self) -> Any:
        """``total / count`` (0 when nothing was counted)."""
        ops = _ops()
        return ops.divide_no_nan(self.total, ops.cast(self.count, self.dtype))


class MeanMetricWrapper(Mean):
    """A function `fn(y_true, y_pred, **kwargs)` of `keras.ops` as a metric: the (weighted) mean of its values
    (Keras wraps metric functions passed to `compile` the same way). kerust traces it into the engine."""

    def __init__(self, fn: Any, name: Optional[str] = None, dtype: Any = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be a function fn(y_true, y_pred), received fn={fn!r}")
        super().__init__(name=str(name or getattr(fn, "__name__", "metric")), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = dict(kwargs)

    @property
    def fn(self) -> Any:
        """The wrapped function."""
        return self._fn

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """Add the mean of `fn(y_true, y_pred, **kwargs)` over the batch."""
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight=sample_weight)

    def _serialized(self) -> dict:
        return {"module": "keras.metrics", "class_name": "MeanMetricWrapper", "config": self.get_config(),
                "registered_name": None}

    def get_config(self) -> dict:
        """Name, dtype, the serialized `fn` and its keyword arguments (as Keras)."""
        from ._registry import serialize_function

        return {"name": self.name, "dtype": self._dtype, "fn": serialize_function(self._fn), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A wrapper from `get_config()` (``fn`` a function or its serialized form)."""
        config = dict(config)
        fn = config.pop("fn")
        if not callable(fn):
            from ._registry import deserialize_function

            fn = deserialize_function(fn, None, None)
        return cls(fn, **config)

    def _engine_spec(self, name: str, y_shape: list, pred_shape: list) -> dict:
        if type(self).update_state is not MeanMetricWrapper.update_state:
            return super()._engine_spec(name, y_shape, pred_shape)
        import functools

        from .losses import _trace_loss

        fn = functools.partial(self._fn, **self._fn_kwargs) if self._fn_kwargs else self._fn
        if self._fn_kwargs:
            functools.update_wrapper(fn, self._fn)
        return {"graph": _trace_loss(fn, y_shape, pred_shape, name), "name": name}


class RootMeanSquaredError(Mean):
    """The square root of the (weighted) mean squared error."""

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """Add the batch's squared errors."""
        ops = _ops()
        y_true = ops.cast(ops.convert_to_tensor(y_true), self._dtype)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), self._dtype)
        y_true, y_pred = _same_rank(y_true, y_pred)
        super().update_state(ops.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self) -> Any:
        """``sqrt(total / count)``."""
        return _ops().sqrt(super().result())


class R2Score(_Deferred):
    """The coefficient of determination (R²), per output and aggregated by `class_aggregation`; adjusted for
    `num_regressors` independent variables when that is not 0."""

    def __init__(self, class_aggregation: Optional[str] = "uniform_average", num_regressors: int = 0,
                 name: str = "r2_score", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        valid = (None, "uniform_average", "variance_weighted_average")
        if class_aggregation not in valid:
            raise ValueError("Invalid value for argument `class_aggregation`. Expected "
                             f"one of {valid}. Received: class_aggregation={class_aggregation}")
        if num_regressors < 0:
            raise ValueError("Invalid value for argument `num_regressors`. Expected a value >= 0. "
                             f"Received: num_regressors={num_regressors}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.num_samples = self.add_variable(shape=(), initializer="zeros", name="num_samples")

    def _build(self, y_true_shape: tuple, y_pred_shape: tuple) -> None:
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError("R2Score expects 2D inputs with shape (batch_size, output_dim). Received input "
                             f"shapes: y_pred.shape={y_pred_shape} and y_true.shape={y_true_shape}.")
        n = y_pred_shape[-1]
        self.squared_sum = self.add_variable(name="squared_sum", shape=[n], initializer="zeros")
        self.sum = self.add_variable(name="sum", shape=[n], initializer="zeros")
        self.total_mse = self.add_variable(name="residual", shape=[n], initializer="zeros")
        self.count = self.add_variable(name="count", shape=[n], initializer="zeros")
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch's weighted sums of targets, squared targets and squared residuals."""
        ops = _ops()
        y_true = ops.cast(ops.convert_to_tensor(y_true), self._dtype)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), self._dtype)
        y_true, y_pred = _same_rank(y_true, y_pred)
        if not self._built:
            self._build(ops.shape(y_true), ops.shape(y_pred))
        if sample_weight is None:
            sample_weight = ops.ones_like(y_true)
        else:
            sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), self._dtype)
            if ops.ndim(sample_weight) == 1:
                sample_weight = ops.expand_dims(sample_weight, axis=1)
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_true))
        weighted = y_true * sample_weight
        self.sum.assign(self.sum + ops.sum(weighted, axis=0))
        self.squared_sum.assign(self.squared_sum + ops.sum(y_true * weighted, axis=0))
        self.total_mse.assign(self.total_mse + ops.sum(ops.square(y_true - y_pred) * sample_weight, axis=0))
        self.count.assign(self.count + ops.sum(sample_weight, axis=0))
        self.num_samples.assign(self.num_samples + ops.cast(ops.size(y_true), "float32"))

    def result(self) -> Any:
        """The R² score (``nan`` before any sample, as in Keras)."""
        ops = _ops()
        if not self._built:
            return ops.convert_to_tensor(np.float32("nan"))
        mean = self.sum / self.count
        total = self.squared_sum - self.sum * mean
        raw = 1 - (self.total_mse / total)
        raw = ops.where(ops.equal(ops.abs(raw), np.inf), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            r2 = ops.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            r2 = ops.sum(total * raw) / ops.sum(total)
        else:
            r2 = raw
        if self.num_regressors != 0:
            n = ops.convert_to_tensor(self.num_samples)
            p = float(self.num_regressors)
            adjusted = 1.0 - ops.divide((1.0 - r2) * (n - 1.0), n - p - 1.0)
            # Keras falls back to the plain score (with a warning) when n - 1 <= p
            r2 = ops.where(ops.greater(n - 1.0, p), adjusted, r2)
        return r2

    def get_config(self) -> dict:
        """Name, dtype, `class_aggregation` and `num_regressors`."""
        return {"name": self.name, "dtype": self._dtype, "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


class FBetaScore(_Deferred):
    """The F-beta score per class (``average=None``) or averaged ("micro", "macro", "weighted"); a prediction
    counts as positive above `threshold`, or, without one, where it is its row's largest."""

    def __init__(self, average: Optional[str] = None, beta: float = 1.0, threshold: Optional[float] = None,
                 name: str = "fbeta_score", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: "
                             "{None, 'micro', 'macro', 'weighted'}. "
                             f"Received: average={average}")
        if not isinstance(beta, float):
            raise ValueError("Invalid `beta` argument value. It should be a Python float. "
                             f"Received: beta={beta} of type '{type(beta)}'")
        if beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError("Invalid `threshold` argument value. It should be a Python float. "
                                 f"Received: threshold={threshold} of type '{type(threshold)}'")
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError("Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                                 f"Received: threshold={threshold}")
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.axis = None if average == "micro" else 0

    def _build(self, y_true_shape: tuple, y_pred_shape: tuple) -> None:
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input "
                             f"shapes: y_pred.shape={y_pred_shape} and y_true.shape={y_true_shape}.")
        shape = () if self.average == "micro" else (y_pred_shape[-1],)
        for n in ("true_positives", "false_positives", "false_negatives", "intermediate_weights"):
            setattr(self, n, self.add_variable(name=n, shape=shape, initializer="zeros", dtype=self.dtype))
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch's (weighted) true positives, false positives, false negatives and positives."""
        ops = _ops()
        y_true = ops.cast(ops.convert_to_tensor(y_true), self.dtype)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), self.dtype)
        if not self._built:
            self._build(ops.shape(y_true), ops.shape(y_pred))
        if self.threshold is None:
            top = ops.max(y_pred, axis=-1, keepdims=True)
            y_pred = ops.logical_and(ops.greater_equal(y_pred, top), ops.greater(ops.abs(y_pred), 1e-9))
        else:
            y_pred = ops.greater(y_pred, self.threshold)
        y_pred = ops.cast(y_pred, self.dtype)
        if sample_weight is not None:
            sample_weight = ops.expand_dims(ops.cast(ops.convert_to_tensor(sample_weight), self.dtype), 1)

        def wsum(v: Any) -> Any:
            if sample_weight is not None:
                v = ops.multiply(v, sample_weight)
            return ops.sum(v, axis=self.axis)

        self.true_positives.assign(self.true_positives + wsum(y_pred * y_true))
        self.false_positives.assign(self.false_positives + wsum(y_pred * (1 - y_true)))
        self.false_negatives.assign(self.false_negatives + wsum((1 - y_pred) * y_true))
        self.intermediate_weights.assign(self.intermediate_weights + wsum(y_true))

    def result(self) -> Any:
        """The score (a vector per class for ``average=None``)."""
        ops = _ops()
        if not self._built:
            raise ValueError(f"{type(self).__name__}: result() before any update_state (the number of classes "
                             "comes from the first batch)")
        precision = ops.divide(self.true_positives, self.true_positives + self.false_positives + _EPSILON)
        recall = ops.divide(self.true_positives, self.true_positives + self.false_negatives + _EPSILON)
        mean = ops.divide(precision * recall, (self.beta ** 2) * precision + recall + _EPSILON)
        f = mean * (1 + self.beta ** 2)
        if self.average == "weighted":
            weights = ops.divide(self.intermediate_weights, ops.sum(self.intermediate_weights) + _EPSILON)
            f = ops.sum(f * weights)
        elif self.average is not None:
            f = ops.mean(f)
        return f

    def get_config(self) -> dict:
        """Name, dtype, `average`, `beta` and `threshold`."""
        return {"name": self.name, "dtype": self._dtype, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score: `FBetaScore` with ``beta=1``."""

    def __init__(self, average: Optional[str] = None, threshold: Optional[float] = None, name: str = "f1_score",
                 dtype: Any = None) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict:
        """As `FBetaScore`'s, without `beta`."""
        config = super().get_config()
        del config["beta"]
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        return cls(**config)


def _int_dtype(dtype: Any) -> str:
    return "int32" if dtype in (None, "int") else _ops().standardize_dtype(dtype)


class IoU(_KerasMetric):
    """Intersection over union for the classes `target_class_ids`, from a `num_classes` x `num_classes` confusion
    matrix accumulated over the batches (labels and predictions as class ids, or one-hot/scores along `axis`)."""

    def __init__(self, num_classes: int, target_class_ids: Any, name: Optional[str] = None, dtype: Any = None,
                 ignore_class: Optional[int] = None, sparse_y_true: bool = True, sparse_y_pred: bool = True,
                 axis: int = -1) -> None:
        super().__init__(name=name, dtype=_int_dtype(dtype))
        self.num_classes = int(num_classes)
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.total_cm = self.add_variable(name="total_confusion_matrix", shape=(self.num_classes, self.num_classes),
                                          initializer="zeros", dtype=self.dtype)
        if max(target_class_ids) >= num_classes:
            raise ValueError(f"Target class id {max(target_class_ids)} is out of range, which is [0, {num_classes}).")
        self.target_class_ids = list(target_class_ids)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Add the batch's (weighted) confusion matrix (entries outside [0, num_classes) or at `ignore_class`
        are left out)."""
        ops = _ops()
        if not self.sparse_y_true:
            y_true = ops.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = ops.argmax(y_pred, axis=self.axis)
        y_true = ops.cast(ops.convert_to_tensor(y_true), self.dtype)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), self.dtype)
        if ops.ndim(y_pred) > 1:
            y_pred = ops.reshape(y_pred, [-1])
        if ops.ndim(y_true) > 1:
            y_true = ops.reshape(y_true, [-1])
        if sample_weight is None:
            sample_weight = ops.ones_like(y_true, dtype=self.dtype)
        else:
            sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), self.dtype)
            if ops.ndim(sample_weight) > 1:
                sample_weight = ops.reshape(sample_weight, [-1])
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_true))
        n = self.num_classes
        mask = ops.logical_and(ops.logical_and(ops.greater_equal(y_true, 0), ops.less(y_true, n)),
                               ops.logical_and(ops.greater_equal(y_pred, 0), ops.less(y_pred, n)))
        if self.ignore_class is not None:
            mask = ops.logical_and(mask, ops.not_equal(y_true, self.ignore_class))
        y_true = ops.where(mask, y_true, 0)
        y_pred = ops.where(mask, y_pred, 0)
        sample_weight = ops.cast(ops.where(mask, sample_weight, 0), "float32")
        # the confusion matrix as one_hot(labels)^T @ (weights * one_hot(predictions))
        rows = ops.one_hot(ops.cast(y_true, "int32"), n) * ops.expand_dims(sample_weight, -1)
        cm = ops.matmul(ops.transpose(rows), ops.one_hot(ops.cast(y_pred, "int32"), n))
        self.total_cm.assign(self.total_cm + ops.cast(cm, self.dtype))

    def result(self) -> Any:
        """The mean IoU over the target classes that occur (in labels or predictions)."""
        ops = _ops()
        cm = ops.cast(self.total_cm, "float32")
        tp = ops.sum(cm * ops.eye(self.num_classes), axis=1)
        denominator = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - tp
        ids = np.asarray(self.target_class_ids, dtype=np.int32)
        tp = ops.take(tp, ids, axis=-1)
        denominator = ops.take(denominator, ids, axis=-1)
        valid = ops.cast(ops.greater(denominator, 1e-9), "float32")
        iou = ops.where(ops.greater(valid, 0), ops.divide(tp, denominator + _EPSILON), 0.0)
        return ops.divide(ops.sum(iou, axis=self.axis), ops.sum(valid) + _EPSILON)

    def get_config(self) -> dict:
        """Name, dtype and the IoU arguments."""
        return {"name": self.name, "dtype": self._dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of two classes, predictions counted as class 1 at or above `threshold`."""

    def __init__(self, target_class_ids: Any = (0, 1), threshold: float = 0.5, name: Optional[str] = None,
                 dtype: Any = None) -> None:
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Threshold the predictions, then add the batch's confusion matrix."""
        ops = _ops()
        y_pred = ops.cast(ops.greater_equal(ops.cast(ops.convert_to_tensor(y_pred), "float32"), self.threshold),
                          self.dtype)
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self) -> dict:
        """`target_class_ids`, `threshold`, name and dtype."""
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self._dtype}


class MeanIoU(IoU):
    """The mean IoU over all `num_classes` classes."""

    def __init__(self, num_classes: int, name: Optional[str] = None, dtype: Any = None,
                 ignore_class: Optional[int] = None, sparse_y_true: bool = True, sparse_y_pred: bool = True,
                 axis: int = -1) -> None:
        super().__init__(num_classes=num_classes, target_class_ids=list(range(num_classes)), name=name,
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        """`num_classes`, name, dtype, `ignore_class`, `sparse_y_true`, `sparse_y_pred`, `axis`."""
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self._dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """`IoU` for one-hot targets (and scores or one-hot predictions)."""

    def __init__(self, num_classes: int, target_class_ids: Any, name: Optional[str] = None, dtype: Any = None,
                 ignore_class: Optional[int] = None, sparse_y_pred: bool = False, axis: int = -1) -> None:
        super().__init__(num_classes=num_classes, target_class_ids=target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        """`num_classes`, `target_class_ids`, name, dtype, `ignore_class`, `sparse_y_pred`, `axis`."""
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids, "name": self.name,
                "dtype": self._dtype, "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` for one-hot targets (and scores or one-hot predictions)."""

    def __init__(self, num_classes: int, name: Optional[str] = None, dtype: Any = None,
                 ignore_class: Optional[int] = None, sparse_y_pred: bool = False, axis: int = -1) -> None:
        super().__init__(num_classes=num_classes, axis=axis, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred)

    def get_config(self) -> dict:
        """`num_classes`, name, dtype, `ignore_class`, `sparse_y_pred`, `axis`."""
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self._dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}




def _filter_top_k(x: Any, k: int) -> Any:
    """Keras's `_filter_top_k`: the `k` largest entries of the last axis kept, the others set to -1e10 (ties go to
    the lower index, as `top_k`). Composed from comparisons: an entry is kept when fewer than `k` entries rank
    above it."""
    ops = _ops()
    n = ops.shape(x)[-1]
    xi, xj = ops.expand_dims(x, -1), ops.expand_dims(x, -2)  # [..., i, j]: x_i, x_j
    earlier = np.tril(np.ones((n, n), dtype=bool), -1)  # j < i
    above = ops.logical_or(ops.greater(xj, xi), ops.logical_and(ops.equal(xj, xi), earlier))
    rank = ops.sum(ops.cast(above, "float32"), axis=-1)
    mask = ops.cast(ops.less(rank, float(k)), x.dtype if hasattr(x, "dtype") else "float32")
    return x * mask + _NEG_INF * (1 - mask)


def _update_confusion(variables: dict, y_true: Any, y_pred: Any, thresholds: Any, top_k: Optional[int] = None,
                      class_id: Optional[int] = None, sample_weight: Any = None, multi_label: bool = False,
                      label_weights: Any = None) -> None:
    """Keras's `update_confusion_matrix_variables`: add the (weighted) counts of true/false positives/negatives at
    each threshold (a prediction is positive when strictly above it) to the variables named ``tp``, ``fp``,
    ``tn``, ``fn`` in `variables`."""
    ops = _ops()
    dtype = "float32"
    y_true = ops.cast(ops.convert_to_tensor(y_true), dtype)
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), dtype)
    y_pred, y_true = _same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = ops.expand_dims(ops.cast(ops.convert_to_tensor(sample_weight), dtype), axis=-1)
        _, sample_weight = _same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if ops.ndim(y_pred) == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape (num_samples, "
                             f"num_classes), found shape: {ops.shape(y_pred)}")
        y_true = ops.take(y_true, np.array([class_id], dtype=np.int32), axis=-1)
        y_pred = ops.take(y_pred, np.array([class_id], dtype=np.int32), axis=-1)
    t = np.asarray(thresholds, dtype=np.float32)
    if multi_label:
        preds, labels = ops.expand_dims(y_pred, 0), ops.expand_dims(ops.not_equal(y_true, 0), 0)
        t = t.reshape(-1, 1, 1)
    else:
        preds, labels = ops.reshape(y_pred, [1, -1]), ops.reshape(ops.not_equal(y_true, 0), [1, -1])
        t = t.reshape(-1, 1)
    pred_pos = ops.greater(preds, t)
    weights = None
    if sample_weight is not None:
        weights = ops.broadcast_to(sample_weight, ops.shape(y_pred))
        weights = ops.expand_dims(weights, 0) if multi_label else ops.reshape(weights, [1, -1])
    if label_weights is not None and not multi_label:
        lw = ops.broadcast_to(ops.expand_dims(ops.convert_to_tensor(label_weights), 0), ops.shape(y_pred))
        lw = ops.reshape(lw, [1, -1])
        weights = lw if weights is None else weights * lw
    shape_ones = ops.zeros_like(ops.cast(pred_pos, dtype))  # broadcasts the labels to (thresholds, ...)

    def add(name: str, label: Any, pred: Any) -> None:
        if name not in variables:
            return
        both = ops.logical_and(label, pred)
        value = ops.cast(both, dtype) if weights is None else ops.where(both, weights + shape_ones, 0.0)
        var = variables[name]
        var.assign(var + ops.sum(value, axis=1))

    add("tp", labels, pred_pos)
    add("fn", labels, ops.logical_not(pred_pos))
    add("fp", ops.logical_not(labels), pred_pos)
    add("tn", ops.logical_not(labels), ops.logical_not(pred_pos))


def _parse_thresholds(thresholds: Any, default: float) -> list:
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple)) else [thresholds]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {values}")
    return [float(v) for v in values]


class Precision(_BuiltinMetric):
    """True positives over predicted positives: a prediction is positive above `thresholds` (0.5 by default; a
    list gives one value per threshold), among the `top_k` largest, for class `class_id` only if given."""
    _default_name = "precision"
    _counts = ("tp", "fp")

    def __init__(self, thresholds: Any = None, top_k: Optional[int] = None, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype: Any = None) -> None:
        simple = top_k is None and class_id is None and (thresholds is None or isinstance(thresholds, (int, float)))
        self.__dict__["_builtin"] = simple  # the engine computes the plain form itself in fit / evaluate
        if simple:
            super().__init__(name, dtype, thresholds=thresholds)
        else:
            Metric.__init__(self, dtype=dtype, name=name)
            self._config = {"thresholds": thresholds, "top_k": top_k, "class_id": class_id}
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = _parse_thresholds(thresholds, 0.5 if top_k is None else _NEG_INF)
        n = len(self.thresholds)
        self.true_positives = self.add_variable(shape=(n,), initializer="zeros", name="true_positives")
        second = "false_positives" if self._counts[1] == "fp" else "false_negatives"
        setattr(self, second, self.add_variable(shape=(n,), initializer="zeros", name=second))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch's (weighted) counts at each threshold."""
        second = self.false_positives if self._counts[1] == "fp" else self.false_negatives
        _update_confusion({"tp": self.true_positives, self._counts[1]: second}, y_true, y_pred, self.thresholds,
                          top_k=self.top_k, class_id=self.class_id, sample_weight=sample_weight)

    def result(self) -> Any:
        """The value (one per threshold when several were given)."""
        ops = _ops()
        second = self.false_positives if self._counts[1] == "fp" else self.false_negatives
        out = ops.divide_no_nan(self.true_positives, ops.add(self.true_positives, second))
        return out[0] if len(self.thresholds) == 1 else out

    def get_config(self) -> dict:
        """Name, dtype, `thresholds`, `top_k`, `class_id` (the engine's form, for the plain metric)."""
        if self._builtin:
            return super().get_config()
        return {"name": self.name, "dtype": self._dtype, "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}

    def _serialized(self) -> dict:
        return {"module": "keras.metrics", "class_name": type(self).__name__, "config": self.get_config(),
                "registered_name": None}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        return cls(**config)


class Recall(Precision):
    """True positives over actual positives: a prediction is positive above `thresholds` (0.5 by default; a list
    gives one value per threshold), among the `top_k` largest, for class `class_id` only if given."""
    _default_name = "recall"
    _counts = ("tp", "fn")


class _SensitivitySpecificity(_KerasMetric):
    """The confusion counts at `num_thresholds` evenly spaced thresholds in [0, 1] (Keras's
    `SensitivitySpecificityBase`)."""
    _value_name = ""

    def __init__(self, value: float, num_thresholds: int = 200, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype: Any = None) -> None:
        if value < 0 or value > 1:
            raise ValueError(f"Argument `{self._value_name}` must be in the range [0, 1]. "
                             f"Received: {self._value_name}={value}")
        super().__init__(name=name, dtype=dtype)
        if num_thresholds <= 0:
            raise ValueError(f"Argument `num_thresholds` must be an integer > 0. Received: "
                             f"num_thresholds={num_thresholds}")
        self.value = value
        setattr(self, self._value_name, value)
        self.num_thresholds = num_thresholds
        self.class_id = class_id
        if num_thresholds == 1:
            self.thresholds = [0.5]
        else:
            self.thresholds = [0.0] + [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0]
        n = len(self.thresholds)
        for v in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            setattr(self, v, self.add_variable(shape=(n,), initializer="zeros", name=v))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch's (weighted) counts at each threshold."""
        _update_confusion({"tp": self.true_positives, "tn": self.true_negatives, "fp": self.false_positives,
                           "fn": self.false_negatives}, y_true, y_pred, self.thresholds, class_id=self.class_id,
                          sample_weight=sample_weight)

    def _rates(self) -> dict:
        ops = _ops()
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        return {"sensitivity": ops.divide_no_nan(tp, ops.add(tp, fn)), "recall": ops.divide_no_nan(tp, ops.add(tp, fn)),
                "specificity": ops.divide_no_nan(tn, ops.add(tn, fp)),
                "precision": ops.divide_no_nan(tp, ops.add(tp, fp))}

    def _best(self, constrained: str, dependent: str) -> Any:
        ops = _ops()
        rates = self._rates()
        feasible = ops.greater_equal(rates[constrained], self.value)
        return ops.maximum(ops.max(ops.where(feasible, rates[dependent], 0.0)), 0.0)

    def get_config(self) -> dict:
        """Name, dtype, `class_id`, `num_thresholds` and the constraint's value."""
        return {"name": self.name, "dtype": self._dtype, "class_id": self.class_id,
                "num_thresholds": self.num_thresholds, self._value_name: self.value}


class SensitivityAtSpecificity(_SensitivitySpecificity):
    """The best sensitivity (recall) at a threshold where the specificity is at least `specificity`."""
    _value_name = "specificity"

    def __init__(self, specificity: float, num_thresholds: int = 200, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype: Any = None) -> None:
        super().__init__(specificity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self) -> Any:
        """The sensitivity."""
        return self._best("specificity", "sensitivity")


class SpecificityAtSensitivity(_SensitivitySpecificity):
    """The best specificity at a threshold where the sensitivity (recall) is at least `sensitivity`."""
    _value_name = "sensitivity"

    def __init__(self, sensitivity: float, num_thresholds: int = 200, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype: Any = None) -> None:
        super().__init__(sensitivity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self) -> Any:
        """The specificity."""
        return self._best("sensitivity", "specificity")


class PrecisionAtRecall(_SensitivitySpecificity):
    """The best precision at a threshold where the recall is at least `recall`."""
    _value_name = "recall"

    def __init__(self, recall: float, num_thresholds: int = 200, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype: Any = None) -> None:
        super().__init__(recall, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self) -> Any:
        """The precision."""
        return self._best("recall", "precision")


class RecallAtPrecision(_SensitivitySpecificity):
    """The best recall at a threshold where the precision is at least `precision`."""
    _value_name = "precision"

    def __init__(self, precision: float, num_thresholds: int = 200, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype: Any = None) -> None:
        super().__init__(precision, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self) -> Any:
        """The recall."""
        return self._best("precision", "recall")


_CLASSES.update({c.__name__: c for c in (Sum, Mean, MeanMetricWrapper, RootMeanSquaredError, R2Score, FBetaScore,
                                         F1Score, IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU, Precision, Recall,
                                         SensitivityAtSpecificity, SpecificityAtSensitivity, PrecisionAtRecall,
                                         RecallAtPrecision)})


class _LossMetric(MeanMetricWrapper):
    """A Keras `MeanMetricWrapper` subclass over one of `kerust.losses`' functions: the (weighted) mean of its
    per-sample values."""
    _loss_fn = ""
    _metric_name = ""

    def __init__(self, name: Optional[str] = None, dtype: Any = None, **kwargs: Any) -> None:
        from . import losses

        super().__init__(getattr(losses, self._loss_fn), name=name or self._metric_name, dtype=dtype, **kwargs)

    def get_config(self) -> dict:
        """Name and dtype (and the function's arguments), as Keras."""
        return {"name": self.name, "dtype": self._dtype, **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        return cls(**config)


class MeanAbsolutePercentageError(_LossMetric):
    """The mean absolute percentage error, as a metric."""
    _loss_fn, _metric_name = "mean_absolute_percentage_error", "mean_absolute_percentage_error"

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class MeanSquaredLogarithmicError(_LossMetric):
    """The mean squared logarithmic error, as a metric."""
    _loss_fn, _metric_name = "mean_squared_logarithmic_error", "mean_squared_logarithmic_error"

    def __init__(self, name: str = "mean_squared_logarithmic_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class LogCoshError(_LossMetric):
    """The logarithm of the hyperbolic cosine of the error, as a metric."""
    _loss_fn, _metric_name = "log_cosh", "logcosh"

    def __init__(self, name: str = "logcosh", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Any:
    """Keras's metric `cosine_similarity`: the cosine of the angle between targets and predictions along `axis`
    (the loss of that name is its negative)."""
    from . import losses

    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


class CosineSimilarity(MeanMetricWrapper):
    """The cosine similarity of targets and predictions along `axis`, as a metric."""

    def __init__(self, name: str = "cosine_similarity", dtype: Any = None, axis: int = -1) -> None:
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis)

    def get_config(self) -> dict:
        """Name and dtype (as Keras: `axis` is not written)."""
        return {"name": self.name, "dtype": self._dtype}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        return cls(**config)


class Hinge(_LossMetric):
    """The hinge loss, as a metric."""
    _loss_fn, _metric_name = "hinge", "hinge"

    def __init__(self, name: str = "hinge", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class SquaredHinge(_LossMetric):
    """The squared hinge loss, as a metric."""
    _loss_fn, _metric_name = "squared_hinge", "squared_hinge"

    def __init__(self, name: str = "squared_hinge", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class CategoricalHinge(_LossMetric):
    """The categorical hinge loss, as a metric."""
    _loss_fn, _metric_name = "categorical_hinge", "categorical_hinge"

    def __init__(self, name: str = "categorical_hinge", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class KLDivergence(_LossMetric):
    """The Kullback-Leibler divergence of predictions from targets, as a metric."""
    _loss_fn, _metric_name = "kl_divergence", "kl_divergence"

    def __init__(self, name: str = "kl_divergence", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class Poisson(_LossMetric):
    """The Poisson loss, as a metric."""
    _loss_fn, _metric_name = "poisson", "poisson"

    def __init__(self, name: str = "poisson", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


_CLASSES.update({c.__name__: c for c in (MeanAbsolutePercentageError, MeanSquaredLogarithmicError, LogCoshError,
                                         CosineSimilarity, Hinge, SquaredHinge, CategoricalHinge, KLDivergence,
                                         Poisson)})

"""Keras metrics. Names (``"accuracy"``, ``"mae"``...) or these objects go to ``compile(metrics=[...])``; the
engine accumulates them over each epoch in Rust."""

from __future__ import annotations

from typing import Any, Optional

from . import _core
from . import _json

NAMES = tuple(_core.METRIC_NAMES)
"""Metric names the engine knows (its list: the one source)."""


class Metric:
    """Base of the metric objects. The engine computes the value and accumulates it over each epoch."""
    _default_name = ""

    def __init__(self, name: Optional[str] = None, dtype: Any = None, **config: Any) -> None:
        self.name = name or self._default_name
        self._config = config
        _core.validate("metric", _json.dumps(self._serialized()))

    def get_config(self) -> dict:
        """The metric's arguments as a dict."""
        return {"name": self.name, "dtype": "float32", **self._config}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        """A new metric from a `get_config()` dict."""
        config = {k: v for k, v in config.items() if k != "dtype"}
        return cls(**config)

    def _serialized(self) -> dict:
        return {"module": "keras.metrics", "class_name": type(self).__name__, "config": self.get_config(),
                "registered_name": None}

    def __getattr__(self, key: str) -> Any:
        config = self.__dict__.get("_config", {})
        if key in config:
            return config[key]
        raise AttributeError(key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class BinaryAccuracy(Metric):
    """The fraction of predictions on the same side of `threshold` as their 0/1 target."""
    _default_name = "binary_accuracy"

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5) -> None:
        super().__init__(name, dtype, threshold=threshold)


class CategoricalAccuracy(Metric):
    """The fraction of samples whose largest prediction is at the one-hot target's class."""
    _default_name = "categorical_accuracy"


class SparseCategoricalAccuracy(Metric):
    """The fraction of samples whose largest prediction is at the integer label."""
    _default_name = "sparse_categorical_accuracy"


class TopKCategoricalAccuracy(Metric):
    """The fraction of samples whose one-hot target's class is among the `k` largest predictions."""
    _default_name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name, dtype, k=k)


class SparseTopKCategoricalAccuracy(Metric):
    """The fraction of samples whose integer label is among the `k` largest predictions."""
    _default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name, dtype, k=k)


class MeanSquaredError(Metric):
    """The mean squared error, as a metric."""
    _default_name = "mean_squared_error"


class MeanAbsoluteError(Metric):
    """The mean absolute error, as a metric."""
    _default_name = "mean_absolute_error"


class Precision(Metric):
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


class AUC(Metric):
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
        self._config = {}
        self.fn = fn

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
    if isinstance(metric, MeanMetricWrapper):
        return metric._engine_spec(name or metric.name, list(shape or []), list(shape or []))
    if isinstance(metric, Metric):
        out = metric._serialized()
        if name is not None:
            out["config"]["name"] = name
        return out
    if name is not None and name != metric:
        return {"class_name": metric, "config": {"name": name}}
    return metric


def name_of(metric: Any) -> str:
    """The name a metric is reported under in the logs."""
    return metric.name if isinstance(metric, Metric) else str(metric)

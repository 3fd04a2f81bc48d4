"""Keras losses. Instances are callable on NumPy arrays and return the mean loss; the formula is the engine's."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._arrays import as_float32
from . import _json


class Loss:
    """Base of the losses. `loss(y_true, y_pred)` returns the mean loss over the batch, computed by the engine with
    the formula used in training."""
    _keras_name = ""

    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size",
                 name: Optional[str] = None) -> None:
        if reduction != "sum_over_batch_size":
            raise ValueError(f"{type(self).__name__}: only reduction='sum_over_batch_size' is supported, "
                             f"received {reduction!r}")
        self.from_logits = bool(from_logits)
        self.reduction = reduction
        self.name = name or self._keras_name

    def get_config(self) -> dict:
        """The loss's arguments as a dict: `name`, `reduction`, `from_logits`."""
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}

    def _serialized(self) -> dict:
        return {"class_name": type(self).__name__, "config": self.get_config()}

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-sample losses from `keras.ops` (subclasses define it; kerust traces it into the engine)."""
        raise NotImplementedError(f"Loss {type(self).__name__} does not implement `call(y_true, y_pred)`")

    def _traced(self) -> bool:
        return type(self).call is not Loss.call

    def _engine_spec(self, y_shape: list, pred_shape: list) -> dict:
        """What the engine computes for this loss: a built-in's config, or the traced graph of `call`."""
        if not self._traced():
            return self._serialized()
        return {"graph": _trace_loss(self.call, y_shape, pred_shape, self.name)}

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """The mean loss of a batch, as a float. `sample_weight` is supported in `fit` and `evaluate` only."""
        if sample_weight is not None:
            raise ValueError("sample_weight is supported in fit/evaluate; for a direct loss call, weight the "
                             "per-sample values yourself")
        if self._traced():
            return float(_eager_traced_loss(self, y_true, y_pred))
        yt = as_float32("y_true", y_true)
        yp = as_float32("y_pred", y_pred)
        # Keras squeezes/expands a trailing axis of 1 so (n,) targets meet (n, 1) predictions
        if not isinstance(self, SparseCategoricalCrossentropy):
            if yt.ndim == yp.ndim - 1 and yp.shape[-1] == 1:
                yt = yt[..., None]
            elif yp.ndim == yt.ndim - 1 and yt.shape[-1] == 1:
                yp = yp[..., None]
        return float(_core.loss_value(_json.dumps(self._serialized()), yt, yp))


class MeanSquaredError(Loss):
    """Mean of `(y_true - y_pred) ** 2`."""
    _keras_name = "mean_squared_error"

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        super().__init__(False, reduction, name)


class MeanAbsoluteError(Loss):
    """Mean of `abs(y_true - y_pred)`."""
    _keras_name = "mean_absolute_error"

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        super().__init__(False, reduction, name)


class CategoricalCrossentropy(Loss):
    """Cross-entropy between one-hot (or probability) targets and predicted probabilities, or logits with
    `from_logits=True`."""
    _keras_name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        if label_smoothing or axis != -1:
            raise ValueError("CategoricalCrossentropy: label_smoothing and axis other than -1 are not supported yet")
        super().__init__(from_logits, reduction, name)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer class labels as targets."""
    _keras_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, ignore_class: Optional[int] = None,
                 reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy: ignore_class is not supported yet")
        super().__init__(from_logits, reduction, name)


class BinaryCrossentropy(Loss):
    """Cross-entropy for 0/1 targets and probabilities (sigmoid outputs), or logits with `from_logits=True`."""
    _keras_name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        if label_smoothing or axis != -1:
            raise ValueError("BinaryCrossentropy: label_smoothing and axis other than -1 are not supported yet")
        super().__init__(from_logits, reduction, name)


_CLASSES = (MeanSquaredError, MeanAbsoluteError, CategoricalCrossentropy, SparseCategoricalCrossentropy,
            BinaryCrossentropy)
_BY_NAME = {cls._keras_name: cls for cls in _CLASSES}
_BY_NAME.update({"mse": MeanSquaredError, "mae": MeanAbsoluteError})
_BY_NAME.update({cls.__name__: cls for cls in _CLASSES})


class LossFunctionWrapper(Loss):
    """A function `fn(y_true, y_pred)` of `keras.ops` returning per-sample losses, as a Loss (Keras wraps
    functions passed to `compile(loss=...)` the same way)."""

    def __init__(self, fn: Any, reduction: str = "sum_over_batch_size", name: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(False, reduction, name or getattr(fn, "__name__", "loss"))
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict:
        from ._registry import serialize_function

        return {"name": self.name, "reduction": self.reduction, "fn": serialize_function(self.fn),
                **self.fn_kwargs}


def _trace_loss(fn: Any, y_shape: list, pred_shape: list, name: str) -> dict:
    """The engine graph of `fn(y_true, y_pred)` on symbolic targets and predictions of these sample shapes."""
    from ._custom import Placeholder, Trace, _inline
    from ._graph import KerasTensor
    from ._variable import trace_scope
    from .models import _FlatGraph

    yt = Placeholder(KerasTensor((None, *y_shape))).tensor
    yp = Placeholder(KerasTensor((None, *pred_shape))).tensor
    with trace_scope():
        out = fn(yt, yp)
    if not isinstance(out, KerasTensor):
        raise TypeError(f"The loss '{name}' must return a tensor made with keras.ops, it returned {out!r}")
    flat = _FlatGraph(2)
    outputs = _inline(Trace([yt, yp], out), flat, [0, 1])
    if not flat.nodes:  # the loss returns an input unchanged: give the engine one node to run
        outputs = [flat._add_op_unit("Op", {"name": "identity", "op": "identity"}, outputs)]
    return flat.spec([list(y_shape), list(pred_shape)], outputs)


def _eager_traced_loss(loss: Loss, y_true: Any, y_pred: Any) -> float:
    import numpy as np

    values = np.asarray(loss.call(np.asarray(y_true, dtype=np.float32), np.asarray(y_pred, dtype=np.float32)))
    return float(np.mean(values))


# ---- Keras's loss functions: fn(y_true, y_pred) of keras.ops giving per-sample losses --------------------------------
_EPSILON = 1e-7  # keras.backend.epsilon()


def _tensors(y_true: Any, y_pred: Any) -> Tuple[Any, Any]:
    """`y_pred` as a float tensor and `y_true` cast to its dtype (Keras's `convert_to_tensor` + `cast`)."""
    from . import ops

    if not _is_symbolic(y_pred):
        y_pred = np.asarray(y_pred, dtype=np.float32)
    if not _is_symbolic(y_true):
        y_true = np.asarray(y_true, dtype=np.float32)
    elif y_true.dtype != y_pred.dtype:
        y_true = ops.cast(y_true, y_pred.dtype)
    return y_true, y_pred


def _is_symbolic(x: Any) -> bool:
    from ._graph import KerasTensor

    return isinstance(x, KerasTensor)


def squeeze_or_expand_to_same_rank(x1: Any, x2: Any, expand_rank_1: bool = True) -> Tuple[Any, Any]:
    """Squeezes or expands the last axis of one of two tensors whose ranks differ by exactly one (Keras's rule)."""
    from . import ops

    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.expand_dims(x2, axis=-1)
        else:
            x1 = ops.squeeze(x1, axis=-1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.expand_dims(x1, axis=-1)
        else:
            x2 = ops.squeeze(x2, axis=-1)
    return x1, x2


def _prepared(y_true: Any, y_pred: Any) -> Tuple[Any, Any]:
    y_true, y_pred = _tensors(y_true, y_pred)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def convert_binary_labels_to_hinge(y_true: Any) -> Any:
    """0/1 labels as -1/1 (all the batch's labels must be 0 or 1; other labels are returned unchanged)."""
    from . import ops

    is_binary = ops.all(ops.logical_or(ops.equal(y_true, 0), ops.equal(y_true, 1)))
    return ops.cond(is_binary, lambda: 2.0 * y_true - 1.0, lambda: y_true)


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """`mean(square(y_true - y_pred), axis=-1)`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    """`mean(abs(y_true - y_pred), axis=-1)`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Any:
    """`100 * mean(abs((y_true - y_pred) / maximum(abs(y_true), epsilon)), axis=-1)`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), _EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> Any:
    """`mean(square(log(maximum(y_pred, eps) + 1) - log(maximum(y_true, eps) + 1)), axis=-1)`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    first_log = ops.log(ops.maximum(y_pred, _EPSILON) + 1.0)
    second_log = ops.log(ops.maximum(y_true, _EPSILON) + 1.0)
    return ops.mean(ops.square(first_log - second_log), axis=-1)


def _l2_normalize(x: Any, axis: int) -> Any:
    """Keras's `ops.nn.normalize(x, axis, order=2)`: `x * minimum(rsqrt(sum(x**2)), 1 / epsilon)`."""
    from . import ops

    inv_norm = ops.rsqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
    return x * ops.minimum(inv_norm, 1.0 / _EPSILON)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Any:
    """`-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis=axis)`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    return -ops.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Any:
    """Mean over the last axis of `0.5 * x**2` where `|x| <= delta`, else `delta * |x| - 0.5 * delta**2`, with
    `x = y_pred - y_true`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    delta = float(delta)
    error = ops.subtract(y_pred, y_true)
    abs_error = ops.abs(error)
    return ops.mean(ops.where(abs_error <= delta, 0.5 * ops.square(error), delta * abs_error - 0.5 * delta * delta),
                    axis=-1)


def log_cosh(y_true: Any, y_pred: Any) -> Any:
    """`mean(log(cosh(y_pred - y_true)), axis=-1)`, computed as `x + softplus(-2x) - log(2)`."""
    from . import ops

    y_true, y_pred = _prepared(y_true, y_pred)
    x = y_pred - y_true
    return ops.mean(x + ops.softplus(x * -2.0) - float(np.float32(np.log(2.0))), axis=-1)


def kl_divergence(y_true: Any, y_pred: Any) -> Any:
    """`sum(y_true * log(y_true / y_pred), axis=-1)`, both clipped to `[epsilon, 1]`."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = ops.clip(y_true, _EPSILON, 1.0)
    y_pred = ops.clip(y_pred, _EPSILON, 1.0)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


def poisson(y_true: Any, y_pred: Any) -> Any:
    """`mean(y_pred - y_true * log(y_pred + epsilon), axis=-1)`."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    return ops.mean(y_pred - y_true * ops.log(y_pred + _EPSILON), axis=-1)


def hinge(y_true: Any, y_pred: Any) -> Any:
    """`mean(maximum(1 - y_true * y_pred, 0), axis=-1)`; 0/1 labels are taken as -1/1."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = convert_binary_labels_to_hinge(y_true)
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> Any:
    """`mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)`; 0/1 labels are taken as -1/1."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = convert_binary_labels_to_hinge(y_true)
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> Any:
    """`maximum(neg - pos + 1, 0)` with `pos = sum(y_true * y_pred)`, `neg = max((1 - y_true) * y_pred)` over the
    last axis."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


def get(identifier: Any) -> Loss:
    """A loss from a name (``"mse"``, ``"categorical_crossentropy"``), a config dict, a Loss instance, or a
    function `fn(y_true, y_pred)` made of `keras.ops`."""
    if isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError(
                f"Could not interpret loss identifier: {identifier!r}. Expected one of: "
                f"{', '.join(sorted(k for k in _BY_NAME if k.islower()))}"
            )
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        cls = _BY_NAME[identifier["class_name"]]
        config = {k: v for k, v in identifier.get("config", {}).items() if k != "fn"}
        if cls in (MeanSquaredError, MeanAbsoluteError):
            config.pop("from_logits", None)
        return cls(**config)
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")

"""Keras losses. Instances are callable on NumPy arrays and return the mean loss; the formula is the engine's."""

from __future__ import annotations

import builtins

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._arrays import as_float32
from . import _json


_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")


def standardize_reduction(reduction: Any) -> Any:
    """`reduction` if Keras allows it, else Keras's ValueError."""
    if not isinstance(reduction, (str, type(None))) or reduction not in _REDUCTIONS:
        raise ValueError("Invalid value for argument `reduction`. Expected one of {'sum_over_batch_size', 'sum', "
                         f"None, 'none', 'mean', 'mean_with_sample_weight'}}. Received: reduction={reduction}")
    return reduction


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def reduce_weighted_values(values: Any, sample_weight: Any = None, reduction: Any = "sum_over_batch_size",
                           mask: Any = None) -> Any:
    """Keras's reduction of per-sample losses on NumPy arrays: weighted by `sample_weight` (its rank squeezed or
    expanded to the values'), then summed, and divided by the number of values ("sum_over_batch_size"/"mean") or
    by the sum of the weights ("mean_with_sample_weight"); None/"none" returns the weighted values."""
    reduction = standardize_reduction(reduction)
    values = np.asarray(values, dtype=np.float32)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
    if mask is not None:  # Keras's apply_mask: masked values weigh 0, the others total/valid for the means
        mask = np.asarray(mask, dtype=bool)
        if reduction in _MEAN_REDUCTIONS:
            valid = np.float32(mask.sum())
            float_mask = np.where(mask, np.float32(0.0) if valid == 0 else np.float32(mask.size) / valid,
                                  np.float32(0.0)).astype(np.float32)
        else:
            float_mask = mask.astype(np.float32)
        if sw is not None:
            float_mask, sw = squeeze_or_expand_to_same_rank(float_mask, sw)
            sw = (sw * float_mask).astype(np.float32)
        else:
            sw = float_mask
    if sw is not None:
        values, sw = squeeze_or_expand_to_same_rank(values, sw)
        try:
            values = (values * sw).astype(np.float32)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sw.shape} cannot weight losses of shape {values.shape}") \
                from None
    if reduction is None or reduction == "none" or values.shape in ((), (0,)):
        return values
    loss = np.sum(values, dtype=np.float32)
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        if reduction == "mean_with_sample_weight" and sw is not None:
            divisor = np.sum(sw, dtype=np.float32)
        else:
            divisor = np.float32(values.size)
        loss = np.float32(0.0) if divisor == 0 else np.float32(loss / divisor)
    return float(loss)


class Loss:
    """Base of the losses (Keras's `keras.losses.Loss`). Subclasses define `call(y_true, y_pred)` with
    `keras.ops`, returning per-sample losses; kerust traces it into the engine for training. `loss(y_true, y_pred,
    sample_weight=None)` on NumPy arrays returns the reduced loss as Keras does (an array for `reduction=None`)."""
    _keras_name = ""
    _engine_cls: Any = None  # an engine built-in with the same formula for default arguments

    def __init__(self, name: Optional[str] = None, reduction: Any = "sum_over_batch_size",
                 dtype: Any = None) -> None:
        self.name = name or self._keras_name or _snake(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        if dtype not in (None, "float32"):
            raise ValueError(f"{type(self).__name__}: kerust losses compute in float32, received dtype={dtype!r}")
        self._dtype = "float32"

    @property
    def dtype(self) -> str:
        """The dtype of the loss's computations (float32)."""
        return self._dtype

    def get_config(self) -> dict:
        """The loss's arguments as a dict: `name`, `reduction` (and each subclass's own)."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        """The loss rebuilt from `get_config()`'s dict."""
        return cls(**config)

    def _serialized(self) -> dict:
        return {"class_name": type(self).__name__, "config": self.get_config()}

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-sample losses from `keras.ops` (subclasses define it; kerust traces it into the engine)."""
        raise NotImplementedError(f"Loss {type(self).__name__} does not implement `call(y_true, y_pred)`")

    def _traced(self) -> bool:
        return type(self).call is not Loss.call

    def _defaults(self) -> bool:
        """Whether the arguments are those the engine built-in computes."""
        return False

    def _builtin_config(self) -> Optional[dict]:
        """The engine built-in's config when it computes this loss (the same formula and default arguments)."""
        cls = self._engine_cls
        if cls is None or type(self).call is not cls.call or not self._defaults():
            return None
        return {"class_name": cls.__name__, "config": {"from_logits": bool(getattr(self, "from_logits", False))}}

    def _engine_spec(self, y_shape: list, pred_shape: list) -> dict:
        """What the engine computes for this loss: a built-in's config, or the traced graph of `call` with its
        reduction (None/"none" trains on the mean, as the engine needs a scalar)."""
        builtin = self._builtin_config()
        if builtin is not None and self.reduction in (*_MEAN_REDUCTIONS, None, "none"):
            return builtin
        spec = {"graph": _trace_loss(self.call, y_shape, pred_shape, self.name)}
        if self.reduction is not None:
            spec["reduction"] = self.reduction
        return spec

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """The loss of a batch reduced by `reduction` and weighted by `sample_weight`: a float, or the per-sample
        NumPy array for `reduction=None`/"none"."""
        if self._builtin_config() is not None and sample_weight is None and self.reduction in _MEAN_REDUCTIONS:
            yt = as_float32("y_true", y_true)
            yp = as_float32("y_pred", y_pred)
            # Keras squeezes/expands a trailing axis of 1 so (n,) targets meet (n, 1) predictions
            if not isinstance(self, SparseCategoricalCrossentropy):
                if yt.ndim == yp.ndim - 1 and yp.shape[-1] == 1:
                    yt = yt[..., None]
                elif yp.ndim == yt.ndim - 1 and yt.shape[-1] == 1:
                    yp = yp[..., None]
            builtin = self._builtin_config()
            return float(_core.loss_value(_json.dumps(builtin), yt, yp))
        yt = np.asarray(y_true, dtype=np.float32)
        yp = np.asarray(y_pred, dtype=np.float32)
        values = self.call(yt, yp)
        return reduce_weighted_values(values, sample_weight, self.reduction, self._values_mask(yt, yp))

    def _values_mask(self, y_true: np.ndarray, y_pred: np.ndarray) -> Optional[np.ndarray]:
        """The mask Keras attaches to the loss values (None: no mask)."""
        return None


class LossFunctionWrapper(Loss):
    """A function `fn(y_true, y_pred, **kwargs)` of `keras.ops` returning per-sample losses, as a Loss (Keras wraps
    functions passed to `compile(loss=...)` the same way). Targets and predictions whose ranks differ by one
    trailing axis of 1 are squeezed or expanded to the same rank first."""

    def __init__(self, fn: Any, reduction: Any = "sum_over_batch_size", name: Optional[str] = None,
                 dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name or getattr(fn, "__name__", "loss"), reduction, dtype)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """`fn(y_true, y_pred, **kwargs)` after Keras's rank alignment."""
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict:
        """`name`, `reduction`, the serialized `fn` and its keyword arguments."""
        from ._registry import serialize_function

        return {"name": self.name, "reduction": self.reduction, "fn": serialize_function(self.fn),
                **self.fn_kwargs}


class _BuiltinLoss(LossFunctionWrapper):
    """A Keras built-in: its function with its arguments; its config is Loss's plus `_config_keys`."""
    _config_keys: Tuple[str, ...] = ()

    def get_config(self) -> dict:
        """`name`, `reduction` and the loss's own arguments."""
        config = Loss.get_config(self)
        config.update({k: getattr(self, k) for k in self._config_keys})
        return config


def _float_arg(cls: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{cls}: `{name}` must be a number, received {name}={value!r}")
    return float(value)


def _axis_arg(cls: str, value: Any, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={value} of type {type(value)}")
    if isinstance(value, (list, tuple)) and allow_none:
        return tuple(_axis_arg(cls, a) for a in value)
    if not isinstance(value, (int, np.integer)):
        raise ValueError(f"{cls}: `axis` must be an int{' or a tuple of ints' if allow_none else ''}, received "
                         f"axis={value!r}")
    return int(value)


def _probability_arg(cls: str, name: str, value: Any) -> float:
    v = _float_arg(cls, name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{cls}: `{name}` must be in [0, 1], received {name}={value!r}")
    return v


class MeanSquaredError(_BuiltinLoss):
    """Mean of `(y_true - y_pred) ** 2` over the last axis."""
    _keras_name = "mean_squared_error"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "mean_squared_error",
                 dtype: Any = None) -> None:
        super().__init__(mean_squared_error, reduction, name, dtype)

    def _defaults(self) -> bool:
        return True


class MeanAbsoluteError(_BuiltinLoss):
    """Mean of `abs(y_true - y_pred)` over the last axis."""
    _keras_name = "mean_absolute_error"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "mean_absolute_error",
                 dtype: Any = None) -> None:
        super().__init__(mean_absolute_error, reduction, name, dtype)

    def _defaults(self) -> bool:
        return True


class MeanAbsolutePercentageError(_BuiltinLoss):
    """`100 * mean(abs((y_true - y_pred) / maximum(abs(y_true), epsilon)))` over the last axis."""
    _keras_name = "mean_absolute_percentage_error"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "mean_absolute_percentage_error",
                 dtype: Any = None) -> None:
        super().__init__(mean_absolute_percentage_error, reduction, name, dtype)


class MeanSquaredLogarithmicError(_BuiltinLoss):
    """Mean of `(log(y_true + 1) - log(y_pred + 1)) ** 2` over the last axis (values below epsilon clipped)."""
    _keras_name = "mean_squared_logarithmic_error"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "mean_squared_logarithmic_error",
                 dtype: Any = None) -> None:
        super().__init__(mean_squared_logarithmic_error, reduction, name, dtype)


class CosineSimilarity(_BuiltinLoss):
    """Negative cosine similarity between targets and predictions along `axis`."""
    _keras_name = "cosine_similarity"

    def __init__(self, axis: int = -1, reduction: Any = "sum_over_batch_size", name: str = "cosine_similarity",
                 dtype: Any = None) -> None:
        axis = _axis_arg("CosineSimilarity", axis)
        super().__init__(cosine_similarity, reduction, name, dtype, axis=axis)


class Huber(_BuiltinLoss):
    """Huber loss: quadratic for errors up to `delta`, linear beyond."""
    _keras_name = "huber_loss"

    def __init__(self, delta: float = 1.0, reduction: Any = "sum_over_batch_size", name: str = "huber_loss",
                 dtype: Any = None) -> None:
        delta = _float_arg("Huber", "delta", delta)
        if delta < 0:
            raise ValueError(f"Huber: `delta` must be non-negative, received delta={delta!r}")
        super().__init__(huber, reduction, name, dtype, delta=delta)


class LogCosh(_BuiltinLoss):
    """Mean of `log(cosh(y_pred - y_true))` over the last axis."""
    _keras_name = "log_cosh"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "log_cosh", dtype: Any = None) -> None:
        super().__init__(log_cosh, reduction, name, dtype)


class Hinge(_BuiltinLoss):
    """Mean of `maximum(1 - y_true * y_pred, 0)`; 0/1 targets are taken as -1/1."""
    _keras_name = "hinge"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "hinge", dtype: Any = None) -> None:
        super().__init__(hinge, reduction, name, dtype)


class SquaredHinge(_BuiltinLoss):
    """Mean of `maximum(1 - y_true * y_pred, 0) ** 2`; 0/1 targets are taken as -1/1."""
    _keras_name = "squared_hinge"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "squared_hinge",
                 dtype: Any = None) -> None:
        super().__init__(squared_hinge, reduction, name, dtype)


class CategoricalHinge(_BuiltinLoss):
    """`maximum(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` over the last axis."""
    _keras_name = "categorical_hinge"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "categorical_hinge",
                 dtype: Any = None) -> None:
        super().__init__(categorical_hinge, reduction, name, dtype)


class KLDivergence(_BuiltinLoss):
    """Kullback-Leibler divergence `sum(y_true * log(y_true / y_pred))` over the last axis."""
    _keras_name = "kl_divergence"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "kl_divergence",
                 dtype: Any = None) -> None:
        super().__init__(kl_divergence, reduction, name, dtype)


class Poisson(_BuiltinLoss):
    """Mean of `y_pred - y_true * log(y_pred + epsilon)` over the last axis."""
    _keras_name = "poisson"

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "poisson", dtype: Any = None) -> None:
        super().__init__(poisson, reduction, name, dtype)


class BinaryCrossentropy(_BuiltinLoss):
    """Cross-entropy for 0/1 targets and probabilities (sigmoid outputs), or logits with `from_logits=True`;
    `label_smoothing` moves targets towards 0.5, the mean is taken over `axis`."""
    _keras_name = "binary_crossentropy"
    _config_keys = ("from_logits", "label_smoothing", "axis")

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Any = "sum_over_batch_size", name: str = "binary_crossentropy",
                 dtype: Any = None) -> None:
        label_smoothing = _probability_arg("BinaryCrossentropy", "label_smoothing", label_smoothing)
        axis = _axis_arg("BinaryCrossentropy", axis)
        super().__init__(binary_crossentropy, reduction, name, dtype, from_logits=bool(from_logits),
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis

    def _defaults(self) -> bool:
        return not self.label_smoothing and self.axis == -1


class BinaryFocalCrossentropy(_BuiltinLoss):
    """Binary cross-entropy times the focal factor `(1 - p_t) ** gamma`, weighted by `alpha` for the positive
    class (`1 - alpha` for the negative) with `apply_class_balancing=True`."""
    _keras_name = "binary_focal_crossentropy"
    _config_keys = ("from_logits", "label_smoothing", "axis", "apply_class_balancing", "alpha", "gamma")

    def __init__(self, apply_class_balancing: bool = False, alpha: float = 0.25, gamma: float = 2.0,
                 from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Any = "sum_over_batch_size", name: str = "binary_focal_crossentropy",
                 dtype: Any = None) -> None:
        cls = "BinaryFocalCrossentropy"
        alpha = _probability_arg(cls, "alpha", alpha)
        gamma = _float_arg(cls, "gamma", gamma)
        if gamma < 0:
            raise ValueError(f"{cls}: `gamma` must be non-negative, received gamma={gamma!r}")
        label_smoothing = _probability_arg(cls, "label_smoothing", label_smoothing)
        axis = _axis_arg(cls, axis)
        super().__init__(binary_focal_crossentropy, reduction, name, dtype,
                         apply_class_balancing=bool(apply_class_balancing), alpha=alpha, gamma=gamma,
                         from_logits=bool(from_logits), label_smoothing=label_smoothing, axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = alpha
        self.gamma = gamma


class CategoricalCrossentropy(_BuiltinLoss):
    """Cross-entropy between one-hot (or probability) targets and predicted probabilities, or logits with
    `from_logits=True`; `label_smoothing` mixes targets with the uniform distribution; classes along `axis`."""
    _keras_name = "categorical_crossentropy"
    _config_keys = ("from_logits", "label_smoothing", "axis")

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Any = "sum_over_batch_size", name: str = "categorical_crossentropy",
                 dtype: Any = None) -> None:
        label_smoothing = _probability_arg("CategoricalCrossentropy", "label_smoothing", label_smoothing)
        axis = _axis_arg("CategoricalCrossentropy", axis)
        super().__init__(categorical_crossentropy, reduction, name, dtype, from_logits=bool(from_logits),
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis

    def _defaults(self) -> bool:
        return not self.label_smoothing and self.axis == -1


class CategoricalFocalCrossentropy(_BuiltinLoss):
    """Categorical cross-entropy of each class times `alpha * (1 - p) ** gamma`, summed over `axis`."""
    _keras_name = "categorical_focal_crossentropy"
    _config_keys = ("from_logits", "label_smoothing", "axis", "alpha", "gamma")

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                 label_smoothing: float = 0.0, axis: int = -1, reduction: Any = "sum_over_batch_size",
                 name: str = "categorical_focal_crossentropy", dtype: Any = None) -> None:
        cls = "CategoricalFocalCrossentropy"
        alpha = _float_arg(cls, "alpha", alpha)
        gamma = _float_arg(cls, "gamma", gamma)
        if gamma < 0:
            raise ValueError(f"{cls}: `gamma` must be non-negative, received gamma={gamma!r}")
        label_smoothing = _probability_arg(cls, "label_smoothing", label_smoothing)
        axis = _axis_arg(cls, axis)
        super().__init__(categorical_focal_crossentropy, reduction, name, dtype, alpha=alpha, gamma=gamma,
                         from_logits=bool(from_logits), label_smoothing=label_smoothing, axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.alpha = alpha
        self.gamma = gamma


class SparseCategoricalCrossentropy(_BuiltinLoss):
    """Cross-entropy with integer class labels as targets; targets equal to `ignore_class` give a zero loss."""
    _keras_name = "sparse_categorical_crossentropy"
    _config_keys = ("from_logits", "ignore_class")

    def __init__(self, from_logits: bool = False, ignore_class: Optional[int] = None,
                 reduction: Any = "sum_over_batch_size", axis: int = -1,
                 name: str = "sparse_categorical_crossentropy", dtype: Any = None) -> None:
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, (int, np.integer))):
            raise TypeError(f"SparseCategoricalCrossentropy: `ignore_class` must be an int or None, received "
                            f"ignore_class={ignore_class!r}")
        axis = _axis_arg("SparseCategoricalCrossentropy", axis)
        ignore = None if ignore_class is None else int(ignore_class)
        super().__init__(sparse_categorical_crossentropy, reduction, name, dtype, from_logits=bool(from_logits),
                         ignore_class=ignore, axis=axis)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore
        self.axis = axis

    def _defaults(self) -> bool:
        return self.ignore_class is None and self.axis == -1

    def _values_mask(self, y_true: np.ndarray, y_pred: np.ndarray) -> Optional[np.ndarray]:
        if self.ignore_class is None:
            return None
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if y_true.ndim == y_pred.ndim and y_true.shape[self.axis] == 1:
            y_true = np.squeeze(y_true, axis=self.axis)
        return np.asarray(y_true != np.float32(self.ignore_class))

    def _engine_spec(self, y_shape: list, pred_shape: list) -> dict:
        if self._builtin_config() is None:
            _sparse_targets_refused(self)
        return super()._engine_spec(y_shape, pred_shape)


class Dice(_BuiltinLoss):
    """`1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred) + epsilon)` over `axis` (None: every axis)."""
    _keras_name = "dice"
    _config_keys = ("axis",)

    def __init__(self, reduction: Any = "sum_over_batch_size", name: str = "dice", axis: Any = None,
                 dtype: Any = None) -> None:
        axis = _axis_arg("Dice", axis, allow_none=True)
        super().__init__(dice, reduction, name, dtype, axis=axis)
        self.axis = axis


class Tversky(_BuiltinLoss):
    """`1 - TP / (TP + alpha * FP + beta * FN + epsilon)` over `axis` (None: every axis)."""
    _keras_name = "tversky"
    _config_keys = ("alpha", "beta", "axis")

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, reduction: Any = "sum_over_batch_size",
                 name: str = "tversky", axis: Any = None, dtype: Any = None) -> None:
        alpha = _float_arg("Tversky", "alpha", alpha)
        beta = _float_arg("Tversky", "beta", beta)
        axis = _axis_arg("Tversky", axis, allow_none=True)
        super().__init__(tversky, reduction, name, dtype, alpha=alpha, beta=beta, axis=axis)
        self.alpha = alpha
        self.beta = beta
        self.axis = axis


class CategoricalGeneralizedCrossEntropy(_BuiltinLoss):
    """Generalized cross-entropy `(1 - p ** q) / q` of the true class's probability `p` (integer targets)."""
    _keras_name = "categorical_generalized_cross_entropy"
    _config_keys = ("q",)

    def __init__(self, q: float = 0.5, reduction: Any = "sum_over_batch_size",
                 name: str = "categorical_generalized_cross_entropy", dtype: Any = None) -> None:
        q = _float_arg("CategoricalGeneralizedCrossEntropy", "q", q)
        if not 0 < q < 1:
            raise ValueError("q must be in the interval (0, 1)")
        super().__init__(categorical_generalized_cross_entropy, reduction, name, dtype, q=q)
        self.q = q

    def _engine_spec(self, y_shape: list, pred_shape: list) -> dict:
        _sparse_targets_refused(self)
        return super()._engine_spec(y_shape, pred_shape)


def _sparse_targets_refused(loss: Loss) -> None:
    """Training refuses losses of integer targets that only a traced graph computes: the engine traces losses for
    targets of the predictions' shape, and keeps no mask on loss values."""
    what = ("ignore_class / axis other than -1" if isinstance(loss, SparseCategoricalCrossentropy)
            else "integer class targets")
    raise ValueError(f"{type(loss).__name__}: training with {what} is not supported by kerust yet (the engine "
                     "traces losses for targets shaped like the predictions); direct calls on NumPy arrays work")


MeanSquaredError._engine_cls = MeanSquaredError
MeanAbsoluteError._engine_cls = MeanAbsoluteError
BinaryCrossentropy._engine_cls = BinaryCrossentropy
CategoricalCrossentropy._engine_cls = CategoricalCrossentropy
SparseCategoricalCrossentropy._engine_cls = SparseCategoricalCrossentropy

_ENGINE_NAMES = ("mean_squared_error", "mse", "mean_absolute_error", "mae", "categorical_crossentropy",
                 "sparse_categorical_crossentropy", "binary_crossentropy")
_CLASSES = (MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
            CosineSimilarity, Huber, LogCosh, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson,
            BinaryCrossentropy, BinaryFocalCrossentropy, CategoricalCrossentropy, CategoricalFocalCrossentropy,
            SparseCategoricalCrossentropy, Dice, Tversky, CategoricalGeneralizedCrossEntropy)
# the names `compile(loss=...)` takes, as Keras resolves them (its function names and legacy aliases)
_BY_NAME: dict = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "msle": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity, "huber": Huber, "huber_loss": Huber,
    "log_cosh": LogCosh, "logcosh": LogCosh,
    "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
    "binary_crossentropy": BinaryCrossentropy, "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "dice": Dice, "tversky": Tversky,
    "categorical_generalized_cross_entropy": CategoricalGeneralizedCrossEntropy,
}
_BY_NAME.update({"MSE": MeanSquaredError, "MAE": MeanAbsoluteError, "MAPE": MeanAbsolutePercentageError,
                 "MSLE": MeanSquaredLogarithmicError, "KLD": KLDivergence})
_BY_NAME.update({cls.__name__: cls for cls in _CLASSES})


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


def _backend_binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Any:
    """Element-wise binary cross-entropy (Keras's `ops.binary_crossentropy`, JAX backend)."""
    from . import ops

    if len(target.shape) != len(output.shape) or builtins.any(
            a is not None and b is not None and a != b for a, b in zip(target.shape, output.shape)):
        raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}")
    if from_logits:
        # log_sigmoid(x) = -softplus(-x)
        return target * ops.softplus(-output) + (1.0 - target) * ops.softplus(output)
    output = ops.clip(output, _EPSILON, 1.0 - _EPSILON)
    return -(target * ops.log(output) + (1.0 - target) * ops.log(1.0 - output))


def _backend_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Any:
    """Keras's `ops.categorical_crossentropy` (JAX backend): probabilities renormalized and clipped, or
    log-softmax of logits."""
    from . import ops

    if len(target.shape) != len(output.shape):
        raise ValueError("Arguments `target` and `output` must have the same rank (ndim). Received: "
                         f"target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}")
    for e1, e2 in zip(target.shape, output.shape):
        if e1 is not None and e2 is not None and e1 != e2:
            raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                             f"target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}")
    if from_logits:
        log_prob = ops.log_softmax(output, axis=axis)
    else:
        output = output / ops.sum(output, axis=axis, keepdims=True)
        output = ops.clip(output, _EPSILON, 1.0 - _EPSILON)
        log_prob = ops.log(output)
    return -ops.sum(target * log_prob, axis=axis)


def _smooth_categorical(y_true: Any, label_smoothing: float) -> Any:
    if not label_smoothing:
        return y_true
    num_classes = float(y_true.shape[-1])
    return y_true * (1.0 - label_smoothing) + (label_smoothing / num_classes)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1) -> Any:
    """Mean over `axis` of the binary cross-entropy; `label_smoothing` moves targets towards 0.5."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return ops.mean(_backend_binary_crossentropy(y_true, y_pred, from_logits), axis=axis)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1) -> Any:
    """Categorical cross-entropy over `axis`; `label_smoothing` mixes targets with the uniform distribution."""
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = _smooth_categorical(y_true, label_smoothing)
    return _backend_categorical_crossentropy(y_true, y_pred, from_logits, axis)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    ignore_class: Optional[int] = None, axis: int = -1) -> Any:
    """Cross-entropy of integer labels against class scores along `axis`; labels equal to `ignore_class` give
    zero."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[axis] == 1:
        y_true = ops.squeeze(y_true, axis=axis)
    if len(y_true.shape) != len(y_pred.shape) - 1:
        raise ValueError("Argument `output` must have rank (ndim) `target.ndim - 1`. Received: "
                         f"target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}")
    valid = None
    if ignore_class is not None:
        valid = ops.not_equal(y_true, float(ignore_class))
        y_true = ops.where(valid, y_true, 0.0)
        y_pred = ops.where(ops.expand_dims(valid, axis), y_pred, 0.0)
    labels = ops.cast(y_true, "int32")
    num_classes = y_pred.shape[axis]
    if from_logits:
        log_prob = ops.log_softmax(y_pred, axis=axis)
    else:
        out = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
        out = ops.clip(out, _EPSILON, 1.0 - _EPSILON)
        log_prob = ops.log(out)
    target = ops.cast(ops.one_hot(labels, num_classes, axis=axis), "float32")
    res = -ops.sum(target * log_prob, axis=axis)
    if valid is not None:
        res = ops.where(valid, res, 0.0)
    return res


def binary_focal_crossentropy(y_true: Any, y_pred: Any, apply_class_balancing: bool = False, alpha: float = 0.25,
                              gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                              axis: int = -1) -> Any:
    """Mean over `axis` of `(1 - p_t) ** gamma` times the binary cross-entropy (class-balanced by `alpha` with
    `apply_class_balancing`)."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    bce = _backend_binary_crossentropy(y_true, y_pred, False)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal_bce = ops.power(1.0 - p_t, float(gamma)) * bce
    if apply_class_balancing:
        focal_bce = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal_bce
    return ops.mean(focal_bce, axis=axis)


def categorical_focal_crossentropy(y_true: Any, y_pred: Any, alpha: float = 0.25, gamma: float = 2.0,
                                   from_logits: bool = False, label_smoothing: float = 0.0,
                                   axis: int = -1) -> Any:
    """Sum over `axis` of `alpha * (1 - p) ** gamma * -y_true * log(p)` (p: the renormalized, clipped
    probabilities)."""
    from . import ops

    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = _smooth_categorical(y_true, label_smoothing)
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=axis)
    output = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    output = ops.clip(output, _EPSILON, 1.0 - _EPSILON)
    cce = -y_true * ops.log(output)
    weighting = ops.power(1.0 - output, float(gamma)) * alpha
    return ops.sum(weighting * cce, axis=axis)


def dice(y_true: Any, y_pred: Any, axis: Any = None) -> Any:
    """`1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred) + epsilon)` over `axis` (None: every axis)."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=axis)
    d = ops.divide(2.0 * intersection, ops.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis) + _EPSILON)
    return 1.0 - d


def tversky(y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5, axis: Any = None) -> Any:
    """`1 - TP / (TP + alpha * FP + beta * FN + epsilon)` over `axis` (None: every axis)."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=axis)
    fp = ops.sum((1.0 - y_pred) * y_true, axis=axis)
    fn = ops.sum(y_pred * (1.0 - y_true), axis=axis)
    t = ops.divide(intersection, intersection + fp * alpha + fn * beta + _EPSILON)
    return 1.0 - t


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> Any:
    """`(1 - p ** q) / q` with `p` the predicted probability of the integer target class."""
    from . import ops

    y_true, y_pred = _tensors(y_true, y_pred)
    one_hot = ops.cast(ops.one_hot(ops.cast(y_true, "int32"), y_pred.shape[-1]), "float32")
    p = ops.sum(y_pred * one_hot, axis=-1)
    return (1.0 - ops.power(p, float(q))) / q


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

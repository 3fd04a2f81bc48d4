"""``keras.activations``: every activation function of Keras 3.15, by name and as functions. Each is written
with ``kerust.ops``, so it runs eagerly on NumPy arrays and traces into a model's graph inside a custom layer's
``call`` or a ``layers.Lambda`` (the engine differentiates the ops). Formulas and defaults are Keras's (its JAX
backend where the backends differ).

Layers that the engine computes (``Dense``, ``Conv2D``, ``Activation``, the recurrent layers, ...) take every name
here as ``activation=`` (``ENGINE_NAMES``, computed with their derivatives in src/activations.rs) but ``glu`` (it
halves an axis) and ``threshold`` (it has no defaults); those two work through this module, in a ``Lambda`` or a
custom layer.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import ops

# the activations the engine's own layers compute by name (src/activations.rs)
ENGINE_NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "softplus", "softsign",
                "swish", "silu", "relu6", "hard_sigmoid", "exponential", "leaky_relu", "mish", "log_softmax",
                "hard_silu", "hard_swish", "celu", "log_sigmoid", "tanh_shrink", "hard_tanh", "soft_shrink",
                "hard_shrink", "sparse_plus", "sparse_sigmoid", "squareplus", "sparsemax")


def relu(x: Any, negative_slope: float = 0.0, max_value: Optional[float] = None, threshold: float = 0.0) -> Any:
    """`max(x, 0)`; with `threshold`, values at or below it become 0; with `max_value`, values are capped; with
    `negative_slope`, values below the threshold give `negative_slope * (x - threshold)`."""
    x = ops.convert_to_tensor(x, "float32")
    if negative_slope != 0.0 and max_value is None and threshold == 0:
        return ops.leaky_relu(x, negative_slope=negative_slope)
    negative_part: Any = None
    if negative_slope != 0.0:
        negative_part = ops.relu(ops.add(ops.negative(x), threshold) if threshold != 0 else ops.negative(x))
    clip_max = max_value is not None
    if threshold != 0:
        y = ops.where(ops.greater(x, threshold), x, 0.0)
    elif max_value == 6:
        y = ops.relu6(x)
        clip_max = False
    else:
        y = ops.relu(x)
    if clip_max:
        y = ops.clip(y, 0.0, float(max_value))  # type: ignore[arg-type]
    if negative_part is not None:
        y = ops.subtract(y, ops.multiply(negative_slope, negative_part))
    return y


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """`x` for positive values, `negative_slope * x` otherwise."""
    return ops.leaky_relu(x, negative_slope=negative_slope)


def relu6(x: Any) -> Any:
    """`min(max(x, 0), 6)`."""
    return ops.relu6(x)


def softmax(x: Any, axis: int = -1) -> Any:
    """`exp(x) / sum(exp(x))` along `axis`."""
    return ops.softmax(x, axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """`x - logsumexp(x)` along `axis`: the logarithm of the softmax."""
    return ops.log_softmax(x, axis=axis)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """`x` for positive values, `alpha * (exp(x) - 1)` otherwise."""
    return ops.elu(x, alpha=alpha)


def celu(x: Any, alpha: float = 1.0) -> Any:
    """Continuously differentiable ELU: `max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)`."""
    x = ops.convert_to_tensor(x, "float32")
    negative = ops.multiply(alpha, ops.subtract(ops.exp(ops.divide(ops.minimum(x, 0.0), alpha)), 1.0))
    return ops.add(ops.maximum(x, 0.0), negative)


def selu(x: Any) -> Any:
    """Scaled ELU with Klambauer et al.'s constants (alpha 1.67326, scale 1.05070)."""
    return ops.selu(x)


def softplus(x: Any) -> Any:
    """`log(exp(x) + 1)`."""
    return ops.softplus(x)


def softsign(x: Any) -> Any:
    """`x / (abs(x) + 1)`."""
    return ops.softsign(x)


def squareplus(x: Any, b: float = 4) -> Any:
    """`(x + sqrt(x ** 2 + b)) / 2`, a smooth ReLU."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.multiply(ops.add(x, ops.sqrt(ops.add(ops.square(x), float(b)))), 0.5)


def soft_shrink(x: Any, threshold: float = 0.5) -> Any:
    """`x - threshold` above `threshold`, `x + threshold` below `-threshold`, 0 between."""
    x = ops.convert_to_tensor(x, "float32")
    inner = ops.where(ops.less(x, -threshold), ops.add(x, threshold), 0.0)
    return ops.where(ops.greater(x, threshold), ops.subtract(x, threshold), inner)


def sparse_plus(x: Any) -> Any:
    """0 for `x <= -1`, `x` for `x >= 1`, `(x + 1) ** 2 / 4` between."""
    x = ops.convert_to_tensor(x, "float32")
    middle = ops.multiply(ops.square(ops.add(x, 1.0)), 0.25)
    return ops.where(ops.less_equal(x, -1.0), 0.0, ops.where(ops.greater_equal(x, 1.0), x, middle))


def silu(x: Any) -> Any:
    """`x * sigmoid(x)` (also named swish)."""
    return ops.silu(x)


swish = silu


def gelu(x: Any, approximate: bool = False) -> Any:
    """Gaussian error linear unit `x * P(X <= x)`; `approximate=True` is the tanh form."""
    return ops.gelu(x, approximate=approximate)


def glu(x: Any, axis: int = -1) -> Any:
    """Gated linear unit: `x` split in two halves `a, b` along `axis`, `a * sigmoid(b)`."""
    x = ops.convert_to_tensor(x, "float32")
    size = x.shape[axis]
    if size is None or int(size) % 2:
        raise ValueError(f"glu: the size of axis {axis} must be even, received shape {tuple(x.shape)}")
    a, b = ops.split(x, 2, axis=axis)
    return ops.multiply(a, ops.sigmoid(b))


def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return ops.tanh(x)


def tanh_shrink(x: Any) -> Any:
    """`x - tanh(x)`."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.subtract(x, ops.tanh(x))


def hard_tanh(x: Any) -> Any:
    """`x` clipped to [-1, 1]."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.where(ops.greater(x, 1.0), 1.0, ops.where(ops.less(x, -1.0), -1.0, x))


def hard_shrink(x: Any, threshold: float = 0.5) -> Any:
    """`x` where `abs(x) > threshold`, 0 elsewhere."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.where(ops.greater(ops.abs(x), threshold), x, 0.0)


def threshold(x: Any, threshold: float, default_value: float) -> Any:
    """`x` where `x > threshold`, `default_value` elsewhere."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.where(ops.greater(x, threshold), x, float(default_value))


def sigmoid(x: Any) -> Any:
    """`1 / (1 + exp(-x))`."""
    return ops.sigmoid(x)


def sparse_sigmoid(x: Any) -> Any:
    """0 below -1, 1 above 1, `(x + 1) / 2` between."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.multiply(ops.clip(ops.add(x, 1.0), 0.0, 2.0), 0.5)


def exponential(x: Any) -> Any:
    """`exp(x)`."""
    return ops.exp(x)


def hard_sigmoid(x: Any) -> Any:
    """`relu6(x + 3) / 6`: 0 below -3, 1 above 3, `x / 6 + 0.5` between."""
    return ops.hard_sigmoid(x)


def hard_silu(x: Any) -> Any:
    """`x * relu6(x + 3) / 6` (also named hard_swish)."""
    return ops.hard_silu(x)


hard_swish = hard_silu


def log_sigmoid(x: Any) -> Any:
    """`log(sigmoid(x))` = `-softplus(-x)`."""
    return ops.negative(ops.softplus(ops.negative(x)))


def linear(x: Any) -> Any:
    """The identity."""
    return x


def mish(x: Any) -> Any:
    """`x * tanh(softplus(x))` (Misra, 2019)."""
    x = ops.convert_to_tensor(x, "float32")
    return ops.multiply(x, ops.tanh(ops.softplus(x)))


def sparsemax(x: Any, axis: int = -1) -> Any:
    """Keras 3.15's sparsemax along `axis`: with `z` sorted in decreasing order and `c` its running sums, the
    support is where `1 + k z_k > c_k` (k = 1, 2, ...); `tau` is (the sum of `c_k` over the support - 1) / the
    support's size, as every Keras backend computes it, and the result `max(x - tau, 0)`. Written without a sort:
    a value's running sum counts every value above it (ties: those at a lower index)."""
    x = ops.convert_to_tensor(x, "float32")
    rank = len(x.shape)
    ax = axis % rank
    n = x.shape[ax]
    if n is None:
        raise ValueError(f"sparsemax: axis {axis} must have a known size, received shape {tuple(x.shape)}")
    n = int(n)
    if ax != rank - 1:
        perm = [i for i in range(rank) if i != ax] + [ax]
        out = sparsemax(ops.transpose(x, perm), axis=-1)
        back = [0] * rank
        for i, p in enumerate(perm):
            back[p] = i
        return ops.transpose(out, back)
    # before[i, j]: value j comes before value i in the sorted order (greater, or equal with a lower index)
    xi = ops.expand_dims(x, -1)
    xj = ops.expand_dims(x, -2)
    lower_index = ops.convert_to_tensor(np.tril(np.ones((n, n), dtype=bool)))  # j <= i
    before = ops.logical_or(ops.greater(xj, xi), ops.logical_and(ops.equal(xj, xi), lower_index))
    before_f = ops.cast(before, "float32")
    k = ops.sum(before_f, axis=-1)  # the 1-based sorted position of each value
    running = ops.sum(ops.multiply(before_f, xj), axis=-1)  # its running sum
    support = ops.greater(ops.subtract(x, ops.divide(ops.subtract(running, 1.0), k)), 0.0)
    support_f = ops.cast(support, "float32")
    size = ops.sum(support_f, axis=-1, keepdims=True)
    tau = ops.divide(ops.subtract(ops.sum(ops.multiply(support_f, running), axis=-1, keepdims=True), 1.0), size)
    return ops.maximum(ops.subtract(x, tau), 0.0)


_ALL: List[Callable[..., Any]] = [
    relu, leaky_relu, relu6, softmax, celu, elu, selu, softplus, softsign, squareplus, soft_shrink, sparse_plus,
    silu, gelu, glu, tanh, tanh_shrink, threshold, sigmoid, sparse_sigmoid, exponential, hard_sigmoid, hard_silu,
    hard_tanh, hard_shrink, linear, mish, log_softmax, log_sigmoid, sparsemax,
]
ALL_OBJECTS_DICT: Dict[str, Callable[..., Any]] = {fn.__name__: fn for fn in _ALL}
ALL_OBJECTS_DICT["swish"] = silu
ALL_OBJECTS_DICT["hard_swish"] = hard_silu


def get(identifier: Any) -> Callable[..., Any]:
    """The activation function for a name (`"relu"`, `"mish"`, ...), a serialized config, or a callable
    (returned as it is); `None` is `linear`."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        return deserialize(identifier)
    obj = ALL_OBJECTS_DICT.get(identifier) if isinstance(identifier, str) else identifier
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


def serialize(activation: Any) -> Any:
    """The name of a built-in activation, as Keras writes it in configs."""
    for name, fn in ALL_OBJECTS_DICT.items():
        if fn is activation and name not in ("swish", "hard_swish"):
            return name
    from ._registry import _NAMES

    if activation in _NAMES:  # registered with keras.saving.register_keras_serializable
        return {"module": "builtins", "class_name": "function", "config": _NAMES[activation],
                "registered_name": "function"}
    raise ValueError(f"Unknown activation function '{activation}' cannot be serialized due to invalid function "
                     "name. Make sure to use an activation name that matches the references defined in "
                     "activations.py or use `@keras.saving.register_keras_serializable()`to register any custom "
                     f"activations. config={activation!r}")


def deserialize(config: Any, custom_objects: Optional[dict] = None) -> Callable[..., Any]:
    """The activation a name or a Keras config (`{"class_name": "function", "config": "relu", ...}`) stands
    for (`custom_objects` first)."""
    name = config
    if isinstance(config, dict):
        name = config.get("config")
        if config.get("class_name") not in ("function", None) or not isinstance(name, str):
            raise ValueError(f"Could not interpret activation function identifier: {config}")
    if not isinstance(name, str):
        raise ValueError(f"Could not interpret activation function identifier: {config}")
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in ALL_OBJECTS_DICT:
        return ALL_OBJECTS_DICT[name]
    from ._registry import get_registered_object

    found = get_registered_object(name, custom_objects)
    if callable(found):
        return found
    raise ValueError(f"Could not interpret activation function identifier: {config}")


__all__ = [fn.__name__ for fn in _ALL] + ["swish", "hard_swish", "get", "serialize", "deserialize"]

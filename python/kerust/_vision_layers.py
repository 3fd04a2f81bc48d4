"""Vision shape layers, normalisation and noise layers as Keras 3 defines them: ``ZeroPadding2D``/``3D``,
``Cropping2D``/``3D``, ``UpSampling2D`` (nearest, bilinear, bicubic, lanczos3, lanczos5)/``UpSampling3D``,
``UnitNormalization``, ``GroupNormalization``, ``ActivityRegularization``, ``GaussianDropout`` and
``AlphaDropout``. Each is a kerust built-in layer whose ``call`` is traced into ``keras.ops`` (see kerust._custom):
the engine differentiates the ops, so no hand-written backward is needed. Configs, weights (names, shapes, order)
and errors are Keras's; files name these layers as Keras's own classes (module ``keras.layers``).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import ops
from . import random as random_module
from . import regularizers as regularizers_module
from .layers import Layer

_ORDINALS = ("1st", "2nd", "3rd")
# Keras 3.15's ops.image.resize interpolations (UpSampling2D passes every one but "nearest" to it)
_INTERPOLATIONS = ("bilinear", "nearest", "lanczos3", "lanczos5", "bicubic")


def _shape_tuple(shape: Any) -> Tuple[Any, ...]:
    return tuple(None if d is None else int(d) for d in shape)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _standardize_tuple(value: Any, n: int, name: str, allow_zero: bool = False) -> Tuple[int, ...]:
    """Keras's `standardize_tuple`: an int repeated `n` times, or `n` ints; each >= 0 (`allow_zero`) or > 0."""
    message = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value!r}"
    if _is_int(value):
        items: Tuple[Any, ...] = (int(value),) * n
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise ValueError(message) from None
        if len(items) != n:
            raise ValueError(message)
        for item in items:
            if not _is_int(item):
                raise ValueError(f"{message} including element {item!r} of type {type(item)}")
        items = tuple(int(v) for v in items)
    bad = {v for v in items if (v < 0 if allow_zero else v <= 0)}
    if bad:
        raise ValueError(f"{message}, including values {bad} that do not satisfy `value {'>=' if allow_zero else '>'}"
                         " 0`")
    return items


def _data_format(value: Any) -> str:
    if value is None:
        return "channels_last"
    fmt = str(value).lower()
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={value}")
    return fmt


def _set_output_mask(out: Any, mask: Any) -> None:
    from ._graph import KerasTensor
    from ._masking import set_mask

    if isinstance(mask, KerasTensor):
        set_mask(out, mask)


class _TracedLayer(Layer):
    """A kerust built-in layer of one input tensor, computed by a traced `call` (files name Keras's class).
    `_ndim`: the input rank Keras's InputSpec asks for (None: any). Layers that support masking hand their
    input's mask on to their output."""

    _keras_builtin = True
    _ndim: Optional[int] = None
    # Keras builds these at construction (`_build_at_init`): its files give them no build_config
    _built_at_init = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._input_shape_seen: Optional[List[Any]] = None

    def _who(self) -> str:
        return f"{self.class_name} '{self.name}'"

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        if self._ndim is not None and len(shape) != self._ndim:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                             f"ndim={self._ndim}, found ndim={len(shape)}. Full shape received: {shape}")

    def build(self, input_shape: Any) -> None:
        shape = _shape_tuple(input_shape)
        self._check_input(shape)
        self._input_shape_seen = list(shape)
        self.built = True

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        from ._graph import KerasTensor

        if kwargs:
            raise TypeError(f"{self._who()}: unexpected call arguments {sorted(kwargs)}")
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError(f"Layer '{self.name}' expects 1 input(s), but it received {len(inputs)} input "
                                 "tensors.")
            inputs = inputs[0]
        if not isinstance(inputs, KerasTensor) and not hasattr(inputs, "shape"):
            inputs = np.asarray(inputs, dtype=np.float32)
        shape = _shape_tuple(inputs.shape)
        if isinstance(inputs, KerasTensor):
            self._check_input(shape)
            if self._input_shape_seen is not None and shape[1:] != tuple(self._input_shape_seen[1:]) and \
                    self._has_weights():
                self._check_same_features(shape)
        if mask is None:
            mask = getattr(inputs, "_keras_mask", None)
        out = Layer.__call__(self, inputs, training=training)
        if self.supports_masking:
            _set_output_mask(out, mask)
        return out

    def _has_weights(self) -> bool:
        return bool(self._variables)

    def _check_same_features(self, shape: Tuple[Any, ...]) -> None:
        """A later call must fit the weights the first call made (overridden where weights exist)."""

    def compute_output_shape(self, input_shape: Any) -> Any:
        return _shape_tuple(input_shape)

    def _keras_build_config(self) -> Optional[dict]:
        if self._built_at_init or self._input_shape_seen is None:
            return None
        return {"input_shape": list(self._input_shape_seen)}


# ---- padding, cropping, up-sampling -------------------------------------------------------------------------------
def _spatial_axes(rank: int, data_format: str, n: int) -> List[int]:
    """The `n` spatial axes of a rank-`rank` tensor: 1..n (channels last) or 2..n+1 (channels first)."""
    first = 2 if data_format == "channels_first" else 1
    return list(range(first, first + n))


def _pairs_argument(value: Any, n: int, what: str, who: str) -> Tuple[Tuple[int, int], ...]:
    """Keras's ZeroPadding/Cropping argument: an int, `n` ints (symmetric), or `n` pairs."""
    if _is_int(value):
        if value < 0:
            raise ValueError(f"`{what}` cannot be negative. Received: {what}={value}.")
        return tuple((int(value), int(value)) for _ in range(n))
    if hasattr(value, "__len__") and not isinstance(value, (str, bytes, dict)):
        if len(value) != n:
            if n == 2:
                raise ValueError(f"`{what}` should have two elements. Received: {what}={value}.")
            raise ValueError(f"`{what}` should have {n} elements. Received: {value}.")
        return tuple(_standardize_tuple(v, 2, f"{_ORDINALS[i]} entry of {what}", allow_zero=True)  # type: ignore
                     for i, v in enumerate(value))
    names = ("height", "width") if n == 2 else ("dim1", "dim2", "dim3")
    sym = ", ".join(f"symmetric_{d}_{what[:4] if what == 'cropping' else 'pad'}" for d in names)
    raise ValueError(f"{who}: `{what}` should be either an int, a tuple of {n} ints ({sym}), or a tuple of {n} "
                     f"tuples of 2 ints. Received: {what}={value!r}.")


class _ZeroPadding(_TracedLayer):
    _n = 2

    def __init__(self, padding: Any = 1, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ndim = self._n + 2
        self.data_format = _data_format(data_format)
        self.padding = _pairs_argument(padding, self._n, "padding", self._who())

    def call(self, inputs: Any) -> Any:
        widths = [(0, 0)] * len(inputs.shape)
        for axis, pair in zip(_spatial_axes(len(inputs.shape), self.data_format, self._n), self.padding):
            widths[axis] = pair
        return ops.pad(inputs, widths)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(_shape_tuple(input_shape))
        for axis, (a, b) in zip(_spatial_axes(len(shape), self.data_format, self._n), self.padding):
            if shape[axis] is not None:
                shape[axis] += a + b
        return tuple(shape)

    def _layer_config(self) -> dict:
        return {"padding": [list(p) for p in self.padding], "data_format": self.data_format}


class ZeroPadding2D(_ZeroPadding):
    """Adds rows and columns of zeros around images: `padding` an int, `(symmetric_height, symmetric_width)` or
    `((top, bottom), (left, right))`."""

    _n = 2

    def __init__(self, padding: Any = (1, 1), data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(padding=padding, data_format=data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    """Adds zeros around volumes `(batch, dim1, dim2, dim3, channels)`: `padding` an int, 3 ints or 3 pairs."""

    _n = 3

    def __init__(self, padding: Any = ((1, 1), (1, 1), (1, 1)), data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(padding=padding, data_format=data_format, **kwargs)


class _Cropping(_TracedLayer):
    _n = 2

    def __init__(self, cropping: Any = 0, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ndim = self._n + 2
        self.data_format = _data_format(data_format)
        self.cropping = _pairs_argument(cropping, self._n, "cropping", self._who())

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        super()._check_input(shape)
        for axis, (a, b) in zip(_spatial_axes(len(shape), self.data_format, self._n), self.cropping):
            if shape[axis] is not None and a + b >= shape[axis]:
                raise ValueError("Values in `cropping` argument should be smaller than the corresponding spatial "
                                 f"dimension of the input. Received: input_shape={shape}, "
                                 f"cropping={tuple(self.cropping)}")

    def call(self, inputs: Any) -> Any:
        # `take` of the kept rows, axis by axis (the engine's take runs 4-5x faster than its strided slice here)
        x = inputs
        for axis, (a, b) in zip(_spatial_axes(len(inputs.shape), self.data_format, self._n), self.cropping):
            if a or b:
                x = ops.take(x, np.arange(a, int(inputs.shape[axis]) - b, dtype=np.int32), axis=axis)
        return x if x is not inputs else ops.cast(inputs, "float32")

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(_shape_tuple(input_shape))
        self._check_input(tuple(shape))
        for axis, (a, b) in zip(_spatial_axes(len(shape), self.data_format, self._n), self.cropping):
            if shape[axis] is not None:
                shape[axis] -= a + b
        return tuple(shape)

    def _layer_config(self) -> dict:
        return {"cropping": [list(p) for p in self.cropping], "data_format": self.data_format}


class Cropping2D(_Cropping):
    """Removes rows and columns at the edges of images: `cropping` an int, `(symmetric_height, symmetric_width)`
    or `((top, bottom), (left, right))`."""

    _n = 2

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(cropping=cropping, data_format=data_format, **kwargs)


class Cropping3D(_Cropping):
    """Removes slices at the edges of volumes: `cropping` an int, 3 ints or 3 pairs."""

    _n = 3

    def __init__(self, cropping: Any = ((1, 1), (1, 1), (1, 1)), data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(cropping=cropping, data_format=data_format, **kwargs)


# jax.image.resize's kernels (what Keras's JAX backend calls), as functions of the distance |x| in input pixels
def _kernel(interpolation: str, x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    if interpolation == "bilinear":
        return np.maximum(0.0, 1.0 - x)
    if interpolation == "bicubic":  # Keys's cubic convolution with a = -0.5
        a = -0.5
        near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        return np.where(x >= 2.0, 0.0, np.where(x >= 1.0, far, near))
    radius = 3.0 if interpolation == "lanczos3" else 5.0
    out = np.sinc(x) * np.sinc(x / radius)
    return np.where(x > radius, 0.0, out)


def resize_matrix(in_size: int, out_size: int, interpolation: str) -> np.ndarray:
    """The (out_size, in_size) matrix that resamples one axis as jax.image.resize does without antialiasing:
    output pixel o samples the input at (o + 0.5) * in / out - 0.5 (half-pixel centres), the kernel's weights
    there normalised to sum to one over the input pixels they reach, and outputs sampling outside the input
    zero."""
    inv_scale = in_size / out_size
    sample = (np.arange(out_size, dtype=np.float64) + 0.5) * inv_scale - 0.5
    weights = _kernel(interpolation, sample[:, None] - np.arange(in_size, dtype=np.float64)[None, :])
    total = weights.sum(axis=1, keepdims=True)
    ok = np.abs(total) > 1000.0 * float(np.finfo(np.float32).eps)
    weights = np.where(ok, weights / np.where(total != 0, total, 1.0), 0.0)
    inside = (sample >= -0.5) & (sample <= in_size - 0.5)
    return np.where(inside[:, None], weights, 0.0).astype(np.float32)


class UpSampling2D(_TracedLayer):
    """Repeats rows and columns `size` times (`interpolation="nearest"`), or resizes images by `size` with
    Keras's `ops.image.resize` (`"bilinear"`, `"bicubic"`, `"lanczos3"`, `"lanczos5"`: the JAX backend's
    jax.image.resize, half-pixel centres, no antialiasing)."""

    _ndim = 4

    def __init__(self, size: Any = (2, 2), data_format: Optional[str] = None, interpolation: str = "nearest",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        self.size = _standardize_tuple(size, 2, "size")
        if not isinstance(interpolation, str) or interpolation.lower() not in _INTERPOLATIONS:
            raise ValueError(f"{self._who()}: invalid value for argument `interpolation`. Expected one of "
                             f"{_INTERPOLATIONS}. Received: interpolation={interpolation!r}")
        self.interpolation = interpolation.lower()

    def call(self, inputs: Any) -> Any:
        h_axis, w_axis = _spatial_axes(4, self.data_format, 2)
        if self.interpolation == "nearest":
            x = ops.repeat(inputs, self.size[0], axis=h_axis)
            return ops.repeat(x, self.size[1], axis=w_axis)
        h, w = int(inputs.shape[h_axis]), int(inputs.shape[w_axis])
        rows = ops.convert_to_tensor(resize_matrix(h, h * self.size[0], self.interpolation))
        cols = ops.convert_to_tensor(resize_matrix(w, w * self.size[1], self.interpolation))
        # (einsums: ops.matmul of the 2-D weights and a batch is faster, but its gradient is wrong for a batch
        # of one sample in this engine)
        if self.data_format == "channels_last":
            x = ops.einsum("bhwc,Hh->bHwc", inputs, rows)
            return ops.einsum("bhwc,Ww->bhWc", x, cols)
        x = ops.einsum("bchw,Hh->bcHw", inputs, rows)
        return ops.einsum("bchw,Ww->bchW", x, cols)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(_shape_tuple(input_shape))
        for axis, s in zip(_spatial_axes(4, self.data_format, 2), self.size):
            if shape[axis] is not None:
                shape[axis] *= s
        return tuple(shape)

    def _layer_config(self) -> dict:
        return {"size": list(self.size), "data_format": self.data_format, "interpolation": self.interpolation}


class UpSampling3D(_TracedLayer):
    """Repeats each of the three spatial axes of volumes `size` times (nearest neighbour)."""

    _ndim = 5

    def __init__(self, size: Any = (2, 2, 2), data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        self.size = _standardize_tuple(size, 3, "size")

    def call(self, inputs: Any) -> Any:
        x = inputs
        for axis, s in zip(_spatial_axes(5, self.data_format, 3), self.size):
            x = ops.repeat(x, s, axis=axis)
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(_shape_tuple(input_shape))
        for axis, s in zip(_spatial_axes(5, self.data_format, 3), self.size):
            if shape[axis] is not None:
                shape[axis] *= s
        return tuple(shape)

    def _layer_config(self) -> dict:
        return {"size": list(self.size), "data_format": self.data_format}


# ---- normalisation -----------------------------------------------------------------------------------------------
class UnitNormalization(_TracedLayer):
    """Scales each vector along `axis` to unit L2 norm: `x * min(rsqrt(sum(x ** 2)), 1e12)` (Keras's
    `ops.normalize(x, order=2, epsilon=1e-12)`)."""

    supports_masking = True
    _built_at_init = True

    def __init__(self, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not all(_is_int(a) for a in axis):
                raise TypeError("Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                                f"Received: axis={axis}")
            self.axis: Any = [int(a) for a in axis]
        elif _is_int(axis):
            self.axis = int(axis)
        else:
            raise TypeError("Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                            f"Received: axis={axis}")

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        for a in (self.axis if isinstance(self.axis, list) else [self.axis]):
            if a >= len(shape) or a < -len(shape):
                raise ValueError(f"Axis {self.axis} is out of bounds for input shape {shape}.")

    def call(self, inputs: Any) -> Any:
        axes = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        square_sum = ops.sum(ops.square(inputs), axis=axes, keepdims=True)
        return ops.multiply(inputs, ops.minimum(ops.rsqrt(square_sum), 1.0 / 1e-12))

    def _layer_config(self) -> dict:
        return {"axis": self.axis}


def _refuse_constraints(who: str, **constraints: Any) -> None:
    for key, value in constraints.items():
        if value is not None:
            raise ValueError(f"{who}: `{key}` is not supported by kerust yet (weight constraints are not "
                             f"applied by the engine); received {key}={value!r}")


class GroupNormalization(_TracedLayer):
    """Normalises groups of channels (Wu & He, 2018): the `axis` dimension split into `groups` groups, each
    normalised over its channels and every other non-batch axis, then scaled by `gamma` and shifted by `beta`
    (one per channel). `groups=-1` is instance normalisation (one channel per group)."""

    supports_masking = True

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any) -> None:
        if not _is_int(groups) or (groups <= 0 and groups != -1):
            raise ValueError("Received an invalid value for argument `groups`, expected a positive integer (or `-1` "
                             f"for instance normalization). Received: groups={groups}")
        super().__init__(**kwargs)
        from ._variable import initializer_config

        who = self._who()
        if not _is_int(axis):
            raise TypeError(f"{who}: `axis` must be an int, received axis={axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or \
                not math.isfinite(float(epsilon)) or epsilon <= 0:
            raise ValueError(f"{who}: `epsilon` must be a positive number, received epsilon={epsilon!r}")
        _refuse_constraints(who, beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        initializer_config(f"{who}: beta_initializer", beta_initializer, "float32")
        initializer_config(f"{who}: gamma_initializer", gamma_initializer, "float32")
        self.groups = int(groups)
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.gamma: Any = None
        self.beta: Any = None

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        if self.axis >= len(shape) or self.axis < -len(shape):
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape {shape}. Received: axis={self.axis}")
        if self._input_shape_seen is not None and len(shape) != len(self._input_shape_seen):
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                             f"ndim={len(self._input_shape_seen)}, found ndim={len(shape)}. Full shape received: "
                             f"{shape}")

    def _check_same_features(self, shape: Tuple[Any, ...]) -> None:
        assert self._input_shape_seen is not None
        want = self._input_shape_seen[self.axis]
        if shape[self.axis] != want:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected axis "
                             f"{self.axis} of input shape to have value {want}, but received input with shape "
                             f"{shape}")

    def build(self, input_shape: Any) -> None:
        shape = _shape_tuple(input_shape)
        self._check_input(shape)
        dim = shape[self.axis]
        if dim is None:
            raise ValueError(f"Axis {self.axis} of input tensor should have a defined dimension but the layer "
                             f"received an input with shape {shape}.")
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels ({dim}).")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels "
                             f"({dim}).")
        # Keras's order: gamma, then beta
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer)
        self._input_shape_seen = list(shape)
        self.built = True

    def _grouped_shape(self, shape: Sequence[Any]) -> Tuple[List[Any], int]:
        """The input's shape with the channel axis split in (groups, channels per group), and the groups' axis."""
        grouped: List[Any] = [None] + [int(d) for d in shape[1:]]
        grouped[self.axis] = int(shape[self.axis]) // self.groups
        marker: List[Any] = list(grouped)
        marker.insert(self.axis, "groups")
        grouped.insert(self.axis, self.groups)
        return grouped, marker.index("groups")

    def call(self, inputs: Any) -> Any:
        shape = _shape_tuple(inputs.shape)
        grouped, group_axis = self._grouped_shape(shape)
        x = ops.reshape(inputs, tuple(grouped))
        axes = tuple(a for a in range(1, len(grouped)) if a != group_axis)
        mean = ops.mean(x, axis=axes, keepdims=True)
        variance = ops.var(x, axis=axes, keepdims=True)
        broadcast = [1] * len(grouped)
        broadcast[group_axis] = self.groups
        broadcast[group_axis + 1] = int(shape[self.axis]) // self.groups
        inv = ops.rsqrt(ops.add(variance, self.epsilon))
        if self.gamma is not None:
            inv = ops.multiply(inv, ops.reshape(self.gamma, tuple(broadcast)))
        res = ops.multiply(ops.negative(mean), inv)
        if self.beta is not None:
            res = ops.add(res, ops.reshape(self.beta, tuple(broadcast)))
        out = ops.add(ops.multiply(x, inv), res)
        return ops.reshape(out, (None, *shape[1:]))

    def _layer_config(self) -> dict:
        return {"groups": self.groups, "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": self.beta_initializer,
                "gamma_initializer": self.gamma_initializer,
                "beta_regularizer": regularizers_module.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers_module.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}


# ---- regularisation and noise --------------------------------------------------------------------------------------
def _penalty(value: Any, name: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float.Received: {name}={value}")
    return float(value)


class ActivityRegularization(_TracedLayer):
    """Passes its input through and adds `l1 * sum(|x|) + l2 * sum(x ** 2)`, divided by the batch size, to the
    training loss (Keras's activity regularizer)."""

    supports_masking = True
    _built_at_init = True

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any) -> None:
        kwargs.pop("activity_regularizer", None)
        super().__init__(**kwargs)
        self.l1 = _penalty(l1, "l1")
        self.l2 = _penalty(l2, "l2")

    def call(self, inputs: Any) -> Any:
        if self.l1 or self.l2:
            self.add_loss(regularizers_module.activity_penalty(regularizers_module.L1L2(self.l1, self.l2), inputs))
        return ops.cast(inputs, "float32")  # the identity (one engine op: a traced call must yield a node)

    def _layer_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not 0 <= value <= 1:
        raise ValueError("Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                         f"Received: rate={value}")
    return float(value)


def _seed(who: str, seed: Any) -> Any:
    if seed is not None and not _is_int(seed):
        raise ValueError(f"{who}: `seed` must be an int or None, received seed={seed!r}")
    return None if seed is None else int(seed)


class GaussianDropout(_TracedLayer):
    """In training, multiplies the inputs by noise drawn from N(1, rate / (1 - rate)); passes them through in
    inference. The noise follows the model's random seed."""

    supports_masking = True
    _built_at_init = True

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        rate = _rate(rate)
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = _seed(self._who(), seed)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training and self.rate > 0:
            if self.rate >= 1:
                raise ValueError(f"{self._who()}: rate=1 gives noise of infinite standard deviation in training")
            stddev = math.sqrt(self.rate / (1.0 - self.rate))
            noise = random_module.normal(shape=tuple(inputs.shape), mean=1.0, stddev=stddev)
            return ops.multiply(inputs, noise)
        return ops.cast(inputs, "float32")  # the identity (one engine op: a traced call must yield a node)

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed}


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class AlphaDropout(_TracedLayer):
    """Dropout that keeps SELU's self-normalisation (Klambauer et al., 2017): in training each value is kept with
    probability `1 - rate` or set to SELU's negative saturation, and the result is scaled and shifted back to the
    input's mean and variance; inputs pass through in inference. `noise_shape`: the shape of the keep mask, None
    entries taken from the input (a 1 broadcasts the mask along that axis)."""

    supports_masking = True
    _built_at_init = True

    def __init__(self, rate: float, noise_shape: Any = None, seed: Optional[int] = None, **kwargs: Any) -> None:
        rate = _rate(rate)
        super().__init__(**kwargs)
        who = self._who()
        if noise_shape is not None:
            if not isinstance(noise_shape, (list, tuple)) or \
                    not all(d is None or (_is_int(d) and d > 0) for d in noise_shape):
                raise ValueError(f"{who}: `noise_shape` must be a list of positive ints or None, received "
                                 f"noise_shape={noise_shape!r}")
            noise_shape = [None if d is None else int(d) for d in noise_shape]
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = _seed(who, seed)

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        if self.noise_shape is None:
            return
        if len(self.noise_shape) != len(shape) or any(
                n is not None and n != 1 and s is not None and n != s for n, s in zip(self.noise_shape, shape)):
            raise ValueError(f"{self._who()}: `noise_shape` {self.noise_shape} does not fit the input shape {shape} "
                             "(the same rank, each entry None, 1 or the input's dimension)")

    def _mask_shape(self, shape: Tuple[Any, ...]) -> Tuple[Any, ...]:
        if self.noise_shape is None:
            return shape
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training and self.rate > 0:
            alpha_p = -_SELU_ALPHA * _SELU_SCALE
            draw = random_module.uniform(shape=self._mask_shape(_shape_tuple(inputs.shape)))
            kept = ops.cast(ops.greater_equal(draw, self.rate), "float32")
            a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
            b = -a * alpha_p * self.rate
            x = ops.add(ops.multiply(inputs, kept), ops.multiply(alpha_p, ops.subtract(1.0, kept)))
            return ops.add(ops.multiply(a, x), b)
        return ops.cast(inputs, "float32")  # the identity (one engine op: a traced call must yield a node)

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}


CLASSES = (ZeroPadding2D, ZeroPadding3D, Cropping2D, Cropping3D, UpSampling2D, UpSampling3D, UnitNormalization,
           GroupNormalization, ActivityRegularization, GaussianDropout, AlphaDropout)

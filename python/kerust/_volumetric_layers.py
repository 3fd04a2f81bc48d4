"""Volumetric layers as Keras 3 defines them: ``Conv3D``, ``MaxPooling3D``, ``AveragePooling3D``,
``GlobalAveragePooling3D``, ``GlobalMaxPooling3D`` and ``SpatialDropout3D``, for inputs
``(batch, dim1, dim2, dim3, channels)``. Each is a kerust built-in layer whose ``call`` is traced into
``keras.ops`` (see kerust._custom), so the engine differentiates it.

A window operation gathers its taps with one ``take`` per spatial axis: for an axis of output size ``o``, kernel
size ``k``, stride ``s`` and dilation ``d``, the indices ``i * d + j * s`` (tap ``i``, output ``j``) of the padded
input, the axis then reshaped to ``(k, o)``. The convolution is one ``einsum`` of the gathered input with the kernel
(per group when ``groups > 1``); pooling takes each window's first maximum (where Keras sends the gradient) or
its ``sum``. ``padding="same"`` pads as
Keras (XLA's SAME: total ``max((o - 1) * s + (k - 1) * d + 1 - n, 0)``, ``total // 2`` before); max pooling pads with
the lowest float32, average pooling with zeros and divides by the number of real (unpadded) cells in each window,
as Keras does. Configs, weights (names, shapes, order) and errors are Keras's; files name these layers as Keras's
own classes (module ``keras.layers``). Conv3D takes ``data_format="channels_last"`` only (as kerust's other
convolutions); the pooling and dropout layers take both formats.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import activations as activations_module
from . import ops
from . import random as random_module
from . import regularizers as regularizers_module
from ._vision_layers import _data_format, _is_int, _rate, _seed, _shape_tuple, _spatial_axes, _standardize_tuple, \
    _TracedLayer

_LOWEST = float(np.finfo(np.float32).min)  # max pooling's padding: never the maximum of a window


def _padding(value: Any, who: str) -> str:
    """Keras's `standardize_padding` (no "causal" for 3-D): "valid" or "same", any case."""
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise ValueError(f"{who}: the `padding` argument must be one of {{'valid', 'same'}}. Received: "
                         f"padding={value!r}")
    return value.lower()


def _geometry(size: int, k: int, s: int, d: int, padding: str) -> Tuple[int, int, int]:
    """(output size, padding before, padding after) of one spatial axis, as Keras/XLA compute them."""
    span = (k - 1) * d + 1
    if padding == "valid":
        return (size - span) // s + 1, 0, 0
    out = (size - 1) // s + 1
    total = max((out - 1) * s + span - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: Any, axes: Sequence[int], sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
             dilation: Sequence[int], padding: str, pad_value: float) -> Tuple[Any, List[int], List[int]]:
    """`x` with each spatial axis `axes[n]` replaced by the two axes (tap, output) of its windows; also the output
    sizes and the positions of the tap axes in the result."""
    geoms = [_geometry(n, k, s, d, padding) for n, k, s, d in zip(sizes, kernel, strides, dilation)]
    rank = len(x.shape)
    if any(before or after for _, before, after in geoms):
        widths = [(0, 0)] * rank
        for axis, (_, before, after) in zip(axes, geoms):
            widths[axis] = (before, after)
        x = ops.pad(x, widths, constant_values=pad_value)
    shape: List[Any] = [None] + [int(d) for d in x.shape[1:]]
    for axis, (out, _, _), k, s, d in zip(axes, geoms, kernel, strides, dilation):
        idx = (np.arange(k)[:, None] * d + np.arange(out)[None, :] * s).reshape(-1).astype(np.int32)
        if not (k == 1 and idx.size == shape[axis] and (idx == np.arange(idx.size)).all()):
            x = ops.take(x, idx, axis=axis)
    split: List[Any] = []
    taps: List[int] = []
    for a, dim in enumerate(shape):
        if a in axes:
            n = list(axes).index(a)
            taps.append(len(split))
            split.extend([int(kernel[n]), geoms[n][0]])
        else:
            split.append(dim)
    return ops.reshape(x, tuple(split)), [g[0] for g in geoms], taps


def _output_sizes(who: str, shape: Tuple[Any, ...], axes: Sequence[int], kernel: Sequence[int],
                  strides: Sequence[int], dilation: Sequence[int], padding: str, message: str) -> List[Any]:
    out: List[Any] = []
    for axis, k, s, d in zip(axes, kernel, strides, dilation):
        n = shape[axis]
        if n is None:
            raise ValueError(f"{who}: kerust needs fully defined spatial dimensions, received input shape {shape}")
        size = _geometry(int(n), k, s, d, padding)[0]
        if size <= 0:
            raise ValueError(message)
        out.append(size)
    return out


def _activation(who: str, value: Any) -> Tuple[Any, Any]:
    """(the function, its serialized form) of an `activation` argument."""
    try:
        fn = activations_module.get(value)
        return fn, activations_module.serialize(fn)
    except ValueError as e:
        raise ValueError(f"{who}: invalid value for argument `activation`: {e}") from None


# ---- convolution ---------------------------------------------------------------------------------------------------
class Conv3D(_TracedLayer):
    """3D convolution over volumes `(batch, dim1, dim2, dim3, channels)` with a kernel of shape
    `(k1, k2, k3, in_channels / groups, filters)` and a bias `(filters,)`; `padding` "valid" or "same";
    `dilation_rate` spaces the kernel's taps (not with `strides` > 1, as in Keras); `groups` splits the channels
    into groups convolved separately, each with `filters / groups` filters."""

    _ndim = 5

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1, 1), padding: str = "valid",
                 data_format: Optional[str] = None, dilation_rate: Any = (1, 1, 1), groups: int = 1,
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
                 lora_rank: Optional[int] = None, lora_alpha: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        from . import constraints as constraints_module
        from ._variable import initializer_config

        who = self._who()
        for key, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha)):
            if value is not None:
                raise ValueError(f"{who}: `{key}` is not supported by kerust yet (received {key}={value!r})")
        if not _is_int(filters) or filters <= 0:
            raise ValueError(f"{who}: invalid value for argument `filters`. Expected a strictly positive value. "
                             f"Received filters={filters!r}.")
        if not _is_int(groups) or groups <= 0:
            raise ValueError(f"{who}: the number of groups must be a positive integer. Received: groups={groups!r}.")
        if filters % groups != 0:
            raise ValueError(f"{who}: the number of filters must be evenly divisible by the number of groups. "
                             f"Received: groups={groups}, filters={filters}.")
        self.filters = int(filters)
        self.groups = int(groups)
        self.kernel_size = _standardize_tuple(kernel_size, 3, "kernel_size")
        self.strides = _standardize_tuple(strides, 3, "strides")
        self.dilation_rate = _standardize_tuple(dilation_rate, 3, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{who}: `strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = _padding(padding, who)
        fmt = _data_format(data_format)
        if fmt != "channels_last":
            raise ValueError(f"{who}: only data_format=\"channels_last\" is supported, received \"{fmt}\"")
        self.data_format = fmt
        self._activation_fn, self.activation = _activation(who, activation)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"{who}: `use_bias` must be a bool, received use_bias={use_bias!r}")
        self.use_bias = bool(use_bias)
        initializer_config(f"{who}: kernel_initializer", kernel_initializer, "float32")
        initializer_config(f"{who}: bias_initializer", bias_initializer, "float32")
        self.kernel_initializer = "glorot_uniform" if kernel_initializer is None else kernel_initializer
        self.bias_initializer = "zeros" if bias_initializer is None else bias_initializer
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.kernel: Any = None
        self.bias: Any = None

    def _out_message(self, shape: Tuple[Any, ...]) -> str:
        kernel_shape = self.kernel_size + (shape[-1], self.filters)
        return (f"{self._who()}: computed output size would be zero or negative. Received `inputs shape={shape}`, "
                f"`kernel shape={kernel_shape}`, `dilation_rate={self.dilation_rate}`, `strides={self.strides}`, "
                f"`padding={self.padding}`.")

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        super()._check_input(shape)
        if shape[-1] is None:
            raise ValueError(f"{self._who()}: the channel dimension of the inputs should be defined, received input "
                             f"shape {shape}")
        if int(shape[-1]) % self.groups != 0:
            raise ValueError(f"{self._who()}: the number of input channels must be evenly divisible by the number "
                             f"of groups. Received groups={self.groups}, but the input has {shape[-1]} channels "
                             f"(full input shape is {shape}).")
        _output_sizes(self._who(), shape, (1, 2, 3), self.kernel_size, self.strides, self.dilation_rate,
                      self.padding, self._out_message(shape))

    def _check_same_features(self, shape: Tuple[Any, ...]) -> None:
        assert self._input_shape_seen is not None
        want = self._input_shape_seen[-1]
        if shape[-1] != want:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected axis -1 of "
                             f"input shape to have value {want}, but received input with shape {shape}")

    def build(self, input_shape: Any) -> None:
        shape = _shape_tuple(input_shape)
        self._check_input(shape)
        channels = int(shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, channels // self.groups,
                                                            self.filters),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_shape_seen = list(shape)
        self.built = True

    def call(self, inputs: Any) -> Any:
        shape = _shape_tuple(inputs.shape)
        x, out, _ = _windows(inputs, (1, 2, 3), [int(d) for d in shape[1:4]], self.kernel_size, self.strides,
                             self.dilation_rate, self.padding, 0.0)
        # x: (batch, k1, o1, k2, o2, k3, o3, channels)
        if self.groups == 1:
            y = ops.einsum("bDdHhWwc,DHWcf->bdhwf", x, self.kernel)
        else:
            g = self.groups
            cg = int(shape[-1]) // g
            x = ops.reshape(x, (None, *[int(d) for d in x.shape[1:-1]], g, cg))
            kernel = ops.reshape(self.kernel, (*self.kernel_size, cg, g, self.filters // g))
            y = ops.einsum("bDdHhWwgc,DHWcgf->bdhwgf", x, kernel)
            y = ops.reshape(y, (None, *out, self.filters))
        if self.bias is not None:
            y = ops.add(y, self.bias)
        if self.activation != "linear":
            y = self._activation_fn(y)
        return y

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = _shape_tuple(input_shape)
        self._check_input(shape)
        out = _output_sizes(self._who(), shape, (1, 2, 3), self.kernel_size, self.strides, self.dilation_rate,
                            self.padding, self._out_message(shape))
        return (shape[0], *out, self.filters)

    def _layer_config(self) -> dict:
        from . import constraints as constraints_module

        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer,
                "kernel_regularizer": regularizers_module.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
                "activity_regularizer": None,
                "kernel_constraint": constraints_module.serialize(self.kernel_constraint),
                "bias_constraint": constraints_module.serialize(self.bias_constraint)}


# ---- pooling -------------------------------------------------------------------------------------------------------
class _Pooling3D(_TracedLayer):
    _ndim = 5
    _built_at_init = True
    _mode = "max"

    def __init__(self, pool_size: Any, strides: Any = None, padding: str = "valid", data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = self._who()
        self.pool_size = _standardize_tuple(pool_size, 3, "pool_size")
        self.strides = _standardize_tuple(self.pool_size if strides is None else strides, 3, "strides")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"{who}: argument `padding` must be either 'valid' or 'same'. Received: "
                             f"padding={padding!r}")
        self.padding = padding.lower()
        self.data_format = _data_format(data_format)

    def _axes(self) -> List[int]:
        return _spatial_axes(5, self.data_format, 3)

    def _sizes(self, shape: Tuple[Any, ...]) -> List[Any]:
        message = (f"{self._who()}: computed output size would be zero or negative. Received: `inputs.shape={shape}`"
                   f", `pool_size={self.pool_size}`, `strides={self.strides}`, `padding={self.padding}`.")
        return _output_sizes(self._who(), shape, self._axes(), self.pool_size, self.strides, (1, 1, 1), self.padding,
                             message)

    def _check_input(self, shape: Tuple[Any, ...]) -> None:
        super()._check_input(shape)
        self._sizes(shape)

    def call(self, inputs: Any) -> Any:
        shape = _shape_tuple(inputs.shape)
        axes = self._axes()
        sizes = [int(shape[a]) for a in axes]
        pad_value = _LOWEST if self._mode == "max" else 0.0
        x, out, taps = _windows(inputs, axes, sizes, self.pool_size, self.strides, (1, 1, 1), self.padding,
                                pad_value)
        if self._mode == "max":
            # Keras (XLA's reduce_window) hands each window's gradient to its first maximum, in the window's
            # row-major order: the taps put last as one axis, the value there taken at its argmax (the first)
            rest = [a for a in range(len(x.shape)) if a not in taps]
            flat = ops.reshape(ops.transpose(x, rest + taps),
                               (None, *[int(x.shape[a]) for a in rest[1:]], int(np.prod(self.pool_size))))
            first = ops.argmax(flat, axis=-1, keepdims=True)
            return ops.squeeze(ops.take_along_axis(flat, first, axis=-1), axis=-1)
        total = ops.sum(x, axis=tuple(taps))
        # the number of real (unpadded) cells in each window: the window's size, or fewer at the edges with "same"
        counts = np.ones((1,), dtype=np.float64)
        for n, k, s in zip(sizes, self.pool_size, self.strides):
            o, before, _ = _geometry(n, k, s, 1, self.padding)
            start = np.arange(o) * s - before
            real = np.minimum(start + k, n) - np.maximum(start, 0)
            counts = np.multiply.outer(counts, real.astype(np.float64))
        counts = counts.reshape(out)
        inverse = (1.0 / counts).astype(np.float32)
        inverse = inverse[None, ..., None] if self.data_format == "channels_last" else inverse[None, None]
        if (inverse == inverse.flat[0]).all():
            return ops.multiply(total, float(inverse.flat[0]))
        return ops.multiply(total, ops.convert_to_tensor(inverse))

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(_shape_tuple(input_shape))
        self._check_input(tuple(shape))
        for axis, size in zip(self._axes(), self._sizes(tuple(shape))):
            shape[axis] = size
        return tuple(shape)

    def _layer_config(self) -> dict:
        return {"pool_size": list(self.pool_size), "padding": self.padding, "strides": list(self.strides),
                "data_format": self.data_format}


class MaxPooling3D(_Pooling3D):
    """The maximum over each `pool_size` window of each channel of volumes; `strides` default to `pool_size`;
    `padding="same"` pads so that no padded cell is ever a window's maximum."""

    _mode = "max"

    def __init__(self, pool_size: Any = (2, 2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format, **kwargs)


class AveragePooling3D(_Pooling3D):
    """The mean over each `pool_size` window of each channel of volumes; `strides` default to `pool_size`; with
    `padding="same"` a window at the edge averages its real (unpadded) cells only, as Keras does."""

    _mode = "average"

    def __init__(self, pool_size: Any, strides: Any = None, padding: str = "valid", data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format, **kwargs)


class _GlobalPooling3D(_TracedLayer):
    _ndim = 5
    _built_at_init = True
    _mode = "max"

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise TypeError(f"{self._who()}: `keepdims` must be a bool, received keepdims={keepdims!r}")
        self.data_format = _data_format(data_format)
        self.keepdims = bool(keepdims)

    def call(self, inputs: Any) -> Any:
        axes = tuple(_spatial_axes(5, self.data_format, 3))
        if self._mode == "max":
            return ops.max(inputs, axis=axes, keepdims=self.keepdims)
        return ops.mean(inputs, axis=axes, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = _shape_tuple(input_shape)
        self._check_input(shape)
        channels_last = self.data_format == "channels_last"
        if self.keepdims:
            return (shape[0], 1, 1, 1, shape[4]) if channels_last else (shape[0], shape[1], 1, 1, 1)
        return (shape[0], shape[4] if channels_last else shape[1])

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling3D(_GlobalPooling3D):
    """The mean over the three spatial axes of each channel: `(batch, d1, d2, d3, c)` to `(batch, c)`, or
    `(batch, 1, 1, 1, c)` with `keepdims=True`."""

    _mode = "average"


class GlobalMaxPooling3D(_GlobalPooling3D):
    """The maximum over the three spatial axes of each channel: `(batch, d1, d2, d3, c)` to `(batch, c)`, or
    `(batch, 1, 1, 1, c)` with `keepdims=True`."""

    _mode = "max"


# ---- dropout -------------------------------------------------------------------------------------------------------
class SpatialDropout3D(_TracedLayer):
    """Dropout of whole 3-D feature maps: in training each channel of each sample is set to zero with probability
    `rate` and the others are scaled by `1 / (1 - rate)`; inputs pass through in inference. The noise follows the
    model's random seed."""

    _ndim = 5
    supports_masking = True
    _built_at_init = True

    def __init__(self, rate: float, data_format: Optional[str] = None, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        rate = _rate(rate)
        super().__init__(**kwargs)
        self.rate = rate
        self.data_format = _data_format(data_format)
        self.seed = _seed(self._who(), seed)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training and self.rate > 0:
            shape = _shape_tuple(inputs.shape)
            if self.data_format == "channels_last":
                noise_shape: Tuple[Any, ...] = (shape[0], 1, 1, 1, shape[4])
            else:
                noise_shape = (shape[0], shape[1], 1, 1, 1)
            if self.rate >= 1:  # Keras keeps nothing: where(mask, x / 0, 0) is zero everywhere
                return ops.multiply(inputs, 0.0)
            draw = random_module.uniform(shape=noise_shape)
            kept = ops.cast(ops.greater_equal(draw, self.rate), "float32")
            return ops.multiply(inputs, ops.multiply(kept, 1.0 / (1.0 - self.rate)))
        return ops.cast(inputs, "float32")  # the identity (one engine op: a traced call must yield a node)

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed, "data_format": self.data_format}

    def get_config(self) -> dict:
        """As `Layer.get_config`, without `trainable` (Keras writes none for this layer)."""
        config = super().get_config()
        config.pop("trainable", None)
        return config


# Keras's aliases
Convolution3D = Conv3D
MaxPool3D = MaxPooling3D
AvgPool3D = AveragePooling3D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool3D = GlobalMaxPooling3D

CLASSES = (Conv3D, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D, SpatialDropout3D)

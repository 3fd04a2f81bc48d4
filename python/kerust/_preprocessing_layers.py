"""Keras 3's in-graph preprocessing and augmentation layers: ``Rescaling``, ``Resizing``, ``CenterCrop``,
``Normalization``, ``CategoryEncoding``, ``Discretization``, ``RandomFlip``, ``RandomRotation``, ``RandomZoom``,
``RandomTranslation``, ``RandomCrop``, ``RandomContrast`` and ``RandomBrightness``.

They are kerust built-in layers written as traced ``call``s of ``keras.ops`` (see kerust._custom and
kerust._attention): the engine runs and differentiates them inside the model's graph. Images are
``(batch, height, width, channels)`` (``data_format="channels_first"`` is transposed in and out); one image
``(height, width, channels)`` given eagerly as an array is run as a batch of one. Configs and weights are Keras's:
files move both ways.

Augmentation layers change their inputs only in training (``fit``, ``train_on_batch``); in inference
(``predict``, ``evaluate``, a call with ``training=False``) they pass images through (RandomCrop: the centred
crop its docstring describes, so both modes give one output shape; Keras 3.15 itself returns the input
uncropped there). In a model their random numbers are drawn by the engine at every step from the model's random
stream, which ``kerust.utils.set_random_seed`` fixes (as Dropout's are); the layer's ``seed`` is kept in its
config as Keras keeps it. Called directly on an array, a layer augments at once (Keras's default
``training=True`` for such calls), its random numbers drawn eagerly from its own seed (its SeedGenerator).
Keras's own random numbers cannot be matched, so the tests check the transforms with factors that leave nothing
random, and the randomness by its distribution and reproducibility.

``Normalization.adapt`` and ``Discretization.adapt`` compute on NumPy on the host, as Keras does outside the
graph; the results become Normalization's ``mean`` / ``variance`` weights and Discretization's
``bin_boundaries``.
"""

from __future__ import annotations

import itertools
import math
import random as python_random
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _image_ops
from . import ops
from . import random as random_module
from .layers import Layer

_EPSILON = 1e-7  # keras.config.epsilon(): Normalization's floor on the standard deviation


def _who(layer: Any) -> str:
    return f"{layer.class_name} '{layer.name}'"


def _plain(value: Any) -> Any:
    """A config value as plain Python (NumPy arrays and Keras's `__numpy__` form become lists)."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        value = (value.get("config") or {}).get("value")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_numbers(who: str, name: str, value: Any) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: `{name}` must be a number or a list of numbers, received {value!r}") from None
    if isinstance(value, bool) or a.dtype == object or not np.all(np.isfinite(a)):
        raise ValueError(f"{who}: `{name}` must be finite numbers, received {name}={value!r}")
    return a


def _check_size_arg(who: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{who}: `{name}` must be a positive integer, received {name}={value!r}")
    return int(value)


def _check_data_format(who: str, data_format: Any) -> str:
    try:
        return _image_ops._data_format(data_format)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None


def _as_float(x: Any) -> Any:
    return x if ops._dtype_of(x) == "float32" else ops.cast(x, "float32")


def _batch_shape(x: Any) -> Tuple[Any, ...]:
    return tuple(ops.shape(x))


class _Preprocessing(Layer):
    """A Keras preprocessing layer computed by a traced `call` (written to files as Keras's own class)."""

    _keras_builtin = True

    def _keras_build_config(self) -> Optional[dict]:
        return None

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)


class _ImageLayer(_Preprocessing):
    """A layer on images: `data_format`, one eager image as a batch of one, images as NHWC inside `call`."""

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _check_data_format(_who(self), data_format)

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        from ._graph import KerasTensor

        if not isinstance(inputs, KerasTensor) and not isinstance(inputs, (list, tuple, dict)) \
                and np.ndim(inputs) == 3:
            out = Layer.__call__(self, np.asarray(inputs)[None], training=training, mask=mask, **kwargs)
            return out[0]
        return Layer.__call__(self, inputs, training=training, mask=mask, **kwargs)

    def _nhwc(self, inputs: Any) -> Any:
        shape = _batch_shape(inputs)
        if len(shape) != 4:
            raise ValueError(f"{_who(self)}: expected images of rank 4 (batch, height, width, channels) or one "
                             f"image of rank 3 (height, width, channels). Received inputs.shape={shape}")
        x = _as_float(inputs)
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        return x

    def _back(self, x: Any) -> Any:
        return ops.transpose(x, (0, 3, 1, 2)) if self.data_format == "channels_first" else x

    def _hw_axes(self, rank: int) -> Tuple[int, int]:
        return (rank - 2, rank - 1) if self.data_format == "channels_first" else (rank - 3, rank - 2)

    def _with_hw(self, input_shape: Any, height: int, width: int) -> tuple:
        shape = list(input_shape)
        h, w = self._hw_axes(len(shape))
        shape[h], shape[w] = height, width
        return tuple(shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)


# ---- Rescaling -------------------------------------------------------------------------------------------------------
class Rescaling(_Preprocessing):
    """`inputs * scale + offset` (a number each, or one value per channel)."""

    supports_masking = True

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = _who(self)
        self.scale = _plain(scale)
        self.offset = _plain(offset)
        self._scale = _check_numbers(who, "scale", self.scale).astype(np.float32)
        self._offset = _check_numbers(who, "offset", self.offset).astype(np.float32)

    def call(self, inputs: Any) -> Any:
        x = _as_float(inputs)
        scale: Any = float(self._scale) if self._scale.ndim == 0 else self._scale
        offset: Any = float(self._offset) if self._offset.ndim == 0 else self._offset
        return ops.add(ops.multiply(x, scale), offset)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)

    def _layer_config(self) -> dict:
        return {"scale": self.scale, "offset": self.offset}


# ---- Resizing and CenterCrop ---------------------------------------------------------------------------------------
class Resizing(_ImageLayer):
    """Images resized to (height, width): bilinear or nearest, optionally cropping or padding to the target's
    aspect ratio first (Keras's `ops.image.resize`)."""

    def __init__(self, height: int, width: int, interpolation: str = "bilinear", crop_to_aspect_ratio: bool = False,
                 pad_to_aspect_ratio: bool = False, fill_mode: str = "constant", fill_value: float = 0.0,
                 antialias: bool = False, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(data_format=data_format, **kwargs)
        who = _who(self)
        self.height = _check_size_arg(who, "height", height)
        self.width = _check_size_arg(who, "width", width)
        _image_ops.check_resize_args(who, interpolation, antialias, crop_to_aspect_ratio, pad_to_aspect_ratio,
                                     fill_mode)
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(_check_numbers(who, "fill_value", fill_value))
        self.antialias = bool(antialias)

    def call(self, inputs: Any) -> Any:
        x = self._nhwc(inputs)
        return self._back(_image_ops._resize_nhwc(x, self.height, self.width, self.interpolation,
                                                  self.crop_to_aspect_ratio, self.pad_to_aspect_ratio,
                                                  self.fill_value))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self._with_hw(input_shape, self.height, self.width)

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


def _smart_resize(x: Any, height: int, width: int) -> Any:
    """Keras's `smart_resize` on NHWC images: the largest centred crop of the target's aspect ratio, resized
    (bilinear) to (height, width)."""
    h, w = (int(d) for d in _batch_shape(x)[1:3])
    top, left, ch, cw = _image_ops._crop_box(h, w, height, width)
    if (ch, cw) != (h, w):
        x = x[:, top:top + ch, left:left + cw, :]
    return _image_ops._resize_axes(x, height, width, "bilinear")


class CenterCrop(_ImageLayer):
    """The centre (height, width) window of each image; images smaller than that are first cropped to the
    target's aspect ratio and resized (Keras's `smart_resize`)."""

    def __init__(self, height: int, width: int, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(data_format=data_format, **kwargs)
        who = _who(self)
        self.height = _check_size_arg(who, "height", height)
        self.width = _check_size_arg(who, "width", width)

    def call(self, inputs: Any) -> Any:
        x = self._nhwc(inputs)
        h, w = (int(d) for d in _batch_shape(x)[1:3])
        dh, dw = h - self.height, w - self.width
        if dh >= 0 and dw >= 0:
            top, left = dh // 2, dw // 2
            return self._back(x[:, top:top + self.height, left:left + self.width, :])
        return self._back(_smart_resize(x, self.height, self.width))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self._with_hw(input_shape, self.height, self.width)

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "height": self.height, "width": self.width}


# ---- Normalization -----------------------------------------------------------------------------------------------
def _adapt_batches(who: str, data: Any) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
    """Adapt data as (one array, None) or (None, a list of batches); each float32 and finite."""
    def check(a: Any, what: str) -> np.ndarray:
        try:
            arr = np.asarray(a, dtype=np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{who}: adapt() expects arrays of numbers, received {what} of type "
                            f"{type(a).__name__}") from None
        if arr.size == 0:
            raise ValueError(f"{who}: adapt() received empty data ({what} of shape {arr.shape}); it needs at "
                             "least one value")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{who}: adapt() received non-finite values (NaN or infinity) in {what}")
        return arr

    if isinstance(data, tuple):  # an (x, y) pair: Keras reads x
        data = data[0]
    if isinstance(data, np.ndarray) or np.isscalar(data) or hasattr(data, "__array__"):
        return check(data, "the data"), []
    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise TypeError(f"{who}: unsupported data type: {type(data)}. `adapt` supports NumPy arrays and iterables "
                        "of batches (e.g. a list of arrays or a generator yielding batches).")
    batches = []
    for i, b in enumerate(data):
        if isinstance(b, tuple):
            b = b[0]
        batches.append(check(b, f"batch {i}"))
    if not batches:
        raise ValueError(f"{who}: adapt() received an empty iterable (no batches). Expected at least one batch. "
                         "Pass a non-empty iterable of arrays, e.g. layer.adapt([x]).")
    return None, batches


class Normalization(_Preprocessing):
    """`(inputs - mean) / max(sqrt(variance), 1e-7)` with a mean and variance per index of `axis` (or `invert`:
    `mean + inputs * max(sqrt(variance), 1e-7)`); the statistics are given or computed by `adapt(data)`, and then
    kept as Keras does: the non-trainable weights `mean`, `variance` and `count`."""

    supports_masking = True
    _integer_weights = (2,)  # `count`: an int in Keras's files, read as float32 (kerust/saving.py)

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None, invert: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = _who(self)
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                                     for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise ValueError(f"{who}: `axis` must be an int, a tuple of ints or None, received axis={axis!r}")
        self.axis = axis
        mean, variance = _plain(mean), _plain(variance)
        if (mean is not None) != (variance is not None):
            raise ValueError(f"{who}: when setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None:
            m = _check_numbers(who, "mean", mean)
            v = _check_numbers(who, "variance", variance)
            if m.shape != v.shape:
                raise ValueError(f"{who}: when setting values directly, `mean` and `variance` must have the same "
                                 f"shape. Received: mean shape {m.shape} and variance shape {v.shape}")
            if m.ndim > len(self.axis):
                raise ValueError(f"{who}: the rank of `mean` must be less than or equal to the number of axes "
                                 f"({len(self.axis)}). Received: mean shape {m.shape} for axis {self.axis}")
            if np.any(v < 0):
                raise ValueError(f"{who}: `variance` must be non-negative, received variance={variance!r}")
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self._build_input_shape: Optional[tuple] = None
        self._const: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.adapt_mean: Any = None
        self.adapt_variance: Any = None
        self.count: Any = None

    def build(self, input_shape: Any) -> None:
        who = _who(self)
        shape = tuple(None if d is None else int(d) for d in input_shape)
        ndim = len(shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"{who}: all `axis` values must be in the range [-ndim, ndim). Received inputs with "
                             f"ndim={ndim}, while axis={self.axis}")
        keep = tuple(sorted(a if a >= 0 else a + ndim for a in self.axis))
        for d in keep:
            if shape[d] is None:
                raise ValueError(f"{who}: all `axis` values to be kept must have a known shape. Received "
                                 f"axis={self.axis}, inputs.shape={shape}, with unknown axis at index {d}")
        self._build_input_shape = shape
        self._keep_axis = keep
        self._reduce_axis = tuple(d for d in range(ndim) if d not in keep)
        self._broadcast_shape = [shape[d] if d in keep else 1 for d in range(ndim)]
        self._mean_and_var_shape = tuple(int(shape[d]) for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(name="mean", shape=self._mean_and_var_shape, initializer="zeros",
                                              trainable=False)
            self.adapt_variance = self.add_weight(name="variance", shape=self._mean_and_var_shape,
                                                  initializer="ones", trainable=False)
            self.count = self.add_weight(name="count", shape=(), initializer="zeros", trainable=False)
        else:
            m = np.asarray(self.input_mean, dtype=np.float32)
            v = np.asarray(self.input_variance, dtype=np.float32)
            if m.ndim:
                expanded = [1] * ndim
                for i in range(1, m.ndim + 1):
                    expanded[keep[-i]] = m.shape[-i]
                m, v = m.reshape(expanded), v.reshape(expanded)
            target = [1 if d is None else d for d in self._broadcast_shape]
            try:
                m = np.broadcast_to(m, target).astype(np.float32)
                v = np.broadcast_to(v, target).astype(np.float32)
            except ValueError:
                raise ValueError(f"{who}: `mean` of shape {np.shape(self.input_mean)} cannot be broadcast to the "
                                 f"kept axes {keep} of inputs of shape {shape}") from None
            self._const = (m, v)
        self.built = True

    def adapt(self, data: Any) -> None:
        """Compute the mean and variance of `data` (an array, or an iterable of batches) per index of `axis`."""
        who = _who(self)
        if self.input_mean is not None:
            raise ValueError(f"{who}: adapt() cannot change a mean and variance given at construction")
        array, batches = _adapt_batches(who, data)
        first = array if array is not None else batches[0]
        if not self.built:
            self.build(first.shape)
        built = self._build_input_shape or ()
        for b in ([array] if array is not None else batches):
            if b.ndim != len(built) or any(b.shape[d] != built[d] for d in self._keep_axis):
                raise ValueError(f"{who}: the layer was built with input_shape={built}, but adapt() is being called "
                                 f"with data with an incompatible shape, data.shape={b.shape}")
        if array is not None:
            mean = np.mean(array, axis=self._reduce_axis, dtype=np.float64)
            var = np.var(array, axis=self._reduce_axis, dtype=np.float64)
        else:
            mean = np.zeros(self._mean_and_var_shape)
            var = np.zeros(self._mean_and_var_shape)
            total = 0
            for b in batches:  # Keras's running merge of batch means and variances
                b_mean = np.mean(b, axis=self._reduce_axis, dtype=np.float64)
                b_var = np.var(b, axis=self._reduce_axis, dtype=np.float64)
                count = math.prod(b.shape[d] for d in self._reduce_axis) if self._reduce_axis else 1
                total += count
                w_new = float(count) / total
                w_old = 1.0 - w_new
                new_mean = mean * w_old + b_mean * w_new
                var = (var + (mean - new_mean) ** 2) * w_old + (b_var + (b_mean - new_mean) ** 2) * w_new
                mean = new_mean
        values = [np.asarray(mean, dtype=np.float32).reshape(self._mean_and_var_shape),
                  np.asarray(var, dtype=np.float32).reshape(self._mean_and_var_shape)]
        has_values = self._home is not None or self._detached is not None
        current = self.get_weights() if has_values else []
        count_value = current[2] if len(current) == 3 else np.zeros((), np.float32)  # Keras's adapt leaves it
        values.append(np.asarray(count_value, dtype=np.float32).reshape(()))
        if self._home is None or self._home._core is None:
            self._set_own_weights(values)
        else:  # into the engine of the model that holds the layer (scalar `count` kept 0-d)
            first, n = self._weight_slot()
            self._home._core.set_weights(first, [np.array(v, dtype=np.float32, order="C") for v in values], n,
                                         f"layer '{self.name}'")
            self._home._changed([self])

    def call(self, inputs: Any) -> Any:
        x = _as_float(inputs)
        if self._const is not None:
            mean: Any = self._const[0]
            variance: Any = self._const[1]
        else:
            mean = ops.reshape(self.adapt_mean, self._broadcast_shape)
            variance = ops.reshape(self.adapt_variance, self._broadcast_shape)
        std = ops.maximum(ops.sqrt(variance), _EPSILON)
        if self.invert:
            return ops.add(mean, ops.multiply(x, std))
        return ops.divide(ops.subtract(x, mean), std)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)

    def _layer_config(self) -> dict:
        return {"axis": list(self.axis), "invert": self.invert, "mean": self.input_mean,
                "variance": self.input_variance}

    def _keras_build_config(self) -> Optional[dict]:
        if self._build_input_shape is None:
            return None
        return {"input_shape": list(self._build_input_shape)}


# ---- CategoryEncoding and Discretization -------------------------------------------------------------------------
def _encode(who: str, x: Any, output_mode: str, depth: int, dtype: str) -> Any:
    """Keras's `encode_categorical_inputs` for integer-valued `x` (as floats)."""
    if output_mode == "int":
        return ops.cast(x, dtype)
    shape = _batch_shape(x)
    if output_mode == "one_hot":
        if len(shape) > 1 and shape[-1] == 1:
            x = ops.squeeze(x, -1)
        return ops.one_hot(x, depth, dtype=dtype)
    if len(shape) < 2:
        raise ValueError(f"{who}: output_mode={output_mode!r} needs inputs of rank 2 or more (batch, tokens); Keras "
                         f"reduces a rank-1 input over its batch axis, which kerust does not. Received inputs.shape="
                         f"{shape}")
    encoded = ops.one_hot(x, depth, dtype=dtype)
    if output_mode == "multi_hot":
        return ops.max(encoded, axis=1)
    return ops.sum(encoded, axis=1)


class CategoryEncoding(_Preprocessing):
    """Integer tokens in [0, num_tokens) as one-hot, multi-hot or count vectors of length `num_tokens`."""

    def __init__(self, num_tokens: Optional[int] = None, output_mode: str = "multi_hot", sparse: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = _who(self)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"{who}: unknown arg for output_mode: {output_mode}")
        if num_tokens is None:
            raise ValueError(f"{who}: num_tokens must be set to use this layer. If the number of tokens is not known "
                             "beforehand, use the IntegerLookup layer instead.")
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)) or num_tokens < 1:
            raise ValueError(f"{who}: `num_tokens` must be >= 1. Received: num_tokens={num_tokens}.")
        if sparse:
            raise ValueError(f"{who}: `sparse=True` is not supported by kerust (its tensors are dense)")
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode
        self.sparse = False

    def call(self, inputs: Any) -> Any:
        return _encode(_who(self), inputs, self.output_mode, self.num_tokens, "float32")

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self.output_mode == "one_hot" and (len(shape) == 1 or shape[-1] != 1):
            return shape + (self.num_tokens,)
        return shape[:-1] + (self.num_tokens,)

    def _layer_config(self) -> dict:
        return {"num_tokens": self.num_tokens, "output_mode": self.output_mode}


def _summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    """Keras's quantile summary of a batch: every `step`-th sorted value with weight `step`."""
    values = np.sort(np.reshape(values, [-1]))
    step = max(values.size / (1.0 / epsilon), 1)
    picked = values[int(step - 1)::int(step)]
    return np.stack([picked, np.ones_like(picked) * step])


def _compress_summary(summary: np.ndarray, epsilon: float) -> np.ndarray:
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum = summary[1].cumsum()
    cum_percents = cum / cum[-1]
    bins = np.interp(percents, cum_percents, summary[0])
    cum_new = np.interp(percents, cum_percents, cum)
    weights = cum_new - np.concatenate((np.array([0]), cum_new[:-1]))
    return np.stack((bins, weights)).astype("float32")


def _merge_summaries(a: np.ndarray, b: np.ndarray, epsilon: float) -> np.ndarray:
    merged = np.concatenate((a, b), axis=1)
    merged = np.take(merged, np.argsort(merged[0]), axis=1)
    return _compress_summary(merged, epsilon)


class Discretization(_Preprocessing):
    """Values bucketed by `bin_boundaries` (bucket i holds `boundaries[i-1] <= x < boundaries[i]`), as indices
    (`output_mode="int"`) or one-hot / multi-hot / count vectors; `num_bins` + `adapt(data)` finds quantile
    boundaries as Keras does."""

    def __init__(self, bin_boundaries: Any = None, num_bins: Optional[int] = None, epsilon: float = 0.01,
                 output_mode: str = "int", sparse: bool = False, dtype: Any = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, **kwargs)
        who = _who(self)
        if sparse:
            raise ValueError(f"{who}: `sparse=True` is not supported by kerust (its tensors are dense)")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise ValueError(f"{who}: the `output_mode` argument value must be one of 'int', 'one_hot', "
                             f"'multi_hot', 'count'. Received: output_mode={output_mode!r}")
        if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer))):
            raise ValueError(f"{who}: `num_bins` must be an integer, received num_bins={num_bins!r}")
        if num_bins is not None and num_bins < 0:
            raise ValueError(f"{who}: `num_bins` must be greater than or equal to 0. Received: "
                             f"`num_bins={num_bins}`")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(f"{who}: both `num_bins` and `bin_boundaries` should not be set. Received: "
                             f"`num_bins={num_bins}` and `bin_boundaries={bin_boundaries}`")
        if num_bins is None and bin_boundaries is None:
            raise ValueError(f"{who}: you need to set either `num_bins` or `bin_boundaries`.")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon <= 1:
            raise ValueError(f"{who}: `epsilon` must be a number in (0, 1], received epsilon={epsilon!r}")
        self.bin_boundaries = self._boundaries(bin_boundaries) if bin_boundaries is not None else None
        self.num_bins = None if num_bins is None else int(num_bins)
        self.epsilon = float(epsilon)
        self.output_mode = output_mode
        self.sparse = False
        self.summary = np.array([[], []], dtype="float32")

    def _boundaries(self, value: Any) -> List[float]:
        a = _check_numbers(_who(self), "bin_boundaries", _plain(value))
        if a.ndim != 1:
            raise ValueError(f"{_who(self)}: `bin_boundaries` must be a list of numbers, received {value!r}")
        if np.any(np.diff(a) < 0):
            raise ValueError(f"{_who(self)}: `bin_boundaries` must be sorted in increasing order, received "
                             f"{value!r}")
        return [float(v) for v in a]

    def adapt(self, data: Any, steps: Optional[int] = None) -> None:
        """Find `num_bins` quantile boundaries of `data` (an array, or an iterable of batches)."""
        who = _who(self)
        if self.num_bins is None:
            raise ValueError(f"{who}: cannot adapt a Discretization layer that has been initialized with "
                             "`bin_boundaries`, use `num_bins` instead.")
        if steps is not None and (isinstance(data, np.ndarray) or not hasattr(data, "__iter__")):
            raise ValueError(f"{who}: `steps` is not supported with array inputs")
        if steps is not None and hasattr(data, "__iter__"):
            data = list(itertools.islice(iter(data), int(steps)))
        array, batches = _adapt_batches(who, data)
        summary = np.array([[], []], dtype="float32")
        for b in ([array] if array is not None else batches):
            summary = _merge_summaries(_summarize(b, self.epsilon), summary, self.epsilon)
        self.summary = summary
        self.bin_boundaries = [float(v) for v in _compress_summary(summary, 1.0 / self.num_bins)[0, :-1]]
        self._traces.clear()

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        from ._graph import KerasTensor

        out = Layer.__call__(self, inputs, *args, **kwargs)
        if self.output_mode == "int" and not isinstance(out, KerasTensor):
            return np.asarray(out).astype(np.int32)  # eagerly, Keras's int32 indices
        return out

    def _depth(self) -> int:
        return (len(self.bin_boundaries) + 1) if self.bin_boundaries is not None else int(self.num_bins or 0)

    def call(self, inputs: Any) -> Any:
        if self.bin_boundaries is None:
            raise ValueError(f"{_who(self)}: you need to either pass the `bin_boundaries` argument at construction "
                             "time or call `adapt(dataset)` before you can start using the `Discretization` "
                             "layer.")
        x = _as_float(inputs)
        if self.bin_boundaries:
            bounds = np.asarray(self.bin_boundaries, dtype=np.float32)
            above = ops.greater_equal(ops.expand_dims(x, -1), bounds)
            indices = ops.sum(ops.cast(above, "float32"), axis=-1)
        else:
            indices = ops.zeros_like(x)
        return _encode(_who(self), indices, self.output_mode, self._depth(),
                       "int32" if self.output_mode == "int" else "float32")

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        depth = self._depth()
        if self.output_mode == "one_hot":
            if len(shape) > 1 and shape[-1] == 1:
                return shape[:-1] + (depth,)
            return shape + (depth,)
        return (shape[0],) + shape[2:] + (depth,) if len(shape) >= 2 else (depth,)

    def get_config(self) -> dict:
        # Keras's keys exactly (its Discretization takes no `trainable`)
        return {"bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins, "epsilon": self.epsilon,
                "output_mode": self.output_mode, "sparse": self.sparse, "name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config: dict) -> "Discretization":
        config = dict(config)
        config.pop("dtype", None)
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            boundaries = config.pop("bin_boundaries")
            layer = cls(**config)
            layer.bin_boundaries = layer._boundaries(boundaries)
            return layer
        return cls(**config)


# ---- augmentation -----------------------------------------------------------------------------------------------
def _image_factor(who: str, factor: Any, bounds: Tuple[float, float]) -> Tuple[Any, Any]:
    """Keras's BaseImagePreprocessingLayer factor: a number f gives (max(-f, low), f), a pair is sorted."""
    msg = (f"{who}: the `factor` argument should be a number (or a list of two numbers) in the range "
           f"[{bounds[0]}, {bounds[1]}]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in factor):
            raise ValueError(msg)
        if factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(msg)
        lower, upper = sorted(factor)
        return lower, upper
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(msg)
        factor = abs(factor)
        return max(-factor, bounds[0]), factor
    raise ValueError(msg)


def _check_fill(who: str, fill_mode: Any, interpolation: Any) -> None:
    modes = ("reflect", "wrap", "constant", "nearest")
    if fill_mode not in modes:
        raise ValueError(f"{who}: unknown `fill_mode` {fill_mode}. Expected of one {modes}.")
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"{who}: unknown `interpolation` {interpolation}. Expected of one ('nearest', 'bilinear').")


def _check_seed(who: str, seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{who}: `seed` must be an int or None, received seed={seed!r}")
    return int(seed)


class _Augmentation(_ImageLayer):
    """An image layer that changes images only in training, from random numbers drawn per batch."""

    def __init__(self, seed: Optional[int] = None, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(data_format=data_format, **kwargs)
        self.seed = _check_seed(_who(self), seed)
        self.generator = random_module.SeedGenerator(self.seed)
        self._batch: Any = None

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        from ._graph import KerasTensor

        if isinstance(inputs, (KerasTensor, list, tuple, dict)) or training is False or mask is not None or kwargs:
            return super().__call__(inputs, training=training, mask=mask, **kwargs)
        # called directly on an array: Keras's `training=True` default, so the images are augmented now, with
        # random numbers from the layer's own seed (its SeedGenerator advances with each call)
        x = np.asarray(inputs, dtype=np.float32)
        single = x.ndim == 3
        out = np.asarray(self.call(x[None] if single else x, training=True), dtype=np.float32)
        return out[0] if single else out

    def _uniform(self, shape: Sequence[Any], low: float, high: float) -> Any:
        # a None axis is the batch: unknown while tracing (the engine draws per batch), the array's when eager
        dims = tuple(self._batch if d is None else d for d in shape)
        return random_module.uniform(dims, minval=float(low), maxval=float(high), seed=self.generator)

    def call(self, inputs: Any, training: Any = None) -> Any:
        x = self._nhwc(inputs)
        self._batch = _batch_shape(x)[0]
        if not training:
            y = self._inference(x)
            # an identity node, so that a model of this layer alone still has one
            return self._back(ops.cast(y, "float32") if y is inputs else y)
        return self._back(self._augment(x))

    def _inference(self, x: Any) -> Any:
        return x

    def _augment(self, x: Any) -> Any:
        raise NotImplementedError


class RandomFlip(_Augmentation):
    """Each image flipped left-right (`"horizontal"`), upside down (`"vertical"`) or both
    (`"horizontal_and_vertical"`, both or neither) with probability 1/2, in training."""

    def __init__(self, mode: str = "horizontal_and_vertical", seed: Optional[int] = None,
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise ValueError(f"{_who(self)}: RandomFlip layer {self.name} received an unknown mode argument "
                             f"{mode}; expected one of 'horizontal', 'vertical', 'horizontal_and_vertical'")
        self.mode = mode

    def _augment(self, x: Any) -> Any:
        flips = ops.less_equal(self._uniform((None, 1, 1, 1), 0.0, 1.0), 0.5)
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            x = ops.where(flips, x[:, :, ::-1, :], x)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            x = ops.where(flips, x[:, ::-1, :, :], x)
        return x

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "seed": self.seed, "mode": self.mode}


def _column(x: Any) -> Any:
    return ops.expand_dims(x, -1)


class _AffineAugmentation(_Augmentation):
    def __init__(self, fill_mode: str = "reflect", interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        _check_fill(_who(self), fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(_check_numbers(_who(self), "fill_value", fill_value))

    def _transform(self, x: Any, matrix: Any) -> Any:
        return _image_ops.affine_transform_nhwc(x, matrix, self.interpolation, self.fill_mode, self.fill_value,
                                                projective=False)


class RandomRotation(_AffineAugmentation):
    """Each image rotated about its centre by a random fraction of a full turn in [factor[0], factor[1]]
    (a number f: [-f, f]), in training; `fill_mode` and `interpolation` as `ops.image.affine_transform`."""

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0, data_format: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.factor = _image_factor(_who(self), factor, (-1, 1))

    def _augment(self, x: Any) -> Any:
        h, w = (int(d) for d in _batch_shape(x)[1:3])
        angle = self._uniform((None, 1), self.factor[0] * 360.0, self.factor[1] * 360.0)
        angle = ops.multiply(angle, math.pi / 180.0)
        cos, sin = ops.cos(angle), ops.sin(angle)
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        a0, a1 = cos, ops.negative(sin)
        b0, b1 = sin, cos
        a2 = ops.subtract(ops.subtract(cx, ops.multiply(a0, cx)), ops.multiply(a1, cy))
        b2 = ops.subtract(ops.subtract(cy, ops.multiply(b0, cx)), ops.multiply(b1, cy))
        zero = ops.zeros_like(angle)
        matrix = ops.concatenate([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
        return self._transform(x, matrix)

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "factor": list(self.factor), "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "interpolation": self.interpolation, "seed": self.seed}


def _signed_factor(who: str, factor: Any, name: str, message: str, low_open: bool) -> Tuple[float, float]:
    def check(v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v > 1.0 or (v <= -1.0 if low_open else v < -1.0):
            raise ValueError(f"{who}: {message}Received: input_number={v}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{who}: {message}Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        lower, upper = sorted(factor)
        return float(lower), float(upper)
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        check(factor)
        f = abs(float(factor))
        return -f, f
    raise ValueError(f"{who}: {message}Received: {name}={factor}")


class RandomTranslation(_AffineAugmentation):
    """Each image shifted by a random fraction of its height in [height_factor] and of its width in
    [width_factor] (a number f: [-f, f]; positive moves down / right), in training."""

    _MESSAGE = ("The `factor` argument should be a number (or a list of two numbers) in the range [-1.0, 1.0]. ")

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None, fill_value: float = 0.0,
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        who = _who(self)
        self.height_factor = _plain(height_factor)
        self.width_factor = _plain(width_factor)
        self.height_lower, self.height_upper = _signed_factor(who, self.height_factor, "height_factor",
                                                              self._MESSAGE, False)
        self.width_lower, self.width_upper = _signed_factor(who, self.width_factor, "width_factor", self._MESSAGE,
                                                            False)

    def _augment(self, x: Any) -> Any:
        h, w = (int(d) for d in _batch_shape(x)[1:3])
        dy = ops.multiply(self._uniform((None, 1), self.height_lower, self.height_upper), float(h))
        dx = ops.multiply(self._uniform((None, 1), self.width_lower, self.width_upper), float(w))
        one, zero = ops.ones_like(dx), ops.zeros_like(dx)
        matrix = ops.concatenate([one, zero, ops.negative(dx), zero, one, ops.negative(dy), zero, zero], axis=1)
        return self._transform(x, matrix)

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "height_factor": self.height_factor,
                "width_factor": self.width_factor, "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}


class RandomZoom(_AffineAugmentation):
    """Each image zoomed about its centre: the sampled window is (1 + z) times the image, z random in
    [height_factor] vertically and [width_factor] horizontally (None: the same z; negative z zooms in), in
    training."""

    _MESSAGE = ("The `height_factor` and `width_factor` arguments should be a number (or a list of two numbers) in "
                "the range (-1.0, 1.0]. ")

    def __init__(self, height_factor: Any, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None, fill_value: float = 0.0,
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        who = _who(self)
        self.height_factor = _plain(height_factor)
        self.width_factor = _plain(width_factor)
        self.height_lower, self.height_upper = _signed_factor(who, self.height_factor, "height_factor",
                                                              self._MESSAGE, True)
        if self.width_factor is not None:
            self.width_lower, self.width_upper = _signed_factor(who, self.width_factor, "width_factor",
                                                                self._MESSAGE, True)

    def _augment(self, x: Any) -> Any:
        h, w = (int(d) for d in _batch_shape(x)[1:3])
        zy = self._uniform((None, 1), 1.0 + self.height_lower, 1.0 + self.height_upper)
        zx = zy if self.width_factor is None else self._uniform((None, 1), 1.0 + self.width_lower,
                                                               1.0 + self.width_upper)
        x_offset = ops.multiply(ops.subtract(1.0, zx), (w - 1.0) / 2.0)
        y_offset = ops.multiply(ops.subtract(1.0, zy), (h - 1.0) / 2.0)
        zero = ops.zeros_like(zx)
        matrix = ops.concatenate([zx, zero, x_offset, zero, zy, y_offset, zero, zero], axis=1)
        return self._transform(x, matrix)

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "height_factor": self.height_factor,
                "width_factor": self.width_factor, "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}


class RandomCrop(_Augmentation):
    """A random (height, width) window, at one place for the whole batch, in training; in inference (and in
    training for images not larger than the window) the largest centred window of the target's aspect ratio,
    resized to (height, width)."""

    def __init__(self, height: int, width: int, seed: Optional[int] = None, data_format: Optional[str] = None,
                 name: Optional[str] = None, **kwargs: Any) -> None:
        seed = _check_seed(f"RandomCrop '{name}'", seed)
        super().__init__(seed=seed if seed is not None else python_random.randint(1, int(1e9)),
                         data_format=data_format, name=name, **kwargs)
        who = _who(self)
        self.height = _check_size_arg(who, "height", height)
        self.width = _check_size_arg(who, "width", width)

    def _inference(self, x: Any) -> Any:
        h, w = (int(d) for d in _batch_shape(x)[1:3])
        if (h, w) == (self.height, self.width):
            return x
        return _smart_resize(x, self.height, self.width)

    def _augment(self, x: Any) -> Any:
        h, w = (int(d) for d in _batch_shape(x)[1:3])
        if not (h > self.height and w > self.width):
            return self._inference(x)
        # one start per batch: floor(uniform[0, n + 1)) rows / columns, gathered
        top = ops.floor(self._uniform((1, 1, 1, 1), 0.0, float(h - self.height + 1)))
        left = ops.floor(self._uniform((1, 1, 1, 1), 0.0, float(w - self.width + 1)))
        rows = ops.cast(ops.add(top, np.arange(self.height, dtype=np.float32).reshape(1, -1, 1, 1)), "int32")
        cols = ops.cast(ops.add(left, np.arange(self.width, dtype=np.float32).reshape(1, 1, -1, 1)), "int32")
        x = ops.take_along_axis(x, rows, axis=1)
        return ops.take_along_axis(x, cols, axis=2)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self._with_hw(input_shape, self.height, self.width)

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "height": self.height, "width": self.width, "seed": self.seed}


def _value_range(who: str, value_range: Any) -> List[float]:
    message = f"{who}: the `value_range` argument should be a list of two numbers. Received: value_range={value_range}"
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(message)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value_range):
        raise ValueError(message)
    return sorted(value_range)


class RandomContrast(_Augmentation):
    """Each image's contrast scaled by a random c in [1 - factor[0], 1 + factor[1]] (a number f: [1, 1 + f], as in
    Keras 3.15): `(x - mean) * c + mean` per channel, clipped to `value_range`, in training."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        who = _who(self)
        self.factor = _image_factor(who, factor, (0, 1))
        self.value_range = _value_range(who, value_range)

    def _augment(self, x: Any) -> Any:
        c = self._uniform((None, 1, 1, 1), 1.0 - self.factor[0], 1.0 + self.factor[1])
        mean = ops.mean(ops.mean(x, axis=1, keepdims=True), axis=2, keepdims=True)
        out = ops.add(ops.multiply(ops.subtract(x, mean), c), mean)
        return ops.clip(out, self.value_range[0], self.value_range[1])

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "factor": list(self.factor), "value_range": list(self.value_range),
                "seed": self.seed}


class RandomBrightness(_Augmentation):
    """A random delta in [factor[0], factor[1]] (a number f: [-f, f]) times the width of `value_range` added to
    each image, then clipped to `value_range`, in training."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        who = _who(self)
        self.factor = _image_factor(who, 0.0 if not factor else factor, (-1, 1))
        self.value_range = _value_range(who, value_range)

    def _augment(self, x: Any) -> Any:
        delta = self._uniform((None, 1, 1, 1), self.factor[0], self.factor[1])
        delta = ops.multiply(delta, float(self.value_range[1] - self.value_range[0]))
        return ops.clip(ops.add(x, delta), self.value_range[0], self.value_range[1])

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format, "factor": list(self.factor), "value_range": list(self.value_range),
                "seed": self.seed}


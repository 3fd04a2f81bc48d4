"""Keras layers. Each is plain configuration (Keras's ``get_config()`` shape); the Rust model owns the weights.

Arguments are checked at construction by the engine's own config parser, so a bad value fails here, naming
the layer, and not later inside ``fit``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _core
from . import regularizers as regularizers_module
from ._naming import to_snake_case, unique_name
from . import _json

IntOrPair = Union[int, Sequence[int]]

_BASE_KWARGS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape", "input_dim", "batch_size")


def _activation_name(value: Any) -> Optional[str]:
    if value is None:
        return "linear"
    if isinstance(value, str):
        return value
    name = getattr(value, "__name__", None)
    if callable(value) and isinstance(name, str):
        return name
    raise TypeError(f"activation must be a name such as 'relu' or None; received {value!r}")


def _pair(value: IntOrPair) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


class Layer:
    """Base of every kerust layer."""

    _keras_class: Optional[str] = None

    def __init__(
        self,
        name: Optional[str] = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        input_dim: Optional[int] = None,
        batch_size: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}"
            )
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: kerust computes in float32; received dtype={dtype!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string, received {name!r}")
        self.name: str = name or unique_name(to_snake_case(self.class_name))
        self._trainable = bool(trainable)
        self._input_shape_arg: Optional[tuple] = None
        if input_shape is not None:
            self._input_shape_arg = tuple(input_shape)
        elif batch_input_shape is not None:
            self._input_shape_arg = tuple(batch_input_shape)[1:]
        elif input_dim is not None:
            self._input_shape_arg = (input_dim,)
        self._model: Any = None

    @property
    def class_name(self) -> str:
        """The Keras class name, as written in configs and files."""
        return self._keras_class or type(self).__name__

    def _layer_config(self) -> dict:
        return {}

    def get_config(self) -> dict:
        """The layer's arguments as a dict, in the shape of Keras's `get_config()`."""
        config = {"name": self.name, "trainable": self._trainable, "dtype": "float32"}
        config.update(self._layer_config())
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        """A new layer from a `get_config()` dict."""
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def _validate(self) -> None:
        """Run the engine's parser on this config: bad arguments fail at construction."""
        config = self.get_config()
        for key, value in config.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{self.class_name} '{self.name}': invalid value received for argument "
                                 f"`{key}`: expected a finite number, received {value}")
        try:
            text = _json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.class_name} '{self.name}': arguments must be plain numbers, strings, "
                            f"bools or None ({e})") from None
        _core.validate(f"layer:{self.class_name}", text)

    # weights live in the model's engine
    def _weight_slot(self) -> tuple:
        if self._model is None or self._model._core is None:
            return (0, 0)
        index = self._model._layers.index(self)
        return self._model._core.layer_weight_ranges()[index]

    def get_weights(self) -> list:
        """Copies of the layer's weights as NumPy arrays, in Keras's order and layouts (empty before the model is
        built)."""
        first, n = self._weight_slot()
        if n == 0:
            return []
        return self._model._core.get_weights()[first : first + n]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace the layer's weights with arrays of the same shapes, in `get_weights()` order; nothing is written
        if one does not fit."""
        first, n = self._weight_slot()
        if self._model is None or self._model._core is None:
            raise ValueError(f"Layer '{self.name}' has no weights yet: build the model first.")
        arrays = [np.ascontiguousarray(w, dtype=np.float32) for w in weights]
        self._model._core.set_weights(first, arrays, n, f"layer '{self.name}'")

    @property
    def weights(self) -> list:
        """The same arrays as `get_weights()`."""
        return self.get_weights()

    def count_params(self) -> int:
        """The number of scalars in the layer's weights."""
        return int(sum(w.size for w in self.get_weights()))

    @property
    def trainable(self) -> bool:
        """Whether training updates this layer's weights; it can be changed at any time, also after `compile`."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        if self._model is not None and self._model._core is not None:
            self._model._core.set_layer_trainable(self._model._layers.index(self), self._trainable)

    @property
    def output_shape(self) -> tuple:
        """The layer's output shape, `None` for the batch axis (once the model is built)."""
        if self._model is None or self._model._core is None:
            raise AttributeError(f"Layer '{self.name}' has no defined output shape: it is not built yet.")
        index = self._model._layers.index(self)
        return (None, *self._model._core.layer_info()[index][2])

    def __repr__(self) -> str:
        return f"<{self.class_name} name={self.name}, built={self._model is not None and self._model.built}>"


class InputLayer:
    """Declares the model's input shape (not a computing layer, as in Keras's Sequential)."""

    def __init__(
        self,
        shape: Optional[Sequence[int]] = None,
        batch_size: Optional[int] = None,
        dtype: Any = None,
        name: Optional[str] = None,
        input_shape: Optional[Sequence[int]] = None,
        batch_shape: Optional[Sequence[Optional[int]]] = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to InputLayer: {kwargs}")
        dims: Optional[Sequence[Any]] = shape
        if dims is None:
            dims = input_shape if input_shape is not None else (tuple(batch_shape)[1:] if batch_shape else None)
        if dims is None:
            raise ValueError("InputLayer: you must pass a `shape` argument.")
        dims = tuple(dims)
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 < d < 2**31 for d in dims):
            raise ValueError(f"InputLayer: every dimension of `shape` must be a positive int, received {dims}")
        self.shape = (None, *dims)
        self.name = name or unique_name("input_layer")
        self.dtype = "float32"


def Input(
    shape: Optional[Sequence[int]] = None,
    batch_size: Optional[int] = None,
    dtype: Any = None,
    name: Optional[str] = None,
    **kwargs: Any,
) -> InputLayer:
    """``keras.Input``: the symbolic input of a Sequential model."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, **kwargs)


def _no_unsupported(layer: str, **args: Any) -> None:
    for key, value in args.items():
        if value is not None:
            raise ValueError(f"{layer}: `{key}` is not supported by kerust yet (received {value!r})")


def _set_kernel_bias(layer: Any, use_bias: bool, kernel_initializer: Any, bias_initializer: Any,
                     kernel_regularizer: Any, bias_regularizer: Any, activity_regularizer: Any,
                     kernel_constraint: Any, bias_constraint: Any) -> None:
    """The kernel/bias arguments Dense and Conv2D share (the engine's `KernelBias` reads the same keys)."""
    _no_unsupported(layer.class_name, activity_regularizer=activity_regularizer,
                    kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
    layer.use_bias = use_bias
    layer.kernel_initializer = kernel_initializer
    layer.bias_initializer = bias_initializer
    layer.kernel_regularizer = regularizers_module.get(kernel_regularizer)
    layer.bias_regularizer = regularizers_module.get(bias_regularizer)


def _kernel_bias_config(layer: Any) -> dict:
    return {
        "use_bias": layer.use_bias,
        "kernel_initializer": layer.kernel_initializer,
        "bias_initializer": layer.bias_initializer,
        "kernel_regularizer": regularizers_module.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers_module.serialize(layer.bias_regularizer),
        "kernel_constraint": None,
        "bias_constraint": None,
    }


class Dense(Layer):
    """Fully connected layer: `activation(x @ kernel + bias)` over the last axis, with a kernel of shape
    `(input_dim, units)`."""
    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.activation = _activation_name(activation)
        _set_kernel_bias(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint)
        self._validate()

    def _layer_config(self) -> dict:
        return {"units": self.units, "activation": self.activation, **_kernel_bias_config(self)}


class Activation(Layer):
    """Applies an activation function, given by name, to every element."""
    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = _activation_name(activation)
        self._validate()

    def _layer_config(self) -> dict:
        return {"activation": self.activation}


class Flatten(Layer):
    """Reshapes each sample to one axis (the batch axis is kept)."""
    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format
        self._validate()

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format or "channels_last"}


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (without the batch axis; one entry may be -1)."""
    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        self._validate()

    def _layer_config(self) -> dict:
        return {"target_shape": list(self.target_shape)}


class Conv2D(Layer):
    """2D convolution over channels-last images `(batch, height, width, channels)`, with a kernel of shape
    `(kernel_h, kernel_w, in_channels, filters)`; `padding` is `"valid"` or `"same"`."""
    def __init__(
        self,
        filters: int,
        kernel_size: IntOrPair,
        strides: IntOrPair = (1, 1),
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: IntOrPair = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _set_kernel_bias(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint)
        self.filters = filters
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = _pair(dilation_rate)
        self.groups = groups
        self.activation = _activation_name(activation)
        self._validate()

    def _layer_config(self) -> dict:
        def as_list(v: Any) -> list:
            return list(v) if isinstance(v, (list, tuple)) else [v, v]

        return {
            "filters": self.filters,
            "kernel_size": as_list(self.kernel_size),
            "strides": as_list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format or "channels_last",
            "dilation_rate": as_list(self.dilation_rate),
            "groups": self.groups,
            "activation": self.activation,
            **_kernel_bias_config(self),
            "activity_regularizer": None,
        }


class _Pooling2D(Layer):
    def __init__(
        self,
        pool_size: IntOrPair = (2, 2),
        strides: Optional[IntOrPair] = None,
        padding: str = "valid",
        data_format: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else None
        self.padding = padding
        self.data_format = data_format
        self._validate()

    def _layer_config(self) -> dict:
        def as_list(v: Any) -> list:
            return list(v) if isinstance(v, (list, tuple)) else [v, v]

        return {
            "pool_size": as_list(self.pool_size),
            "padding": self.padding,
            "strides": as_list(self.strides if self.strides is not None else self.pool_size),
            "data_format": self.data_format or "channels_last",
        }


class MaxPooling2D(_Pooling2D):
    """The maximum over each `pool_size` window of each channel; `strides` default to `pool_size`."""


class AveragePooling2D(_Pooling2D):
    """The mean over each `pool_size` window of each channel (with `padding="same"`, padded cells are not counted);
    `strides` default to `pool_size`."""


class _GlobalPooling2D(Layer):
    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format
        self.keepdims = keepdims
        self._validate()

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format or "channels_last", "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over height and width of each channel: `(batch, h, w, c)` to `(batch, c)`, or `(batch, 1, 1, c)` with
    `keepdims=True`."""


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over height and width of each channel: `(batch, h, w, c)` to `(batch, c)`, or `(batch, 1, 1, c)`
    with `keepdims=True`."""


class Dropout(Layer):
    """In training, sets a fraction `rate` of the inputs to zero and scales the others by `1 / (1 - rate)`; passes
    inputs through unchanged in `predict` and `evaluate`."""
    def __init__(self, rate: float, noise_shape: Any = None, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise ValueError(
                f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                f"Received: rate={rate!r}"
            )
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = seed
        self._validate()

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


class BatchNormalization(Layer):
    """Normalizes over the last axis: with the batch's statistics in training (updating the moving averages with
    `momentum`), with the moving averages in inference."""
    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 0.001,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _no_unsupported(
            "BatchNormalization",
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
        )
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self.synchronized = synchronized
        self._validate()

    def _layer_config(self) -> dict:
        return {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": self.beta_initializer,
            "gamma_initializer": self.gamma_initializer,
            "moving_mean_initializer": self.moving_mean_initializer,
            "moving_variance_initializer": self.moving_variance_initializer,
            "beta_regularizer": None,
            "gamma_regularizer": None,
            "beta_constraint": None,
            "gamma_constraint": None,
            "synchronized": self.synchronized,
        }


class LeakyReLU(Layer):
    """`x` for positive inputs, `negative_slope * x` otherwise (`alpha=` is accepted as the Keras 2 name)."""
    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        if "alpha" in kwargs:  # the Keras 2 name
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = negative_slope
        self._validate()

    def _layer_config(self) -> dict:
        return {"negative_slope": self.negative_slope}


class ReLU(Layer):
    """Rectified linear unit as in Keras: `x` between `threshold` and `max_value` (where it saturates, if given),
    `negative_slope * (x - threshold)` below `threshold`."""
    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self._validate()

    def _layer_config(self) -> dict:
        return {"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold}


class ELU(Layer):
    """`x` for positive inputs, `alpha * (exp(x) - 1)` otherwise."""
    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha
        self._validate()

    def _layer_config(self) -> dict:
        return {"alpha": self.alpha}


class Softmax(Layer):
    """Softmax over the last axis (the only axis supported)."""
    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis
        self._validate()

    def _layer_config(self) -> dict:
        return {"axis": self.axis}


class PReLU(Layer):
    """A leaky ReLU whose slope `alpha` is learned, one per input element or shared over `shared_axes`."""
    def __init__(self, alpha_initializer: Any = "Zeros", alpha_regularizer: Any = None, alpha_constraint: Any = None,
                 shared_axes: Optional[Sequence[int]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _no_unsupported("PReLU", alpha_regularizer=alpha_regularizer, alpha_constraint=alpha_constraint)
        self.alpha_initializer = alpha_initializer
        self.shared_axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else shared_axes
        self._validate()

    def _layer_config(self) -> dict:
        return {"alpha_initializer": self.alpha_initializer, "alpha_regularizer": None, "alpha_constraint": None,
                "shared_axes": self.shared_axes}


class SpatialDropout2D(Layer):
    """Dropout of whole feature maps: in training each channel of each sample is set to zero with probability `rate`,
    and the others are scaled by `1 / (1 - rate)`."""
    def __init__(self, rate: float, data_format: Optional[str] = None, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise ValueError(f"SpatialDropout2D: `rate` must be a float in [0, 1), received {rate!r}")
        self.rate = float(rate)
        self.data_format = data_format
        self.seed = seed
        self._validate()

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "data_format": self.data_format or "channels_last", "seed": self.seed}

    def get_config(self) -> dict:
        """As `Layer.get_config`, without `trainable` (Keras writes none for this layer)."""
        config = super().get_config()
        config.pop("trainable")  # Keras's SpatialDropout2D config has no `trainable` (its __init__ rejects it)
        return config


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation `stddev` in training; passes inputs through unchanged in
    inference."""
    def __init__(self, stddev: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed = seed
        self._validate()

    def _layer_config(self) -> dict:
        return {"stddev": self.stddev, "seed": self.seed}


# Keras's aliases
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

_CLASSES = {
    cls.__name__: cls
    for cls in (
        Dense,
        Activation,
        Flatten,
        Reshape,
        Conv2D,
        MaxPooling2D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        Dropout,
        BatchNormalization,
        LeakyReLU,
        ReLU,
        ELU,
        Softmax,
        PReLU,
        SpatialDropout2D,
        GaussianNoise,
    )
}


def deserialize(config: dict) -> Layer:
    """Build a layer from ``{"class_name": ..., "config": {...}}`` (known classes only, no code lookup)."""
    class_name = config.get("class_name")
    cls = _CLASSES.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"Unknown layer class {class_name!r}. kerust supports: {', '.join(sorted(_CLASSES))}"
        )
    return cls.from_config(config.get("config", {}))


def serialize(layer: Layer) -> dict:
    """The `{"class_name": ..., "config": ...}` dict Keras writes for a layer."""
    return {"class_name": layer.class_name, "config": layer.get_config()}

"""``keras.applications.mobilenet_v2``: MobileNetV2 (Sandler et al., 2018) as Keras 3.15 builds it: the same
layers, names, order and weight shapes, so Keras's weights files load into it."""

from __future__ import annotations

from typing import Any, Optional

from .._vision_layers import ZeroPadding2D
from . import imagenet_utils
from .imagenet_utils import decode_predictions

__all__ = ["MobileNetV2", "preprocess_input", "decode_predictions"]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"


def _make_divisible(v: float, divisor: int, min_value: Optional[int] = None) -> int:
    """`v` rounded to the nearest multiple of `divisor` (at least `min_value`), never more than 10% below `v`."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _bn(name: str) -> Any:
    from .. import layers

    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)


def _inverted_res_block(inputs: Any, expansion: int, stride: int, alpha: float, filters: int, block_id: int) -> Any:
    from .. import layers

    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False, activation=None,
                          name=f"{prefix}expand")(x)
        x = _bn(f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid", name=f"{prefix}depthwise")(x)
    x = _bn(f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = _bn(f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


# (filters, stride, expansion) of the 17 inverted residual blocks
_BLOCKS = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
           (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
           (320, 1, 6)]


def MobileNetV2(input_shape: Any = None, alpha: float = 1.0, include_top: bool = True, weights: Any = "imagenet",
                input_tensor: Any = None, pooling: Optional[str] = None, classes: int = 1000,
                classifier_activation: Any = "softmax", name: Optional[str] = None) -> Any:
    """Instantiates the MobileNetV2 architecture, as `keras.applications.MobileNetV2`.

    `alpha` scales the number of filters of every layer (the width multiplier). `weights`: None (random
    initialization) or the path of a Keras weights file (Keras's ImageNet `.h5` files, or a `.weights.h5` file);
    kerust never downloads, so the default "imagenet" raises a ValueError naming the file to get. `input_shape`:
    `(height, width, channels)`, at least 32x32 (224x224x3 with the top when not given); `input_tensor`: a Keras
    tensor to build the model on instead; `pooling` (without the top): None, "avg" or "max"; `classes` and
    `classifier_activation`: the top's Dense layer. Expects inputs preprocessed by
    `kerust.applications.mobilenet_v2.preprocess_input` (pixels scaled to [-1, 1])."""
    from .. import layers

    who = "MobileNetV2"
    imagenet_utils._check_weights(weights, who, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                                  f"{float(alpha)}_224{'' if include_top else '_no_top'}.h5 from {_BASE}")
    imagenet_utils._check_pooling(pooling, who)
    imagenet_utils._check_classes(classes, who)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"{who}: `alpha` must be a positive number, received alpha={alpha!r}")
    imagenet_utils._check_input_tensor_shape(input_tensor, input_shape)
    if input_shape is None and input_tensor is not None:
        rows, cols = input_tensor.shape[1], input_tensor.shape[2]
        default_size = rows if rows == cols and rows in (96, 128, 160, 192, 224) else 224
    elif input_shape is None:
        default_size = 224
    else:
        shape = tuple(input_shape)
        rows, cols = (shape[0], shape[1]) if len(shape) > 1 else (None, None)
        default_size = rows if rows == cols and rows in (96, 128, 160, 192, 224) else 224
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    rows = input_shape[0]
    img_input = imagenet_utils._image_input(input_tensor, input_shape, who)

    x = layers.Conv2D(_make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2), padding="same", use_bias=False,
                      name="Conv1")(img_input)
    x = _bn("bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride, expansion=expansion,
                                block_id=block_id)
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = _bn("Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    x = imagenet_utils._top(x, include_top, pooling, classes, classifier_activation, weights, (None, None))
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    return imagenet_utils._finish(img_input, input_tensor, x, name, weights)


def preprocess_input(x: Any, data_format: Optional[str] = None) -> Any:
    """Scales the pixels of images (values in [0, 255]) to [-1, 1], sample-wise: MobileNetV2's preprocessing
    (`imagenet_utils.preprocess_input` in "tf" mode)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")

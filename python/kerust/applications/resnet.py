"""``keras.applications.resnet``: ResNet50, ResNet101 and ResNet152 (He et al., 2015) as Keras 3.15 builds them:
the same layers, names, order and weight shapes, so Keras's weights files load into them."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .._vision_layers import ZeroPadding2D
from . import imagenet_utils
from .imagenet_utils import decode_predictions

__all__ = ["ResNet50", "ResNet101", "ResNet152", "preprocess_input", "decode_predictions"]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_EPSILON = 1.001e-5


def _residual_block(x: Any, filters: int, stride: int = 1, conv_shortcut: bool = True, name: str = "") -> Any:
    """A bottleneck block: 1x1 (strided), 3x3 and 1x1 (4 * filters) convolutions, each with batch normalization,
    added to the shortcut (a strided 1x1 convolution, or the input itself)."""
    from .. import layers

    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _stack(x: Any, filters: int, blocks: int, stride1: int = 2, name: str = "") -> Any:
    x = _residual_block(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = _residual_block(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def _resnet(stack_fn: Callable[[Any], Any], who: str, weights_name: str, include_top: bool, weights: Any,
            input_tensor: Any, input_shape: Any, pooling: Optional[str], classes: int, classifier_activation: Any,
            name: str) -> Any:
    from .. import layers

    suffix = "" if include_top else "_notop"
    imagenet_utils._check_weights(weights, who, f"{weights_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5 "
                                  f"from {_BASE}")
    imagenet_utils._check_pooling(pooling, who)
    imagenet_utils._check_classes(classes, who)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input = imagenet_utils._image_input(input_tensor, input_shape, who)
    x = ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=True, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    x = imagenet_utils._top(x, include_top, pooling, classes, classifier_activation, weights,
                            ("avg_pool", "max_pool"))
    return imagenet_utils._finish(img_input, input_tensor, x, name, weights)


_DOC = """

    `weights`: None (random initialization) or the path of a Keras weights file (Keras's ImageNet `.h5` files, or a
    `.weights.h5` file); kerust never downloads, so the default "imagenet" raises a ValueError naming the file to
    get. `input_shape`: `(height, width, channels)`, at least 32x32 (224x224x3 with the top when not given);
    `input_tensor`: a Keras tensor to build the model on instead; `pooling` (without the top): None, "avg" or
    "max"; `classes` and `classifier_activation`: the top's Dense layer. Expects inputs preprocessed by
    `kerust.applications.resnet.preprocess_input` (BGR, zero-centred on ImageNet's mean)."""


def ResNet50(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None, input_shape: Any = None,
             pooling: Optional[str] = None, classes: int = 1000, classifier_activation: Any = "softmax",
             name: str = "resnet50") -> Any:
    def stack_fn(x: Any) -> Any:
        x = _stack(x, 64, 3, stride1=1, name="conv2")
        x = _stack(x, 128, 4, name="conv3")
        x = _stack(x, 256, 6, name="conv4")
        return _stack(x, 512, 3, name="conv5")

    return _resnet(stack_fn, "ResNet50", "resnet50", include_top, weights, input_tensor, input_shape, pooling,
                   classes, classifier_activation, name)


def ResNet101(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None, input_shape: Any = None,
              pooling: Optional[str] = None, classes: int = 1000, classifier_activation: Any = "softmax",
              name: str = "resnet101") -> Any:
    def stack_fn(x: Any) -> Any:
        x = _stack(x, 64, 3, stride1=1, name="conv2")
        x = _stack(x, 128, 4, name="conv3")
        x = _stack(x, 256, 23, name="conv4")
        return _stack(x, 512, 3, name="conv5")

    return _resnet(stack_fn, "ResNet101", "resnet101", include_top, weights, input_tensor, input_shape, pooling,
                   classes, classifier_activation, name)


def ResNet152(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None, input_shape: Any = None,
              pooling: Optional[str] = None, classes: int = 1000, classifier_activation: Any = "softmax",
              name: str = "resnet152") -> Any:
    def stack_fn(x: Any) -> Any:
        x = _stack(x, 64, 3, stride1=1, name="conv2")
        x = _stack(x, 128, 8, name="conv3")
        x = _stack(x, 256, 36, name="conv4")
        return _stack(x, 512, 3, name="conv5")

    return _resnet(stack_fn, "ResNet152", "resnet152", include_top, weights, input_tensor, input_shape, pooling,
                   classes, classifier_activation, name)


ResNet50.__doc__ = "Instantiates the ResNet50 architecture, as `keras.applications.ResNet50`." + _DOC
ResNet101.__doc__ = "Instantiates the ResNet101 architecture, as `keras.applications.ResNet101`." + _DOC
ResNet152.__doc__ = "Instantiates the ResNet152 architecture, as `keras.applications.ResNet152`." + _DOC


def preprocess_input(x: Any, data_format: Optional[str] = None) -> Any:
    """Converts images (values in [0, 255]) from RGB to BGR and zero-centres each channel on ImageNet's mean,
    without scaling: ResNet's preprocessing (`imagenet_utils.preprocess_input` in "caffe" mode)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")

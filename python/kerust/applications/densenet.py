"""``keras.applications.densenet``: DenseNet121, DenseNet169 and DenseNet201 (Huang et al., 2017) as Keras 3.15
builds them: the same layers, names, order and weight shapes, so Keras's weights files load into them."""

from __future__ import annotations

from typing import Any, List, Optional

from .._vision_layers import ZeroPadding2D
from . import imagenet_utils
from .imagenet_utils import decode_predictions

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "preprocess_input", "decode_predictions"]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
_EPSILON = 1.001e-5


def _conv_block(x: Any, growth_rate: int, name: str) -> Any:
    """BN-ReLU-1x1 conv (4 * growth_rate), BN-ReLU-3x3 conv (growth_rate), concatenated to the input."""
    from .. import layers

    x1 = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, x1])


def _dense_block(x: Any, blocks: int, name: str) -> Any:
    for i in range(blocks):
        x = _conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def _transition_block(x: Any, reduction: float, name: str) -> Any:
    from .. import layers

    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[3] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def _densenet(blocks: List[int], who: str, include_top: bool, weights: Any, input_tensor: Any, input_shape: Any,
              pooling: Optional[str], classes: int, classifier_activation: Any, name: str) -> Any:
    from .. import layers

    depth = {"6,12,24,16": 121, "6,12,32,32": 169, "6,12,48,32": 201}[",".join(map(str, blocks))]
    suffix = "" if include_top else "_notop"
    imagenet_utils._check_weights(weights, who, f"densenet{depth}_weights_tf_dim_ordering_tf_kernels{suffix}.h5 "
                                  f"from {_BASE}")
    imagenet_utils._check_pooling(pooling, who)
    imagenet_utils._check_classes(classes, who)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input = imagenet_utils._image_input(input_tensor, input_shape, who)
    x = ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for i, n in enumerate(blocks):
        x = _dense_block(x, n, name=f"conv{i + 2}")
        if i < len(blocks) - 1:
            x = _transition_block(x, 0.5, name=f"pool{i + 2}")
    x = layers.BatchNormalization(axis=3, epsilon=_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = imagenet_utils._top(x, include_top, pooling, classes, classifier_activation, weights,
                            ("avg_pool", "max_pool"))
    return imagenet_utils._finish(img_input, input_tensor, x, name, weights)


_DOC = """

    `weights`: None (random initialization) or the path of a Keras weights file (Keras's ImageNet `.h5` files, or a
    `.weights.h5` file); kerust never downloads, so the default "imagenet" raises a ValueError naming the file to
    get. `input_shape`: `(height, width, channels)`, at least 32x32 (224x224x3 with the top when not given);
    `input_tensor`: a Keras tensor to build the model on instead; `pooling` (without the top): None, "avg" or
    "max"; `classes` and `classifier_activation`: the top's Dense layer. Expects inputs preprocessed by
    `kerust.applications.densenet.preprocess_input` (scaled to [0, 1], normalised per channel)."""


def DenseNet121(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
                input_shape: Any = None, pooling: Optional[str] = None, classes: int = 1000,
                classifier_activation: Any = "softmax", name: str = "densenet121") -> Any:
    return _densenet([6, 12, 24, 16], "DenseNet121", include_top, weights, input_tensor, input_shape, pooling,
                     classes, classifier_activation, name)


def DenseNet169(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
                input_shape: Any = None, pooling: Optional[str] = None, classes: int = 1000,
                classifier_activation: Any = "softmax", name: str = "densenet169") -> Any:
    return _densenet([6, 12, 32, 32], "DenseNet169", include_top, weights, input_tensor, input_shape, pooling,
                     classes, classifier_activation, name)


def DenseNet201(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
                input_shape: Any = None, pooling: Optional[str] = None, classes: int = 1000,
                classifier_activation: Any = "softmax", name: str = "densenet201") -> Any:
    return _densenet([6, 12, 48, 32], "DenseNet201", include_top, weights, input_tensor, input_shape, pooling,
                     classes, classifier_activation, name)


DenseNet121.__doc__ = "Instantiates the DenseNet121 architecture, as `keras.applications.DenseNet121`." + _DOC
DenseNet169.__doc__ = "Instantiates the DenseNet169 architecture, as `keras.applications.DenseNet169`." + _DOC
DenseNet201.__doc__ = "Instantiates the DenseNet201 architecture, as `keras.applications.DenseNet201`." + _DOC


def preprocess_input(x: Any, data_format: Optional[str] = None) -> Any:
    """Scales images (values in [0, 255]) to [0, 1] and normalises each channel with ImageNet's mean and standard
    deviation: DenseNet's preprocessing (`imagenet_utils.preprocess_input` in "torch" mode)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")

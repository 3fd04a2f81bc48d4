"""``keras.applications.vgg16``: VGG16 (Simonyan & Zisserman, 2014) as Keras 3.15 builds it: the same layers,
names, order and weight shapes, so Keras's weights files load into it."""

from __future__ import annotations

from typing import Any, Optional

from . import imagenet_utils
from .imagenet_utils import decode_predictions

__all__ = ["VGG16", "preprocess_input", "decode_predictions"]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]  # (filters, convolutions) of the five blocks


def VGG16(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None, input_shape: Any = None,
          pooling: Optional[str] = None, classes: int = 1000, classifier_activation: Any = "softmax",
          name: str = "vgg16") -> Any:
    """Instantiates the VGG16 architecture, as `keras.applications.VGG16`: five blocks of 3x3 convolutions and
    2x2 max pooling, then (with the top) Flatten and Dense layers of 4096, 4096 and `classes` units.

    `weights`: None (random initialization) or the path of a Keras weights file (Keras's ImageNet `.h5` files, or a
    `.weights.h5` file); kerust never downloads, so the default "imagenet" raises a ValueError naming the file to
    get. `input_shape`: `(height, width, channels)`, at least 32x32 (224x224x3 with the top when not given);
    `input_tensor`: a Keras tensor to build the model on instead; `pooling` (without the top): None, "avg" or
    "max". Expects inputs preprocessed by `kerust.applications.vgg16.preprocess_input` (BGR, zero-centred)."""
    from .. import layers

    who = "VGG16"
    suffix = "" if include_top else "_notop"
    imagenet_utils._check_weights(weights, who, f"vgg16_weights_tf_dim_ordering_tf_kernels{suffix}.h5 from {_BASE}")
    imagenet_utils._check_pooling(pooling, who)
    imagenet_utils._check_classes(classes, who)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input = imagenet_utils._image_input(input_tensor, input_shape, who)
    x = img_input
    for block, (filters, convs) in enumerate(_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)

    def dense_top(x: Any) -> Any:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        return layers.Dense(4096, activation="relu", name="fc2")(x)

    x = imagenet_utils._top(x, include_top, pooling, classes, classifier_activation, weights, (None, None),
                            dense=dense_top)
    return imagenet_utils._finish(img_input, input_tensor, x, name, weights)


def preprocess_input(x: Any, data_format: Optional[str] = None) -> Any:
    """Converts images (values in [0, 255]) from RGB to BGR and zero-centres each channel on ImageNet's mean,
    without scaling: VGG16's preprocessing (`imagenet_utils.preprocess_input` in "caffe" mode)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")

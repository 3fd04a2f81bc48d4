"""``keras.applications.efficientnet``: EfficientNetB0 ... B7 (Tan & Le, 2019) as Keras 3.15 builds them: the
same layers, names, order and weight shapes, so Keras's weights files load into them. The input preprocessing
(Rescaling to [0, 1] and a Normalization layer) is part of the model, so ``preprocess_input`` passes its input
through."""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional

from .._preprocessing_layers import Normalization, Rescaling
from .._vision_layers import ZeroPadding2D
from . import imagenet_utils
from .imagenet_utils import decode_predictions

__all__ = ["EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4",
           "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "preprocess_input", "decode_predictions"]

_BASE = "https://storage.googleapis.com/keras-applications/"

# the seven stages of EfficientNet-B0
_BLOCKS_ARGS: List[Dict[str, Any]] = [
    {"kernel_size": k, "repeats": r, "filters_in": fi, "filters_out": fo, "expand_ratio": e, "id_skip": True,
     "strides": s, "se_ratio": 0.25}
    for k, r, fi, fo, e, s in [(3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2),
                               (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2),
                               (3, 1, 192, 320, 6, 1)]
]

_CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                            "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
_DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                             "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


def _conv_init() -> dict:
    return copy.deepcopy(_CONV_KERNEL_INITIALIZER)


def _block(inputs: Any, activation: str, drop_rate: float, name: str, filters_in: int, filters_out: int,
           kernel_size: int, strides: int, expand_ratio: int, se_ratio: float, id_skip: bool) -> Any:
    """An inverted residual block: 1x1 expansion, depthwise convolution, squeeze-and-excitation, 1x1 projection,
    and (where the shapes allow) dropout of whole samples and the skip connection."""
    from .. import layers

    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer=_conv_init(),
                          name=f"{name}expand_conv")(inputs)
        x = layers.BatchNormalization(axis=3, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs
    if strides == 2:
        x = ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size), name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               depthwise_initializer=_conv_init(), name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = layers.Conv2D(filters_se, 1, padding="same", activation=activation, kernel_initializer=_conv_init(),
                           name=f"{name}se_reduce")(se)
        se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid", kernel_initializer=_conv_init(),
                           name=f"{name}se_expand")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, kernel_initializer=_conv_init(),
                      name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def _efficientnet(width_coefficient: float, depth_coefficient: float, default_size: int, dropout_rate: float,
                  who: str, weights_name: str, name: str, include_top: bool, weights: Any, input_tensor: Any,
                  input_shape: Any, pooling: Optional[str], classes: int, classifier_activation: Any,
                  drop_connect_rate: float = 0.2, depth_divisor: int = 8, activation: str = "swish") -> Any:
    from .. import layers

    imagenet_utils._check_weights(weights, who, f"{name}{'' if include_top else '_notop'}.h5 from {_BASE}")
    imagenet_utils._check_pooling(pooling, who)
    imagenet_utils._check_classes(classes, who)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input = imagenet_utils._image_input(input_tensor, input_shape, who)

    def round_filters(filters: float, divisor: int = depth_divisor) -> int:
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats: int) -> int:
        return int(math.ceil(depth_coefficient * repeats))

    x = Rescaling(1.0 / 255.0)(img_input)
    x = Normalization(axis=3)(x)
    x = ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=_conv_init(), name="stem_conv")(x)
    x = layers.BatchNormalization(axis=3, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(_BLOCKS_ARGS)
    b = 0
    blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
    for i, args in enumerate(blocks_args):
        args["filters_in"] = round_filters(args["filters_in"])
        args["filters_out"] = round_filters(args["filters_out"])
        for j in range(round_repeats(args.pop("repeats"))):
            if j > 0:
                args["strides"] = 1
                args["filters_in"] = args["filters_out"]
            x = _block(x, activation, drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_", **args)
            b += 1

    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False, kernel_initializer=_conv_init(),
                      name="top_conv")(x)
    x = layers.BatchNormalization(axis=3, name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)

    def dropout_top(x: Any) -> Any:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        return x

    x = imagenet_utils._top(x, include_top, pooling, classes, classifier_activation, weights,
                            ("avg_pool", "max_pool"), dense=dropout_top,
                            dense_kwargs={"kernel_initializer": copy.deepcopy(_DENSE_KERNEL_INITIALIZER)})
    return imagenet_utils._finish(img_input, input_tensor, x, name, weights)


_DOC = """

    The model takes pixels in [0, 255]: its first layers rescale and normalise them. `weights`: None (random
    initialization) or the path of a Keras weights file (Keras's ImageNet `.h5` files, or a `.weights.h5` file);
    kerust never downloads, so the default "imagenet" raises a ValueError naming the file to get. `input_shape`:
    `(height, width, channels)`, at least 32x32 (the default size with the top when not given); `input_tensor`: a
    Keras tensor to build the model on instead; `pooling` (without the top): None, "avg" or "max"; `classes` and
    `classifier_activation`: the top's Dense layer."""

# (width, depth, default size, top dropout) of B0 ... B7
_COEFFICIENTS = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
                 "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
                 "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def _variant(key: str) -> Any:
    who = f"EfficientNet{key.upper()}"
    width, depth, size, dropout = _COEFFICIENTS[key]

    def model(include_top: bool = True, weights: Any = "imagenet", input_tensor: Any = None,
              input_shape: Any = None, pooling: Optional[str] = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str = f"efficientnet{key}") -> Any:
        return _efficientnet(width, depth, size, dropout, who, key, name, include_top, weights, input_tensor,
                             input_shape, pooling, classes, classifier_activation)

    model.__name__ = model.__qualname__ = who
    model.__doc__ = f"Instantiates the {who} architecture, as `keras.applications.{who}` ({size}x{size} " \
                    "images by default)." + _DOC
    return model


EfficientNetB0 = _variant("b0")
EfficientNetB1 = _variant("b1")
EfficientNetB2 = _variant("b2")
EfficientNetB3 = _variant("b3")
EfficientNetB4 = _variant("b4")
EfficientNetB5 = _variant("b5")
EfficientNetB6 = _variant("b6")
EfficientNetB7 = _variant("b7")


def preprocess_input(x: Any, data_format: Optional[str] = None) -> Any:
    """Returns `x` unchanged: EfficientNet's preprocessing is part of the model (as in Keras, where this function
    is kept for compatibility)."""
    return x

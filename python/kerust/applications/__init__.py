"""``keras.applications``: ready-made image classification architectures, built as Keras 3.15 builds them (the
same layer names, classes, order and weight shapes), with random weights or weights read from a local Keras
weights file. kerust never downloads: ``weights="imagenet"`` raises a ValueError naming the file Keras would
fetch, which can then be passed as ``weights=path``."""

from . import densenet, efficientnet, imagenet_utils, mobilenet_v2, resnet, resnet50, vgg16
from .densenet import DenseNet121, DenseNet169, DenseNet201
from .efficientnet import (
    EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3, EfficientNetB4, EfficientNetB5,
    EfficientNetB6, EfficientNetB7,
)
from .mobilenet_v2 import MobileNetV2
from .resnet import ResNet50, ResNet101, ResNet152
from .vgg16 import VGG16

__all__ = [
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7",
    "MobileNetV2", "ResNet50", "ResNet101", "ResNet152", "VGG16",
    "densenet", "efficientnet", "imagenet_utils", "mobilenet_v2", "resnet", "resnet50", "vgg16",
]

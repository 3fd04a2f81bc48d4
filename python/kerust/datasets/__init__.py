"""Datasets, as ``keras.datasets``."""

from . import mnist

__all__ = ["mnist"]

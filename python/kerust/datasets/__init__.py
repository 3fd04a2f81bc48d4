"""Datasets, as ``keras.datasets``: Keras's own files read from a path, ``$KERUST_DATA`` or Keras's cache."""

from . import boston_housing, california_housing, cifar10, cifar100, fashion_mnist, imdb, mnist, reuters

__all__ = ["boston_housing", "california_housing", "cifar10", "cifar100", "fashion_mnist", "imdb", "mnist",
           "reuters"]

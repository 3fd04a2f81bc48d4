"""Datasets, as ``keras.datasets``."""

from . import imdb, mnist, reuters

__all__ = ["imdb", "mnist", "reuters"]

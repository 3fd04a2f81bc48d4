"""kerust: the Keras API with a Rust engine. ``import kerust as keras`` and keep the rest of your code."""

from __future__ import annotations

from . import _core, callbacks, datasets, layers, losses, metrics, optimizers, regularizers, saving, utils
from .layers import Input
from .models import Sequential

__version__: str = _core.__version__

from . import models  # noqa: E402

__all__ = [
    "Input",
    "Sequential",
    "callbacks",
    "datasets",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "regularizers",
    "saving",
    "utils",
    "__version__",
]

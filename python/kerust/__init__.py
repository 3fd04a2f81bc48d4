"""kerust: the Keras API with a Rust engine. ``import kerust as keras`` and keep the rest of your code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core, callbacks, config, constraints, layers, losses, metrics, ops, optimizers, random, regularizers
from . import utils
from ._variable import Variable
from .layers import Input
from .models import Model, Sequential

show_config = config.show_config

__version__: str = _core.__version__

from . import models  # noqa: E402

if TYPE_CHECKING:  # type checkers see these modules; at run time they load on first use (``__getattr__`` below)
    from . import activations, applications, datasets, saving
    from . import onnx as onnx, wrappers as wrappers  # (`as`: exported, though not in __all__)

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "activations",
    "applications",
    "callbacks",
    "config",
    "constraints",
    "datasets",
    "layers",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "random",
    "regularizers",
    "saving",
    "show_config",
    "utils",
    "Variable",
    "__version__",
]


_LAZY_MODULES = ("activations", "applications", "datasets", "saving", "onnx", "wrappers")


def __getattr__(name: str) -> object:
    # these load on first use, keeping `import kerust` fast (datasets: gzip, pathlib, urllib; saving: zipfile;
    # onnx and wrappers need optional packages)
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kerust' has no attribute {name!r}")

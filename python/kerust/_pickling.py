"""Models as Python objects, as in Keras 3.15 (``keras.src.saving.keras_saveable.KerasSaveable.__reduce__``): a
model pickles as the bytes of its ``.keras`` file (config, weights, optimizer state), and unpickles by loading
them with ``compile=True, safe_mode=False``. ``pickle``, ``copy.deepcopy``, ``copy.copy``, ``joblib`` and
``multiprocessing`` all go through this one path, so a copy is a new, independent model that trains on exactly
as the original would. ``h5py`` must be installed where a model is pickled and where it is unpickled.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any, Tuple

_NAME = "model.keras"


def model_to_bytes(model: Any) -> bytes:
    """The bytes of ``model.save(...)``: kerust's own ``.keras`` writer, through a private temporary folder."""
    with tempfile.TemporaryDirectory(prefix="kerust-pickle-") as tmp:
        path = os.path.join(tmp, _NAME)
        with warnings.catch_warnings():
            # An unbuilt model pickles as Keras pickles it (a file without weights): no warning for that here.
            warnings.filterwarnings("ignore", message=r"Model '.*' is not built yet")
            model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes) -> Any:
    """The model of ``.keras`` bytes, loaded as Keras unpickles: ``compile=True, safe_mode=False``."""
    from .saving import load_model

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a pickled kerust model holds the bytes of a .keras file, received {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="kerust-unpickle-") as tmp:
        path = os.path.join(tmp, _NAME)
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path, compile=True, safe_mode=False)


def _unpickle_model(data: bytes) -> Any:
    """What a pickled model calls back (the name is part of the pickle format: keep it)."""
    return model_from_bytes(data)


def reduce_model(model: Any) -> Tuple[Any, Tuple[bytes]]:
    """``Model.__reduce__``: ``(_unpickle_model, (the .keras bytes,))``."""
    return _unpickle_model, (model_to_bytes(model),)

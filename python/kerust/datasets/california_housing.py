"""California Housing, as ``keras.datasets.california_housing.load_data(version, path, test_split, seed)``: 8
features per block group, the median house value (dollars) as target, split after Keras's seeded shuffle.

kerust reads Keras's ``california_housing.npz`` (arrays ``x`` and ``y``) and never downloads it: ``path`` is the
file, a folder holding it, or a bare file name (Keras's default) looked up in ``$KERUST_DATA`` (or its
``california_housing/`` subfolder), ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and Keras's cache
``$KERAS_HOME/datasets`` (``~/.keras/datasets``, where Keras's own ``load_data`` stores it).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _files

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def load_data(version: str = "large", path: Any = "california_housing.npz", test_split: float = 0.2,
              seed: int = 113) -> Arrays:
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them. ``version="large"``: all 20,640 samples;
    ``"small"``: the file's first 600. The samples are shuffled by ``np.random.RandomState(seed)``, the first
    ``int(n * (1 - test_split))`` go to training, the rest to testing (x: (n, 8), y: (n,), the file's dtypes).
    ``test_split`` must be in [0, 1)."""
    _files.check_test_split(test_split)
    if version not in ("small", "large"):
        raise ValueError(f"Argument `version` must be one of 'small', 'large'. Received: version={version}")
    file = _files.find_npz(path, "california_housing.npz", "california_housing", "california_housing.load_data")
    x, y = _files.load_xy(file, "california_housing.load_data")
    if version == "small":
        x = x[:600]
        y = y[:600]
    return _files.split(x, y, test_split, seed)

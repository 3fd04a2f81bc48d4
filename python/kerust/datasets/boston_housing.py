"""Boston Housing, as ``keras.datasets.boston_housing.load_data(path, test_split, seed)``: 13 features per
sample, the median home value (k$) as target, split after Keras's seeded shuffle.

kerust reads Keras's ``boston_housing.npz`` (arrays ``x`` and ``y``) and never downloads it: ``path`` is the
file, a folder holding it, or a bare file name (Keras's default) looked up in ``$KERUST_DATA`` (or its
``boston_housing/`` subfolder), ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and Keras's cache
``$KERAS_HOME/datasets`` (``~/.keras/datasets``, where Keras's own ``load_data`` stores it).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _files

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def load_data(path: Any = "boston_housing.npz", test_split: float = 0.2, seed: int = 113) -> Arrays:
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: the samples shuffled by
    ``np.random.RandomState(seed)``, the first ``int(n * (1 - test_split))`` for training, the rest for testing
    (x: (n, 13), y: (n,), the file's dtypes). ``test_split`` must be in [0, 1)."""
    _files.check_test_split(test_split)
    file = _files.find_npz(path, "boston_housing.npz", "boston_housing", "boston_housing.load_data")
    x, y = _files.load_xy(file, "boston_housing.load_data")
    return _files.split(x, y, test_split, seed)

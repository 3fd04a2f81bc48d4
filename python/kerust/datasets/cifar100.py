"""CIFAR-100, as ``keras.datasets.cifar100.load_data(label_mode="fine")``: ``((x_train, y_train), (x_test,
y_test))``, images uint8 channels-last (N, 32, 32, 3), labels (N, 1): the 100 fine classes or the 20 coarse ones.

kerust reads the python-pickle ``train`` and ``test`` files of Keras's ``cifar-100-python.tar.gz`` (in
``cifar-100-python/``), extracted or still in the archive, and never downloads them: from ``path`` (kerust's
extension) or, in ``$KERUST_DATA``, ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and Keras's cache
``$KERAS_HOME/datasets`` (``~/.keras/datasets``), where Keras's own ``load_data`` leaves
``cifar-100-python-target/cifar-100-python/`` and the archive ``cifar-100-python-target_archive``.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _cifar, _files

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
INNER = "cifar-100-python"
TARGET = "cifar-100-python-target"

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def load_data(label_mode: str = "fine", path: Any = None) -> Arrays:
    """Load CIFAR-100 as Keras does. ``label_mode``: ``"fine"`` (labels 0-99) or ``"coarse"`` (0-19). Images
    are transposed to channels-last; labels are reshaped to (N, 1) and, as in Keras, keep the integer dtype NumPy
    gives the files' Python lists (int64), not uint8. ``path`` (kerust's extension): the ``.tar.gz``, the
    extracted folder, or a folder holding one."""
    if label_mode not in ["fine", "coarse"]:
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.')
    caller = "cifar100.load_data"
    raw = _cifar.read_batches(path, INNER, TARGET, "cifar-100-python.tar.gz", ("train", "test"), ORIGIN, caller)
    key = f"{label_mode}_labels"
    x_train, labels_train = _files.load_batch(raw["train"], key, "train")
    x_test, labels_test = _files.load_batch(raw["test"], key, "test")
    y_train = np.reshape(labels_train, (len(labels_train), 1))
    y_test = np.reshape(labels_test, (len(labels_test), 1))
    x_train = x_train.transpose(0, 2, 3, 1)
    x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)

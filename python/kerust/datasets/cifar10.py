"""CIFAR-10, as ``keras.datasets.cifar10.load_data()``: ``((x_train, y_train), (x_test, y_test))``, uint8,
images channels-last (N, 32, 32, 3), labels (N, 1) in 0-9.

kerust reads the python-pickle batches of Keras's ``cifar-10-python.tar.gz`` (``data_batch_1`` ... ``_5`` and
``test_batch`` in ``cifar-10-batches-py/``), extracted or still in the archive, and never downloads them: from
``path`` (kerust's extension) or, in ``$KERUST_DATA``, ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and
Keras's cache ``$KERAS_HOME/datasets`` (``~/.keras/datasets``), where Keras's own ``load_data`` leaves
``cifar-10-batches-py-target/cifar-10-batches-py/`` and the archive ``cifar-10-batches-py-target_archive``.
The batches are unpickled as Keras does, allowing nothing but NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _cifar, _files

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
INNER = "cifar-10-batches-py"
TARGET = "cifar-10-batches-py-target"
BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def load_data(path: Any = None) -> Arrays:
    """Load CIFAR-10 as Keras does: the five training batches in order, then the test batch; images transposed
    from the files' (N, 3, 32, 32) to channels-last (N, 32, 32, 3), labels reshaped to (N, 1), all uint8 (50,000
    and 10,000 in the real files). ``path``: the ``.tar.gz``, the extracted folder, or a folder holding one."""
    caller = "cifar10.load_data"
    raw = _cifar.read_batches(path, INNER, TARGET, "cifar-10-python.tar.gz", BATCHES, ORIGIN, caller)
    xs, ys = [], []
    for name in BATCHES[:5]:
        x, y = _files.load_batch(raw[name], "labels", name)
        xs.append(x)
        ys.append(y)
    # Keras fills uint8 arrays with the training batches (any other dtype is cast to uint8 on assignment).
    x_train = np.concatenate(xs).astype("uint8")
    y_train = np.concatenate([np.asarray(y) for y in ys]).astype("uint8")
    x_test, labels_test = _files.load_batch(raw[BATCHES[5]], "labels", BATCHES[5])
    y_train = np.reshape(y_train, (len(y_train), 1))
    y_test = np.reshape(labels_test, (len(labels_test), 1))
    x_train = x_train.transpose(0, 2, 3, 1)
    x_test = x_test.transpose(0, 2, 3, 1)
    x_test = x_test.astype(x_train.dtype)
    y_test = y_test.astype(y_train.dtype)
    return (x_train, y_train), (x_test, y_test)

"""Fashion-MNIST, as ``keras.datasets.fashion_mnist.load_data()``: ``((x_train, y_train), (x_test, y_test))``,
uint8, images (N, 28, 28), labels (N,) in 0-9.

kerust reads Keras's four gzipped IDX files (``train-labels-idx1-ubyte.gz``, ``train-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``) and never downloads them. They are looked for in
``path`` (a folder, or its ``fashion-mnist/`` subfolder; a kerust extension, Keras's ``load_data`` takes no
argument), then ``$KERUST_DATA``, ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and Keras's cache
``$KERAS_HOME/datasets`` (``~/.keras/datasets``), each as is or with ``fashion-mnist/`` added: Keras's own
``load_data`` stores its download in ``~/.keras/datasets/fashion-mnist``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from . import _files
from .mnist import _read_idx

FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
"""Keras's file names, in the order it reads them."""

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SUBDIR = "fashion-mnist"

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def _folder_with_files(folder: Path) -> Optional[Path]:
    for candidate in (folder, folder / SUBDIR):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    return None


def _read(folder: Path, name: str) -> np.ndarray:
    try:
        with gzip.open(folder / name, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"fashion_mnist.load_data: {folder / name} is not a gzip file ({e})") from None
    return _read_idx(raw, str(folder / name))


def _pair(folder: Path, labels_name: str, images_name: str) -> Tuple[np.ndarray, np.ndarray]:
    y = _read(folder, labels_name)
    x = _read(folder, images_name)
    if y.ndim != 1 or x.shape != (len(y), 28, 28):
        raise ValueError(f"fashion_mnist.load_data: {folder / images_name} holds images of shape {x.shape} for "
                         f"{y.shape} labels in {folder / labels_name}; expected ({len(y)}, 28, 28) images")
    return x, y


def load_data(path: Any = None) -> Arrays:
    """Load Fashion-MNIST as Keras does: ``(x_train, y_train), (x_test, y_test)``, uint8, images (N, 28, 28)
    and labels (N,) (60,000 and 10,000 in the real files). ``path``: a folder with the four files (kerust's
    extension); without it the search folders above are tried. A FileNotFoundError names every folder tried."""
    caller = "fashion_mnist.load_data"
    looked: List[Path] = []
    if path is not None:
        p = _files.check_path(path, caller)
        found = _folder_with_files(p)
        if found is None:
            raise FileNotFoundError(f"{caller}: the four Fashion-MNIST files ({', '.join(FILES)}) are not in "
                                    f"{p} nor in {p / SUBDIR}")
    else:
        found = None
        for d in _files.search_dirs(SUBDIR):
            found = _folder_with_files(d)
            if found is not None:
                break
            looked += [d, d / SUBDIR]
        if found is None:
            raise _files.not_found(caller, "the four Fashion-MNIST files (" + ", ".join(FILES) + ")", looked,
                                   ORIGIN + FILES[0] + " and the three others")
    x_train, y_train = _pair(found, FILES[0], FILES[1])
    x_test, y_test = _pair(found, FILES[2], FILES[3])
    return (x_train, y_train), (x_test, y_test)

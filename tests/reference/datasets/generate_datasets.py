"""Keras 3.15.1's dataset loaders run on the files of make_files.py (seeded), placed where Keras's ``get_file``
finds them under a temporary KERAS_HOME. Run with Keras (JAX backend):

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/datasets/generate_datasets.py

Writes expected.npz (every array Keras returns, key ``<case>.<x_train|y_train|x_test|y_test>``) and
cifar10.json (cifar10's arrays as shape, dtype and SHA-256 of their C-order bytes: Keras's loader needs 50,000
training images, too many to commit). Two things are patched, both in keras.src.utils.file_utils: the SHA-256
check of the local file (these are not the real files) and ``urlretrieve`` (so nothing can be downloaded: a
missing file fails instead). Everything else is Keras's own ``load_data``, ``get_file`` and archive extraction.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
home = tempfile.mkdtemp(prefix="kerust-keras-home-")
os.environ["KERAS_HOME"] = home

import make_files  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.utils import file_utils  # noqa: E402


def _no_download(*args, **kwargs):
    raise RuntimeError(f"the generator must not download: {args[:1]}")


file_utils.validate_file = lambda *args, **kwargs: True
file_utils.urlretrieve = _no_download

import keras  # noqa: E402

datasets = Path(home) / "datasets"
make_files.fashion(datasets / "fashion-mnist")
make_files.write_tar(datasets / "cifar-10-batches-py-target_archive", "cifar-10-batches-py",
                     make_files.cifar10_batches())
make_files.write_tar(datasets / "cifar-100-python-target_archive", "cifar-100-python",
                     make_files.cifar100_batches())
make_files.boston(datasets / "boston_housing.npz")
make_files.california(datasets / "california_housing.npz")

cases = {
    "fashion_mnist": lambda: keras.datasets.fashion_mnist.load_data(),
    "cifar100_fine": lambda: keras.datasets.cifar100.load_data(),
    "cifar100_coarse": lambda: keras.datasets.cifar100.load_data(label_mode="coarse"),
    "boston_default": lambda: keras.datasets.boston_housing.load_data(),
    "boston_split": lambda: keras.datasets.boston_housing.load_data(test_split=0.35, seed=7),
    "boston_no_test": lambda: keras.datasets.boston_housing.load_data(test_split=0.0),
    "california_large": lambda: keras.datasets.california_housing.load_data(),
    "california_small": lambda: keras.datasets.california_housing.load_data(version="small"),
    "california_split": lambda: keras.datasets.california_housing.load_data(version="small", test_split=0.5,
                                                                            seed=1),
}
out = {}
for case, load in cases.items():
    (x_train, y_train), (x_test, y_test) = load()
    for name, arr in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        out[f"{case}.{name}"] = np.asarray(arr)
np.savez_compressed(HERE / "expected.npz", **out)

(x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
digest = {}
for name, arr in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
    arr = np.ascontiguousarray(arr)
    digest[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                    "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
digest["x_test_values"] = np.asarray(x_test).ravel()[:64].tolist()
digest["y_test_values"] = np.asarray(y_test).ravel().tolist()
(HERE / "cifar10.json").write_text(json.dumps(digest, indent=1) + "\n")
shutil.rmtree(home)
print("keras", keras.__version__, "->", sorted(out)[:3], "...", digest["x_train"])

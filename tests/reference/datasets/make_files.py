"""Small files in the exact formats of Keras's dataset downloads, the same bytes every time (seeded): written by
the generator for Keras's loaders and by tests/test_datasets.py for kerust's."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path
from typing import Dict

import numpy as np

FASHION = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
           "t10k-images-idx3-ubyte.gz")
CIFAR10_TRAIN_PER_BATCH = 10000  # Keras's cifar10 loader fills 5 x 10,000 training images: no smaller batches
CIFAR10_TEST = 7


def idx(arr: np.ndarray) -> bytes:
    """An unsigned-byte IDX file."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def fashion(folder: Path, n_train: int = 9, n_test: int = 4, seed: int = 0) -> None:
    """Keras's four gzipped Fashion-MNIST IDX files."""
    rng = np.random.RandomState(seed)
    arrays = [rng.randint(0, 10, n_train), rng.randint(0, 256, (n_train, 28, 28)), rng.randint(0, 10, n_test),
              rng.randint(0, 256, (n_test, 28, 28))]
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(FASHION, arrays):
        (folder / name).write_bytes(gzip.compress(idx(arr), compresslevel=1))


def _batch(data: np.ndarray, labels: Dict[str, list]) -> bytes:
    # The real batches are Python 2 pickles with byte-string keys (read with encoding="bytes"). Protocol 4 keeps
    # bytes as bytes and names only NumPy's _reconstruct/ndarray/dtype, all that Keras's restricted unpickler
    # allows (protocol 2 would name _codecs.encode for bytes, protocol 5 numpy's _frombuffer).
    d = {b"batch_label": b"kerust test batch", b"data": data}
    d.update({k.encode(): v for k, v in labels.items()})
    return pickle.dumps(d, protocol=4)


def cifar10_batches(seed: int = 0, per_batch: int = CIFAR10_TRAIN_PER_BATCH, n_test: int = CIFAR10_TEST
                    ) -> Dict[str, bytes]:
    """``data_batch_1`` .. ``_5`` and ``test_batch`` of ``cifar-10-batches-py``."""
    rng = np.random.RandomState(seed)
    out = {}
    for i in range(1, 6):
        data = rng.randint(0, 256, (per_batch, 3072)).astype(np.uint8)
        out[f"data_batch_{i}"] = _batch(data, {"labels": [int(v) for v in rng.randint(0, 10, per_batch)]})
    data = rng.randint(0, 256, (n_test, 3072)).astype(np.uint8)
    out["test_batch"] = _batch(data, {"labels": [int(v) for v in rng.randint(0, 10, n_test)]})
    return out


def cifar100_batches(seed: int = 0, n_train: int = 6, n_test: int = 3) -> Dict[str, bytes]:
    """``train`` and ``test`` of ``cifar-100-python``, with fine and coarse labels."""
    rng = np.random.RandomState(seed)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        out[name] = _batch(data, {"fine_labels": [int(v) for v in rng.randint(0, 100, n)],
                                  "coarse_labels": [int(v) for v in rng.randint(0, 20, n)]})
    return out


def write_folder(folder: Path, files: Dict[str, bytes]) -> None:
    """The batches as an extracted folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)


def write_tar(path: Path, inner: str, files: Dict[str, bytes]) -> None:
    """The batches in a .tar.gz under ``inner/``, as Keras downloads them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"{inner}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def boston(path: Path, n: int = 23, seed: int = 0) -> None:
    """A ``boston_housing.npz``: ``x`` (n, 13) and ``y`` (n,), float64."""
    rng = np.random.RandomState(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=rng.uniform(0, 100, (n, 13)), y=rng.uniform(5, 50, n))


def california(path: Path, n: int = 650, seed: int = 0) -> None:
    """A ``california_housing.npz``: ``x`` (n, 8) float32 and ``y`` (n,) float32; more than the 600 samples of
    ``version="small"``."""
    rng = np.random.RandomState(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=rng.uniform(0, 100, (n, 8)).astype(np.float32),
             y=rng.uniform(2e4, 5e5, n).astype(np.float32))

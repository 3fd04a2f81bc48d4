"""Finding Keras's dataset files where Keras's ``get_file`` keeps them (never downloading), and reading the CIFAR
python-pickle batches without running pickled code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, List, Sequence, Tuple

import numpy as np

from . import _sequences as _seq


class _BatchUnpickler(pickle.Unpickler):
    """Keras's ``RestrictedUnpickler``: only NumPy's array constructors may be named by the file."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _seq._ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to deserialize `{module}.{name}` while loading a Keras dataset. The file may be corrupted "
            "or malicious.")


def search_dirs(dataset: str) -> List[Path]:
    """``$KERUST_DATA`` (and its ``<dataset>/`` subfolder), ``$KERUST_HOME/datasets``, ``$KERAS_HOME/datasets``."""
    return _seq._search_dirs(dataset)


def not_found(caller: str, what: str, looked: Sequence[Path], origin: str) -> FileNotFoundError:
    """The error for files found nowhere: every place looked in, and where Keras gets them."""
    where = ", ".join(str(p) for p in looked)
    return FileNotFoundError(
        f"{caller}: {what} not found (looked in {where}). kerust never downloads datasets: get Keras's file "
        f"({origin}, e.g. by running Keras's own load_data once, which stores it in ~/.keras/datasets) and pass "
        "its path, or put it in one of those folders.")


def check_path(path: Any, caller: str) -> Path:
    """``path`` as a Path, or a TypeError naming it."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{caller}: `path` must be a file name or path, received path={path!r}")
    return Path(path)


def check_test_split(test_split: Any) -> None:
    """Keras's check and wording: ``0 <= test_split < 1``."""
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float, np.integer, np.floating)):
        raise TypeError(f"`test_split` must be a number in [0, 1), received test_split={test_split!r}")
    if not (0 <= test_split < 1):
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 and 1 (exclusive of 1).")


def load_batch(raw: bytes, label_key: str, where: str) -> Tuple[np.ndarray, Any]:
    """Keras's ``cifar.load_batch``: the ``data`` array reshaped to (n, 3, 32, 32) and the ``label_key`` list."""
    import io

    try:
        d = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{where}: not a CIFAR python batch ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{where}: not a CIFAR python batch (holds a {type(d).__name__}, not a dict)")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(f"{where}: no {key!r} entry (the batch holds {sorted(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: 'data' should be an array of shape (n, 3072), received "
                         f"{getattr(data, 'shape', type(data).__name__)}")
    labels = d[label_key]
    if len(labels) != data.shape[0]:
        raise ValueError(f"{where}: {data.shape[0]} images but {len(labels)} labels in {label_key!r}")
    return data.reshape(data.shape[0], 3, 32, 32), labels


def split(x: np.ndarray, y: np.ndarray, test_split: float, seed: Any) -> Tuple[Tuple[np.ndarray, np.ndarray],
                                                                             Tuple[np.ndarray, np.ndarray]]:
    """Keras's housing split: one ``RandomState(seed)`` shuffle, the first ``int(n * (1 - test_split))`` train."""
    rng = np.random.RandomState(seed)
    indices = np.arange(len(x))
    rng.shuffle(indices)
    x = x[indices]
    y = y[indices]
    n = int(len(x) * (1 - test_split))
    return (np.array(x[:n]), np.array(y[:n])), (np.array(x[n:]), np.array(y[n:]))


def find_npz(path: Any, default: str, dataset: str, caller: str) -> Path:
    """The housing ``.npz``: ``path`` itself, a folder holding ``default``, or a bare name in the search folders."""
    check_path(path, caller)
    return _seq.find_file(path, default, dataset, caller)


def load_xy(path: Path, caller: str) -> Tuple[np.ndarray, np.ndarray]:
    """The ``x`` and ``y`` arrays of a Keras housing ``.npz`` (read with pickling disabled, as Keras does)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise ValueError(f"{caller}: {path} has no array {missing[0]!r} (it holds {sorted(f.files)})")
            x, y = f["x"], f["y"]
    except (OSError, EOFError) as e:
        raise ValueError(f"{caller}: {path} is not an .npz file ({e})") from None
    if len(x) != len(y):
        raise ValueError(f"{caller}: {path} holds {len(x)} samples in 'x' but {len(y)} in 'y'")
    return x, y

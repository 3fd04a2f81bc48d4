"""MNIST, as ``keras.datasets.mnist.load_data()``: ``((x_train, y_train), (x_test, y_test))`` in uint8.

Where the files come from, first found wins:
1. ``path``: a folder with the four IDX ``.gz`` files, or Keras's ``mnist.npz``;
2. ``$KERUST_DATA`` (the folder itself, or its ``mnist/`` subfolder);
3. the cache folder ``~/.kerust/datasets/mnist`` (``$KERUST_HOME`` replaces ``~/.kerust``);
4. the ``data/mnist`` folder of a kerust source checkout;
5. a download from the public mirrors into the cache, each file checked against its known MD5.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

FILES = {
    "train-images.idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels.idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images.idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels.idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
"""File name -> MD5 of its uncompressed content."""

# Names used by the mirrors (the classic dash-less spelling).
_REMOTE_NAMES = {name: name.replace(".idx", "-idx") for name in FILES}

MIRRORS: Sequence[str] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def _read_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{name}: not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"{name}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count:
        raise ValueError(f"{name}: header says {dims} ({count} bytes) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find_idx(folder: Path) -> Optional[Path]:
    for candidate in (folder, folder / "mnist"):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    return None


def _load_idx_folder(folder: Path) -> Arrays:
    arrays = []
    for name in FILES:
        with gzip.open(folder / name, "rb") as f:
            arrays.append(_read_idx(f.read(), name))
    x_train, y_train, x_test, y_test = arrays
    return (x_train, y_train), (x_test, y_test)


def _load_npz(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def cache_dir() -> Path:
    """The download folder: `$KERUST_HOME/datasets/mnist`, by default `~/.kerust/datasets/mnist`."""
    home = os.environ.get("KERUST_HOME")
    base = Path(home) if home else Path.home() / ".kerust"
    return base / "datasets" / "mnist"


def _checkout_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "data" / "mnist"


def download(folder: Path, mirrors: Sequence[str] = MIRRORS) -> Path:
    """Fetch the four files into ``folder``, verifying each MD5; a file is renamed in only once verified."""
    import hashlib  # imported here: only a download needs them (keeps `import kerust` fast)
    import tempfile
    import urllib.request

    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.items():
        target = folder / name
        if target.is_file():
            continue
        errors = []
        for mirror in mirrors:
            url = mirror + _REMOTE_NAMES[name]
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    payload = response.read()
            except OSError as e:
                errors.append(f"{url}: {e}")
                continue
            try:
                digest = hashlib.md5(gzip.decompress(payload)).hexdigest()
            except OSError as e:
                errors.append(f"{url}: not gzip data ({e})")
                continue
            if digest != md5:
                errors.append(f"{url}: checksum {digest} != expected {md5}")
                continue
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(tmp, target)
            break
        else:
            raise OSError(f"could not download {name}: " + "; ".join(errors))
    return folder


def load_data(path: Union[str, os.PathLike, None] = None) -> Arrays:
    """Load MNIST as Keras does: ``(x_train, y_train), (x_test, y_test)``, uint8, images (N, 28, 28)."""
    if path is not None:
        p = Path(path)
        if p.is_file() and p.suffix == ".npz":
            return _load_npz(p)
        if p.is_dir():
            found = _find_idx(p)
            if found is not None:
                return _load_idx_folder(found)
            if (p / "mnist.npz").is_file():
                return _load_npz(p / "mnist.npz")
        # Keras's default argument is a bare file name ("mnist.npz"): fall through to the other places.
        if p.is_absolute() or p.parent != Path("."):
            raise FileNotFoundError(f"no MNIST files (four IDX .gz files or mnist.npz) at {p}")
    env = os.environ.get("KERUST_DATA")
    candidates = [Path(env)] if env else []
    candidates += [cache_dir(), _checkout_dir()]
    for folder in candidates:
        found = _find_idx(folder)
        if found is not None:
            return _load_idx_folder(found)
    return _load_idx_folder(download(cache_dir()))

"""What ``imdb`` and ``reuters`` share: finding Keras's files (never downloading), reading their ragged ``.npz``
without running pickled code, and Keras's index arithmetic (``num_words``, ``skip_top``, ``oov_char``, ...)."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]", None]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

# The only globals an object array of lists of ints needs to be rebuilt (NumPy 1 and 2 spellings).
_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
})


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file (only NumPy arrays)")


def _read_member(raw: bytes, where: str) -> np.ndarray:
    buf = io.BytesIO(raw)
    try:
        return np.lib.format.read_array(buf, allow_pickle=False)
    except ValueError:
        pass
    # An object array: skip the header, then unpickle with nothing but NumPy's array constructors.
    buf.seek(0)
    try:
        version = np.lib.format.read_magic(buf)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(buf)
        elif version[0] in (2, 3):
            np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        out = _ArrayOnlyUnpickler(buf).load()
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: not a NumPy array ({e})") from None
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{where}: not a NumPy array (got {type(out).__name__})")
    return out


def load_npz(path: Path, members: Sequence[str]) -> Dict[str, np.ndarray]:
    """The named arrays of a Keras dataset ``.npz`` (object arrays included, read without arbitrary unpickling)."""
    out: Dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for m in members:
                if m + ".npy" not in names:
                    raise ValueError(f"{path}: no array {m!r} (the file holds {sorted(names)})")
                out[m] = _read_member(archive.read(m + ".npy"), f"{path}: {m}")
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not an .npz file ({e})") from None
    return out


def _search_dirs(dataset: str) -> List[Path]:
    dirs: List[Path] = []
    env = os.environ.get("KERUST_DATA")
    if env:
        dirs += [Path(env), Path(env) / dataset]
    kerust_home = os.environ.get("KERUST_HOME")
    dirs.append((Path(kerust_home) if kerust_home else Path.home() / ".kerust") / "datasets")
    keras_home = os.environ.get("KERAS_HOME")
    dirs.append((Path(keras_home) if keras_home else Path.home() / ".keras") / "datasets")
    return dirs


def find_file(path: PathLike, default: str, dataset: str, caller: str) -> Path:
    """Where ``path`` is: a file; a folder holding ``default``; or a bare file name looked up in ``$KERUST_DATA``
    (or its ``<dataset>/`` subfolder), ``$KERUST_HOME/datasets`` (``~/.kerust/datasets``) and Keras's cache
    ``$KERAS_HOME/datasets`` (``~/.keras/datasets``). Nothing is ever downloaded."""
    if path is None:
        path = default
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{caller}: `path` must be a file name or path, received path={path!r}")
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        if (p / default).is_file():
            return p / default
        raise FileNotFoundError(f"{caller}: no {default} in the folder {p}")
    looked: List[Path] = []
    if not p.is_absolute() and p.parent == Path("."):
        for d in _search_dirs(dataset):
            if (d / p).is_file():
                return d / p
            looked.append(d)
    where = ", ".join(str(d) for d in looked) if looked else str(p)
    raise FileNotFoundError(
        f"{caller}: {p.name} not found (looked in {where}). kerust never downloads datasets: get Keras's file "
        f"({ORIGIN}{default}, e.g. by running Keras's own load_data once, which stores it in ~/.keras/datasets) "
        "and pass its path, or put it in one of those folders."
    )


def check_int(value: Any, name: str, caller: str, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        kind = "an integer or None" if allow_none else "an integer"
        raise TypeError(f"{caller}: `{name}` must be {kind}, received {name}={value!r}")


def offset(seqs: Any, start_char: Optional[int], index_from: int) -> List[List[int]]:
    """Keras's shift: every word index + ``index_from``, with ``start_char`` in front when it is not None."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in seqs]
    if index_from:
        return [[w + index_from for w in x] for x in seqs]
    return [list(x) for x in seqs]


def drop_long(maxlen: int, seqs: List[List[int]], labels: Any) -> Tuple[List[List[int]], List[Any]]:
    """Keras keeps the sequences strictly shorter than ``maxlen`` (start character included); the rest go."""
    kept_x, kept_y = [], []
    for x, y in zip(seqs, labels):
        if len(x) < maxlen:
            kept_x.append(x)
            kept_y.append(y)
    return kept_x, kept_y


def restrict(xs: List[List[int]], num_words: Optional[int], skip_top: int, oov_char: Optional[int]) -> List[List[int]]:
    """Keras's vocabulary cut: indices outside ``[skip_top, num_words)`` become ``oov_char`` (or are dropped when
    it is None). Without ``num_words`` the bound is the largest index present, which Keras itself excludes."""
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def read_word_index(path: Path, caller: str) -> Dict[str, int]:
    import json  # only get_word_index needs it

    with open(path, encoding="utf-8") as f:
        try:
            index = json.load(f)
        except ValueError as e:
            raise ValueError(f"{caller}: {path} is not JSON ({e})") from None
    if not isinstance(index, dict):
        raise ValueError(f"{caller}: {path} should hold a JSON object (word -> index), found {type(index).__name__}")
    return index

"""What ``cifar10`` and ``cifar100`` share: finding Keras's CIFAR batches, extracted or in their ``.tar.gz``."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

from . import _files


def _tar_members(archive: Path, inner: str, names: Sequence[str], caller: str) -> Dict[str, bytes]:
    out: Dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name in names:
                try:
                    member = tar.getmember(f"{inner}/{name}")
                except KeyError:
                    raise ValueError(f"{caller}: {archive} has no member {inner}/{name}") from None
                f = tar.extractfile(member)
                if f is None:
                    raise ValueError(f"{caller}: {archive}: {inner}/{name} is not a regular file")
                out[name] = f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{caller}: {archive} is not a readable .tar.gz ({e})") from None
    return out


def _from_folder(folder: Path, inner: str, names: Sequence[str]) -> Any:
    for candidate in (folder, folder / inner):
        if all((candidate / n).is_file() for n in names):
            return {n: (candidate / n).read_bytes() for n in names}
    return None


def read_batches(path: Any, inner: str, target: str, tar_name: str, names: Sequence[str], origin: str,
                 caller: str) -> Dict[str, bytes]:
    """The raw batch files ``names`` of the ``inner`` folder (``cifar-10-batches-py`` / ``cifar-100-python``).

    ``path`` (kerust's extension) is the ``.tar.gz`` itself, the extracted ``inner`` folder, or a folder holding
    either. Without it the search folders are tried, each for Keras's own layout (``<target>/<inner>/``, which
    Keras's ``get_file(..., extract=True)`` makes, and ``<target>_archive``, the archive it downloads), the plain
    ``<inner>/`` folder and the ``tar_name`` archive."""
    if path is not None:
        p = _files.check_path(path, caller)
        if p.is_file():
            return _tar_members(p, inner, names, caller)
        if p.is_dir():
            found = _from_folder(p, inner, names) or _from_folder(p / target, inner, names)
            if found is not None:
                return found
            for archive in (p / tar_name, p / f"{target}_archive"):
                if archive.is_file():
                    return _tar_members(archive, inner, names, caller)
        raise FileNotFoundError(f"{caller}: no CIFAR batches ({', '.join(names)}) at {p}: expected the "
                                f"{tar_name} archive, its extracted {inner}/ folder, or a folder holding one")
    looked: List[Path] = []
    for d in _files.search_dirs(target):
        for folder in (d / target / inner, d / inner):
            found = _from_folder(folder, inner, names)
            if found is not None:
                return found
            looked.append(folder)
        for archive in (d / f"{target}_archive", d / tar_name):
            if archive.is_file():
                return _tar_members(archive, inner, names, caller)
            looked.append(archive)
    raise _files.not_found(caller, f"the CIFAR batches ({', '.join(names)})", looked, origin)

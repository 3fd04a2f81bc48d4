"""Atomic file writes, for every module that writes a user's files (saving, callbacks): a temporary file beside
the target, fsynced, renamed over it. Imports nothing of kerust, so any module can use it without an import cycle."""

from __future__ import annotations

import os
import secrets
def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, fsync it, rename it over ``path``; never leave it behind."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise ValueError(f"Invalid filepath {path!r}: it names a folder, not a file")
    fd = -1
    tmp = ""
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            # mode 0o666 less the umask, as a plain open() would give the final file
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    if fd < 0:
        raise OSError(f"Could not create a temporary file in {folder!r} to write {base!r}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not every platform can open a folder)
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)

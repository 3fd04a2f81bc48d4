"""TextVectorization's asset file is written atomically.

``TextVectorization.save_assets(dir)`` writes Keras's ``vocabulary.txt`` (the vocabulary, special tokens first,
one token per line joined by ``\\n``) through ``kerust._files.atomic_write``: a temporary file beside it, fsynced,
renamed over it. A save that fails leaves the previous ``vocabulary.txt`` byte for byte and no temporary file
(a plain ``open(..., "w")`` would have truncated it first, then left a partial file):

- a full disk, made in a child process with ``RLIMIT_FSIZE`` set after the previous file exists and below the
  size of the new one (the write past it fails with ``EFBIG``; CPython ignores ``SIGXFSZ``, checked in the child);
- ``KeyboardInterrupt`` and ``OSError`` raised by ``os.fsync`` after the temporary file is written, in process.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

import kerust as keras

OLD = ["apple", "banana"]
NEW = [f"token{i:04d}" for i in range(300)]  # about 3 KB: well past the child's limit


def _layer(tokens: list) -> keras.layers.TextVectorization:
    layer = keras.layers.TextVectorization(max_tokens=1000)
    layer.adapt([" ".join(tokens)])
    return layer


def _listing(folder) -> list:
    return sorted(os.listdir(folder))


def test_save_and_load_assets_round_trip(tmp_path) -> None:
    layer = _layer(NEW)
    layer.save_assets(str(tmp_path))
    assert _listing(tmp_path) == ["vocabulary.txt"]
    text = (tmp_path / "vocabulary.txt").read_bytes().decode("utf-8")
    assert text == "\n".join(layer.get_vocabulary(include_special_tokens=True))
    other = keras.layers.TextVectorization(max_tokens=1000)
    other.load_assets(str(tmp_path))
    assert other.get_vocabulary() == layer.get_vocabulary()


def test_a_full_disk_keeps_the_previous_vocabulary(tmp_path) -> None:
    old = _layer(OLD)
    old.save_assets(str(tmp_path))
    before = (tmp_path / "vocabulary.txt").read_bytes()
    limit = 512
    assert len(before) < limit < len("\n".join(_layer(NEW).get_vocabulary()).encode())
    script = textwrap.dedent("""
        import json, os, resource, signal, sys
        import kerust as keras

        folder, limit, tokens = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
        layer = keras.layers.TextVectorization(max_tokens=1000)
        layer.adapt([" ".join(tokens)])
        report = {"sigxfsz_ignored": signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN}
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            layer.save_assets(folder)
            report["error"] = None
        except OSError as exc:
            report["error"] = exc.errno
        # the fault is real: a plain write past the limit fails too
        try:
            with open(os.path.join(folder, "probe.txt"), "wb") as f:
                f.write(b"x" * (2 * limit))
            report["probe"] = None
        except OSError as exc:
            report["probe"] = exc.errno
        os.unlink(os.path.join(folder, "probe.txt"))
        print(json.dumps(report))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(limit), json.dumps(NEW)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["sigxfsz_ignored"]
    assert report["probe"] == errno.EFBIG
    assert report["error"] == errno.EFBIG
    assert (tmp_path / "vocabulary.txt").read_bytes() == before
    assert _listing(tmp_path) == ["vocabulary.txt"]
    again = keras.layers.TextVectorization(max_tokens=1000)
    again.load_assets(str(tmp_path))
    assert again.get_vocabulary() == old.get_vocabulary()


@pytest.mark.parametrize("fault", [KeyboardInterrupt, OSError])
def test_a_write_interrupted_before_the_rename_keeps_the_previous_vocabulary(fault, tmp_path, monkeypatch) -> None:
    _layer(OLD).save_assets(str(tmp_path))
    before = (tmp_path / "vocabulary.txt").read_bytes()
    new = _layer(NEW)
    seen: list = []

    def interrupted(fd: int) -> None:
        seen.append(_listing(tmp_path))
        raise fault(errno.EIO, "simulated") if fault is OSError else fault()

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(fault):
        new.save_assets(str(tmp_path))
    monkeypatch.undo()
    # the new text went to a temporary file beside the old one, which was removed
    assert len(seen[0]) == 2 and "vocabulary.txt" in seen[0]
    assert (tmp_path / "vocabulary.txt").read_bytes() == before
    assert _listing(tmp_path) == ["vocabulary.txt"]
    new.save_assets(str(tmp_path))  # and a save that does not fail replaces it
    assert (tmp_path / "vocabulary.txt").read_bytes().decode().split("\n") == new.get_vocabulary()

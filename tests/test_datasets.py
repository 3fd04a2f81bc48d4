"""kerust.datasets.mnist: the real files of the checkout, Keras's mnist.npz, the IDX parser, $KERUST_DATA and
the verified download (from file:// mirrors made here, never the network)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from kerust.datasets import mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NAMES = ["train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz", "t10k-images.idx3-ubyte.gz",
         "t10k-labels.idx1-ubyte.gz"]


def _idx(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def _fake(seed=0, n_train=12, n_test=5):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n_train, dtype=np.uint8),
        rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n_test, dtype=np.uint8),
    )


def _write_idx_folder(folder: Path, arrays, names=NAMES) -> dict:
    """Write the four gzip IDX files; returns {name: md5 of the uncompressed content}."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, arr in zip(names, arrays):
        raw = _idx(arr)
        (folder / name).write_bytes(gzip.compress(raw))
        sums[name] = hashlib.md5(raw).hexdigest()
    return sums


def _assert_same(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $KERUST_DATA, and a cache folder of our own (empty)."""
    monkeypatch.delenv("KERUST_DATA", raising=False)
    monkeypatch.setenv("KERUST_HOME", str(tmp_path / "home"))
    return tmp_path


def test_real_mnist_from_the_checkout(isolated):
    assert mnist.cache_dir() == isolated / "home" / "datasets" / "mnist"
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS
    assert x_train.max() == 255 and x_train.min() == 0
    assert 30 < x_train.mean() < 36  # MNIST's mean pixel is about 33.3
    # nothing was downloaded into the cache
    assert not (isolated / "home").exists()


def test_load_data_from_a_keras_npz(isolated):
    arrays = _fake(1)
    folder = isolated / "npz"
    folder.mkdir()
    np.savez(folder / "mnist.npz", x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3])
    _assert_same(mnist.load_data(path=folder), arrays)
    _assert_same(mnist.load_data(path=str(folder / "mnist.npz")), arrays)


def test_load_data_from_an_idx_folder(isolated):
    arrays = _fake(2)
    _write_idx_folder(isolated / "idx", arrays)
    _assert_same(mnist.load_data(path=isolated / "idx"), arrays)
    # or its mnist/ subfolder
    _write_idx_folder(isolated / "outer" / "mnist", arrays)
    _assert_same(mnist.load_data(path=isolated / "outer"), arrays)


def test_missing_path_raises(isolated):
    with pytest.raises(FileNotFoundError):
        mnist.load_data(path=isolated / "nothing-here")


@pytest.mark.parametrize("damage", ["truncated", "extra", "header", "magic"])
def test_idx_parser_rejects_bad_files(damage, isolated):
    arrays = _fake(3)
    folder = isolated / "bad"
    _write_idx_folder(folder, arrays)
    raw = _idx(arrays[0])
    bad = {"truncated": raw[:-100], "extra": raw + b"\0", "header": raw[:10], "magic": b"\x01" + raw[1:]}[damage]
    (folder / NAMES[0]).write_bytes(gzip.compress(bad))
    with pytest.raises(ValueError, match=NAMES[0]):
        mnist.load_data(path=folder)


def test_kerust_data_env_is_honoured(isolated, monkeypatch):
    arrays = _fake(4)
    _write_idx_folder(isolated / "env", arrays)
    monkeypatch.setenv("KERUST_DATA", str(isolated / "env"))
    _assert_same(mnist.load_data(), arrays)
    # the folder's mnist/ subfolder is found too
    other = _fake(5)
    _write_idx_folder(isolated / "env2" / "mnist", other)
    monkeypatch.setenv("KERUST_DATA", str(isolated / "env2"))
    _assert_same(mnist.load_data(), other)
    # an explicit path wins over the environment
    _write_idx_folder(isolated / "explicit", arrays)
    _assert_same(mnist.load_data(path=isolated / "explicit"), arrays)


def _mirror(folder: Path, arrays, monkeypatch) -> str:
    """A file:// mirror with the remote (dash) names, and FILES patched to these files' checksums."""
    remote = [name.replace(".idx", "-idx") for name in NAMES]
    sums = _write_idx_folder(folder, arrays, names=remote)
    monkeypatch.setattr(mnist, "FILES", {name: sums[r] for name, r in zip(NAMES, remote)})
    return folder.as_uri() + "/"


def test_download_from_a_mirror(isolated, monkeypatch):
    arrays = _fake(6)
    url = _mirror(isolated / "mirror", arrays, monkeypatch)
    target = isolated / "cache"
    out = mnist.download(target, mirrors=["file:///nonexistent-kerust-mirror/", url])
    assert Path(out) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(NAMES)
    _assert_same(mnist.load_data(path=target), arrays)
    # files already there are not fetched again
    (isolated / "mirror" / "train-images-idx3-ubyte.gz").unlink()
    mnist.download(target, mirrors=[url])


def test_download_checksum_mismatch_leaves_nothing(isolated, monkeypatch):
    arrays = _fake(7)
    url = _mirror(isolated / "mirror", arrays, monkeypatch)
    files = dict(mnist.FILES)
    files[NAMES[0]] = "0" * 32
    monkeypatch.setattr(mnist, "FILES", files)
    target = isolated / "cache"
    with pytest.raises(OSError) as info:
        mnist.download(target, mirrors=[url])
    assert NAMES[0] in str(info.value) and "0" * 32 in str(info.value)
    assert not (target / NAMES[0]).exists()
    assert not any(NAMES[0] in p.name for p in target.iterdir())  # no temporary file either


def test_download_not_gzip_is_an_os_error(isolated, monkeypatch):
    url = _mirror(isolated / "mirror", _fake(8), monkeypatch)
    (isolated / "mirror" / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    target = isolated / "cache"
    with pytest.raises(OSError, match="gzip"):
        mnist.download(target, mirrors=[url])
    assert not any(NAMES[0] in p.name for p in target.iterdir())


def test_load_data_downloads_into_the_cache_when_nothing_is_found(isolated, monkeypatch):
    arrays = _fake(9)
    url = _mirror(isolated / "mirror", arrays, monkeypatch)
    empty = isolated / "no-checkout"
    empty.mkdir()
    monkeypatch.setattr(mnist, "_checkout_dir", lambda: empty)
    real_download = mnist.download
    calls = []

    def download(folder, mirrors=None):
        calls.append(folder)
        return real_download(folder, mirrors=[url])

    monkeypatch.setattr(mnist, "download", download)
    _assert_same(mnist.load_data(), arrays)
    assert calls == [mnist.cache_dir()]
    assert sorted(p.name for p in mnist.cache_dir().iterdir()) == sorted(NAMES)
    # the second time the cache is used
    _assert_same(mnist.load_data(), arrays)
    assert len(calls) == 1

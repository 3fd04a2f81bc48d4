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


# ---- fashion_mnist, cifar10, cifar100, boston_housing, california_housing --------------------------------------
# The files are written by tests/reference/datasets/make_files.py (seeded, the same bytes as the generator wrote
# for Keras 3.15.1's own loaders); the expected arrays are what Keras returned for them (generate_datasets.py).

import json  # noqa: E402
import sys  # noqa: E402

from kerust.datasets import boston_housing, california_housing, cifar10, cifar100, fashion_mnist  # noqa: E402

REF = Path(__file__).parent / "reference" / "datasets"
sys.path.insert(0, str(REF))
import make_files  # noqa: E402

sys.path.remove(str(REF))


@pytest.fixture(scope="module")
def expected():
    with np.load(REF / "expected.npz") as f:
        return {k: f[k] for k in f.files}


def _same_as_keras(loaded, expected, case):
    (x_train, y_train), (x_test, y_test) = loaded
    for name, got in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        want = expected[f"{case}.{name}"]
        assert got.dtype == want.dtype, (case, name, got.dtype, want.dtype)
        assert got.shape == want.shape, (case, name)
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def keras_home(isolated, monkeypatch):
    """A Keras cache folder (``$KERAS_HOME/datasets``) of our own."""
    home = isolated / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "datasets"


def test_fashion_mnist_from_keras_cache_matches_keras(keras_home, expected):
    make_files.fashion(keras_home / "fashion-mnist")
    out = fashion_mnist.load_data()
    _same_as_keras(out, expected, "fashion_mnist")
    assert out[0][0].shape == (9, 28, 28) and out[0][0].dtype == np.uint8 and out[0][1].shape == (9,)


def test_fashion_mnist_path_and_env(isolated, monkeypatch, expected):
    make_files.fashion(isolated / "a")
    _same_as_keras(fashion_mnist.load_data(path=isolated / "a"), expected, "fashion_mnist")
    make_files.fashion(isolated / "b" / "fashion-mnist")
    monkeypatch.setenv("KERUST_DATA", str(isolated / "b"))
    _same_as_keras(fashion_mnist.load_data(), expected, "fashion_mnist")


def test_fashion_mnist_missing_and_bad_files(isolated, keras_home):
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist.load_data()
    msg = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in msg and str(keras_home / "fashion-mnist") in msg
    assert str(isolated / "home" / "datasets") in msg
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fashion_mnist.load_data(path=isolated / "nowhere")
    folder = isolated / "bad"
    make_files.fashion(folder)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(make_files.idx(np.zeros((5, 28, 28)))))
    with pytest.raises(ValueError, match=r"shape \(5, 28, 28\) for \(4,\) labels"):
        fashion_mnist.load_data(path=folder)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="gzip"):
        fashion_mnist.load_data(path=folder)
    with pytest.raises(TypeError, match="path"):
        fashion_mnist.load_data(path=3)


@pytest.fixture(scope="module")
def cifar10_files():
    return make_files.cifar10_batches()


def _digest(arr):
    arr = np.ascontiguousarray(arr)
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}


def test_cifar10_keras_layout_matches_keras(keras_home, cifar10_files):
    want = json.loads((REF / "cifar10.json").read_text())
    # Keras's own layout after its download: the extracted folder inside "<target>/"
    make_files.write_folder(keras_home / "cifar-10-batches-py-target" / "cifar-10-batches-py", cifar10_files)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    for name, arr in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        assert _digest(arr) == want[name], name
    assert x_test.ravel()[:64].tolist() == want["x_test_values"] and y_test.ravel().tolist() == want["y_test_values"]
    assert x_train.shape == (50000, 32, 32, 3) and y_train.shape == (50000, 1) and y_test.dtype == np.uint8
    # channels-last: pixel (row, col) of channel c is data[c * 1024 + row * 32 + col] of the file's row
    assert x_test[0, 1, 2, 1] == pickle_data(cifar10_files["test_batch"])[0, 1024 + 32 + 2]


def pickle_data(raw):
    import pickle

    return pickle.loads(raw)[b"data"]


def test_cifar10_small_batches_tar_and_path(isolated, monkeypatch):
    # kerust (unlike Keras, which fills exactly 5 x 10,000) takes training batches of any size
    files = make_files.cifar10_batches(seed=3, per_batch=4, n_test=2)
    archive = isolated / "c10" / "cifar-10-python.tar.gz"
    make_files.write_tar(archive, "cifar-10-batches-py", files)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(path=archive)
    raw = np.concatenate([pickle_data(files[f"data_batch_{i}"]) for i in range(1, 6)])
    np.testing.assert_array_equal(x_train, raw.reshape(20, 3, 32, 32).transpose(0, 2, 3, 1))
    assert y_train.shape == (20, 1) and y_train.dtype == np.uint8 and x_test.shape == (2, 32, 32, 3)
    # the folder holding the archive, and $KERUST_DATA
    np.testing.assert_array_equal(cifar10.load_data(path=isolated / "c10")[0][0], x_train)
    monkeypatch.setenv("KERUST_DATA", str(isolated / "c10"))
    np.testing.assert_array_equal(cifar10.load_data()[1][1], y_test)


def test_cifar10_missing_and_hostile_files(isolated, keras_home):
    with pytest.raises(FileNotFoundError) as info:
        cifar10.load_data()
    assert str(keras_home / "cifar-10-batches-py-target" / "cifar-10-batches-py") in str(info.value)
    assert str(keras_home / "cifar-10-batches-py-target_archive") in str(info.value)
    folder = isolated / "evil" / "cifar-10-batches-py"
    files = make_files.cifar10_batches(seed=1, per_batch=2, n_test=1)
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    files["test_batch"] = pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=4)
    make_files.write_folder(folder, files)
    with pytest.raises(ValueError, match="Refusing to deserialize `builtins.print`"):
        cifar10.load_data(path=folder)
    files["test_batch"] = pickle.dumps({b"data": np.zeros((1, 10), np.uint8), b"labels": [0]}, protocol=4)
    make_files.write_folder(folder, files)
    with pytest.raises(ValueError, match=r"\(n, 3072\)"):
        cifar10.load_data(path=folder.parent)


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar100_from_keras_archive_matches_keras(keras_home, expected, label_mode):
    make_files.write_tar(keras_home / "cifar-100-python-target_archive", "cifar-100-python",
                         make_files.cifar100_batches())
    out = cifar100.load_data(label_mode) if label_mode == "coarse" else cifar100.load_data()
    _same_as_keras(out, expected, f"cifar100_{label_mode}")
    assert out[0][1].shape == (6, 1) and out[0][0].shape == (6, 32, 32, 3)


def test_cifar100_extracted_folder_and_bad_label_mode(isolated, expected):
    make_files.write_folder(isolated / "x" / "cifar-100-python", make_files.cifar100_batches())
    _same_as_keras(cifar100.load_data("coarse", path=isolated / "x"), expected, "cifar100_coarse")
    with pytest.raises(ValueError, match=r'`label_mode` must be one of `"fine"`, `"coarse"`. '
                                         r"Received: label_mode=medium."):
        cifar100.load_data(label_mode="medium")
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        cifar100.load_data(path=isolated / "empty-dir-that-does-not-exist")


@pytest.mark.parametrize("case,kwargs", [("boston_default", {}), ("boston_split", {"test_split": 0.35, "seed": 7}),
                                         ("boston_no_test", {"test_split": 0.0})])
def test_boston_housing_matches_keras(keras_home, expected, case, kwargs):
    make_files.boston(keras_home / "boston_housing.npz")
    _same_as_keras(boston_housing.load_data(**kwargs), expected, case)


@pytest.mark.parametrize("case,kwargs", [("california_large", {}), ("california_small", {"version": "small"}),
                                         ("california_split", {"version": "small", "test_split": 0.5, "seed": 1})])
def test_california_housing_matches_keras(keras_home, expected, case, kwargs):
    make_files.california(keras_home / "california_housing.npz")
    out = california_housing.load_data(**kwargs)
    _same_as_keras(out, expected, case)
    n = 650 if case == "california_large" else 600
    assert len(out[0][0]) + len(out[1][0]) == n and out[0][0].dtype == np.float32


def test_housing_paths_and_bad_arguments(isolated, keras_home, expected):
    make_files.boston(isolated / "b" / "boston_housing.npz")
    _same_as_keras(boston_housing.load_data(path=isolated / "b"), expected, "boston_default")
    _same_as_keras(boston_housing.load_data(path=str(isolated / "b" / "boston_housing.npz")), expected,
                   "boston_default")
    for bad in (1, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"Invalid `test_split` argument: {bad}. It must be between 0 and 1 "
                                             r"\(exclusive of 1\)."):
            boston_housing.load_data(path=isolated / "b", test_split=bad)
        with pytest.raises(ValueError, match="Invalid `test_split`"):
            california_housing.load_data(test_split=bad)
    with pytest.raises(ValueError, match="Argument `version` must be one of 'small', 'large'. Received: version=tiny"):
        california_housing.load_data(version="tiny")
    with pytest.raises(FileNotFoundError) as info:
        california_housing.load_data()
    assert "california_housing.npz" in str(info.value) and str(keras_home) in str(info.value)
    np.savez(isolated / "b" / "wrong.npz", x=np.zeros((3, 8)), z=np.zeros(3))
    with pytest.raises(ValueError, match="no array 'y'"):
        california_housing.load_data(path=isolated / "b" / "wrong.npz")
    np.savez(isolated / "b" / "short.npz", x=np.zeros((3, 8)), y=np.zeros(2))
    with pytest.raises(ValueError, match="3 samples in 'x' but 2 in 'y'"):
        boston_housing.load_data(path=isolated / "b" / "short.npz")

"""kerust.utils's split_dataset, timeseries_dataset_from_array, get_file and Progbar against Keras 3.15.1's
behaviour on the same inputs (tests/reference/utils/generate_utils.py, run with real Keras)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest

import kerust as keras

REF = json.load(open(os.path.join(os.path.dirname(__file__), "reference", "utils", "utils_reference.json")))
DATA = np.arange(40, dtype="float32").reshape(10, 4)
LABELS = np.arange(10)
SERIES = np.arange(100)


def _kw(case: dict, drop: tuple) -> dict:
    return {k: v for k, v in case.items() if k not in drop}


@pytest.mark.parametrize("case", REF["split_array"], ids=lambda c: str(_kw(c, ("result",))))
def test_split_dataset_array_matches_keras(case) -> None:
    left, right = keras.utils.split_dataset(DATA, **_kw(case, ("result",)))
    np.testing.assert_array_equal(left, case["result"][0])
    np.testing.assert_array_equal(right, case["result"][1])


@pytest.mark.parametrize("case", REF["split_tuple"], ids=lambda c: str(_kw(c, ("result",))))
def test_split_dataset_tuple_matches_keras_and_fits(case) -> None:
    (lx, ly), (rx, ry) = keras.utils.split_dataset((DATA, LABELS), **_kw(case, ("result",)))
    np.testing.assert_array_equal(lx, case["result"][0][0])
    np.testing.assert_array_equal(ly, case["result"][0][1])
    np.testing.assert_array_equal(rx, case["result"][1][0])
    np.testing.assert_array_equal(ry, case["result"][1][1])
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    assert len(m.fit(lx, ly.astype("float32"), epochs=1, verbose=0).history["loss"]) == 1


@pytest.mark.parametrize("case", REF["split_errors"], ids=lambda c: str(c["kw"]))
def test_split_dataset_errors_match_keras(case) -> None:
    with pytest.raises(getattr(__builtins__, case["type"], None) or {"ValueError": ValueError,
                                                                      "TypeError": TypeError}[case["type"]],
                       match=re.escape(case["message"])):
        keras.utils.split_dataset(DATA, **case["kw"])


def test_split_dataset_bad_dataset() -> None:
    with pytest.raises(TypeError, match="list/tuple of arrays"):
        keras.utils.split_dataset("abc", left_size=1)
    with pytest.raises(ValueError, match="different lengths"):
        keras.utils.split_dataset((DATA, LABELS[:5]), left_size=1)


@pytest.mark.parametrize("case", REF["timeseries"], ids=lambda c: str(_kw(c, ("inputs", "targets"))))
def test_timeseries_windows_match_keras(case) -> None:
    kw = _kw(case, ("inputs", "targets"))
    x, y = keras.utils.timeseries_dataset_from_array(SERIES, SERIES, batch_size=None, **kw)
    np.testing.assert_array_equal(x, case["inputs"])
    np.testing.assert_array_equal(y, case["targets"])
    batches = keras.utils.timeseries_dataset_from_array(SERIES, SERIES, batch_size=7, **kw)
    assert all(len(bx) == 7 for bx, _ in batches[:-1]) and 0 < len(batches[-1][0]) <= 7
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in batches]), case["inputs"])
    np.testing.assert_array_equal(np.concatenate([by for _, by in batches]), case["targets"])
    only_x = keras.utils.timeseries_dataset_from_array(SERIES, None, batch_size=None, **kw)
    np.testing.assert_array_equal(only_x, case["inputs"])


def test_timeseries_keras_docstring_example_and_fit() -> None:
    # Keras's docstring: data[:10] predicts data[10]
    x, y = keras.utils.timeseries_dataset_from_array(SERIES[:-10], SERIES[10:], sequence_length=10,
                                                    batch_size=None)
    np.testing.assert_array_equal(x[0], SERIES[:10])
    assert y[0] == 10
    m = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    m.fit(x.astype("float32") / 100, y.astype("float32") / 100, epochs=1, verbose=0)


@pytest.mark.parametrize("case", REF["timeseries_errors"], ids=lambda c: str(c["kw"]))
def test_timeseries_errors_match_keras(case) -> None:
    with pytest.raises(ValueError, match=re.escape(case["message"])):
        keras.utils.timeseries_dataset_from_array(SERIES, SERIES, 5, **case["kw"])


def _cache(tmp_path) -> str:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "data.txt").write_bytes(REF["get_file"]["content"].encode())
    return str(tmp_path)


def test_get_file_from_the_cache_with_checksums(tmp_path) -> None:
    cache = _cache(tmp_path)
    origin = "http://127.0.0.1:9/data.txt"  # never reached: the cached file matches
    for kw in ({"file_hash": REF["get_file"]["sha256"]}, {"md5_hash": REF["get_file"]["md5"]},
               {"file_hash": REF["get_file"]["md5"]}, {}):
        path = keras.utils.get_file("data.txt", origin=origin, cache_dir=cache, **kw)
        assert os.path.relpath(path, cache) == REF["get_file"]["relpath"]
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == REF["get_file"]["sha256"]


def test_get_file_bad_hash_redownloads_and_missing_file_names_everything(tmp_path, capsys) -> None:
    cache = _cache(tmp_path)
    origin = "http://127.0.0.1:9/data.txt"
    with pytest.raises(Exception, match=r"data.txt.*datasets.*127\.0\.0\.1:9/data.txt"):
        keras.utils.get_file("data.txt", origin=origin, cache_dir=cache, file_hash="0" * 64)
    assert "file hash does not match" in capsys.readouterr().out
    # as Keras: the failed download leaves no partial file behind
    assert os.path.exists(os.path.join(cache, "datasets", "data.txt")) is REF["get_file"]["missing_exists_after"]
    with pytest.raises(Exception, match=r"'missing.txt' is not in the cache .*missing.txt.*127\.0\.0\.1:9"):
        keras.utils.get_file("missing.txt", origin="http://127.0.0.1:9/missing.txt", cache_dir=cache)
    with pytest.raises(ValueError, match="origin"):
        keras.utils.get_file("x.txt", cache_dir=cache)
    with pytest.raises(ValueError, match="Paths are no longer accepted"):
        keras.utils.get_file(os.path.join("a", "b.txt"), origin=origin, cache_dir=cache)


def test_get_file_extracts_a_cached_archive(tmp_path) -> None:
    import tarfile

    (tmp_path / "datasets").mkdir()
    src = tmp_path / "inner.txt"
    src.write_text("hello")
    with tarfile.open(tmp_path / "datasets" / "arch.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="inner.txt")
    out = keras.utils.get_file("arch.tar.gz", origin="http://127.0.0.1:9/arch.tar.gz", cache_dir=str(tmp_path),
                               extract=True)
    assert out == os.path.join(str(tmp_path), "datasets", "arch_extracted")
    assert open(os.path.join(out, "inner.txt")).read() == "hello"


def test_progbar_is_keras_utils_progbar(capsys) -> None:
    bar = keras.utils.Progbar(4, verbose=2, unit_name="step")
    bar.update(2, values=[("loss", 1.0)])
    bar.add(2, values=[("loss", 3.0)])
    out = capsys.readouterr().out
    # Keras 3.15 prints "4/4 - 0s - 3us/step - loss: 3.0000" here (metrics are stateful by default)
    assert out.startswith("4/4 - ") and out.rstrip().endswith("loss: 3.0000")


def _plot_model_setup() -> "keras.Model":
    inp = keras.Input((4,), name="inp")
    a = keras.layers.Dense(3, name="a", activation="relu")(inp)
    b = keras.layers.Dense(3, name="b")(inp)
    out = keras.layers.Add(name="sum")([a, b])
    return keras.Model(inp, out)


def test_plot_model_without_pydot_or_graphviz_gives_keras_import_error(tmp_path, monkeypatch) -> None:
    model = _plot_model_setup()
    for name in ("pydot", "pydot_ng", "pydotplus"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    with pytest.raises(ImportError, match=re.escape("You must install pydot (`pip install pydot`) for `plot_model` "
                                                    "to work.")):
        keras.utils.plot_model(model, to_file=str(tmp_path / "m.png"))


def test_plot_model_writes_the_image_with_pydot_and_graphviz(tmp_path) -> None:
    import pydot  # scripts/test-requirements.txt installs it
    model = _plot_model_setup()
    try:
        pydot.Dot.create(pydot.Dot())
    except (OSError, pydot.PydotException):
        # no graphviz `dot` on this machine (CI installs pydot, not graphviz): Keras's error is what there is to check
        with pytest.raises(ImportError, match="You must install graphviz"):
            keras.utils.plot_model(model, to_file=str(tmp_path / "m.png"))
        return
    path = tmp_path / "m.png"
    keras.utils.plot_model(model, to_file=str(path), show_layer_names=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keras.utils.plot_model(model, to_file=str(tmp_path / "m.dot"), show_layer_names=True)
    text = (tmp_path / "m.dot").read_text()
    for edge in ("inp -> a", "inp -> b", "a -> sum", "b -> sum"):
        assert edge in text.replace('"', "")
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        keras.utils.plot_model(model, to_file=str(path), bogus=1)

"""Text: kerust.datasets.imdb / reuters and layers.TextVectorization against what Keras 3.15 itself returned.

The expectations were made by real Keras (with TensorFlow, which its TextVectorization needs) from the same small
data: ``tests/reference/text/make_reference.py`` writes ``datasets.json`` (the raw sequences that go into the
``.npz`` files and Keras's ``load_data`` results) and ``text_vectorization.json`` (the layer cases, Keras's
vocabularies, outputs, configs and errors). Nothing here downloads anything or needs Keras.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import kerust
import numpy as np
import pytest
from kerust.datasets import imdb, reuters

REF = Path(__file__).resolve().parent / "reference" / "text"
DATASETS = json.loads((REF / "datasets.json").read_text(encoding="utf-8"))
TV = json.loads((REF / "text_vectorization.json").read_text(encoding="utf-8"))


# ---- datasets ------------------------------------------------------------------------------------------------

def _ragged(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


def _write_npz(path: Path, arrays: dict) -> Path:
    np.savez(path, **{k: (_ragged(v) if k.startswith("x") else np.array(v, dtype=np.int64)) for k, v in arrays.items()})
    return path


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $KERUST_DATA, and empty kerust and Keras homes of our own."""
    monkeypatch.delenv("KERUST_DATA", raising=False)
    monkeypatch.setenv("KERUST_HOME", str(tmp_path / "kerust_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def _assert_like_keras(got, want: dict) -> None:
    assert list(got.shape) == want["shape"]
    assert str(got.dtype) == want["dtype"]
    assert got.tolist() == want["values"]


def _check_cases(module, key: str, file: Path) -> int:
    checked = 0
    for case in DATASETS[key]:
        kwargs, want = case["kwargs"], case["result"]
        if "error" in want:
            with pytest.raises((ValueError, TypeError)) as info:
                module.load_data(path=str(file), **kwargs)
            assert type(info.value).__name__ == want["error"]
            assert want["message"].split(",")[0] in str(info.value)
        else:
            (xt, yt), (xs, ys) = module.load_data(path=str(file), **kwargs)
            for got, name in ((xt, "x_train"), (yt, "y_train"), (xs, "x_test"), (ys, "y_test")):
                _assert_like_keras(got, want[name])
        checked += 1
    return checked


@pytest.mark.parametrize("key", ["imdb", "imdb_square"])
def test_imdb_load_data_matches_keras(isolated, key):
    file = _write_npz(isolated / "imdb.npz", DATASETS["inputs"][key])
    assert _check_cases(imdb, key, file) == len(DATASETS[key]) >= 3


def test_reuters_load_data_matches_keras(isolated):
    file = _write_npz(isolated / "reuters.npz", DATASETS["inputs"]["reuters"])
    assert _check_cases(reuters, "reuters", file) == len(DATASETS["reuters"]) >= 5
    assert list(reuters.get_label_names()) == DATASETS["reuters_labels"]


def test_the_reference_exercises_what_it_claims():
    """The Keras results differ between argument sets (so each case can catch a wrong rule)."""
    results = [json.dumps(c["result"]) for c in DATASETS["imdb"]]
    assert len(set(results)) == len(results)
    square = DATASETS["imdb_square"][0]["result"]
    assert len(square["x_train"]["shape"]) == 2  # Keras's np.array(..., dtype=object) of equal-length lists


def test_where_the_files_are_found(isolated, monkeypatch):
    arrays = DATASETS["inputs"]["imdb"]
    expected = imdb.load_data(path=str(_write_npz(isolated / "explicit.npz", arrays)))
    # a folder holding imdb.npz
    folder = isolated / "folder"
    folder.mkdir()
    _write_npz(folder / "imdb.npz", arrays)
    got = imdb.load_data(path=folder)
    assert got[0][0].tolist() == expected[0][0].tolist()
    # the default bare name, in Keras's cache ($KERAS_HOME/datasets)
    keras_cache = isolated / "keras_home" / "datasets"
    keras_cache.mkdir(parents=True)
    _write_npz(keras_cache / "imdb.npz", arrays)
    assert imdb.load_data()[1][1].tolist() == expected[1][1].tolist()
    # $KERUST_DATA wins over the caches
    data = isolated / "data"
    data.mkdir()
    other = {**arrays, "y_train": [1 - y for y in arrays["y_train"]]}
    _write_npz(data / "imdb.npz", other)
    monkeypatch.setenv("KERUST_DATA", str(data))
    assert imdb.load_data()[0][1].tolist() == [1 - y for y in expected[0][1].tolist()]
    # word indices, from the same places
    (data / "imdb_word_index.json").write_text(json.dumps({"the": 1, "and": 2}), encoding="utf-8")
    assert imdb.get_word_index() == {"the": 1, "and": 2}
    (keras_cache / "reuters_word_index.json").write_text(json.dumps({"said": 1}), encoding="utf-8")
    assert reuters.get_word_index() == {"said": 1}


def test_a_missing_file_is_an_error_never_a_download(isolated, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("kerust tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    with pytest.raises(FileNotFoundError, match=r"imdb\.npz not found .*never downloads"):
        imdb.load_data()
    with pytest.raises(FileNotFoundError, match="reuters_word_index.json"):
        reuters.get_word_index()
    with pytest.raises(FileNotFoundError, match="no imdb.npz in the folder"):
        imdb.load_data(path=isolated)
    with pytest.raises(FileNotFoundError):
        reuters.load_data(path=isolated / "nowhere" / "reuters.npz")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickle_that_runs_code_is_refused(isolated, capsys):
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = [1, 2], _Evil()
    file = isolated / "evil.npz"
    np.savez(file, x_train=arr, y_train=np.zeros(2, np.int64), x_test=arr, y_test=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        imdb.load_data(path=file)
    assert "pwned" not in capsys.readouterr().out
    with zipfile.ZipFile(isolated / "bad.npz", "w") as z:
        z.writestr("x.npy", b"not an array")
    with pytest.raises(ValueError, match="bad.npz: x: not a NumPy array"):
        reuters.load_data(path=isolated / "bad.npz")
    assert pickle  # the module the attack goes through


def test_bad_arguments_name_the_argument(isolated):
    file = _write_npz(isolated / "imdb.npz", DATASETS["inputs"]["imdb"])
    with pytest.raises(TypeError, match=r"imdb.load_data: `num_words` must be an integer or None, received "
                                        r"num_words='10'"):
        imdb.load_data(path=file, num_words="10")
    with pytest.raises(TypeError, match="test_split"):
        reuters.load_data(path=file, test_split="0.2")


# ---- TextVectorization -----------------------------------------------------------------------------------------

def std_o(x):
    return np.char.replace(np.char.lower(x), "a", "o")


def split_comma(x):
    """kerust's split callables get a NumPy array of str and return one token list per string."""
    return [s.split(",") for s in x]


CALLABLES = {"std_o": std_o, "split_comma": split_comma}


def _make(case: dict):
    kwargs = {k: (CALLABLES[v] if isinstance(v, str) and v in CALLABLES else v) for k, v in case["kwargs"].items()}
    if isinstance(kwargs.get("ngrams"), list):
        kwargs["ngrams"] = tuple(kwargs["ngrams"])
    return kerust.layers.TextVectorization(**kwargs)


def _corpus(case_id: str) -> np.ndarray:
    corpus = TV["corpus"] if case_id != "split_callable" else [s.replace(" ", ",") for s in TV["corpus"]]
    return np.array(corpus)


def _queries(case_id: str) -> list:
    return TV["queries"] if case_id != "split_callable" else [q.replace(" ", ",") for q in TV["queries"]]


def _config(layer, case: dict) -> dict:
    config = dict(layer.get_config())
    for k in ("name", "dtype", "trainable"):
        config.pop(k)
    for k in ("standardize", "split"):
        if case["kwargs"].get(k) in CALLABLES:
            config[k] = "<callable>"
    if isinstance(config.get("ngrams"), tuple):
        config["ngrams"] = list(config["ngrams"])
    return config


def _assert_output(got, want: dict, mode: str) -> None:
    if "error" in want:
        raise AssertionError(f"expected {want['error']}, got an output")
    assert list(got.shape) == want["shape"]
    assert got.dtype == (np.int64 if mode == "int" else np.float32)
    if mode == "int":
        assert got.astype(np.float64).tolist() == want["values"]
    else:
        np.testing.assert_allclose(got, np.array(want["values"]), rtol=1e-6, atol=1e-6)


CASES = {c["case"]["id"]: c for c in TV["cases"]}


@pytest.mark.parametrize("case_id", list(CASES))
def test_text_vectorization_matches_keras(case_id):
    entry = CASES[case_id]
    case = entry["case"]
    layer = _make(case)
    if not case.get("no_adapt"):
        layer.adapt(_corpus(case_id))
    if "set_vocabulary" in case:
        layer.set_vocabulary(case["set_vocabulary"], idf_weights=case.get("set_idf"))
    assert layer.get_vocabulary() == entry["vocabulary"]
    assert layer.get_vocabulary(include_special_tokens=False) == entry["vocabulary_no_special"]
    assert layer.vocabulary_size() == entry["vocabulary_size"]
    assert _config(layer, case) == entry["config"]
    mode = entry["config"]["output_mode"]
    queries = _queries(case_id)
    outputs = [(np.array(queries)[:, None], entry["output"])] if case.get("inputs_2d") else [
        (queries, entry["output"]), (np.array(queries, dtype=object)[:, None], entry["output_2d"])]
    for inputs, want in outputs:
        if "error" in want:
            with pytest.raises(RuntimeError):
                layer(inputs)
        else:
            _assert_output(layer(inputs), want, mode)


def _keras_message(msg: str) -> str:
    inner = re.search(r"\x1b\[1m(.*?)\x1b\[0m", msg, re.S)
    msg = inner.group(1) if inner else msg
    msg = re.sub(r"np\.str_\(('[^']*')\)", r"\1", msg)
    return re.sub(r"'[a-z_]+_\d+'", "'<name>'", msg)


ERRORS = {e["case"]["id"]: e for e in TV["errors"]}


@pytest.mark.parametrize("case_id", list(ERRORS))
def test_text_vectorization_errors_match_keras(case_id):
    entry = ERRORS[case_id]
    case = entry["case"]
    assert entry["error"] is not None
    with pytest.raises((ValueError, RuntimeError, TypeError)) as info:
        layer = kerust.layers.TextVectorization(**case["kwargs"])
        if "adapt" in case:
            layer.adapt(case["adapt"])
        if "adapt2" in case:
            layer.adapt(case["adapt2"])
        if "set_vocabulary" in case:
            layer.set_vocabulary(case["set_vocabulary"], idf_weights=case.get("set_idf"))
        if "call" in case:
            layer(case["call"])
    assert type(info.value).__name__ == entry["error"]
    want = _keras_message(entry["message"])
    assert want[:60] in _keras_message(str(info.value)), (want, str(info.value))


def test_inputs_of_every_string_kind_agree():
    layer = kerust.layers.TextVectorization()
    layer.adapt(["b a b", "c"])
    want = layer(["b a", "c d"])
    assert layer.get_vocabulary() == ["", "[UNK]", "b", "c", "a"]  # a tie: the larger token first
    assert want.tolist() == [[2, 4], [3, 1]]
    for x in (np.array(["b a", "c d"]), np.array([b"b a", b"c d"]), np.array(["b a", "c d"], dtype=object),
              [b"b a", "c d"], np.array([["b a"], ["c d"]])):
        np.testing.assert_array_equal(layer(x), want)
    assert layer("b a c").tolist() == [2, 4, 3]  # one string: one sequence (Keras's rank-0 call)
    # adapt from an iterable of batches (at most `steps` of them)
    batched = kerust.layers.TextVectorization()
    batched.adapt(iter([np.array(["b a b"]), np.array(["c"]), np.array(["z z z z"])]), steps=2)
    assert batched.get_vocabulary() == layer.get_vocabulary()


def test_non_strings_and_symbolic_inputs_are_refused():
    layer = kerust.layers.TextVectorization(name="tv")
    layer.adapt(["a b"])
    with pytest.raises(TypeError, match=r"TextVectorization 'tv': call takes strings, received an array of "
                                        r"dtype float64"):
        layer(np.zeros((2, 1)))
    with pytest.raises(TypeError, match="must hold strings"):
        layer(["a", 3])
    with pytest.raises(TypeError, match="max_tokens"):
        kerust.layers.TextVectorization(max_tokens="10")
    with pytest.raises(ValueError, match="sparse=True"):
        kerust.layers.TextVectorization(sparse=True)
    with pytest.raises(TypeError, match="dtype 'float32'; it takes strings"):
        layer(kerust.Input(shape=(1,)))


def test_config_round_trip_and_registry():
    layer = kerust.layers.TextVectorization(max_tokens=10, ngrams=(1, 2), output_sequence_length=4,
                                            vocabulary=["x", "y"], name="tv_config")
    config = layer.get_config()
    again = kerust.layers.TextVectorization.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == {**config, "ngrams": (1, 2)}
    # unigrams then bigrams, cut to 4: x, y, z (unknown), "x y" (unknown)
    assert again(["x y z"]).tolist() == [[2, 3, 1, 1]] == layer(["x y z"]).tolist()
    from kerust.layers import _CLASSES

    assert _CLASSES["TextVectorization"] is kerust.layers.TextVectorization
    assert layer.compute_output_shape((None,)) == (None, 4)


def test_assets_and_idf_weights_round_trip(tmp_path):
    """Keras's save_assets/save_own_variables layout: vocabulary.txt with every token, idf_weights in the store."""
    layer = kerust.layers.TextVectorization(output_mode="tf_idf")
    layer.adapt(["a b a", "b c"])
    layer.save_assets(str(tmp_path))
    assert (tmp_path / "vocabulary.txt").read_text(encoding="utf-8") == "\n".join(layer.get_vocabulary())
    store: dict = {}
    layer.save_own_variables(store)
    config = layer.get_config()
    again = kerust.layers.TextVectorization.from_config(config)
    again.load_own_variables(store)
    again.load_assets(str(tmp_path))
    np.testing.assert_array_equal(again(["a c q"]), layer(["a c q"]))


# ---- TextVectorization in front of a model ------------------------------------------------------------------------

MODEL = json.loads((REF / "text_model.json").read_text(encoding="utf-8"))


def _body(mode: str) -> list:
    layers = kerust.layers
    if mode == "int":
        return [layers.Embedding(20, 4), layers.GlobalAveragePooling1D(), layers.Dense(1, activation="sigmoid")]
    return [layers.Dense(3, activation="relu"), layers.Dense(1, activation="sigmoid")]


@pytest.mark.parametrize("index", [0, 1])
def test_models_that_start_with_text_vectorization_predict_as_keras(index):
    ref = MODEL["models"][index]
    texts = np.array(MODEL["texts"])
    mode = "int" if "output_mode" not in ref["kwargs"] else ref["kwargs"]["output_mode"]
    vec = kerust.layers.TextVectorization(**ref["kwargs"])
    vec.adapt(texts[:6])
    assert vec.get_vocabulary() == ref["vocabulary"]
    weights = [np.array(w, dtype=np.float32) for w in ref["weights"]]

    seq = kerust.Sequential([kerust.Input(shape=(1,), dtype="string"), vec] + _body(mode))
    seq.set_weights(weights)
    np.testing.assert_allclose(seq.predict(texts, verbose=0), ref["sequential"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seq.predict(texts[:, None], verbose=0), ref["sequential"], rtol=1e-5, atol=1e-6)

    inp = kerust.Input(shape=(1,), dtype="string", name="text")
    x = vec(inp)
    for layer in _body(mode):
        x = layer(x)
    functional = kerust.Model(inp, x)
    functional.set_weights(weights)
    np.testing.assert_allclose(functional.predict(list(texts), verbose=0), ref["functional"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(functional.predict({"text": texts}, verbose=0), ref["functional"], rtol=1e-5,
                               atol=1e-6)


def test_fit_and_evaluate_on_strings_train_the_engine_on_the_vectors(monkeypatch):
    texts = np.array(MODEL["texts"])
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1], dtype=np.float32)
    vec = kerust.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vec.adapt(texts)
    kerust.utils.set_random_seed(3)
    on_strings = kerust.Sequential([kerust.Input(shape=(1,), dtype="string"), vec] + _body("int"))
    kerust.utils.set_random_seed(3)
    on_ids = kerust.Sequential([kerust.Input(shape=(5,))] + _body("int"))
    on_ids.set_weights(on_strings.get_weights())
    for m in (on_strings, on_ids):
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    ids = vec(texts)
    # the strings are vectorized once per call, not per batch or epoch
    calls = []
    original = vec._vectorize
    monkeypatch.setattr(vec, "_vectorize", lambda arr: calls.append(arr.shape) or original(arr))
    h1 = on_strings.fit(texts, y, batch_size=2, epochs=3, shuffle=False, verbose=0)
    assert calls == [(8, 1)]
    h2 = on_ids.fit(ids, y, batch_size=2, epochs=3, shuffle=False, verbose=0)
    assert h1.history == h2.history
    assert on_strings.evaluate(texts, y, verbose=0) == on_ids.evaluate(ids, y, verbose=0)
    np.testing.assert_array_equal(on_strings.predict(texts, verbose=0), on_ids.predict(ids, verbose=0))
    np.testing.assert_array_equal(on_strings.predict_on_batch(texts), on_ids.predict_on_batch(ids))


def test_text_models_refuse_what_they_cannot_do(tmp_path):
    vec = kerust.layers.TextVectorization(name="tv_front")
    vec.adapt(["a b"])
    with pytest.raises(ValueError, match=r"TextVectorization 'tv_front': .*fixed output shape: set "
                                         r"`output_sequence_length`"):
        kerust.Sequential([kerust.Input(shape=(1,), dtype="string"), vec, kerust.layers.Dense(1)])
    multi = kerust.layers.TextVectorization(output_mode="multi_hot", name="tv_multi")
    with pytest.raises(ValueError, match="call `adapt`"):
        multi(kerust.Input(shape=(1,), dtype="string"))
    with pytest.raises(ValueError, match="must be followed by a TextVectorization"):
        kerust.Sequential([kerust.Input(shape=(1,), dtype="string"), kerust.layers.Dense(1)])
    with pytest.raises(ValueError, match="must feed a TextVectorization"):
        s = kerust.Input(shape=(1,), dtype="string")
        kerust.Model(s, kerust.layers.Dense(1)(kerust.Input(shape=(3,))))
    with pytest.raises(TypeError, match="takes strings"):
        vec(kerust.Input(shape=(3,)))
    fixed = kerust.layers.TextVectorization(output_sequence_length=3)
    fixed.adapt(["a b c"])
    model = kerust.Sequential([fixed, kerust.layers.Embedding(5, 2), kerust.layers.Flatten()])
    assert model.predict(["a b", "c"], verbose=0).shape == (2, 6)
    with pytest.raises(TypeError, match=r"the model starts with TextVectorization .* takes strings"):
        model.predict(np.zeros((2, 3)), verbose=0)
    with pytest.raises(ValueError, match="must be the first layer"):
        model.add(kerust.layers.TextVectorization(output_sequence_length=3))
    inp = kerust.Input(shape=(1,), dtype="string")
    functional = kerust.Model(inp, kerust.layers.Flatten()(kerust.layers.Embedding(5, 2)(fixed(inp))))
    with pytest.raises(NotImplementedError, match="cannot write such a model's config or .keras file yet"):
        functional.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
    with pytest.raises(NotImplementedError):
        functional.to_json()
    tf_idf = kerust.layers.TextVectorization(output_mode="tf_idf")
    tf_idf.adapt(["a b", "b"])
    with pytest.raises(NotImplementedError, match="TF-IDF weights"):
        kerust.Sequential([tf_idf, kerust.layers.Dense(1)]).save(tmp_path / "t.keras")


def test_onnx_export_refuses_a_model_that_starts_with_text_vectorization():
    pytest.importorskip("onnx")
    vec = kerust.layers.TextVectorization(output_sequence_length=3)
    vec.adapt(["a b"])
    model = kerust.Sequential([kerust.Input(shape=(1,), dtype="string"), vec, kerust.layers.Embedding(5, 2),
                               kerust.layers.Flatten()])
    with pytest.raises(ValueError, match=r"Cannot export layer '.*' \(TextVectorization\) to ONNX"):
        kerust.onnx.to_onnx(model)


def _h5_paths(raw: bytes) -> set:
    import io

    import h5py

    paths: set = set()
    with h5py.File(io.BytesIO(raw), "r") as f:
        f.visit(paths.add)
    return paths


@pytest.mark.parametrize("index,mode", [(0, "int"), (1, "multi_hot")])
def test_keras_files_of_text_models_both_ways(index, mode, tmp_path):
    """Keras's .keras file of a Sequential model that starts with a TextVectorization loads and predicts as Keras
    did; kerust writes it back in Keras's layout (the same members, layer list, vectorizer config, weight groups
    and vocabulary assets), and reads its own file again."""
    ref = MODEL["models"][index]
    texts = np.array(MODEL["texts"])
    keras_file = REF / f"keras_text_{mode}.keras"
    model = kerust.models.load_model(keras_file)
    assert model._host_layers[0].get_vocabulary() == ref["vocabulary"]
    np.testing.assert_allclose(model.predict(texts, verbose=0), ref["sequential"], rtol=1e-5, atol=1e-6)

    out = tmp_path / "again.keras"
    model.save(out)
    with zipfile.ZipFile(keras_file) as theirs, zipfile.ZipFile(out) as ours:
        assert set(ours.namelist()) == set(theirs.namelist())
        for name in theirs.namelist():
            if name.startswith("assets/"):
                assert ours.read(name) == theirs.read(name), name
        assert _h5_paths(ours.read("model.weights.h5")) == _h5_paths(theirs.read("model.weights.h5"))
        want = json.loads(theirs.read("config.json"))["config"]["layers"]
        got = json.loads(ours.read("config.json"))["config"]["layers"]
    assert [e["class_name"] for e in got] == [e["class_name"] for e in want]
    assert got[0]["config"]["dtype"] == want[0]["config"]["dtype"] == "string"
    assert got[0]["config"]["batch_shape"] == want[0]["config"]["batch_shape"]
    assert got[1]["config"] == want[1]["config"]
    assert got[1]["build_config"] == want[1]["build_config"]
    again = kerust.models.load_model(out)
    np.testing.assert_array_equal(again.predict(texts, verbose=0), model.predict(texts, verbose=0))


def test_a_text_model_file_without_its_vocabulary_is_refused(tmp_path):
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(REF / "keras_text_int.keras") as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            if not name.startswith("assets/"):
                dst.writestr(name, src.read(name))
    with pytest.raises(ValueError, match="has no vocabulary in its config and the file has no assets/layers/"
                                         "text_vectorization/vocabulary.txt"):
        kerust.models.load_model(bad)

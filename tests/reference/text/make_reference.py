"""Writes the Keras-made expectations that tests/test_text.py compares kerust with.

Run with Keras 3.15 and TensorFlow (TextVectorization needs TensorFlow installed even on the JAX backend):

    KERAS_BACKEND=jax python tests/reference/text/make_reference.py

datasets.json: small IMDB/Reuters-shaped data sets (the raw sequences that go into imdb.npz / reuters.npz) and
what keras.datasets.{imdb,reuters}.load_data returns from them for several argument sets (Keras's get_file is
pointed at the local file, so nothing is downloaded).
text_vectorization.json: TextVectorization cases (arguments, adapt data, inputs) and Keras's vocabulary, outputs,
config and errors. The callables named in the cases are defined here and, identically, in the test.
text_model.json: Keras's predictions of Sequential and functional models that start with a TextVectorization (run
with the TensorFlow backend, in a child process: only there does Keras run the layer inside a model), with the
weights set from a seeded RandomState, and the Sequential models as Keras saves them (keras_text_int.keras,
keras_text_multi_hot.keras).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def ragged(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


def make_sequences(rng, n, low, high, min_len, max_len):
    return [rng.randint(low, high, size=rng.randint(min_len, max_len + 1)).tolist() for _ in range(n)]


def dataset_inputs():
    rng = np.random.RandomState(0)
    imdb = {"x_train": make_sequences(rng, 12, 1, 30, 1, 9), "y_train": rng.randint(0, 2, 12).tolist(),
            "x_test": make_sequences(rng, 7, 1, 35, 1, 9), "y_test": rng.randint(0, 2, 7).tolist()}
    # every sequence of one length: Keras's np.array(..., dtype=object) then makes a 2-D object array
    square = {"x_train": make_sequences(rng, 5, 1, 20, 4, 4), "y_train": rng.randint(0, 2, 5).tolist(),
              "x_test": make_sequences(rng, 3, 1, 20, 4, 4), "y_test": rng.randint(0, 2, 3).tolist()}
    reuters = {"x": make_sequences(rng, 15, 1, 40, 1, 10), "y": rng.randint(0, 46, 15).tolist()}
    return {"imdb": imdb, "imdb_square": square, "reuters": reuters}


def write_npz(path, arrays):
    np.savez(path, **{k: (ragged(v) if k.startswith("x") else np.array(v, dtype=np.int64))
                      for k, v in arrays.items()})


def describe(a):
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    return {"shape": list(a.shape), "dtype": str(a.dtype), "values": a.tolist()}


IMDB_CASES = [
    {},
    {"num_words": 10},
    {"num_words": 15, "skip_top": 5},
    {"maxlen": 6},
    {"maxlen": 6, "num_words": 12, "oov_char": None},
    {"start_char": None, "index_from": 0},
    {"start_char": None, "index_from": 2},
    {"start_char": 7, "oov_char": 9, "index_from": 5, "num_words": 20},
    {"seed": 7},
    {"maxlen": 2},
]
REUTERS_CASES = [
    {},
    {"num_words": 12, "skip_top": 4},
    {"test_split": 0.5, "seed": 3},
    {"test_split": 0.0},
    {"maxlen": 5, "oov_char": None, "num_words": 20},
    {"start_char": None, "index_from": 0},
]


def run(fn, kwargs):
    try:
        (xt, yt), (xs, ys) = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - the expectation is the error itself
        return {"error": type(e).__name__, "message": str(e)}
    return {"x_train": describe(xt), "y_train": describe(yt), "x_test": describe(xs), "y_test": describe(ys)}


def datasets_reference():
    from keras.src.datasets import imdb, reuters

    inputs = dataset_inputs()
    out = {"inputs": inputs, "imdb": [], "imdb_square": [], "reuters": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in inputs:
            write_npz(os.path.join(tmp, name + ".npz"), inputs[name])
        for key, module, cases in (("imdb", imdb, IMDB_CASES), ("imdb_square", imdb, IMDB_CASES[:3]),
                                   ("reuters", reuters, REUTERS_CASES)):
            file = os.path.join(tmp, key + ".npz")
            module.get_file = lambda *a, _f=file, **k: _f  # no download: Keras reads the local file
            for kwargs in cases:
                out[key].append({"kwargs": kwargs, "result": run(module.load_data, kwargs)})
    out["reuters_labels"] = list(reuters.get_label_names())
    return out


# ---- TextVectorization -------------------------------------------------------------------------------------

def std_o(x):
    """A standardize callable (NumPy arrays of str in, on Keras's JAX backend and in kerust)."""
    return np.char.replace(np.char.lower(x), "a", "o")


def split_comma(x):
    """A split callable: Keras gives it a TensorFlow string tensor, kerust a NumPy array of str."""
    import tensorflow as tf

    return tf.strings.split(x, sep=",")


CALLABLES = {"std_o": std_o, "split_comma": split_comma}

CORPUS = [
    "The cat sat on the mat.",
    "The DOG ate my homework!",
    "Dogs and cats, living together?",
    "the end... (or is it?) the_end",
    "École ÉCOLE école naïve café\u00a0noir tab\there new\nline",
    "a-b c.d e'f \"g\" h;i [j] {k} ~l~ `m` |n| @o#p$q%r&s*t+u/v\\w^x<y>z=",
    "",
    "zebra apple mango apple zebra mango kiwi",
]
QUERIES = ["the cat ate the homework", "unknown words only", "", "Apple ZEBRA, kiwi!", "École noir"]

TV_CASES = [
    {"id": "default", "kwargs": {}},
    {"id": "max_tokens", "kwargs": {"max_tokens": 8}},
    {"id": "seq_len_pad", "kwargs": {"output_sequence_length": 7}},
    {"id": "seq_len_cut", "kwargs": {"output_sequence_length": 2}},
    {"id": "lower", "kwargs": {"standardize": "lower"}},
    {"id": "strip", "kwargs": {"standardize": "strip_punctuation"}},
    {"id": "no_standardize", "kwargs": {"standardize": None}},
    {"id": "character", "kwargs": {"split": "character", "max_tokens": 12}},
    {"id": "no_split", "kwargs": {"split": None}},
    {"id": "no_split_seq", "kwargs": {"split": None, "output_sequence_length": 3}, "inputs_2d": True},
    {"id": "bigrams", "kwargs": {"ngrams": 2}},
    {"id": "ngrams_1_3", "kwargs": {"ngrams": (1, 3), "max_tokens": 20}},
    {"id": "multi_hot", "kwargs": {"output_mode": "multi_hot"}},
    {"id": "binary_alias", "kwargs": {"output_mode": "binary", "max_tokens": 6}},
    {"id": "count", "kwargs": {"output_mode": "count"}},
    {"id": "count_pad", "kwargs": {"output_mode": "count", "max_tokens": 40, "pad_to_max_tokens": True}},
    {"id": "tf_idf", "kwargs": {"output_mode": "tf_idf"}},
    {"id": "tf_idf_pad", "kwargs": {"output_mode": "tf-idf", "max_tokens": 10, "pad_to_max_tokens": True}},
    {"id": "tf_idf_bigrams", "kwargs": {"output_mode": "tf_idf", "ngrams": 2, "max_tokens": 15}},
    {"id": "one_hot_no_split", "kwargs": {"output_mode": "one_hot", "split": None}, "inputs_2d": True},
    {"id": "multi_hot_no_split", "kwargs": {"output_mode": "multi_hot", "split": None}},
    {"id": "std_callable", "kwargs": {"standardize": "std_o"}},
    {"id": "split_callable", "kwargs": {"split": "split_comma", "standardize": "lower"}},
    {"id": "vocabulary", "kwargs": {"vocabulary": ["the", "cat", "zebra", "école"]}, "no_adapt": True},
    {"id": "vocabulary_specials", "kwargs": {"vocabulary": ["", "[UNK]", "the", "cat"]}, "no_adapt": True},
    {"id": "vocabulary_unk_inside", "kwargs": {"vocabulary": ["[UNK]", "the", "cat"]}, "no_adapt": True},
    {"id": "vocabulary_multi_hot", "kwargs": {"vocabulary": ["[UNK]", "the", "cat"], "output_mode": "multi_hot"},
     "no_adapt": True},
    {"id": "vocabulary_tf_idf", "kwargs": {"vocabulary": ["the", "cat", "apple"], "idf_weights": [0.5, 1.5, 2.0],
                                           "output_mode": "tf_idf"}, "no_adapt": True},
    {"id": "vocabulary_tf_idf_specials", "kwargs": {"vocabulary": ["[UNK]", "the", "cat"],
                                                    "idf_weights": [0.25, 0.5, 1.5], "output_mode": "tf_idf",
                                                    "max_tokens": 5, "pad_to_max_tokens": True}, "no_adapt": True},
    {"id": "not_adapted", "kwargs": {}, "no_adapt": True},
    {"id": "set_vocabulary", "kwargs": {}, "set_vocabulary": ["mat", "cat", "the"]},
    {"id": "set_vocabulary_tf_idf", "kwargs": {"output_mode": "tf_idf"}, "set_vocabulary": ["mat", "cat"],
     "set_idf": [1.0, 2.0], "no_adapt": True},
]

ERROR_CASES = [
    {"id": "bad_standardize", "kwargs": {"standardize": "upper"}},
    {"id": "bad_split", "kwargs": {"split": "comma"}},
    {"id": "bad_mode", "kwargs": {"output_mode": "embedding"}},
    {"id": "bad_ngrams", "kwargs": {"ngrams": [1, 2]}},
    {"id": "max_tokens_1", "kwargs": {"max_tokens": 1}},
    {"id": "pad_without_max", "kwargs": {"pad_to_max_tokens": True}},
    {"id": "seq_len_not_int", "kwargs": {"output_sequence_length": 2.5}},
    {"id": "seq_len_multi_hot", "kwargs": {"output_mode": "multi_hot", "output_sequence_length": 3}},
    {"id": "idf_not_tf_idf", "kwargs": {"idf_weights": [1.0]}},
    {"id": "tf_idf_vocab_no_idf", "kwargs": {"output_mode": "tf_idf", "vocabulary": ["a"]}},
    {"id": "repeated", "kwargs": {"vocabulary": ["a", "b", "a"]}},
    {"id": "mask_inside", "kwargs": {"vocabulary": ["a", ""]}},
    {"id": "too_large", "kwargs": {"max_tokens": 3, "vocabulary": ["a", "b"]}},
    {"id": "empty_vocab", "kwargs": {"vocabulary": []}},
    {"id": "idf_length", "kwargs": {"output_mode": "tf_idf", "vocabulary": ["a", "b"], "idf_weights": [1.0]}},
    {"id": "adapt_static", "kwargs": {"vocabulary": ["a"]}, "adapt": ["a b"]},
    {"id": "two_columns", "kwargs": {}, "adapt": [["a b", "c"], ["d", "e"]]},
    {"id": "call_before_adapt_multi_hot", "kwargs": {"output_mode": "multi_hot"}, "call": ["a"]},
    {"id": "set_vocabulary_after_adapt_tf_idf", "kwargs": {"output_mode": "tf_idf"}, "adapt": ["a b"],
     "set_vocabulary": ["mat", "cat", "dog"], "set_idf": [1.0, 2.0, 3.0]},
    {"id": "readapt_multi_hot", "kwargs": {"output_mode": "multi_hot"}, "adapt": ["a b"], "adapt2": ["a b c"]},
]


def resolve(kwargs):
    return {k: (CALLABLES[v] if isinstance(v, str) and v in CALLABLES else v) for k, v in kwargs.items()}


def jsonable_config(config):
    config = dict(config)
    for k in ("name", "dtype", "trainable"):
        config.pop(k, None)
    for k in ("standardize", "split"):
        if callable(config.get(k)):
            config[k] = "<callable>"
    if isinstance(config.get("ngrams"), tuple):
        config["ngrams"] = list(config["ngrams"])
    return config


def outputs_of(layer, queries):
    try:
        r = np.asarray(layer(queries))
    except Exception as e:  # noqa: BLE001
        return {"error": type(e).__name__}
    return {"shape": list(r.shape), "values": r.astype(np.float64).tolist()}


def tv_reference():
    import keras

    cases = []
    for case in TV_CASES:
        kwargs = dict(case["kwargs"])
        if isinstance(kwargs.get("ngrams"), list):
            kwargs["ngrams"] = tuple(kwargs["ngrams"])
        layer = keras.layers.TextVectorization(**resolve(kwargs))
        if not case.get("no_adapt"):
            layer.adapt(np.array(CORPUS) if case.get("id") != "split_callable" else
                        np.array([s.replace(" ", ",") for s in CORPUS]))
        if "set_vocabulary" in case:
            layer.set_vocabulary(case["set_vocabulary"], idf_weights=case.get("set_idf"))
        queries = QUERIES if case["id"] != "split_callable" else [q.replace(" ", ",") for q in QUERIES]
        entry = {"case": case, "vocabulary": [str(t) for t in layer.get_vocabulary()],
                 "vocabulary_no_special": [str(t) for t in layer.get_vocabulary(include_special_tokens=False)],
                 "vocabulary_size": int(layer.vocabulary_size()),
                 "config": jsonable_config(layer.get_config())}
        if case.get("inputs_2d"):
            entry["output"] = outputs_of(layer, np.array(queries)[:, None])
        else:
            entry["output"] = outputs_of(layer, queries)
            # object arrays of non-ASCII str trip Keras's callable-standardize path (astype(bytes_)): use <U there
            kind = object if not callable(layer._standardize) else str
            entry["output_2d"] = outputs_of(layer, np.array(queries, dtype=kind)[:, None])
        cases.append(entry)
    errors = []
    for case in ERROR_CASES:
        try:
            layer = keras.layers.TextVectorization(**case["kwargs"])
            if "adapt" in case:
                layer.adapt(case["adapt"])
            if "adapt2" in case:
                layer.adapt(case["adapt2"])
            if "set_vocabulary" in case:
                layer.set_vocabulary(case["set_vocabulary"], idf_weights=case.get("set_idf"))
            if "call" in case:
                layer(case["call"])
            errors.append({"case": case, "error": None})
        except Exception as e:  # noqa: BLE001
            errors.append({"case": case, "error": type(e).__name__, "message": str(e)})
    return {"corpus": CORPUS, "queries": QUERIES, "cases": cases, "errors": errors}


MODEL_TEXTS = ["good movie great fun", "bad movie awful", "great great good", "awful bad boring", "fun good",
               "boring bad", "unseen words here", "good, GOOD! bad?"]


def model_reference():
    """Run in a child with KERAS_BACKEND=tensorflow (see main)."""
    import keras
    import tensorflow as tf

    rng = np.random.RandomState(5)
    texts = np.array(MODEL_TEXTS)
    out = {"texts": MODEL_TEXTS, "models": []}
    for mode, kwargs in (("int", {"max_tokens": 20, "output_sequence_length": 5}),
                         ("multi_hot", {"max_tokens": 12, "output_mode": "multi_hot"})):
        vec = keras.layers.TextVectorization(**kwargs)
        vec.adapt(texts[:6])
        if mode == "int":
            body = [keras.layers.Embedding(20, 4), keras.layers.GlobalAveragePooling1D(),
                    keras.layers.Dense(1, activation="sigmoid")]
        else:
            body = [keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
        seq = keras.Sequential([keras.Input(shape=(1,), dtype="string"), vec] + body)
        weights = [rng.uniform(-1, 1, size=w.shape).astype(np.float32) for w in seq.get_weights()]
        seq.set_weights(weights)
        inp = keras.Input(shape=(1,), dtype="string", name="text")
        x = vec(inp)
        for layer in body:
            x = layer(x)
        functional = keras.Model(inp, x)
        strings = tf.constant(texts[:, None])
        seq.save(HERE / f"keras_text_{mode}.keras")  # Keras's file: kerust must load it
        out["models"].append({
            "kwargs": kwargs, "vocabulary": [str(t) for t in vec.get_vocabulary()],
            "weights": [w.tolist() for w in weights],
            "sequential": seq.predict(strings, verbose=0).tolist(),
            "functional": functional.predict(strings, verbose=0).tolist(),
        })
    return out


def main():
    import subprocess

    import keras

    if "--model" in sys.argv:
        print(json.dumps(model_reference()))
        return

    if keras.__version__ != "3.15.1":
        print(f"warning: Keras {keras.__version__}, the references were made with 3.15.1", file=sys.stderr)
    (HERE / "datasets.json").write_text(json.dumps(datasets_reference(), indent=1, ensure_ascii=False) + "\n")
    (HERE / "text_vectorization.json").write_text(json.dumps(tv_reference(), indent=1, ensure_ascii=False) + "\n")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.run([sys.executable, __file__, "--model"], env=env, capture_output=True, text=True,
                           check=True)
    model = json.loads(child.stdout.strip().splitlines()[-1])
    (HERE / "text_model.json").write_text(json.dumps(model, indent=1) + "\n")
    print("wrote", HERE / "datasets.json", HERE / "text_vectorization.json", HERE / "text_model.json")


if __name__ == "__main__":
    main()

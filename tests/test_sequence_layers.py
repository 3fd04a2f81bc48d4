"""SimpleRNN, LSTM, GRU, Bidirectional, Embedding, LayerNormalization, Conv1D and the 1-D pooling layers against
real Keras.

The reference values come from Keras 3.15.1 (JAX backend), written by
``tests/reference/sequence/generate_sequence.py`` into ``sequence.npz``: for each case the layer's output on Keras's
weights, and the exact gradients (``jax.grad``) of ``sum(output * r)`` for the input and every weight. kerust's
gradients are read through ``Model.inspect`` with the loss ``y_true * y_pred`` (``y_true = r``), whose mean over
the ``N`` output values has ``1 / N`` times those gradients. Backpropagation is also checked by finite differences
(``utils.gradient_check``), and LSTM and GRU training follows Keras's loss over three epochs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import kerust as keras
import numpy as np
import pytest
from kerust import layers

FIXTURES = Path(__file__).resolve().parent / "reference" / "sequence"
REF = np.load(FIXTURES / "sequence.npz")
CASES = sorted({k.split("__")[0] for k in REF.files if k.endswith("__config")})
TOL = 1e-5


def _weights(prefix: str) -> list:
    return [REF[k] for k in sorted(k for k in REF.files if k.startswith(prefix))]


def _model(key: str):
    spec = json.loads(str(REF[f"{key}__config"]))
    x = REF[f"{key}__x"]
    layer = getattr(layers, spec["class_name"])(**spec["config"])
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    model.set_weights(_weights(f"{key}__w_"))
    return model, layer, x


def _times_target(y_true, y_pred):
    return y_true * y_pred


@pytest.mark.parametrize("key", CASES)
def test_output_matches_keras(key):
    model, _, x = _model(key)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, REF[f"{key}__out"], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("key", CASES)
def test_gradients_match_keras(key):
    model, layer, x = _model(key)
    r = REF[f"{key}__r"]
    model.compile(optimizer="sgd", loss=_times_target)
    seen = model.inspect(x, r)
    n = r.size
    names = list(seen[layer.name]["weight_gradients"])
    expected = _weights(f"{key}__gw_")
    assert len(names) == len(expected) == len(layer.get_weights())
    for name, want in zip(names, expected):
        got = seen[layer.name]["weight_gradients"][name] * n
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{key}: {name}")
    if f"{key}__gx" in REF.files:
        np.testing.assert_allclose(seen.input_gradient * n, REF[f"{key}__gx"], rtol=1e-4, atol=1e-4)
    assert seen.loss == pytest.approx(float(np.mean(REF[f"{key}__out"] * r)), rel=1e-4, abs=1e-6)


# every case with weights (a weightless LayerNormalization's input gradient is checked against Keras above), but
# ReLU's: central differences straddle its kink (its gradients match Keras's exact ones above)
@pytest.mark.parametrize("key", [k for k in CASES if not k.startswith("embedding") and _weights(f"{k}__w_")
                                 and "relu" not in k])  # pooling layers: their input gradients match Keras above
def test_backprop_agrees_with_finite_differences(key):
    model, _, x = _model(key)
    rng = np.random.default_rng(0)
    model.compile(optimizer="sgd", loss="mse")
    y = rng.normal(size=REF[f"{key}__out"].shape).astype(np.float32)
    # float32 differences of a loss of ~1: 5% of the weight's largest gradient is the noise floor here (the exact
    # gradients are compared with Keras's to 1e-4 above)
    report = keras.utils.gradient_check(model, x.astype(np.float64), y, samples_per_weight=6, tolerance=5e-2)
    assert report and all(entry["ok"] for entry in report.values()), report


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_training_follows_keras(cls):
    units = int(REF[f"{cls}__w_01"].shape[0])
    model = keras.Sequential([keras.Input((6, 3)), getattr(layers, cls)(units), layers.Dense(1)])
    model.set_weights(_weights(f"{cls}__w_"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(REF[f"{cls}__x"], REF[f"{cls}__y"], batch_size=4, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], REF[f"{cls}__loss"], rtol=1e-4)


def test_weight_shapes_names_and_defaults_follow_keras():
    for layer, shapes in ((layers.SimpleRNN(4), [(3, 4), (4, 4), (4,)]),
                          (layers.LSTM(4), [(3, 16), (4, 16), (16,)]),
                          (layers.GRU(4), [(3, 12), (4, 12), (2, 12)]),
                          (layers.LSTM(2, use_bias=False), [(3, 8), (2, 8)])):
        keras.Sequential([keras.Input((5, 3)), layer])
        assert [w.shape for w in layer.get_weights()] == shapes
        assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"][:len(shapes)]
    lstm = layers.LSTM(3)
    keras.Sequential([keras.Input((2, 4)), lstm])
    bias = lstm.get_weights()[2]
    np.testing.assert_array_equal(bias, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # unit_forget_bias
    rec = lstm.get_weights()[1]  # orthogonal: (3, 12) has orthonormal rows
    np.testing.assert_allclose(rec @ rec.T, np.eye(3), atol=1e-5)
    cfg = lstm.get_config()
    assert (cfg["activation"], cfg["recurrent_activation"], cfg["recurrent_initializer"]) == ("tanh", "sigmoid",
                                                                                              "orthogonal")
    emb = layers.Embedding(10, 4)
    keras.Sequential([keras.Input((3,)), emb])
    assert emb.get_weights()[0].shape == (10, 4) and np.abs(emb.get_weights()[0]).max() <= 0.05
    ln = layers.LayerNormalization()
    assert ln.get_config()["epsilon"] == 1e-3
    keras.Sequential([keras.Input((3, 4)), ln])
    assert [w.shape for w in ln.get_weights()] == [(4,), (4,)]


def test_output_shapes_and_summary():
    model = keras.Sequential([keras.Input((7,)), layers.Embedding(20, 8), layers.LSTM(5, return_sequences=True),
                              layers.GRU(4), layers.Dense(1, activation="sigmoid")])
    assert model.predict(np.zeros((2, 7)), verbose=0).shape == (2, 1)
    assert [layer.output_shape for layer in model.layers] == [(None, 7, 8), (None, 7, 5), (None, 4), (None, 1)]
    assert model.count_params() == 20 * 8 + (8 * 20 + 5 * 20 + 20) + (5 * 12 + 4 * 12 + 24) + 5


def test_text_classifier_trains_on_synthetic_tokens():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 50, size=(256, 12))
    y = (x[:, -3:] < 25).mean(axis=1, keepdims=True) > 0.5  # the majority of the last three tokens
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((12,)), layers.Embedding(50, 8), layers.LSTM(8),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y.astype(np.float32), batch_size=32, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert history["accuracy"][-1] > 0.95


def test_bit_identical_for_any_thread_count():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 6, 3)).astype(np.float32)
    y = rng.normal(size=(40, 1)).astype(np.float32)

    def run() -> list:
        keras.utils.set_random_seed(2)
        model = keras.Sequential([keras.Input((6, 3)), layers.GRU(6, return_sequences=True), layers.LSTM(5),
                                  layers.LayerNormalization(), layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        return model.get_weights()

    from thread_counts import assert_same_for_thread_counts

    assert_same_for_thread_counts(run)


def test_bad_input_is_named():
    model = keras.Sequential([keras.Input((4,)), layers.Embedding(5, 2)])
    with pytest.raises(ValueError, match=r"Embedding 'embedding.*'.*\[0, 5\).*received 5"):
        model.predict(np.array([[0, 1, 5, 2]]), verbose=0)
    with pytest.raises(ValueError, match="received -1"):
        model.predict(np.array([[0, -1, 2, 2]]), verbose=0)
    with pytest.raises(ValueError, match="received 1.5"):
        model.predict(np.array([[0, 1.5, 2, 2]]), verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    for ragged in ([[1, 2, 3], [1, 2]], np.array([[1, 2, 3], [1, 2]], dtype=object)):
        with pytest.raises(ValueError, match="ragged list.*pad_sequences"):
            model.fit(ragged, np.zeros((2, 4, 2)), verbose=0)
    with pytest.raises(ValueError, match=r"expected ndim=3.*found ndim=2"):
        keras.Sequential([keras.Input((4,)), layers.LSTM(3)])
    with pytest.raises(ValueError, match="stateful=True is not supported"):
        layers.Bidirectional(layers.LSTM(3, stateful=True))
    with pytest.raises(ValueError, match="units"):
        layers.SimpleRNN(0)
    with pytest.raises(ValueError, match="trailing axes"):
        keras.Sequential([keras.Input((3, 4)), layers.LayerNormalization(axis=1)])
    with pytest.raises(ValueError, match="out of bounds"):
        keras.Sequential([keras.Input((3, 4)), layers.LayerNormalization(axis=3)])


def test_keras_files_move_both_ways(tmp_path):
    model = keras.saving.load_model(FIXTURES / "sequence.keras")
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "LayerNormalization", "Conv1D",
                                                                "Bidirectional", "GRU", "SimpleRNN"]
    np.testing.assert_allclose(model.predict(REF["file__x"], verbose=0), REF["file__pred"], rtol=TOL, atol=TOL)
    model.save(tmp_path / "again.keras")
    python = os.environ.get("KERUST_KERAS_PYTHON")
    if not python:
        pytest.skip("Keras is not installed here (test.sh sets KERUST_KERAS_PYTHON to the Keras venv)")
    script = textwrap.dedent(f"""
        import os
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "sequence.npz")!r})
        m = keras.saving.load_model({str(tmp_path / "again.keras")!r})
        print(float(np.abs(m.predict(ref["file__x"], verbose=0) - ref["file__pred"]).max()))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", script], check=False, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5


PAD_SEQUENCES = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9], [10, 11]]  # as in generate_sequence.py
PAD_CASES = {
    "default": {},
    "post_post_3": {"maxlen": 3, "padding": "post", "truncating": "post"},
    "pre_post_2_value": {"maxlen": 2, "truncating": "post", "value": -1},
    "float_8": {"maxlen": 8, "dtype": "float32", "value": 0.5, "padding": "post"},
}


@pytest.mark.parametrize("name", sorted(PAD_CASES))
def test_pad_sequences_matches_keras(name):
    got = keras.utils.pad_sequences(PAD_SEQUENCES, **PAD_CASES[name])
    want = REF[f"pad__{name}"]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_pad_sequences_items_and_errors():
    out = keras.utils.pad_sequences([[[1, 2], [3, 4]], [[5, 6]]], maxlen=3)
    assert out.shape == (2, 3, 2) and out[1].tolist() == [[0, 0], [0, 0], [5, 6]]
    assert keras.utils.pad_sequences([]).shape == (0, 0)
    with pytest.raises(ValueError, match="must be iterable"):
        keras.utils.pad_sequences(3)
    with pytest.raises(ValueError, match="non-iterable: 4"):
        keras.utils.pad_sequences([[1], 4])
    with pytest.raises(ValueError, match='Padding type "middle" not understood'):
        keras.utils.pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match='Truncating type "x" not understood'):
        keras.utils.pad_sequences([[1]], truncating="x")
    with pytest.raises(ValueError, match="position 1 is different"):
        keras.utils.pad_sequences([[[1, 2]], [[1, 2, 3]]])
    with pytest.raises(ValueError, match="dtype=object"):
        keras.utils.pad_sequences([["a"]], value="x")


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "imdb_bilstm.py"


def _run_example(*args: str) -> str:
    import sys

    done = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "2", "--maxlen", "60", "--units", "8",
                           "--num-words", "1000", *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_imdb_example_trains_on_synthetic_reviews():
    out = _run_example("--samples", "400")
    assert "bidirectional" in out
    assert float(out.strip().splitlines()[-1].split(":")[1]) > 0.7


def test_imdb_example_reads_keras_imdb_files(tmp_path):
    # a small file in the layout of Keras's imdb.npz: object arrays of word-index lists, 0/1 labels
    rng = np.random.default_rng(0)

    def reviews(n):
        return np.array([rng.integers(1, 3000, size=int(rng.integers(5, 80))).tolist() for _ in range(n)],
                        dtype=object)

    np.savez(tmp_path / "imdb.npz", x_train=reviews(64), y_train=rng.integers(0, 2, 64), x_test=reviews(16),
             y_test=rng.integers(0, 2, 16))
    out = _run_example("--data", str(tmp_path / "imdb.npz"), "--mask-zero")
    assert "Test accuracy:" in out


def test_spatial_dropout1d_drops_whole_channels():
    layer = layers.SpatialDropout1D(0.5, seed=3)
    assert layer.get_config()["rate"] == 0.5 and "data_format" not in layer.get_config()
    model = keras.Sequential([keras.Input((6, 40)), layer])
    x = np.ones((8, 6, 40), np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # identity in inference
    model.compile(optimizer="sgd", loss="mse")
    out = model.inspect(x, x)[layer.name]["output"]  # a training-mode forward
    kept = out[:, 0, :] != 0
    assert set(np.unique(out)) <= {0.0, 2.0}  # kept values scaled by 1 / (1 - rate)
    assert (out == out[:, :1, :]).all()  # a channel is kept or dropped for every step at once
    assert 0.3 < kept.mean() < 0.7


CONV_REF = np.load(FIXTURES / "masks.npz")  # generate_masks.py also writes the causal and dilated Conv1D cases
sys.path.insert(0, str(FIXTURES))
from mask_models import CONV_CASES as CONV_LAYERS  # noqa: E402
CONV_CASES = sorted({k.split("__")[1] for k in CONV_REF.files if k.startswith("conv__")})


@pytest.mark.parametrize("case", CONV_CASES)
def test_causal_and_dilated_conv1d_match_keras(case, tmp_path):
    x = CONV_REF[f"conv__{case}__x"]
    layer = layers.Conv1D(**CONV_LAYERS[case])
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    model.set_weights([CONV_REF[k] for k in sorted(k for k in CONV_REF.files
                                                    if k.startswith(f"conv__{case}__w_"))])
    want = CONV_REF[f"conv__{case}__out"]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=TOL, atol=TOL)
    model.save(tmp_path / "conv.keras")
    again = keras.saving.load_model(tmp_path / "conv.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), want, rtol=TOL, atol=TOL)
    model.compile(optimizer="sgd", loss="mse")
    report = keras.utils.gradient_check(model, x.astype(np.float64), np.ones_like(want), samples_per_weight=6,
                                        tolerance=5e-2)
    assert report and all(entry["ok"] for entry in report.values()), report


def test_gru_with_reset_after_false_matches_keras(tmp_path):
    from mask_models import GRU_V1_MASK, gru_v1_model

    x = CONV_REF["gru_v1__x"]
    weights = [CONV_REF[k] for k in sorted(k for k in CONV_REF.files if k.startswith("gru_v1__w_"))]
    assert [w.shape for w in weights] == [(3, 9), (3, 9), (9,)]  # one bias of 3 * units
    layer = layers.GRU(3, reset_after=False, return_sequences=True)
    model = keras.Sequential([keras.Input((5, 3)), layer])
    model.set_weights(weights)
    np.testing.assert_allclose(model.predict(x, verbose=0), CONV_REF["gru_v1__out"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(layer(x, mask=np.array(GRU_V1_MASK, bool)), CONV_REF["gru_v1__out_masked"],
                               rtol=TOL, atol=TOL)
    model.save(tmp_path / "gru.keras")
    again = keras.saving.load_model(tmp_path / "gru.keras")
    assert again.layers[0].reset_after is False
    np.testing.assert_allclose(again.predict(x, verbose=0), CONV_REF["gru_v1__out"], rtol=TOL, atol=TOL)
    fit = gru_v1_model(keras)
    flat = CONV_REF["gru_v1__model_w"]
    values, at = [], 0
    for w in fit.get_weights():
        values.append(flat[at:at + w.size].reshape(w.shape))
        at += w.size
    fit.set_weights(values)
    fit.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = fit.fit(x, CONV_REF["gru_v1__y"], batch_size=2, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], CONV_REF["gru_v1__loss"], rtol=1e-4)
    from keras_files import run_in_keras

    printed = run_in_keras(f"""
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "masks.npz")!r})
        m = keras.saving.load_model({str(tmp_path / "gru.keras")!r})
        print(float(np.abs(m.predict(ref["gru_v1__x"], verbose=0) - ref["gru_v1__out"]).max()))
    """)
    assert float(printed.strip().splitlines()[-1]) < 1e-5

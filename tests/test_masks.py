"""Keras masks, `initial_state` and `return_state` against real Keras.

The models are written once (``tests/reference/sequence/mask_models.py``) and run by Keras 3.15.1 (JAX) in
``generate_masks.py`` into ``masks.npz``: Keras's outputs on its weights for padded token ids (post- and
pre-padded, a zero inside, one step left), and SGD training losses. Backpropagation through masked steps and into
initial states is checked by finite differences here, and by Rust unit tests against exact gradients.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import kerust as keras
import numpy as np
import pytest
from kerust import layers

FIXTURES = Path(__file__).resolve().parent / "reference" / "sequence"
sys.path.insert(0, str(FIXTURES))
from mask_models import NAMES, build  # noqa: E402

REF = np.load(FIXTURES / "masks.npz")
TOL = 1e-5


def _arrays(prefix: str) -> list:
    return [REF[k] for k in sorted(k for k in REF.files if k.startswith(prefix))]


def _model(name: str):
    model = build(keras, name)
    model.set_weights(_arrays(f"{name}__w_"))
    return model, _arrays(f"{name}__x_")


def _as_list(out):
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize("name", NAMES)
def test_outputs_match_keras(name):
    model, xs = _model(name)
    outs = _as_list(model.predict(xs, verbose=0))
    want = _arrays(f"{name}__out_")
    assert len(outs) == len(want)
    for got, ref in zip(outs, want):
        np.testing.assert_allclose(got, ref, rtol=TOL, atol=TOL, err_msg=name)


@pytest.mark.parametrize("name", ["bi_gap", "add_mask", "emb_gru_state"])
def test_training_follows_keras(name):
    model, xs = _model(name)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ys = _arrays(f"{name}__y_")
    ys = ys if len(ys) > 1 else ys[0]
    history = model.fit(xs, ys, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], REF[f"{name}__loss"], rtol=1e-4)
    trained = _as_list(model.predict(xs, verbose=0))[0]
    np.testing.assert_allclose(trained, REF[f"{name}__trained_out_0"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["emb_lstm_seq", "masking_lstm_init", "bi_gap", "concat_mask", "emb_gap"])
def test_backprop_through_masks_agrees_with_finite_differences(name):
    model, xs = _model(name)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    ys = [rng.normal(size=o.shape).astype(np.float32) for o in _arrays(f"{name}__out_")]
    xs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in xs]
    report = keras.utils.gradient_check(model, xs if len(xs) > 1 else xs[0], ys if len(ys) > 1 else ys[0],
                                        samples_per_weight=6, tolerance=5e-2, epsilon=1e-2)
    assert report and all(entry["ok"] for entry in report.values()), report


def test_masked_steps_keep_the_state():
    """A sequence and the same sequence with padding anywhere give the same last output and states."""
    emb = layers.Embedding(5, 3, mask_zero=True)
    lstm = layers.LSTM(2, return_state=True)
    ids = keras.Input((6,), dtype="int32")
    model = keras.Model(ids, lstm(emb(ids)))
    seqs = np.array([[1, 2, 3, 4, 0, 0], [0, 0, 1, 2, 3, 4], [1, 0, 2, 0, 3, 4], [1, 2, 3, 4, 4, 4]])
    out, h, c = model.predict(seqs, verbose=0)
    for i in (1, 2):
        np.testing.assert_array_equal(out[i], out[0])
        np.testing.assert_array_equal(c[i], c[0])
    np.testing.assert_array_equal(out, h)
    assert np.abs(out[3] - out[0]).max() > 1e-4  # real steps do change it


def test_masks_follow_keras_rules():
    ids = keras.Input((5,), dtype="int32")
    e = layers.Embedding(4, 3, mask_zero=True)(ids)
    assert e._keras_mask is not None and e._keras_mask.shape == (None, 5) and e._keras_mask.dtype == "bool"
    assert layers.Dense(2)(e)._keras_mask is e._keras_mask  # supports masking: handed on
    assert layers.LSTM(2, return_sequences=True)(e)._keras_mask is e._keras_mask
    assert layers.LSTM(2)(e)._keras_mask is None
    assert layers.GlobalAveragePooling1D()(e)._keras_mask is None
    assert layers.Embedding(4, 3)(ids)._keras_mask is None
    with pytest.warns(UserWarning, match="does not support masking and will therefore destroy the mask"):
        out = layers.Flatten()(e)
    assert out._keras_mask is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.GlobalAveragePooling1D()(e)  # uses the mask: no warning


def test_explicit_mask_and_eager_calls():
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    gru = layers.GRU(2)
    masked = gru(x, mask=mask)
    np.testing.assert_allclose(masked[0], gru(x[:, :2])[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(masked[1], gru(x)[1], rtol=1e-6, atol=1e-6)
    h0 = np.ones((2, 2), np.float32)
    assert np.abs(gru(x, initial_state=h0) - gru(x)).max() > 1e-4
    seq, h = layers.SimpleRNN(2, return_sequences=True, return_state=True)(x)
    assert seq.shape == (2, 4, 2) and h.shape == (2, 2)
    np.testing.assert_array_equal(seq[:, -1], h)


def test_keras_files_with_masks_and_states_move_both_ways(tmp_path):
    for name in ("bi_gap", "masking_lstm_init"):
        model = keras.saving.load_model(FIXTURES / f"masks_{name}.keras")
        xs = _arrays(f"{name}__x_")
        for got, want in zip(_as_list(model.predict(xs, verbose=0)), _arrays(f"{name}__out_")):
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL, err_msg=name)
        model.save(tmp_path / f"{name}.keras")
        again = keras.saving.load_model(tmp_path / f"{name}.keras")
        for got, want in zip(_as_list(again.predict(xs, verbose=0)), _arrays(f"{name}__out_")):
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL, err_msg=name)
    from keras_files import run_in_keras

    printed = run_in_keras(f"""
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "masks.npz")!r})
        worst = 0.0
        for name in ("bi_gap", "masking_lstm_init"):
            m = keras.saving.load_model(os.path.join({str(tmp_path)!r}, name + ".keras"))
            xs = [ref[k] for k in sorted(k for k in ref.files if k.startswith(name + "__x_"))]
            outs = m.predict(xs, verbose=0)
            outs = outs if isinstance(outs, list) else [outs]
            wants = [ref[k] for k in sorted(k for k in ref.files if k.startswith(name + "__out_"))]
            worst = max([worst] + [float(np.abs(np.asarray(o) - w).max()) for o, w in zip(outs, wants)])
        print(worst)
    """)
    assert float(printed.strip().splitlines()[-1]) < 1e-5


def test_bad_masks_and_states_are_named():
    x = keras.Input((4, 3))
    with pytest.raises(ValueError, match=r"lstm.*mask has shape \(None, 5\).*\(None, 4\)"):
        layers.LSTM(2, name="lstm")(x, mask=keras.Input((5,), dtype="bool"))
    with pytest.raises(ValueError, match="`initial_state` needs 2 tensor"):
        layers.LSTM(2)(x, initial_state=[keras.Input((2,))])
    with pytest.raises(ValueError, match=r"initial state must have shape \(batch, 2\), received \(batch, 3\)"):
        layers.GRU(2)(x, initial_state=keras.Input((3,)))
    with pytest.raises(ValueError, match="return_state=True in `layer` is not supported"):
        layers.Bidirectional(layers.LSTM(2, return_state=True))


def test_recurrent_dropout_trains_reproducibly_and_leaves_inference_alone():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 5, 3)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None].astype(np.float32)

    def run(dropout, recurrent_dropout):
        keras.utils.set_random_seed(11)
        model = keras.Sequential([keras.Input((5, 3)), layers.LSTM(4, dropout=dropout,
                                                                   recurrent_dropout=recurrent_dropout),
                                  layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        before = model.predict(x, verbose=0)
        loss = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
        return model, before, loss

    plain, before_plain, loss_plain = run(0.0, 0.0)
    dropped, before_dropped, loss_dropped = run(0.5, 0.3)
    np.testing.assert_array_equal(before_plain, before_dropped)  # same weights, no dropout in inference
    assert loss_dropped != loss_plain and loss_dropped[-1] < loss_dropped[0]
    assert run(0.5, 0.3)[2] == loss_dropped  # one seed, one run
    assert dropped.layers[0].get_config()["dropout"] == 0.5
    assert layers.GRU(2, dropout=1.5).dropout == 1.0  # clipped, as Keras
    with pytest.raises(ValueError, match="`recurrent_dropout` must be a number"):
        layers.SimpleRNN(2, recurrent_dropout="a lot")


def test_stateful_layers_carry_their_states_from_batch_to_batch():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    plain = keras.Sequential([keras.Input((6, 3)), layers.LSTM(2)])
    lstm = layers.LSTM(2, stateful=True)
    stateful = keras.Sequential([keras.Input((3, 3)), lstm])
    stateful.set_weights(plain.get_weights())
    first = stateful.predict(x[:, :3], batch_size=4, verbose=0)
    second = stateful.predict(x[:, 3:], batch_size=4, verbose=0)  # goes on from where the first ended
    np.testing.assert_allclose(second, plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    lstm.reset_states()
    np.testing.assert_array_equal(stateful.predict(x[:, :3], batch_size=4, verbose=0), first)
    with pytest.raises(ValueError, match=r"(?s)If an RNN is stateful, the batch size.*Expected batch size: 4"):
        stateful.predict(x[:2, :3], verbose=0)
    assert lstm.get_config()["stateful"] is True
    stateful.compile(optimizer="sgd", loss="mse")
    lstm.reset_states()
    loss = stateful.fit(x[:, :3], np.zeros((4, 2), np.float32), batch_size=4, epochs=2, shuffle=False,
                        verbose=0).history["loss"]
    assert np.all(np.isfinite(loss)) and loss[1] != loss[0]


def test_masked_dropout_and_attention_training_is_bit_identical_for_any_thread_count():
    rng = np.random.default_rng(8)
    ids = rng.integers(1, 30, size=(32, 40))
    ids[::3, 30:] = 0  # padding: masks in play
    y = rng.integers(0, 2, size=(32, 1)).astype(np.float32)

    def run() -> list:
        keras.utils.set_random_seed(4)
        tokens = keras.Input((40,), dtype="int32")
        x = layers.Embedding(30, 8, mask_zero=True)(tokens)
        x = layers.Bidirectional(layers.LSTM(4, return_sequences=True, dropout=0.2, recurrent_dropout=0.2))(x)
        # (16, 2, 40, 40) attention probabilities per batch: the softmax shares its rows among threads
        x = layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
        out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(x))
        model = keras.Model(tokens, out)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(ids, y, batch_size=16, epochs=2, verbose=0)
        return model.get_weights()

    from thread_counts import assert_same_for_thread_counts

    assert_same_for_thread_counts(run)


def test_custom_layers_pass_and_compute_masks_as_keras_does():
    from kerust import ops

    class Scale(layers.Layer):
        supports_masking = True  # hands the mask on unchanged

        def call(self, inputs):
            return inputs * 2.0

    class FirstTwo(layers.Layer):
        """Its own compute_mask: only the first two steps count from here on."""

        def call(self, inputs):
            return inputs

        def compute_mask(self, inputs, mask=None):
            steps = ops.arange(5) < 2
            return ops.logical_and(mask, steps)

    class Plain(layers.Layer):
        def call(self, inputs):
            return inputs + 1.0

    ids = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0], [1, 2, 3, 4, 5]])
    tokens = keras.Input((5,), dtype="int32")
    emb = layers.Embedding(6, 3, mask_zero=True)
    e = emb(tokens)
    scaled = Scale()(e)
    assert scaled._keras_mask is e._keras_mask
    gap_scaled = layers.GlobalAveragePooling1D()(scaled)
    gap_two = layers.GlobalAveragePooling1D()(FirstTwo()(e))
    model = keras.Model(tokens, [gap_scaled, gap_two])
    got_scaled, got_two = model.predict(ids, verbose=0)
    table = emb.get_weights()[0]
    np.testing.assert_allclose(got_scaled, np.stack([2 * table[r[r > 0]].mean(axis=0) for r in ids]), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(got_two, np.stack([table[r[:2][r[:2] > 0]].mean(axis=0) for r in ids]), rtol=1e-5,
                               atol=1e-6)
    # the mask reaches an LSTM through Scale: the padded sequence gives what its 3 real steps give alone
    lstm = layers.LSTM(2)
    padded = keras.Model(tokens, lstm(Scale()(emb(tokens))))
    three = keras.Input((3,), dtype="int32")
    alone = keras.Model(three, lstm(Scale()(emb(three))))
    np.testing.assert_allclose(padded.predict(ids[:1], verbose=0), alone.predict(ids[:1, :3], verbose=0),
                               rtol=1e-6, atol=1e-6)
    with pytest.warns(UserWarning, match="does not support masking"):
        assert Plain()(e)._keras_mask is None


def test_summary_shows_calls_not_the_ops_that_make_masks():
    tokens = keras.Input((6,), dtype="int32")
    emb = layers.Embedding(10, 4, mask_zero=True, name="emb")
    lstm = layers.LSTM(3, return_state=True, return_sequences=True, name="rnn")
    seq, h, c = lstm(emb(tokens))
    lines = []
    keras.Model(tokens, [layers.GRU(2)(seq), h]).summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "not_equal" not in text and f"{emb.name}[0][0]" in text and f"{lstm.name}[0][0]" in text
    assert "(None, 6, 3)" in text and "(None, 24)" not in text  # the states, not the engine's packed tensor
    chain = keras.Model(tokens, layers.LSTM(2)(layers.Embedding(10, 4, mask_zero=True)(tokens)))
    lines = []
    chain.summary(print_fn=lines.append)
    assert "Connected to" not in "\n".join(lines)  # a chain prints like a Sequential model, as in Keras


def test_a_mask_given_to_a_layer_that_does_not_read_it_stays_out_of_the_config():
    x = keras.Input((4, 3))
    m = keras.Input((4,), dtype="bool")
    model = keras.Model([x, m], layers.LSTM(2)(layers.Dense(2)(x, mask=m), mask=m))
    entries = {e["class_name"]: e for e in model.get_config()["layers"]}
    assert entries["Dense"]["inbound_nodes"][0]["kwargs"] == {}
    lstm_mask = entries["LSTM"]["inbound_nodes"][0]["kwargs"]["mask"]["config"]["keras_history"]
    assert lstm_mask[0] == m._keras_history[0].name
    xs = [np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32), np.array([[1, 1, 0, 0]] * 2, bool)]
    again = keras.models.model_from_json(model.to_json())
    again.set_weights(model.get_weights())
    np.testing.assert_array_equal(again.predict(xs, verbose=0), model.predict(xs, verbose=0))

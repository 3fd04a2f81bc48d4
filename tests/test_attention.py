"""MultiHeadAttention, Attention, AdditiveAttention and TimeDistributed against real Keras.

The reference values come from Keras 3.15.1 (JAX backend), written by
``tests/reference/attention/generate_attention.py`` into ``attention.npz``: for each case a functional model
around one layer call, its inputs (masks as 0/1 floats), its weights and its outputs (attention scores included),
and two epochs of SGD from those weights (losses and the trained weights, which check the gradients of every
weight against Keras's). Backpropagation is also checked by finite differences, and three of the models were
saved by Keras (``*.keras``): kerust loads them, and writes files with Keras's layout that Keras loads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import h5py
import kerust as keras
import numpy as np
import pytest
from kerust import layers, ops

FIXTURES = Path(__file__).resolve().parent / "reference" / "attention"
REF = np.load(FIXTURES / "attention.npz")
CASES = sorted({k.split("__")[0] for k in REF.files if k.endswith("__spec")})
FILES = ("mha_cross", "att_dot_scale", "td_conv1d")
TOL = 1e-5


def _arrays(prefix: str) -> list:
    return [REF[k] for k in sorted(k for k in REF.files if k.startswith(prefix))]


def _x(name: str):
    xs = _arrays(f"{name}__x_")
    return xs[0] if len(xs) == 1 else xs


def _build(name: str):
    """The case's model, built as generate_attention.py builds it in Keras."""
    spec = json.loads(str(REF[f"{name}__spec"]))
    inputs = [keras.Input(tuple(s)) for s in spec["shapes"]]
    got = dict(zip(spec["roles"], inputs))
    cls, args, kw = spec["class_name"], spec["args"], dict(spec["call_kwargs"])
    if cls == "TimeDistributed":
        inner = args["layer"]
        outs = layers.TimeDistributed(getattr(layers, inner["class_name"])(**inner["config"]))(got["q"])
    elif cls == "MultiHeadAttention":
        if "k" in got:
            kw["key"] = got["k"]
        if "am" in got or "amz" in got:
            kw["attention_mask"] = got.get("am", got.get("amz"))
        outs = layers.MultiHeadAttention(**args)(got["q"], got.get("v", got["q"]), **kw)
    else:
        tensors = [got["q"], got["v"]] + ([got["k"]] if "k" in got else [])
        if "qm" in got:
            kw["mask"] = [got["qm"], got.get("vm", got.get("vmz"))]
        outs = getattr(layers, cls)(**args)(tensors, **kw)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    model = keras.Model(inputs, outs)
    model.set_weights(_arrays(f"{name}__w_"))
    return model, inputs, outs


def _as_list(p):
    return p if isinstance(p, list) else [p]


@pytest.mark.parametrize("name", CASES)
def test_output_matches_keras(name):
    model, _, _ = _build(name)
    preds = _as_list(model.predict(_x(name), verbose=0))
    expected = _arrays(f"{name}__out_")
    assert len(preds) == len(expected)
    for got, want in zip(preds, expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("name", CASES)
def test_training_follows_keras(name):
    # the gradients of every weight, through two epochs of SGD: Keras's losses and Keras's trained weights
    _, inputs, outs = _build(name)
    model = keras.Model(inputs, layers.Lambda(lambda t: t * 1.0)(outs[0]))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(_x(name), REF[f"{name}__y"], batch_size=2, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], REF[f"{name}__loss"], rtol=1e-5)
    trained = _arrays(f"{name}__trained_")
    assert len(trained) == len(model.get_weights())
    for got, want in zip(model.get_weights(), trained):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mha_cross", "mha_axes", "att_dot_scale", "att_concat_key_causal", "add_mask",
                                  "td_dense"])
def test_backprop_agrees_with_finite_differences(name, fd_check):
    _, inputs, outs = _build(name)
    model = keras.Model(inputs, outs[0])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x = _x(name)
    y = REF[f"{name}__y"]
    # a few entries of each weight is enough here: every weight's gradient matches Keras's through training above
    base = model.get_weights()
    small = [w.reshape(-1)[:6].copy() for w in base]
    assert small
    fd_check(model, x, y, h=1e-2, rtol=3e-2, atol=3e-4, indices=[i for i, w in enumerate(base) if w.size <= 24])
    # the larger kernels: perturb their first entries only (through a view of the same check)
    for i, w in enumerate(base):
        if w.size <= 24:
            continue
        model.set_weights(base)
        model.train_on_batch(x, y)
        analytic = (base[i] - model.get_weights()[i]).reshape(-1)[:6].astype(np.float64)
        numeric = np.zeros(6)
        for j in range(6):
            for sign in (1, -1):
                ws = [v.copy() for v in base]
                ws[i].reshape(-1)[j] += sign * 1e-2
                model.set_weights(ws)
                numeric[j] += sign * float(model.evaluate(x, y, batch_size=4, verbose=0)) / 2e-2
        model.set_weights(base)
        np.testing.assert_allclose(analytic, numeric, rtol=3e-2, atol=3e-4 + 1e-3 * np.abs(numeric).max())


def test_weights_shapes_names_and_initializers_follow_keras():
    q, v = keras.Input((3, 4)), keras.Input((5, 6))
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5, name="mha")
    model = keras.Model([q, v], mha(q, v))
    assert [w.shape for w in model.get_weights()] == [(4, 2, 3), (2, 3), (6, 2, 3), (2, 3), (6, 2, 5), (2, 5),
                                                       (2, 5, 4), (4,)]
    assert [w.path for w in model.weights] == ["mha/query/kernel", "mha/query/bias", "mha/key/kernel",
                                               "mha/key/bias", "mha/value/kernel", "mha/value/bias",
                                               "mha/attention_output/kernel", "mha/attention_output/bias"]
    assert all(not w.any() for w in model.get_weights()[1::2])  # zero biases
    nobias = layers.MultiHeadAttention(2, 3, use_bias=False, output_shape=(7,))
    assert [w.shape for w in keras.Model(q, nobias(q, q)).get_weights()] == [(4, 2, 3), (4, 2, 3), (4, 2, 3),
                                                                             (2, 3, 7)]
    # glorot_uniform with Keras's EinsumDense fans (input axes / output axes of the kernel): the query kernel
    # (32, 8, 16) has fan_in 32 and fan_out 128, a limit of sqrt(6 / 160) (the conv rule would give 0.088)
    big = keras.Input((4, 32))
    wide = layers.MultiHeadAttention(8, 16)
    w = keras.Model(big, wide(big, big)).get_weights()
    limit = np.sqrt(6 / (32 + 128))
    assert 0.9 * limit < np.abs(w[0]).max() <= limit
    out_limit = np.sqrt(6 / (8 * 16 + 32))  # output kernel (8, 16, 32): fan_in 128, fan_out 32
    assert 0.9 * out_limit < np.abs(w[6]).max() <= out_limit
    assert np.std(w[0]) == pytest.approx(limit / np.sqrt(3), rel=0.05)

    qq, vv = keras.Input((3, 4)), keras.Input((5, 4))
    att = layers.Attention(use_scale=True, score_mode="concat", name="att")
    add = layers.AdditiveAttention(name="add")
    plain = layers.Attention()
    model = keras.Model([qq, vv], [att([qq, vv]), add([qq, vv]), plain([qq, vv])])
    assert [w.path for w in model.weights] == ["att/scale", "att/concat_score_weight", "add/scale"]
    assert [w.shape for w in model.get_weights()] == [(), (), (4,)]
    assert model.get_weights()[0] == 1.0 and model.get_weights()[1] == 1.0
    assert np.abs(model.get_weights()[2]).max() <= np.sqrt(6 / 8)  # glorot_uniform of shape (4,): fans 4, 4

    td = layers.TimeDistributed(layers.Dense(2, name="inner"), name="td")
    model = keras.Sequential([keras.Input((3, 4)), td])
    assert [w.path for w in model.weights] == ["td/inner/kernel", "td/inner/bias"]
    assert td.output_shape == (None, 3, 2)


def test_regularizers_join_the_loss():
    # each projection's kernel and bias, as Keras's EinsumDense sublayers add them
    q = keras.Input((3, 4))
    mha = layers.MultiHeadAttention(2, 2, kernel_regularizer="l2", bias_regularizer=keras.regularizers.L1(0.1),
                                    bias_initializer="ones")
    model = keras.Model(q, mha(q, q))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(6).random((4, 3, 4)).astype(np.float32)
    w = mha.get_weights()
    penalty = sum(0.01 * np.sum(k ** 2) for k in w[0::2]) + sum(0.1 * np.sum(np.abs(b)) for b in w[1::2])
    mse = float(np.mean((model.predict(x, verbose=0) - x) ** 2))
    assert model.evaluate(x, x, verbose=0) == pytest.approx(mse + penalty, rel=1e-5)


def test_scores_shapes_masks_and_causal_mask():
    q, v = keras.Input((3, 4)), keras.Input((5, 6))
    mha = layers.MultiHeadAttention(2, 3)
    out, scores = mha(q, v, return_attention_scores=True)
    assert out.shape == (None, 3, 4) and scores.shape == (None, 2, 3, 5)
    rng = np.random.default_rng(0)
    xq, xv = rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 5, 6)).astype(np.float32)
    model = keras.Model([q, v], [out, scores])
    _, s = model.predict([xq, xv], verbose=0)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-6)
    # the causal mask is the lower triangle: the same as passing it as attention_mask
    xs = rng.normal(size=(2, 4, 4)).astype(np.float32)
    s_in = keras.Input((4, 4))
    m_in = keras.Input((4, 4))
    self_att = layers.MultiHeadAttention(2, 2)
    causal = keras.Model(s_in, self_att(s_in, s_in, use_causal_mask=True, return_attention_scores=True)[1])
    explicit = keras.Model([s_in, m_in], self_att(s_in, s_in, attention_mask=m_in, return_attention_scores=True)[1])
    tril = np.broadcast_to(np.tril(np.ones((4, 4), np.float32)), (2, 4, 4))
    got = causal.predict(xs, verbose=0)
    np.testing.assert_array_equal(got, explicit.predict([xs, tril], verbose=0))
    assert not got[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]].any()
    # the implicit Keras masks of the inputs (value: (B, S) -> (B, 1, S)) equal the same explicit attention_mask
    vm_in = keras.Input((5,))
    q2, v2 = keras.Input((3, 4)), keras.Input((5, 6))
    v2._keras_mask = ops.not_equal(vm_in, 0)
    mha2 = layers.MultiHeadAttention(2, 3)
    implicit = keras.Model([q2, v2, vm_in], mha2(q2, v2))
    am_in = keras.Input((3, 5))
    q3, v3 = keras.Input((3, 4)), keras.Input((5, 6))
    explicit2 = keras.Model([q3, v3, am_in], mha2(q3, v3, attention_mask=am_in))
    vmask = (rng.uniform(size=(2, 5)) > 0.4).astype(np.float32)
    vmask[:, 0] = 1
    np.testing.assert_allclose(implicit.predict([xq, xv, vmask], verbose=0),
                               explicit2.predict([xq, xv, np.repeat(vmask[:, None], 3, 1)], verbose=0), atol=1e-6)
    # `value_mask=` and `key_mask=` given as arguments count; `query_mask=` does not (Keras 3.15's call replaces it
    # by the query's own mask)
    q4, v4, vm4, qm4 = keras.Input((3, 4)), keras.Input((5, 6)), keras.Input((5,)), keras.Input((3,))
    by_arg = keras.Model([q4, v4, vm4], mha2(q4, v4, value_mask=vm4))
    by_key = keras.Model([q4, v4, vm4], mha2(q4, v4, key=v4, key_mask=vm4))
    np.testing.assert_allclose(by_arg.predict([xq, xv, vmask], verbose=0),
                               implicit.predict([xq, xv, vmask], verbose=0), atol=1e-6)
    np.testing.assert_allclose(by_key.predict([xq, xv, vmask], verbose=0),
                               implicit.predict([xq, xv, vmask], verbose=0), atol=1e-6)
    ignored = keras.Model([q4, v4, qm4], mha2(q4, v4, query_mask=qm4))
    plain = keras.Model([q4, v4], mha2(q4, v4))
    np.testing.assert_allclose(ignored.predict([xq, xv, np.zeros((2, 3), np.float32)], verbose=0),
                               plain.predict([xq, xv], verbose=0), atol=1e-6)


def test_output_masks_follow_keras():
    # MultiHeadAttention's output keeps the query's mask, Attention's first output the query mask, TimeDistributed
    # the input's; the scores carry none
    q, v, qm, vm = keras.Input((3, 4)), keras.Input((5, 4)), keras.Input((3,)), keras.Input((5,))
    q._keras_mask = qm
    out, scores = layers.MultiHeadAttention(2, 2)(q, v, return_attention_scores=True)
    assert out._keras_mask is qm and getattr(scores, "_keras_mask", None) is None
    assert getattr(layers.MultiHeadAttention(2, 2)(v, v), "_keras_mask", None) is None
    a, s = layers.Attention()([v, v], mask=[vm, None], return_attention_scores=True)
    assert a._keras_mask is vm and getattr(s, "_keras_mask", None) is None
    assert layers.Attention()([q, v])._keras_mask is qm  # the inputs' masks when none is given
    assert layers.TimeDistributed(layers.Dense(2))(q)._keras_mask is qm


def _implicit_masks_model():
    """generate_attention.py's implicit_masks_model, in kerust."""
    ids = keras.Input((5,))
    embedding = layers.Embedding(12, 4, mask_zero=True)
    e1, e2, e3, e4 = (embedding(ids) for _ in range(4))
    fused = layers.MultiHeadAttention(2, 2)(e1, e1)
    out, scores = layers.MultiHeadAttention(2, 3)(e2, e2, return_attention_scores=True, use_causal_mask=True)
    att = layers.Attention(use_scale=True)([e3, e3])
    td = layers.TimeDistributed(layers.Dense(3))(e4)
    pooled = layers.GlobalAveragePooling1D()(fused)
    return keras.Model(ids, [fused, out, scores, att, td, pooled])


def test_implicit_masks_follow_keras(tmp_path):
    # the inputs' Keras masks (Embedding mask_zero): padded query rows attend to every key in the fused path and
    # to nothing where the scores are returned, Attention zeroes them, the pooling skips them
    x = REF["implicit__x"]
    expected = _arrays("implicit__out_")
    model = _implicit_masks_model()
    model.set_weights(_arrays("implicit__w_"))
    loaded = keras.saving.load_model(FIXTURES / "implicit_masks.keras")
    for m in (model, loaded):
        preds = m.predict(x, verbose=0)
        assert len(preds) == len(expected)
        for got, want in zip(preds, expected):
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    model.save(tmp_path / "implicit.keras")
    again = keras.saving.load_model(tmp_path / "implicit.keras")
    for got, want in zip(again.predict(x, verbose=0), expected):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    python = os.environ.get("KERUST_KERAS_PYTHON")
    if not python:
        pytest.skip("Keras is not installed here (test.sh sets KERUST_KERAS_PYTHON to the Keras venv)")
    script = textwrap.dedent(f"""
        import os
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "attention.npz")!r})
        outs = [ref[k] for k in sorted(k for k in ref.files if k.startswith("implicit__out_"))]
        m = keras.saving.load_model({str(tmp_path / "implicit.keras")!r})
        p = m.predict(ref["implicit__x"], verbose=0)
        print(max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(p, outs)))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", script], check=False, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5


def test_dropout_only_in_training():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 4)).astype(np.float32)
    y = rng.normal(size=(4, 3, 4)).astype(np.float32)
    for make in (lambda rate: layers.MultiHeadAttention(2, 3, dropout=rate),
                 lambda rate: layers.Attention(dropout=rate)):
        models = []
        for rate in (0.0, 0.5):
            inp = keras.Input((3, 4))
            layer = make(rate)
            out = layer(inp, inp) if isinstance(layer, layers.MultiHeadAttention) else layer([inp, inp])
            m = keras.Model(inp, out)
            m.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
            models.append(m)
        models[1].set_weights(models[0].get_weights())
        np.testing.assert_allclose(models[1].predict(x, verbose=0), models[0].predict(x, verbose=0), atol=1e-6)
        evaluated = models[1].evaluate(x, y, verbose=0)
        trained = [models[1].train_on_batch(x, y) for _ in range(3)]
        assert all(abs(t - evaluated) > 1e-4 for t in trained)
        assert len({round(t, 6) for t in trained}) > 1  # a new dropout mask every step


def test_time_distributed_applies_one_layer_per_step():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    dense = layers.Dense(2, activation="tanh")
    model = keras.Sequential([keras.Input((4, 5)), layers.TimeDistributed(dense)])
    w, b = dense.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.tanh(x @ w + b), rtol=1e-5, atol=1e-6)
    # eagerly on arrays too, and the same for an attention layer called on arrays
    np.testing.assert_allclose(model.layers[0](x), np.tanh(x @ w + b), rtol=1e-5, atol=1e-6)
    q = keras.Input((4, 5))
    mha = layers.MultiHeadAttention(2, 2)
    sym = keras.Model(q, mha(q, q))
    np.testing.assert_allclose(mha(x, x), sym.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # a Sequential with it trains
    model.compile(optimizer="adam", loss="mse")
    y = rng.normal(size=(3, 4, 2)).astype(np.float32)
    losses = model.fit(x, y, epochs=20, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


def test_time_distributed_model_round_trip(tmp_path):
    # a Sequential as the wrapped layer: Keras's file layout (checked against a file Keras 3.15 wrote for the
    # same model) and back
    inner = keras.Sequential([keras.Input((5,)), layers.Dense(2), layers.Dense(3)])
    model = keras.Sequential([keras.Input((3, 5)), layers.TimeDistributed(inner)])
    x = np.random.default_rng(5).random((4, 3, 5)).astype(np.float32)
    model.save(tmp_path / "td.keras")
    base = "layers/time_distributed/layer/layers"
    assert {p for p, shape in _paths(_h5_of(tmp_path / "td.keras", tmp_path / "h5")) if shape is not None} == {
        f"{base}/dense/vars/0", f"{base}/dense/vars/1", f"{base}/dense_1/vars/0", f"{base}/dense_1/vars/1"}
    again = keras.saving.load_model(tmp_path / "td.keras")
    assert isinstance(again.layers[0].layer, keras.Sequential)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_tiny_transformer_block_trains():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 6, 4)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)[:, None]
    inp = keras.Input((6, 4))
    att = layers.MultiHeadAttention(2, 4)(inp, inp, use_causal_mask=True)
    h = layers.LayerNormalization()(layers.Add()([inp, att]))
    h = layers.TimeDistributed(layers.Dense(8, activation="relu"))(h)
    h = layers.GlobalAveragePooling1D()(h)
    out = layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    losses = model.fit(x, y, epochs=15, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0]


def _paths(h5file) -> set:
    out: set = set()
    with h5py.File(h5file, "r") as f:
        f.visititems(lambda name, obj: out.add((name, getattr(obj, "shape", None))))
    return out


def _h5_of(keras_file: Path, folder: Path) -> Path:
    with zipfile.ZipFile(keras_file) as z:
        z.extract("model.weights.h5", folder)
    return folder / "model.weights.h5"


@pytest.mark.parametrize("name", FILES)
def test_keras_files_move_both_ways(name, tmp_path):
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    spec = json.loads(str(REF[f"{name}__spec"]))
    layer = model.layers[-1]
    assert type(layer) is getattr(layers, spec["class_name"])
    for got, want in zip(_as_list(model.predict(_x(name), verbose=0)), _arrays(f"{name}__out_")):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    model.save(tmp_path / "again.keras")
    # Keras's weight layout, group for group (e.g. layers/multi_head_attention/query_dense/vars/0)
    assert _paths(_h5_of(tmp_path / "again.keras", tmp_path / "k")) == \
        _paths(_h5_of(FIXTURES / f"{name}.keras", tmp_path / "ref"))
    with zipfile.ZipFile(tmp_path / "again.keras") as z:
        written = json.loads(z.read("config.json"))
    with zipfile.ZipFile(FIXTURES / f"{name}.keras") as z:
        original = json.loads(z.read("config.json"))
    entry = [e for e in written["config"]["layers"] if e["class_name"] == spec["class_name"]][0]
    keras_entry = [e for e in original["config"]["layers"] if e["class_name"] == spec["class_name"]][0]
    assert entry["module"] == "keras.layers" and entry["registered_name"] is None
    assert entry["build_config"] == keras_entry["build_config"]
    assert entry["inbound_nodes"] == keras_entry["inbound_nodes"]
    assert set(entry["config"]) == set(keras_entry["config"])
    again = keras.saving.load_model(tmp_path / "again.keras")
    for got, want in zip(_as_list(again.predict(_x(name), verbose=0)), _arrays(f"{name}__out_")):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    python = os.environ.get("KERUST_KERAS_PYTHON")
    if not python:
        pytest.skip("Keras is not installed here (test.sh sets KERUST_KERAS_PYTHON to the Keras venv)")
    script = textwrap.dedent(f"""
        import os
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "attention.npz")!r})
        xs = [ref[k] for k in sorted(k for k in ref.files if k.startswith({name + "__x_"!r}))]
        outs = [ref[k] for k in sorted(k for k in ref.files if k.startswith({name + "__out_"!r}))]
        m = keras.saving.load_model({str(tmp_path / "again.keras")!r})
        p = m.predict(xs[0] if len(xs) == 1 else xs, verbose=0)
        p = p if isinstance(p, list) else [p]
        print(type(m.layers[-1]).__name__, max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(p, outs)))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", script], check=False, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    cls, err = done.stdout.strip().splitlines()[-1].split()
    assert cls == spec["class_name"] and float(err) < 1e-5


def test_configs_round_trip():
    mha = layers.MultiHeadAttention(3, 2, value_dim=4, dropout=0.1, output_shape=6, attention_axes=1,
                                    kernel_initializer="he_normal", seed=5, name="m")
    cfg = mha.get_config()
    assert cfg["value_dim"] == 4 and cfg["output_shape"] == [6] and cfg["attention_axes"] == [1]
    again = layers.MultiHeadAttention.from_config(cfg)
    assert again.get_config() == cfg
    for layer in (layers.Attention(use_scale=True, score_mode="concat", dropout=0.2, seed=3),
                  layers.AdditiveAttention(use_scale=False)):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    assert "score_mode" not in layers.AdditiveAttention().get_config()
    td = layers.TimeDistributed(layers.Dense(3, activation="relu", name="d"))
    cfg = td.get_config()
    assert cfg["layer"]["class_name"] == "Dense" and cfg["layer"]["module"] == "keras.layers"
    back = layers.TimeDistributed.from_config(cfg)
    assert isinstance(back.layer, layers.Dense) and back.layer.units == 3 and back.layer.name == "d"
    # a functional model through JSON: the calls' keyword arguments come back
    q, v, m = keras.Input((3, 4)), keras.Input((5, 4)), keras.Input((3, 5))
    out, scores = layers.MultiHeadAttention(2, 2)(q, v, attention_mask=m, return_attention_scores=True)
    a = layers.Attention()([q, v], use_causal_mask=True)
    model = keras.Model([q, v, m], [out, scores, a, layers.TimeDistributed(layers.Dense(2))(q)])
    rebuilt = keras.models.model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), (rng.uniform(size=(2, 3, 5)) > 0.3) * 1.0]
    xs[2][..., 0] = 1.0
    for got, want in zip(rebuilt.predict(xs, verbose=0), model.predict(xs, verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_bad_input_is_named():
    q, v = keras.Input((3, 4)), keras.Input((5, 6))
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 2)
    with pytest.raises(ValueError, match="key_dim"):
        layers.MultiHeadAttention(2, 2.5)
    with pytest.raises(ValueError, match="use_gate"):
        layers.MultiHeadAttention(2, 2, use_gate=True)
    with pytest.raises(TypeError, match="value"):
        layers.MultiHeadAttention(2, 2)(q)
    with pytest.raises(ValueError, match=r"value_shape=\(None, 5, 6\) and key_shape=\(None, 4, 6\)"):
        layers.MultiHeadAttention(2, 2)(q, v, key=keras.Input((4, 6)))
    with pytest.raises(ValueError, match=r"attention_mask.*\(None, 3, 4\).*\(None, 3, 5\)"):
        layers.MultiHeadAttention(2, 2)(q, v, attention_mask=keras.Input((3, 4)))
    with pytest.raises(ValueError, match="same rank"):
        layers.MultiHeadAttention(2, 2)(q, keras.Input((2, 5, 6)))
    built = layers.MultiHeadAttention(2, 2)
    built(q, v)
    with pytest.raises(ValueError, match=r"`query` of shape \(None, 3, 7\).*\(None, 3, 4\)"):
        built(keras.Input((3, 7)), v)
    with pytest.raises(ValueError, match=r"`value` of shape \(None, 5, 2\).*\(None, 5, 6\)"):
        built(q, keras.Input((5, 2)))
    additive = layers.AdditiveAttention()
    additive([q, q])
    with pytest.raises(ValueError, match=r"must be 4.*\(None, 3, 3\)"):
        additive([keras.Input((3, 3)), keras.Input((5, 3))])
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Attention()(q)
    with pytest.raises(ValueError, match="length 2 or 3"):
        layers.Attention()([q])
    with pytest.raises(ValueError, match=r"last dimension.*\(None, 3, 4\).*\(None, 5, 6\)"):
        layers.Attention()([q, v])
    with pytest.raises(ValueError, match=r"last dimension.*\(None, 3, 4\).*\(None, 5, 6\)"):
        layers.AdditiveAttention()([q, v])
    with pytest.raises(ValueError, match="mask must be a list"):
        layers.Attention()([q, q], mask=keras.Input((3,)))
    with pytest.raises(ValueError, match=r"value mask.*\(None, 3\).*\(None, 4\)"):
        layers.Attention()([q, q], mask=[None, keras.Input((4,))])
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="add")
    with pytest.raises(ValueError, match="keras.layers.Layer"):
        layers.TimeDistributed("dense")
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        layers.TimeDistributed(layers.Dense(2))(keras.Input((4,)))
    with pytest.raises(ValueError, match="wrapped LSTM"):
        layers.TimeDistributed(layers.LSTM(2))(keras.Input((3, 4, 2)), mask=keras.Input((3,)))
    with pytest.raises(ValueError, match=r"mask.*\(None, 4\).*\(None, 3, 4\)"):
        layers.TimeDistributed(layers.Dense(2))(q, mask=keras.Input((4,)))
    # a mask the wrapped layer does not take is left alone, as in Keras
    td = layers.TimeDistributed(layers.Dense(2))
    masked = keras.Model([q, m := keras.Input((3,))], td(q, mask=m))
    plain = keras.Model(q, td(q))
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(masked.predict([x, np.zeros((2, 3), np.float32)], verbose=0),
                                  plain.predict(x, verbose=0))

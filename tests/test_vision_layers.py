"""ZeroPadding2D/3D, Cropping2D/3D, UpSampling2D/3D, UnitNormalization, GroupNormalization, ActivityRegularization,
GaussianDropout, AlphaDropout and ``kerust.activations`` against real Keras.

The reference values come from Keras 3.15.1 (JAX backend), written by
``tests/reference/vision/generate_vision.py`` into ``vision.npz``: for each layer and activation case its input,
weights, inference output and the gradients of ``sum(output * R)`` w.r.t. the input and every weight. kerust's
gradients are observed through the public API with a "sandwich" model (as ``test_reference.py`` does)::

    Input((B,)) -> Dense(n_in, no bias, kernel = x.reshape(B, n_in)) -> Reshape -> LAYER -> Flatten
                -> Dense(B, no bias, kernel = R.reshape(B, n_out).T)

fed ``eye(B)`` (the first Dense outputs ``x`` exactly) with the linear loss ``sum_over_batch_size(y_true *
y_pred)`` against ``y_true = C * B**2 * eye(B)``, so that ``dLoss/doutput = C * eye(B)``; one step of
``SGD(1.0)`` then moves the first kernel by ``C * df/dx``, the layer's weights by ``C * df/dw`` and the last
kernel by ``C * output.T`` (the layer's training-mode output). Backpropagation is also checked by finite
differences, and two models Keras saved (``vision_seq.keras``, ``vision_3d.keras``) move both ways.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import kerust as keras
import numpy as np
import pytest
from kerust import _vision_layers, activations, layers
from layer_reference import C, ReferenceCases
from layer_reference import close as _close
from layer_reference import h5_paths as _h5_paths, keras_entries as _entries, run_keras as _run_keras
from layer_reference import sandwich as _sandwich

FIXTURES = Path(__file__).resolve().parent / "reference" / "vision"
REF = np.load(FIXTURES / "vision.npz")
CASES = sorted({k.split("__")[0] for k in REF.files if k.endswith("__spec")})
LAYER_CASES = [c for c in CASES if not c.startswith("act_")]
ACT_CASES = [c for c in CASES if c.startswith("act_")]
RANDOM = ("gaussian_dropout", "alpha_dropout")  # training noise differs between frameworks: checked by its laws
ROOT = Path(__file__).resolve().parents[1]


_CASES = ReferenceCases(REF)
_spec, _weights, _layer = _CASES.spec, _CASES.weights, _CASES.layer


# ---- values and gradients against Keras -----------------------------------------------------------------------
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_output_matches_keras(case):
    x = REF[f"{case}__x"]
    layer = _layer(case)
    inp = keras.Input(x.shape[1:])
    out = layer(inp)
    model = keras.Model(inp, out)
    if _weights(case):
        model.set_weights(_weights(case))
    assert out.shape == (None, *REF[f"{case}__y"].shape[1:])
    assert layer.compute_output_shape((None, *x.shape[1:])) == out.shape
    _close(model.predict(x, verbose=0), REF[f"{case}__y"], f"{case} output")
    _close(layer(x), REF[f"{case}__y"], f"{case} eager output")  # called on an array: the same weights
    assert [w.name for w in model.weights] == _spec(case)["weights"]


@pytest.mark.parametrize("case", [c for c in LAYER_CASES if c not in RANDOM and c != "actreg"])
def test_layer_gradients_match_keras(case):
    y, gx, gw = _sandwich(lambda: _layer(case), REF[f"{case}__x"], REF[f"{case}__R"], _weights(case))
    _close(y, REF[f"{case}__y"], f"{case} training-mode output")
    _close(gx, REF[f"{case}__gx"], f"{case} d/d input")
    assert len(gw) == len(_weights(case))
    for i, g in enumerate(gw):
        _close(g, REF[f"{case}__gw_{i:02d}"], f"{case} d/d weight {i}")


@pytest.mark.parametrize("case", ["crop2d_pairs", "crop3d", "zp2d_pairs", "up2d_nearest", "up2d_bilinear",
                                  "up2d_bilinear_cf", "groupnorm", "unitnorm_axes"])
def test_gradients_for_a_batch_of_one(case):
    # the layers act on each sample alone: the first sample's input gradient is Keras's first row (the engine's
    # ops must not special-case a batch of one)
    x, R = REF[f"{case}__x"][:1], REF[f"{case}__R"][:1]
    y, gx, _ = _sandwich(lambda: _layer(case), x, R, _weights(case))
    _close(y, REF[f"{case}__y"][:1], f"{case} training-mode output")
    _close(gx, REF[f"{case}__gx"][:1], f"{case} d/d input")


def _act_fn(case: str, shift_axis: bool = False):
    spec = _spec(case)
    fn = getattr(activations, spec["function"])
    args = dict(spec["args"])
    if shift_axis and args.get("axis", -1) >= 0:  # the sample (4, 8) sits after the batch axis in the model
        args["axis"] += 1
    return lambda t: fn(t, **args)


@pytest.mark.parametrize("case", ACT_CASES)
def test_activation_values_and_gradients_match_keras(case):
    x, R = REF[f"{case}__x"], REF[f"{case}__R"]
    _close(_act_fn(case)(x), REF[f"{case}__y"], f"{case} eager")
    # traced into a model (one sample of shape (4, 8)): the same values, and the gradient Keras's jax.grad gives
    y, gx, _ = _sandwich(lambda: layers.Lambda(_act_fn(case, shift_axis=True)), x[None], R[None], [])
    _close(y[0], REF[f"{case}__y"], f"{case} traced")
    _close(gx[0], REF[f"{case}__gx"], f"{case} d/d input")


ENGINE_ACT_CASES = [c for c in ACT_CASES if _spec(c)["function"] in activations.ENGINE_NAMES
                    and all(k == "axis" and v in (-1, 1) for k, v in _spec(c)["args"].items())]


def test_every_engine_activation_has_a_keras_case():
    covered = {_spec(c)["function"] for c in ENGINE_ACT_CASES}
    aliases = {"swish", "hard_swish", "linear"}
    assert set(activations.ENGINE_NAMES) - covered <= aliases


@pytest.mark.parametrize("case", ENGINE_ACT_CASES)
def test_engine_activation_layer_matches_keras_values_and_gradients(case):
    """The same Keras references, computed by the engine's own kernel (src/activations.rs) as an `Activation`
    layer and as a Dense layer's activation: forward values and d/d input within 1e-5."""
    name = _spec(case)["function"]
    x, R = REF[f"{case}__x"], REF[f"{case}__R"]  # (4, 8): the activation runs over the last axis
    y, gx, _ = _sandwich(lambda: layers.Activation(name), x[None], R[None], [])
    _close(y[0], REF[f"{case}__y"], f"{case} engine Activation")
    _close(gx[0], REF[f"{case}__gx"], f"{case} engine Activation d/d input")
    dense = keras.Sequential([keras.Input((8,)), layers.Dense(8, activation=name)])
    w, b = dense.get_weights()
    dense.set_weights([np.eye(8, dtype=np.float32), np.zeros_like(b)])
    _close(dense.predict(x, verbose=0), REF[f"{case}__y"], f"{case} in Dense")


def test_activity_regularization_adds_keras_loss():
    x, t = REF["actreg__x"], REF["actreg__t"]
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, layers.ActivityRegularization(l1=0.01, l2=0.02)(inp))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    loss = model.evaluate(x, t, batch_size=x.shape[0], verbose=0)
    assert loss == pytest.approx(float(REF["actreg__loss"]), rel=1e-6)
    # by hand: mse plus the penalty over the batch size
    penalty = (0.01 * np.abs(x).sum() + 0.02 * np.square(x).sum()) / x.shape[0]
    assert loss == pytest.approx(float(np.mean((x - t) ** 2)) + penalty, rel=1e-6)
    # its gradient: d/dx of sum(x * R) plus the penalty's, through the sandwich
    y, gx, _ = _sandwich(lambda: layers.ActivityRegularization(l1=0.01, l2=0.02), x, REF["actreg__R"], [])
    _close(y, x, "actreg output")
    b = x.shape[0]
    # the sandwich's loss weighs the penalty by 1 (not C): its gradient shows up divided by C
    expected = REF["actreg__gx"] + (0.01 * np.sign(x) + 0.04 * x) / b / C
    _close(gx, expected, "actreg d/d input", tol=1e-6)


def test_finite_differences(fd_check):
    rng = np.random.default_rng(0)
    # GroupNormalization's gamma and beta and a Dense before the shape layers, through every traced op
    inp = keras.Input((3, 4, 2))
    h = layers.Dense(4)(inp)
    h = layers.ZeroPadding2D(((1, 0), (0, 1)))(h)
    h = layers.Cropping2D(((0, 1), (1, 0)))(h)
    h = layers.UpSampling2D((2, 1), interpolation="bilinear")(h)
    h = layers.GroupNormalization(2, gamma_initializer="random_normal", beta_initializer="random_normal")(h)
    h = layers.UnitNormalization(axis=[1, 3])(h)
    h = layers.ActivityRegularization(l1=0.01, l2=0.05)(h)
    h = layers.Lambda(lambda t: activations.mish(t) + activations.log_softmax(t) + activations.hard_silu(t))(h)
    out = layers.Dense(2)(layers.Flatten()(h))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x = rng.normal(size=(3, 3, 4, 2)).astype(np.float32)
    y = rng.normal(size=(3, 2)).astype(np.float32)
    fd_check(model, x, y, h=1e-2, rtol=3e-2, atol=3e-4, indices=[0, 1, 2, 3])


# ---- the training-only layers ---------------------------------------------------------------------------------
def test_gaussian_dropout_noise_follows_keras_law():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1.5, size=(4, 600)).astype(np.float32)
    R = rng.normal(size=x.shape).astype(np.float32)
    y, gx, _ = _sandwich(lambda: layers.GaussianDropout(0.3), x, R, [])
    noise = y / x
    _close(gx, R * noise, "the same noise forward and backward", tol=1e-4)
    se = np.sqrt(0.3 / 0.7) / np.sqrt(noise.size)
    assert abs(noise.mean() - 1.0) < 5 * se
    assert abs(noise.std() - np.sqrt(0.3 / 0.7)) < 0.06 * np.sqrt(0.3 / 0.7)
    # inference: the identity
    layer = layers.GaussianDropout(0.3)
    np.testing.assert_array_equal(layer(x), x)


def test_alpha_dropout_follows_keras_formula():
    rate = 0.25
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 50, 12)).astype(np.float32)
    R = rng.normal(size=x.shape).astype(np.float32)
    y, gx, _ = _sandwich(lambda: layers.AlphaDropout(rate, noise_shape=[None, 1, 12]), x, R, [])
    kept = np.abs(gx) > 0
    np.testing.assert_allclose(gx[kept], (a * R)[kept], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(y[kept], (a * x + b)[kept], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y[~kept], a * alpha_p + b, rtol=1e-4, atol=1e-5)
    assert (kept == kept[:, :1, :]).all()  # noise_shape (None, 1, 12): one mask for every step
    assert 0.1 < 1 - kept[:, 0, :].mean() < 0.45
    layer = layers.AlphaDropout(rate)
    np.testing.assert_array_equal(layer(x), x)


def test_noise_is_seeded_by_the_model_seed_and_new_every_step():
    x = np.random.default_rng(3).normal(size=(8, 6)).astype(np.float32)

    def run(seed: int) -> list:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((6,)), layers.Dense(6), layers.GaussianDropout(0.4),
                                  layers.AlphaDropout(0.2), layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        evaluated = model.evaluate(x, x[:, :1], verbose=0)
        return [evaluated] + [model.train_on_batch(x, x[:, :1]) for _ in range(3)]

    first, again, other = run(5), run(5), run(6)
    assert first == again
    assert first != other
    assert len({round(v, 6) for v in first[1:]}) == 3  # new noise at every step
    assert all(abs(v - first[0]) > 1e-5 for v in first[1:])  # inference has none


# ---- masks ----------------------------------------------------------------------------------------------------
def test_masks_pass_through_the_layers_that_support_them():
    h = layers.Embedding(7, 4, mask_zero=True)(keras.Input((5,)))
    assert layers.GroupNormalization(2)(h)._keras_mask is not None
    # layers that act per step in inference: the LSTM after them skips the padded steps, so a padded sequence
    # gives what the unpadded one gives (through the same layers)
    chain = [layers.Embedding(7, 4, mask_zero=True), layers.UnitNormalization(), layers.GaussianDropout(0.1),
             layers.AlphaDropout(0.1), layers.ActivityRegularization(0.1), layers.LSTM(3)]

    def model_for(steps: int):
        inp = keras.Input((steps,))
        t = inp
        for layer in chain:
            t = layer(t)
            if layer is not chain[-1]:
                assert t._keras_mask is not None, type(layer).__name__
        return keras.Model(inp, t)

    padded = model_for(5).predict(np.array([[1, 2, 3, 0, 0]]), verbose=0)
    short = model_for(3).predict(np.array([[1, 2, 3]]), verbose=0)
    np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-6)
    assert np.abs(padded).max() > 1e-3


# ---- files ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,key", [("vision_seq", "vision"), ("vision_3d", "vision3d")])
def test_keras_files_move_both_ways(name, key, tmp_path):
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    _close(model.predict(REF[f"{key}__x"], verbose=0), REF[f"{key}__y"], f"{name} loaded")
    model.save(tmp_path / "again.keras")
    assert _h5_paths(tmp_path / "again.keras", tmp_path / "a") == _h5_paths(FIXTURES / f"{name}.keras",
                                                                            tmp_path / "b")
    ours, theirs = _entries(tmp_path / "again.keras"), _entries(FIXTURES / f"{name}.keras")
    assert [e["class_name"] for e in ours] == [e["class_name"] for e in theirs]
    mine = {cls.__name__ for cls in _vision_layers.CLASSES}
    checked = 0
    for a, b in zip(ours, theirs):
        if a["class_name"] in mine:
            checked += 1
            assert a["module"] == b["module"] == "keras.layers" and a["registered_name"] is None
            assert a["config"] == b["config"], a["class_name"]
            assert a.get("build_config") == b.get("build_config"), a["class_name"]
            assert a.get("inbound_nodes") == b.get("inbound_nodes"), a["class_name"]
    assert checked >= 4
    again = keras.saving.load_model(tmp_path / "again.keras")
    _close(again.predict(REF[f"{key}__x"], verbose=0), REF[f"{key}__y"], f"{name} reloaded")
    # real Keras reads kerust's file
    python = os.environ.get("KERUST_KERAS_PYTHON")
    assert python, "KERUST_KERAS_PYTHON must name the Keras venv's python (test.sh sets it)"
    script = textwrap.dedent(f"""
        import os
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "vision.npz")!r})
        m = keras.saving.load_model({str(tmp_path / "again.keras")!r})
        print(float(np.abs(m.predict(ref[{key + "__x"!r}], verbose=0) - ref[{key + "__y"!r}]).max()))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", script], check=False, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5


def test_kerust_models_round_trip_and_configs(tmp_path):
    rng = np.random.default_rng(4)
    made = [layers.ZeroPadding2D((1, 2), data_format="channels_first"), layers.Cropping2D(((1, 0), (0, 1)),
            data_format="channels_first"), layers.UpSampling2D((1, 2), interpolation="bicubic",
            data_format="channels_first"), layers.GroupNormalization(2, axis=1, epsilon=0.01, center=False,
            gamma_regularizer="l2", gamma_initializer="random_normal"), layers.UnitNormalization(axis=[2, 3]),
            layers.ActivityRegularization(l2=0.1), layers.GaussianDropout(0.1, seed=4),
            layers.AlphaDropout(0.2, noise_shape=[None, 4, 1, 1], seed=2)]
    for layer in made:
        cfg = layer.get_config()
        again = type(layer).from_config(cfg)
        assert again.get_config() == cfg
        assert layers.deserialize(layers.serialize(layer)).get_config() == cfg
    model = keras.Sequential([keras.Input((4, 3, 2)), *made])
    x = rng.normal(size=(2, 4, 3, 2)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert [type(a) for a in back.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in back.layers] == [b.get_config() for b in model.layers]
    rebuilt = keras.models.model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    # the gamma regularizer joins the loss
    model.compile(optimizer="sgd", loss="mse")
    pred = model.predict(x, verbose=0)
    gamma = model.layers[3].get_weights()[0]
    penalty = 0.01 * np.sum(gamma ** 2) + 0.1 * np.sum(pred ** 2) / 2
    assert model.evaluate(x, np.zeros_like(pred), verbose=0) == pytest.approx(np.mean(pred ** 2) + penalty,
                                                                            rel=1e-5)


def test_configs_match_keras():
    for case in LAYER_CASES:
        cfg = _layer(case).get_config()
        keras_cfg = dict(_spec(case)["config"])
        cfg.pop("dtype")
        cfg.pop("name")
        keras_cfg.pop("name")
        if _spec(case)["class_name"] == "GroupNormalization":  # initializers: names here, Keras's dicts in files
            assert (cfg.pop("beta_initializer"), cfg.pop("gamma_initializer")) == ("zeros", "ones")
            assert keras_cfg.pop("beta_initializer")["class_name"] == "Zeros"
            assert keras_cfg.pop("gamma_initializer")["class_name"] == "Ones"
            if cfg["groups"] == -1:  # Keras's config after build holds the channel count
                cfg["groups"] = keras_cfg["groups"]
        assert cfg == keras_cfg, case


# ---- kerust.activations ---------------------------------------------------------------------------------------
KERAS_ACTIVATIONS = {
    "relu", "leaky_relu", "relu6", "softmax", "celu", "elu", "selu", "softplus", "softsign", "squareplus",
    "soft_shrink", "sparse_plus", "silu", "gelu", "glu", "tanh", "tanh_shrink", "threshold", "sigmoid",
    "sparse_sigmoid", "exponential", "hard_sigmoid", "hard_silu", "hard_tanh", "hard_shrink", "linear", "mish",
    "log_softmax", "log_sigmoid", "sparsemax", "swish", "hard_swish"}  # Keras 3.15's ALL_OBJECTS_DICT


def test_activations_module_has_every_keras_name():
    assert set(activations.ALL_OBJECTS_DICT) == KERAS_ACTIVATIONS
    assert keras.activations is activations
    for name in KERAS_ACTIVATIONS:
        fn = activations.get(name)
        assert fn is getattr(activations, name)
        assert activations.deserialize(activations.serialize(fn)) is fn
        assert activations.get({"module": "keras.activations", "class_name": "function", "config": name,
                                "registered_name": name}) is fn
    assert activations.serialize(activations.hard_swish) == "hard_silu"
    assert activations.get(None) is activations.linear
    custom = activations.get(np.tanh)
    assert custom is np.tanh
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: nope"):
        activations.get("nope")
    with pytest.raises(ValueError, match="cannot be serialized"):
        activations.serialize(lambda t: t)
    # the engine's own names, as src/activations.rs lists them
    text = (ROOT / "src" / "activations.rs").read_text()
    block = re.search(r"pub const NAMES: &\[&str\] = &\[(.*?)\];", text, re.S)
    assert block is not None
    assert tuple(re.findall(r'"([^"]*)"', block.group(1))) == activations.ENGINE_NAMES


def test_engine_layers_take_engine_names_and_refuse_others_by_name():
    x = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    for fn in (activations.relu, activations.gelu, activations.hard_sigmoid):
        dense = layers.Dense(2, activation=fn)
        assert dense.activation == fn.__name__
        model = keras.Sequential([keras.Input((4,)), dense])
        w, b = dense.get_weights()
        np.testing.assert_allclose(model.predict(x, verbose=0), fn(x @ w + b), rtol=1e-5, atol=1e-6)
    for name in ("glu", "threshold"):  # the two that the engine's layers do not compute
        with pytest.raises(ValueError, match=rf"Dense '.*': Unknown activation: '{name}'. Expected one of: linear"):
            layers.Dense(2, activation=name)
        with pytest.raises(ValueError, match=rf"Unknown activation: '{name}'"):
            layers.Activation(getattr(activations, name))
    for fn in (activations.mish, activations.log_softmax, activations.hard_silu, activations.sparsemax):
        model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation=fn)])
        w, b = model.get_weights()
        np.testing.assert_allclose(model.predict(x, verbose=0), fn(x @ w + b), rtol=1e-5, atol=1e-6)
    # through the traced path they work anywhere: a Lambda after the layer
    inp = keras.Input((4,))
    model = keras.Model(inp, layers.Lambda(activations.mish)(layers.Dense(2)(inp)))
    w, b = model.get_weights()
    z = x @ w + b
    np.testing.assert_allclose(model.predict(x, verbose=0), z * np.tanh(np.log1p(np.exp(z))), rtol=1e-5,
                               atol=1e-6)



def test_lambda_of_an_activation_moves_both_ways(tmp_path):
    # Keras writes a Lambda of one of its activations as {"module": "builtins", "config": name}: so does kerust
    x = np.random.default_rng(6).normal(size=(2, 3)).astype(np.float32)
    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Lambda(activations.mish)(layers.Dense(4)(inp)))
    model.save(tmp_path / "ours.keras")
    np.save(tmp_path / "x.npy", x)
    back = keras.saving.load_model(tmp_path / "ours.keras")
    assert back.layers[-1].function is activations.mish
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    out = _run_keras(f"""
        import numpy as np, keras
        x = np.load({str(tmp_path / "x.npy")!r})
        m = keras.saving.load_model({str(tmp_path / "ours.keras")!r})
        np.save({str(tmp_path / "keras_pred.npy")!r}, m.predict(x, verbose=0))
        inp = keras.Input((3,))
        k = keras.Model(inp, keras.layers.Lambda(keras.activations.log_softmax)(keras.layers.Dense(4)(inp)))
        k.save({str(tmp_path / "theirs.keras")!r})
        np.save({str(tmp_path / "theirs_pred.npy")!r}, k.predict(x, verbose=0))
        print("ok")
    """)
    assert out.strip().endswith("ok")
    np.testing.assert_allclose(np.load(tmp_path / "keras_pred.npy"), model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    theirs = keras.saving.load_model(tmp_path / "theirs.keras")
    assert theirs.layers[-1].function is activations.log_softmax
    np.testing.assert_allclose(theirs.predict(x, verbose=0), np.load(tmp_path / "theirs_pred.npy"), rtol=1e-5,
                               atol=1e-6)


def test_glu_and_sparsemax_shapes():
    x = np.arange(12, dtype=np.float32).reshape(2, 6) / 5
    assert activations.glu(x).shape == (2, 3)
    with pytest.raises(ValueError, match="glu: the size of axis -1 must be even"):
        activations.glu(x[:, :5])
    s = activations.sparsemax(x)
    assert s.shape == x.shape and (s >= 0).all()


# ---- bad input ------------------------------------------------------------------------------------------------
def test_bad_arguments_raise_keras_errors():
    with pytest.raises(ValueError, match=r"`padding` should have two elements"):
        layers.ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match=r"The `1st entry of padding` argument must be a tuple of 2 integers"):
        layers.ZeroPadding2D(((1, -1), (0, 0)))
    with pytest.raises(ValueError, match=r"ZeroPadding2D 'zp': `padding` should be either an int"):
        layers.ZeroPadding2D(1.5, name="zp")
    with pytest.raises(ValueError, match=r"`padding` should have 3 elements"):
        layers.ZeroPadding3D((1, 2))
    with pytest.raises(ValueError, match=r"`cropping` cannot be negative. Received: cropping=-1"):
        layers.Cropping2D(-1)
    with pytest.raises(ValueError, match=r"The `2nd entry of cropping` argument must be a tuple of 2 integers"):
        layers.Cropping2D(((1, 1), (1, 2, 3)))
    with pytest.raises(ValueError, match=r"The `data_format` argument must be one of"):
        layers.ZeroPadding2D(data_format="channels_middle")
    with pytest.raises(ValueError, match=r"The `size` argument must be a tuple of 2 integers.*value > 0"):
        layers.UpSampling2D((0, 2))
    with pytest.raises(ValueError, match=r"The `size` argument must be a tuple of 3 integers"):
        layers.UpSampling3D((2, 2))
    with pytest.raises(ValueError, match=r"UpSampling2D 'up': invalid value for argument `interpolation`. Expected "
                                         r"one of .*Received: interpolation='area'"):
        layers.UpSampling2D(interpolation="area", name="up")
    with pytest.raises(TypeError, match=r"Invalid value for `axis` argument"):
        layers.UnitNormalization(axis=1.5)
    with pytest.raises(ValueError, match=r"invalid value for argument `groups`.*Received: groups=0"):
        layers.GroupNormalization(0)
    with pytest.raises(ValueError, match=r"GroupNormalization 'g': `gamma_constraint` is not supported"):
        layers.GroupNormalization(2, gamma_constraint="non_neg", name="g")
    with pytest.raises(ValueError, match=r"GroupNormalization 'g2': `epsilon` must be a positive number"):
        layers.GroupNormalization(2, epsilon=-1.0, name="g2")
    with pytest.raises(ValueError, match=r"Invalid value for argument l1: expected a non-negative float"):
        layers.ActivityRegularization(l1=-0.1)
    for cls in (layers.GaussianDropout, layers.AlphaDropout):
        with pytest.raises(ValueError, match=r"Invalid value received for argument `rate`.*Received: rate=1.5"):
            cls(1.5)
    with pytest.raises(ValueError, match=r"AlphaDropout 'ad': `noise_shape` must be a list of positive ints"):
        layers.AlphaDropout(0.1, noise_shape=[None, -1], name="ad")
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to ZeroPadding2D"):
        layers.ZeroPadding2D(pading=1)


def test_bad_inputs_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Input 0 of layer 'zp3' is incompatible with the layer: expected ndim=4, "
                                         r"found ndim=3. Full shape received: \(None, 3, 4\)"):
        layers.ZeroPadding2D(name="zp3")(keras.Input((3, 4)))
    with pytest.raises(ValueError, match=r"expected ndim=5, found ndim=4"):
        layers.UpSampling3D()(keras.Input((3, 4, 2)))
    with pytest.raises(ValueError, match=r"Values in `cropping` argument should be smaller than the corresponding "
                                         r"spatial dimension of the input. Received: input_shape=\(None, 3, 4, 2\)"):
        layers.Cropping2D(((2, 1), (0, 0)))(keras.Input((3, 4, 2)))
    with pytest.raises(ValueError, match=r"Number of groups \(3\) must be a multiple of the number of channels \(4\)"):
        layers.GroupNormalization(3)(keras.Input((5, 4)))
    with pytest.raises(ValueError, match=r"Number of groups \(8\) cannot be more than the number of channels \(4\)"):
        layers.GroupNormalization(8)(keras.Input((5, 4)))
    with pytest.raises(ValueError, match=r"Axis 3 is out of bounds for input shape \(None, 5, 4\)"):
        layers.UnitNormalization(axis=3)(keras.Input((5, 4)))
    gn = layers.GroupNormalization(2, name="gn_shared")
    gn(keras.Input((5, 4)))
    with pytest.raises(ValueError, match=r"layer 'gn_shared' is incompatible with the layer: expected axis -1 of "
                                         r"input shape to have value 4"):
        gn(keras.Input((5, 6)))
    with pytest.raises(ValueError, match=r"AlphaDropout 'ad2': `noise_shape` \[None, 2\] does not fit the input"):
        layers.AlphaDropout(0.1, noise_shape=[None, 2], name="ad2")(keras.Input((3,)))
    with pytest.raises(ValueError, match=r"Layer 'up2' expects 1 input\(s\), but it received 2 input tensors"):
        layers.UpSampling2D(name="up2")([keras.Input((2, 2, 1)), keras.Input((2, 2, 1))])

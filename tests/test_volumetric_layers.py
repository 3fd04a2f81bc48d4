"""Conv3D, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D and SpatialDropout3D against
real Keras.

The reference values come from Keras 3.15.1 (JAX backend), written by
``tests/reference/volumetric/generate_volumetric.py`` into ``volumetric.npz``: for each layer case its input,
weights, inference output and the gradients of ``sum(output * R)`` w.r.t. the input and every weight
(``jax.grad``). kerust's gradients are observed through the public API with the "sandwich" model of
``tests/test_vision_layers.py``::

    Input((B,)) -> Dense(n_in, no bias, kernel = x.reshape(B, n_in)) -> Reshape -> LAYER -> Flatten
                -> Dense(B, no bias, kernel = R.reshape(B, n_out).T)

fed ``eye(B)`` with the linear loss ``y_true * y_pred`` against ``y_true = C * B**2 * eye(B)``: one step of
``SGD(1.0)`` moves the first kernel by ``C * df/dx``, the layer's weights by ``C * df/dw`` and the last kernel by
``C * output.T``. Backpropagation is also checked by finite differences, two models Keras saved
(``volumetric_seq.keras``, ``volumetric_fn.keras``) move both ways, and a kerust model moves to Keras.
"""

from __future__ import annotations

from pathlib import Path

import kerust as keras
import numpy as np
import pytest
from kerust import _volumetric_layers, layers
from layer_reference import ReferenceCases
from layer_reference import close as _close
from layer_reference import h5_paths as _h5_paths, keras_entries as _entries, run_keras as _run_keras
from layer_reference import sandwich as _sandwich

FIXTURES = Path(__file__).resolve().parent / "reference" / "volumetric"
REF = np.load(FIXTURES / "volumetric.npz")
CASES = sorted({k.split("__")[0] for k in REF.files if k.endswith("__spec")})
RANDOM = ("sdrop", "sdrop_cf")  # training noise differs between frameworks: checked by its law


_CASES = ReferenceCases(REF)
_spec, _weights, _layer = _CASES.spec, _CASES.weights, _CASES.layer



def test_the_fixture_covers_every_layer_and_argument():
    classes = {_spec(c)["class_name"] for c in CASES}
    assert classes == {cls.__name__ for cls in _volumetric_layers.CLASSES}
    conv = [_spec(c)["config"] for c in CASES if _spec(c)["class_name"] == "Conv3D"]
    assert {c["padding"] for c in conv} == {"valid", "same"}
    assert any(max(c["strides"]) > 1 for c in conv) and any(max(c["dilation_rate"]) > 1 for c in conv)
    assert {c["groups"] for c in conv} >= {1, 2, 3} and any(not c["use_bias"] for c in conv)
    assert any(REF[f"{c}__x"].shape[0] > 2 for c in CASES)


# ---- values and gradients against Keras -----------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
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
    assert [w.shape for w in model.get_weights()] == [w.shape for w in _weights(case)]


@pytest.mark.parametrize("case", [c for c in CASES if c not in RANDOM])
def test_layer_gradients_match_keras(case):
    y, gx, gw = _sandwich(lambda: _layer(case), REF[f"{case}__x"], REF[f"{case}__R"], _weights(case))
    _close(y, REF[f"{case}__y"], f"{case} training-mode output")
    _close(gx, REF[f"{case}__gx"], f"{case} d/d input")
    assert np.abs(gx).max() > 1e-3
    assert len(gw) == len(_weights(case))
    for i, g in enumerate(gw):
        _close(g, REF[f"{case}__gw_{i:02d}"], f"{case} d/d weight {i}")


@pytest.mark.parametrize("case", ["conv_same_strides", "conv_groups", "max_same_strides", "avg_same", "gmp"])
def test_gradients_for_a_batch_of_one(case):
    # each sample is computed alone: the first sample's input gradient is Keras's first row
    x, R = REF[f"{case}__x"][:1], REF[f"{case}__R"][:1]
    y, gx, gw = _sandwich(lambda: _layer(case), x, R, _weights(case))
    _close(y, REF[f"{case}__y"][:1], f"{case} training-mode output")
    _close(gx, REF[f"{case}__gx"][:1], f"{case} d/d input")


def test_configs_match_keras():
    names = {"glorot_uniform": "GlorotUniform", "zeros": "Zeros"}
    for case in CASES:
        cfg = _layer(case).get_config()
        keras_cfg = dict(_spec(case)["config"])
        cfg.pop("dtype")
        cfg.pop("name")
        keras_cfg.pop("name")
        if _spec(case)["class_name"] == "Conv3D":  # initializers: names here, Keras's dicts in files
            for key in ("kernel_initializer", "bias_initializer"):
                assert keras_cfg.pop(key)["class_name"] == names[cfg.pop(key)]
        assert cfg == keras_cfg, case


def test_same_padding_splits_as_keras():
    # total padding (o - 1) * s + (k - 1) * d + 1 - n, the smaller half before
    geometry = _volumetric_layers._geometry
    assert geometry(5, 3, 2, 1, "same") == (3, 1, 1)
    assert geometry(4, 2, 1, 1, "same") == (4, 0, 1)
    assert geometry(5, 2, 1, 2, "same") == (5, 1, 1)
    assert geometry(4, 3, 2, 1, "same") == (2, 0, 1)
    assert geometry(5, 3, 2, 1, "valid") == (2, 0, 0)
    assert geometry(5, 2, 1, 3, "valid") == (2, 0, 0)


def test_finite_differences(fd_check):
    rng = np.random.default_rng(0)
    inp = keras.Input((4, 4, 3, 2))
    h = layers.Conv3D(4, 2, padding="same", groups=2, activation="tanh", bias_initializer="random_normal")(inp)
    h = layers.AveragePooling3D(2, strides=1, padding="same")(h)
    h = layers.Conv3D(3, (2, 1, 2), strides=(2, 1, 1), kernel_regularizer="l2")(h)
    h = layers.MaxPooling3D((1, 2, 2), padding="same")(h)
    a = layers.GlobalAveragePooling3D()(h)
    b = layers.GlobalMaxPooling3D()(h)
    out = layers.Dense(2)(layers.Concatenate()([a, b]))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x = rng.normal(size=(3, 4, 4, 3, 2)).astype(np.float32)
    y = rng.normal(size=(3, 2)).astype(np.float32)
    fd_check(model, x, y, h=1e-2, rtol=3e-2, atol=3e-4, indices=[0, 1, 2, 3])
    report = keras.utils.gradient_check(model, x, y)
    assert all(entry["ok"] for entry in report.values()), report
    assert sum(w["checked"] for entry in report.values() for w in entry["weights"].values()) >= 20


def test_a_volumetric_model_trains():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 5, 5, 5, 2)).astype(np.float32)
    y = (x[..., 0].mean(axis=(1, 2, 3)) > 0).astype(np.float32)[:, None]
    model = keras.Sequential([
        keras.Input((5, 5, 5, 2)), layers.Conv3D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling3D(2, padding="same"), layers.SpatialDropout3D(0.1),
        layers.Conv3D(4, 2, groups=2, activation="relu"), layers.GlobalAveragePooling3D(),
        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=25, batch_size=8, verbose=0).history["loss"]
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.7 * before, (before, after, history)
    assert model.predict(x, verbose=0).shape == (16, 1)


def test_regularizers_and_constraints_act_on_the_weights():
    rng = np.random.default_rng(2)
    conv = layers.Conv3D(2, 2, kernel_regularizer=keras.regularizers.L2(0.1), bias_regularizer="l1",
                         kernel_constraint="non_neg", bias_initializer="random_normal")
    model = keras.Sequential([keras.Input((3, 3, 3, 1)), conv, layers.GlobalAveragePooling3D()])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = rng.normal(size=(2, 3, 3, 3, 1)).astype(np.float32)
    kernel, bias = model.get_weights()
    pred = model.predict(x, verbose=0)
    penalty = 0.1 * np.sum(kernel ** 2) + 0.01 * np.sum(np.abs(bias))
    assert model.evaluate(x, np.zeros_like(pred), verbose=0) == pytest.approx(np.mean(pred ** 2) + penalty,
                                                                            rel=1e-5)
    assert (kernel < 0).any()
    model.train_on_batch(x, np.zeros_like(pred))
    assert (model.get_weights()[0] >= 0).all()  # the constraint projects the kernel after the step
    cfg = conv.get_config()
    assert cfg["kernel_constraint"]["class_name"] == "NonNeg"
    assert cfg["kernel_regularizer"]["class_name"] == "L2"


def test_activity_regularizer_joins_the_loss():
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input((3, 3, 3, 1)),
                              layers.Conv3D(2, 2, activity_regularizer=keras.regularizers.L2(0.5))])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(2, 3, 3, 3, 1)).astype(np.float32)
    pred = model.predict(x, verbose=0)
    penalty = 0.5 * np.sum(pred ** 2) / 2
    assert model.evaluate(x, np.zeros_like(pred), verbose=0) == pytest.approx(np.mean(pred ** 2) + penalty,
                                                                            rel=1e-5)
    assert model.layers[0].get_config()["activity_regularizer"]["class_name"] == "L2"


# ---- SpatialDropout3D -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_dropout_drops_whole_feature_maps(data_format):
    rate = 0.4
    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 1.5, size=(16, 3, 2, 2, 20)).astype(np.float32)
    if data_format == "channels_first":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    R = rng.normal(size=x.shape).astype(np.float32)
    y, gx, _ = _sandwich(lambda: layers.SpatialDropout3D(rate, data_format=data_format), x, R, [])
    scale = y / x
    kept = scale > 0.5
    np.testing.assert_allclose(scale[kept], 1 / (1 - rate), rtol=1e-4)
    np.testing.assert_allclose(scale[~kept], 0.0, atol=1e-6)
    np.testing.assert_allclose(gx, R * scale, rtol=1e-4, atol=1e-6)  # the same mask forward and backward
    spatial = (1, 2, 3) if data_format == "channels_last" else (2, 3, 4)
    per_map = kept.all(axis=spatial) | (~kept).all(axis=spatial)
    assert per_map.all()  # one decision per sample and channel
    assert 0.25 < 1 - kept.mean() < 0.55
    np.testing.assert_array_equal(layers.SpatialDropout3D(rate)(x), x)  # inference: the identity


# ---- files ----------------------------------------------------------------------------------------------------


def _check_keras_file(name: str, key: str, folder: Path) -> Path:
    """Load a file Keras saved, check its values, save it again and compare the two files; the new file."""
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    _close(model.predict(REF[f"{key}__x"], verbose=0), REF[f"{key}__y"], f"{name} loaded")
    path = folder / f"{name}.keras"
    model.save(path)
    assert _h5_paths(path, folder / "a") == _h5_paths(FIXTURES / f"{name}.keras", folder / "b")
    ours, theirs = _entries(path), _entries(FIXTURES / f"{name}.keras")
    assert [e["class_name"] for e in ours] == [e["class_name"] for e in theirs]
    mine = {cls.__name__ for cls in _volumetric_layers.CLASSES}
    checked = 0
    for a, b in zip(ours, theirs):
        if a["class_name"] in mine:
            checked += 1
            assert a["module"] == b["module"] == "keras.layers" and a["registered_name"] is None
            ca, cb = dict(a["config"]), dict(b["config"])
            if a["class_name"] == "SpatialDropout3D":  # Keras writes this layer's dtype as a plain string
                assert (ca.pop("dtype")["config"]["name"], cb.pop("dtype")) == ("float32", "float32")
            assert ca == cb, a["class_name"]
            assert a.get("build_config") == b.get("build_config"), a["class_name"]
            assert a.get("inbound_nodes") == b.get("inbound_nodes"), a["class_name"]
    assert checked >= 4
    again = keras.saving.load_model(path)
    _close(again.predict(REF[f"{key}__x"], verbose=0), REF[f"{key}__y"], f"{name} reloaded")
    return path


def _kerust_model(folder: Path) -> tuple:
    """A kerust model of every volumetric layer, saved and reloaded by kerust: (file, input, prediction)."""
    rng = np.random.default_rng(5)
    made = [layers.Conv3D(4, (2, 3, 2), strides=(1, 2, 1), padding="same", groups=2, activation="gelu",
                          kernel_initializer="he_normal", bias_initializer="random_normal",
                          kernel_regularizer="l1", bias_constraint="max_norm"),
            layers.AveragePooling3D((2, 1, 2), strides=1, padding="same"),
            layers.MaxPooling3D((1, 2, 2), strides=(1, 1, 2)),
            layers.SpatialDropout3D(0.3, seed=1),
            layers.Conv3D(3, 2, dilation_rate=(2, 1, 1), use_bias=False),
            layers.GlobalMaxPooling3D(keepdims=True), layers.Flatten(), layers.Dense(2)]
    for layer in made[:6]:
        cfg = layer.get_config()
        again = type(layer).from_config(cfg)
        assert again.get_config() == cfg
        assert layers.deserialize(layers.serialize(layer)).get_config() == cfg
    model = keras.Sequential([keras.Input((5, 6, 5, 4)), *made])
    x = rng.normal(size=(2, 5, 6, 5, 4)).astype(np.float32)
    pred = model.predict(x, verbose=0)
    path = folder / "ours.keras"
    model.save(path)
    back = keras.saving.load_model(path)
    np.testing.assert_allclose(back.predict(x, verbose=0), pred, rtol=1e-6, atol=1e-6)
    assert [type(a) for a in back.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in back.layers] == [b.get_config() for b in model.layers]
    rebuilt = keras.models.model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), pred, rtol=1e-6, atol=1e-6)
    return path, x, pred


def test_keras_files_move_both_ways(tmp_path):
    """The two files Keras saved load and save again as Keras wrote them; real Keras reads kerust's copies and a
    model kerust made (one Keras process for all three)."""
    seq = _check_keras_file("volumetric_seq", "seq", tmp_path)
    fn = _check_keras_file("volumetric_fn", "fn", tmp_path)
    ours, x, pred = _kerust_model(tmp_path)
    np.save(tmp_path / "x.npy", x)
    out = _run_keras(f"""
        import numpy as np, keras
        ref = np.load({str(FIXTURES / "volumetric.npz")!r})
        for path, key in (({str(seq)!r}, "seq"), ({str(fn)!r}, "fn")):
            m = keras.saving.load_model(path)
            print(key, float(np.abs(m.predict(ref[key + "__x"], verbose=0) - ref[key + "__y"]).max()))
        m = keras.saving.load_model({str(ours)!r})
        np.save({str(tmp_path / "keras_pred.npy")!r}, m.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0))
        print([type(l).__name__ for l in m.layers])
    """)
    lines = out.strip().splitlines()
    errors = dict(line.split() for line in lines[-3:-1])
    assert sorted(errors) == ["fn", "seq"] and all(float(v) < 1e-5 for v in errors.values()), errors
    assert "'Conv3D'" in lines[-1] and "'SpatialDropout3D'" in lines[-1] and "'AveragePooling3D'" in lines[-1]
    np.testing.assert_allclose(np.load(tmp_path / "keras_pred.npy"), pred, rtol=1e-5, atol=1e-5)


def test_aliases_and_exports():
    assert layers.Convolution3D is layers.Conv3D
    assert layers.MaxPool3D is layers.MaxPooling3D and layers.AvgPool3D is layers.AveragePooling3D
    assert layers.GlobalAvgPool3D is layers.GlobalAveragePooling3D
    assert layers.GlobalMaxPool3D is layers.GlobalMaxPooling3D
    for cls in _volumetric_layers.CLASSES:
        assert layers.deserialize({"class_name": cls.__name__, "config": {"rate": 0.1}
                                   if cls is layers.SpatialDropout3D else {"filters": 2, "kernel_size": 2}
                                   if cls is layers.Conv3D else {"pool_size": 2}
                                   if cls is layers.AveragePooling3D else {}}).__class__ is cls


# ---- bad input ------------------------------------------------------------------------------------------------
def test_bad_arguments_raise_keras_errors():
    with pytest.raises(ValueError, match=r"Conv3D 'c1': only data_format=\"channels_last\" is supported, "
                                         r"received \"channels_first\""):
        layers.Conv3D(2, 3, data_format="channels_first", name="c1")
    with pytest.raises(ValueError, match=r"The `data_format` argument must be one of"):
        layers.Conv3D(2, 3, data_format="channels_middle")
    with pytest.raises(ValueError, match=r"Conv3D 'c2': invalid value for argument `filters`. Expected a strictly "
                                         r"positive value. Received filters=0"):
        layers.Conv3D(0, 3, name="c2")
    with pytest.raises(ValueError, match=r"Conv3D 'c3': the number of groups must be a positive integer. "
                                         r"Received: groups=0"):
        layers.Conv3D(2, 3, groups=0, name="c3")
    with pytest.raises(ValueError, match=r"the number of filters must be evenly divisible by the number of groups. "
                                         r"Received: groups=2, filters=3"):
        layers.Conv3D(3, 3, groups=2)
    with pytest.raises(ValueError, match=r"The `kernel_size` argument must be a tuple of 3 integers. "
                                         r"Received kernel_size=\(3, 3\)"):
        layers.Conv3D(2, (3, 3))
    with pytest.raises(ValueError, match=r"The `strides` argument must be a tuple of 3 integers.*value > 0"):
        layers.Conv3D(2, 3, strides=(1, 0, 1))
    with pytest.raises(ValueError, match=r"`strides > 1` not supported in conjunction with `dilation_rate > 1`"):
        layers.Conv3D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match=r"Conv3D 'c4': the `padding` argument must be one of .*"
                                         r"Received: padding='causal'"):
        layers.Conv3D(2, 3, padding="causal", name="c4")
    with pytest.raises(ValueError, match=r"Conv3D 'c5': invalid value for argument `activation`"):
        layers.Conv3D(2, 3, activation="nope", name="c5")
    with pytest.raises(ValueError, match=r"Conv3D 'c6': kernel_initializer: could not interpret initializer"):
        layers.Conv3D(2, 3, kernel_initializer="nope", name="c6")
    with pytest.raises(ValueError, match=r"Conv3D 'c7': `lora_rank` is not supported by kerust yet"):
        layers.Conv3D(2, 3, lora_rank=2, name="c7")
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Conv3D"):
        layers.Conv3D(2, 3, filter_size=3)
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'pool_size'"):
        layers.AveragePooling3D()
    with pytest.raises(ValueError, match=r"The `pool_size` argument must be a tuple of 3 integers"):
        layers.MaxPooling3D((2, 2))
    with pytest.raises(ValueError, match=r"The `strides` argument must be a tuple of 3 integers.*value > 0"):
        layers.MaxPooling3D(2, strides=(0, 1, 1))
    with pytest.raises(ValueError, match=r"MaxPooling3D 'p1': argument `padding` must be either 'valid' or "
                                         r"'same'. Received: padding='full'"):
        layers.MaxPooling3D(2, padding="full", name="p1")
    with pytest.raises(ValueError, match=r"The `data_format` argument must be one of"):
        layers.GlobalMaxPooling3D(data_format="last")
    with pytest.raises(TypeError, match=r"GlobalAveragePooling3D 'g1': `keepdims` must be a bool"):
        layers.GlobalAveragePooling3D(keepdims="yes", name="g1")
    with pytest.raises(ValueError, match=r"Invalid value received for argument `rate`.*Received: rate=1.5"):
        layers.SpatialDropout3D(1.5)
    with pytest.raises(ValueError, match=r"SpatialDropout3D 's1': `seed` must be an int or None"):
        layers.SpatialDropout3D(0.1, seed="x", name="s1")


def test_bad_inputs_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Input 0 of layer 'c8' is incompatible with the layer: expected ndim=5, "
                                         r"found ndim=4. Full shape received: \(None, 4, 4, 2\)"):
        layers.Conv3D(2, 2, name="c8")(keras.Input((4, 4, 2)))
    with pytest.raises(ValueError, match=r"Conv3D 'c9': the number of input channels must be evenly divisible by "
                                         r"the number of groups. Received groups=2, but the input has 3 channels"):
        layers.Conv3D(2, 2, groups=2, name="c9")(keras.Input((4, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"Conv3D 'c10': computed output size would be zero or negative. Received "
                                         r"`inputs shape=\(None, 2, 4, 4, 1\)`, `kernel shape=\(3, 3, 3, 1, 2\)`"):
        layers.Conv3D(2, 3, name="c10")(keras.Input((2, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"computed output size would be zero or negative"):
        layers.Conv3D(2, 2, dilation_rate=(1, 3, 1))(keras.Input((4, 3, 4, 1)))
    with pytest.raises(ValueError, match=r"MaxPooling3D 'p2': computed output size would be zero or negative. "
                                         r"Received: `inputs.shape=\(None, 1, 4, 4, 2\)`, `pool_size=\(2, 2, 2\)`"):
        layers.MaxPooling3D(name="p2")(keras.Input((1, 4, 4, 2)))
    with pytest.raises(ValueError, match=r"expected ndim=5, found ndim=3"):
        layers.GlobalAveragePooling3D()(keras.Input((4, 2)))
    with pytest.raises(ValueError, match=r"expected ndim=5, found ndim=6"):
        layers.SpatialDropout3D(0.2)(keras.Input((2, 2, 2, 2, 2)))
    conv = layers.Conv3D(2, 2, name="c_shared")
    conv(keras.Input((3, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"layer 'c_shared' is incompatible with the layer: expected axis -1 of "
                                         r"input shape to have value 2"):
        conv(keras.Input((3, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"Layer 'p3' expects 1 input\(s\), but it received 2 input tensors"):
        layers.MaxPooling3D(name="p3")([keras.Input((2, 2, 2, 1)), keras.Input((2, 2, 2, 1))])

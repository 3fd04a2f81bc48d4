"""Custom layers (``class X(keras.layers.Layer)`` with ``build`` / ``add_weight`` / ``call``), ``keras.ops``,
subclassed ``keras.Model`` and ``keras.layers.Lambda``, checked against real Keras.

The layers and models are the ones in ``tests/reference/custom/custom_layers.py``, written once for both libraries
(``define(keras)``); the reference values come from Keras 3.15.1 (JAX backend), written by
``tests/reference/custom/generate_custom.py`` into ``expected.npz`` / ``weights.json`` / ``linear_scale.keras``:

- ``a``: Input((8,)) -> TokenAndPositionEmbedding -> TransformerBlock (attention and layer norm from ops) ->
  MeanOverTime -> Dense(2, softmax);
- ``b``: the same with a Linear -> ScaledResidual -> Scale head (``linear_scale.keras`` is this model, saved by Keras
  with the classes registered under Keras's default package ``Custom``);
- ``c``: the subclassed ``SmallCNN`` on 8x8x1 inputs.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import h5py
import kerust as keras
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "reference" / "custom"
EXPECTED = np.load(FIXTURES / "expected.npz")
INFO = json.loads((FIXTURES / "weights.json").read_text())
KERAS_FILE = FIXTURES / "linear_scale.keras"
TOL = 1e-5
F32 = np.float32


def _load_custom_layers():
    # under the module name the generator used, so the classes' __module__ ("custom_layers") is what Keras wrote
    spec = importlib.util.spec_from_file_location("custom_layers", FIXTURES / "custom_layers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["custom_layers"] = mod
    spec.loader.exec_module(mod)
    return mod


cl = _load_custom_layers()


@pytest.fixture(scope="module")
def ns():
    """The custom classes built on kerust (not registered: tests pass them as ``custom_objects``)."""
    return cl.define(keras)


def _build(key: str, ns, rate: float = 0.1, name: str | None = None):
    if key == "a":
        return cl.transformer_classifier(keras, ns, rate=rate, **({"name": name} if name else {}))
    if key == "b":
        return cl.linear_scale_classifier(keras, ns, rate=rate, **({"name": name} if name else {}))
    return cl.small_cnn(keras, ns, **({"name": name} if name else {}))


def _expected_weights(key: str, field: str = "weight") -> list:
    return [EXPECTED[f"{key}__{field}_{i:02d}"] for i in range(len(INFO[key]["paths"]))]


def _auto(path: str) -> str:
    """Drop the session counter of automatic sublayer names (ScaledResidual's Dense is ``dense`` in Keras's
    generator, ``dense_<n>`` in a session that made Dense layers before)."""
    return re.sub(r"(^|/)dense(_\d+)?(?=/)", r"\1dense", path)


def _h5_layout(source) -> list:
    out: list = []
    with h5py.File(source, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out.append({"path": name, "shape": list(obj.shape), "dtype": str(obj.dtype)})
            else:
                out.append({"path": name, "group": True})
        f.visititems(visit)
    return out


def _scalar_loss(value) -> float:
    return float(np.ravel(np.asarray(value, dtype=np.float64))[0])


def _keras_registered(ns) -> dict:
    """custom_objects keyed as Keras looks them up for ``linear_scale.keras``: by the ``registered_name`` the file
    holds (``Custom>Linear``); Keras 3.15 does NOT find a registered class by its bare class name."""
    return {f"Custom>{name}": cls for name, cls in ns.custom_objects.items()}


# ---- the fixture models: outputs, weight order and names, one training step -----------------------------------
@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_outputs_match_keras(key, ns):
    model = _build(key, ns)
    model.set_weights(_expected_weights(key))
    x = EXPECTED[f"{key}__x"]
    np.testing.assert_allclose(model.predict(x, verbose=0), EXPECTED[f"{key}__pred"], atol=TOL, rtol=0)
    np.testing.assert_allclose(np.asarray(model(x)), EXPECTED[f"{key}__pred"], atol=TOL, rtol=0)


@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_weight_paths_names_and_order_match_keras(key, ns):
    model = _build(key, ns)
    info = INFO[key]
    # Keras's order: a layer's own add_weight variables first (trainable, then non-trainable), then its sublayers'
    # in the order they were assigned in __init__ (not call order); paths are built from layer names
    assert [_auto(w.path) for w in model.weights] == [_auto(p) for p in info["paths"]]
    assert [w.name for w in model.weights] == info["names"]
    assert [list(w.shape) for w in model.weights] == info["shapes"]
    assert [list(np.shape(w)) for w in model.get_weights()] == info["shapes"]
    assert [_auto(w.path) for w in model.trainable_weights] == [_auto(p) for p in info["trainable_paths"]]
    assert [layer.name for layer in model.layers] == info["layers"]
    assert [type(layer).__name__ for layer in model.layers] == info["layer_classes"]
    assert model.count_params() == info["count_params"]


@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_train_on_batch_matches_keras(key, ns):
    model = _build(key, ns, rate=0.0, name=f"{key}_train_copy")  # dropout rate 0, as in the generator
    model.set_weights(_expected_weights(key))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    loss = _scalar_loss(model.train_on_batch(EXPECTED[f"{key}__x"], EXPECTED[f"{key}__y"]))
    expected = float(EXPECTED[f"{key}__train_loss"])
    assert abs(loss - expected) <= TOL * max(1.0, abs(expected)), (loss, expected)
    for i, (got, want) in enumerate(zip(model.get_weights(), _expected_weights(key, "trained_weight"))):
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0, err_msg=INFO[key]["paths"][i])


@pytest.mark.parametrize("key", ["a", "b"])
def test_summary_matches_keras(key, ns):
    model = _build(key, ns)
    lines: list = []
    model.summary(print_fn=lines.append)
    # a custom layer shows its node's output shape and the parameters of its own weights plus its sublayers'
    assert "\n".join(lines).splitlines() == INFO[key]["summary"]


def test_fit_on_synthetic_tokens_lowers_the_loss(ns):
    rng = np.random.default_rng(3)
    x = rng.integers(0, cl.VOCAB, size=(64, cl.MAXLEN)).astype(F32)
    y = (x[:, 0] >= cl.VOCAB // 2).astype(F32)  # the class is the first token's half of the vocabulary
    model = _build("a", ns)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=6, shuffle=False, verbose=0).history
    losses = history["loss"]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < 0.85 * losses[0], losses  # Keras (3 seeds): 0.55 to 0.70 of the first epoch


# ---- files ----------------------------------------------------------------------------------------------------
def test_save_and_load_round_trip_with_custom_objects(ns, tmp_path):
    model = _build("b", ns)
    model.set_weights(_expected_weights("b"))
    path = tmp_path / "custom.keras"
    model.save(path)
    again = keras.models.load_model(path, custom_objects=ns.custom_objects)
    assert [type(layer).__name__ for layer in again.layers] == INFO["b"]["layer_classes"]
    assert [_auto(w.path) for w in again.weights] == [_auto(p) for p in INFO["b"]["paths"]]
    for got, want in zip(again.get_weights(), _expected_weights("b")):
        assert np.array_equal(got, want)
    x = EXPECTED["b__x"]
    np.testing.assert_allclose(again.predict(x, verbose=0), EXPECTED["b__pred"], atol=TOL, rtol=0)
    assert again.get_layer("block").get_config() == model.get_layer("block").get_config()

    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(INFO["linear_scale_keras"]["zip_files"])
        config = json.loads(z.read("config.json"))
        layout = _h5_layout(io.BytesIO(z.read("model.weights.h5")))
    # what Keras writes for UNregistered custom classes: the class's module, registered_name = the class name
    for entry, keras_entry in zip(config["config"]["layers"], INFO["linear_scale_keras"]["layer_configs"]):
        custom = keras_entry["module"] == "custom_layers"
        assert entry["class_name"] == keras_entry["class_name"]
        assert entry["registered_name"] == (keras_entry["class_name"] if custom else keras_entry["registered_name"])
        assert entry["module"] == keras_entry["module"]
        assert entry["name"] == keras_entry["name"]
    # the h5 layout Keras writes and reads: groups named by snake-cased class (layers/transformer_block), then by
    # attribute name for sublayers (att/query), sorted; each layer's own variables under vars/0, vars/1, ...
    assert layout == INFO["linear_scale_keras"]["h5"]


def test_loads_the_keras_made_file_with_custom_objects(ns):
    model = keras.models.load_model(KERAS_FILE, custom_objects=_keras_registered(ns))
    assert [layer.name for layer in model.layers] == INFO["b"]["layers"]
    for got, want in zip(model.get_weights(), _expected_weights("b")):
        assert np.array_equal(got, want)
    np.testing.assert_allclose(model.predict(EXPECTED["b__x"], verbose=0), EXPECTED["b__pred"], atol=TOL, rtol=0)
    # and it trains on from there like a freshly built model
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    assert np.isfinite(_scalar_loss(model.train_on_batch(EXPECTED["b__x"], EXPECTED["b__y"])))


def test_loading_without_the_custom_classes_names_the_missing_class(ns):
    # Keras 3.15.1: TypeError "Could not locate class 'TokenAndPositionEmbedding'. Make sure custom classes ... are
    # decorated with `@keras.saving.register_keras_serializable()` ..." (weights.json: unregistered_load)
    assert INFO["unregistered_load"]["raised"] == "TypeError"
    with pytest.raises((TypeError, ValueError), match="TokenAndPositionEmbedding"):
        keras.models.load_model(KERAS_FILE)
    partial = {k: v for k, v in _keras_registered(ns).items() if k != "Custom>Scale"}
    with pytest.raises((TypeError, ValueError), match=r"\bScale\b"):
        keras.models.load_model(KERAS_FILE, custom_objects=partial)


def test_a_registered_class_loads_without_custom_objects(tmp_path):
    @keras.saving.register_keras_serializable(package="kerust_tests")
    class KerustTestTwice(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

        def get_config(self):
            return super().get_config()

    assert keras.saving.get_registered_name(KerustTestTwice) == "kerust_tests>KerustTestTwice"
    inp = keras.Input((3,))
    model = keras.Model(inp, KerustTestTwice(name="twice")(inp))
    path = tmp_path / "twice.keras"
    model.save(path)
    entry = json.loads(zipfile.ZipFile(path).read("config.json"))["config"]["layers"][1]
    assert entry["class_name"] == "KerustTestTwice" and entry["registered_name"] == "kerust_tests>KerustTestTwice"
    again = keras.models.load_model(path)
    np.testing.assert_array_equal(again.predict(np.ones((2, 3), F32), verbose=0), np.full((2, 3), 2.0, F32))


def test_subclassed_model_layers_and_weights_file_layout(ns, tmp_path):
    model = _build("c", ns)
    model.set_weights(_expected_weights("c"))
    # a subclassed Model's .layers: its tracked sublayers in assignment order, weights under "<model name>/..."
    assert [layer.name for layer in model.layers] == ["features", "downsample", "flat", "probs"]
    assert [w.path for w in model.weights] == INFO["c"]["paths"]
    path = tmp_path / "cnn.weights.h5"
    model.save_weights(path)
    # Keras: groups by attribute name (sorted), "layers/<snake class>" for a sublayer first reached through
    # .layers (the attribute "pool" sorts after "layers"), and an empty top-level "vars"
    assert _h5_layout(path) == INFO["c"]["save_weights_h5"]
    fresh = _build("c", ns, name="small_cnn_reloaded")
    fresh.load_weights(path)
    np.testing.assert_allclose(fresh.predict(EXPECTED["c__x"], verbose=0), EXPECTED["c__pred"], atol=TOL, rtol=0)


@pytest.mark.parametrize("make", [
    lambda ns: ns.TokenAndPositionEmbedding(8, 20, 16, name="emb"),
    lambda ns: ns.LayerNorm(epsilon=1e-5),
    lambda ns: ns.SelfAttention(16, 4),
    lambda ns: ns.TransformerBlock(16, 2, 32, rate=0.25),
    lambda ns: ns.MeanOverTime(),
    lambda ns: ns.Scale("zeros"),
    lambda ns: ns.Linear(5, name="lin"),
    lambda ns: ns.ScaledResidual(4),
], ids=["embedding", "layernorm", "attention", "block", "mean", "scale", "linear", "residual"])
def test_custom_get_config_round_trips(make, ns):
    layer = make(ns)
    config = layer.get_config()
    assert config["name"] == layer.name and config["trainable"] is True
    again = type(layer).from_config(config)
    assert type(again) is type(layer) and again.get_config() == config


# ---- weight order and names of a layer with own weights and sublayers ------------------------------------------
def test_own_weights_first_then_sublayers_in_assignment_order(uid, tmp_path):
    class OrderProbe(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.out_proj = keras.layers.Dense(3, name="out_proj")  # assigned first, called second
            self.in_proj = keras.layers.Dense(4, name="in_proj")

        def build(self, input_shape):
            self.own = self.add_weight(shape=(3,), initializer="ones", name="own")
            self.frozen = self.add_weight(shape=(3,), initializer="zeros", name="frozen", trainable=False)

        def call(self, x):
            return self.out_proj(self.in_proj(x)) * self.own + self.frozen

    name = uid("probe")
    inp = keras.Input((3,))
    layer = OrderProbe(name=name)
    model = keras.Model(inp, layer(inp))
    expected = [f"{name}/own", f"{name}/frozen", f"{name}/out_proj/kernel", f"{name}/out_proj/bias",
                f"{name}/in_proj/kernel", f"{name}/in_proj/bias"]
    assert [w.path for w in layer.weights] == expected
    assert [w.path for w in model.weights] == expected
    assert [w.name for w in layer.weights] == ["own", "frozen", "kernel", "bias", "kernel", "bias"]
    assert [np.shape(w) for w in model.get_weights()] == [(3,), (3,), (4, 3), (3,), (3, 4), (4,)]
    assert [w.path for w in layer.trainable_weights] == [expected[0], *expected[2:]]
    assert [w.path for w in layer.non_trainable_weights] == [expected[1]]
    path = tmp_path / "probe.weights.h5"
    model.save_weights(path)
    datasets = {e["path"]: e["shape"] for e in _h5_layout(path) if not e.get("group")}
    assert datasets == {"layers/order_probe/vars/0": [3], "layers/order_probe/vars/1": [3],
                        "layers/order_probe/in_proj/vars/0": [3, 4], "layers/order_probe/in_proj/vars/1": [4],
                        "layers/order_probe/out_proj/vars/0": [4, 3], "layers/order_probe/out_proj/vars/1": [3]}


# ---- errors in user code ----------------------------------------------------------------------------------------
def test_an_exception_in_call_propagates_and_the_layer_can_be_fixed(uid):
    class UserBug(Exception):
        pass

    class Flaky(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.broken = True

        def call(self, x):
            if self.broken:
                raise UserBug("user code failed in call")
            return keras.ops.multiply(x, 2.0)

    inp = keras.Input((3,))
    layer = Flaky(name=uid("flaky"))
    with pytest.raises(UserBug, match="user code failed in call"):
        layer(inp)
    layer.broken = False
    model = keras.Model(inp, layer(inp))
    x = np.arange(6, dtype=F32).reshape(2, 3)
    np.testing.assert_allclose(model.predict(x, verbose=0), 2 * x)


def test_add_weight_with_a_bad_shape_names_the_layer(uid):
    class BadShape(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(-1, 3), name="w")

        def call(self, x):
            return x

    name = uid("bad_shape")
    with pytest.raises(ValueError, match=name):
        BadShape(name=name)(keras.Input((3,)))


def test_add_weight_with_an_unknown_initializer_names_the_layer(uid):
    class BadInit(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(3,), initializer="no_such_initializer", name="w")

        def call(self, x):
            return x + self.w

    name = uid("bad_init")
    with pytest.raises(ValueError, match=name) as info:
        BadInit(name=name)(keras.Input((3,)))
    assert "no_such_initializer" in str(info.value)


def test_python_if_on_a_symbolic_tensor_points_to_where_and_cond(uid):
    class Branchy(keras.layers.Layer):
        def call(self, x):
            if keras.ops.sum(x) > 0:
                return x
            return -x

    with pytest.raises(TypeError, match=r"ops\.where|ops\.cond"):
        Branchy(name=uid("branchy"))(keras.Input((3,)))


# ---- Lambda, custom losses, subclassed vs Sequential --------------------------------------------------------------
def test_lambda_square_in_a_sequential_model_trains():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 3)).astype(F32)
    y = ((x ** 2) @ np.array([[1.0], [-2.0], [0.5]], F32) + 0.3).astype(F32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: keras.ops.square(t)),
                              keras.layers.Dense(1)])
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), (x ** 2) @ kernel + bias, atol=TOL, rtol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.02), loss="mse")
    losses = model.fit(x, y, batch_size=16, epochs=10, shuffle=False, verbose=0).history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses


def my_mse(y_true, y_pred):
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def test_a_custom_loss_function_gives_the_history_of_builtin_mse():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 5)).astype(F32)
    y = rng.normal(size=(40, 2)).astype(F32)

    def make():
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])

    custom, builtin = make(), make()
    builtin.set_weights(custom.get_weights())
    custom.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss=my_mse)
    builtin.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    h_custom = custom.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    h_builtin = builtin.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    assert sorted(h_custom) == sorted(h_builtin) == ["loss"]
    np.testing.assert_allclose(h_custom["loss"], h_builtin["loss"], rtol=1e-6, atol=1e-7)
    for a, b in zip(custom.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_subclassed_cnn_and_the_equivalent_sequential_train_bit_identically(ns):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 8, 8, 1)).astype(F32)
    y = rng.integers(0, 10, size=32).astype(F32)
    sub = cl.small_cnn(keras, ns, name="small_cnn_vs_sequential")
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, (3, 3), activation="relu"),
                            keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                            keras.layers.Dense(10, activation="softmax")])
    seq.set_weights(sub.get_weights())
    histories = []
    for model in (sub, seq):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
        histories.append(model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"])
    assert histories[0] == histories[1]
    for a, b in zip(sub.get_weights(), seq.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(sub.predict(x, verbose=0), seq.predict(x, verbose=0))


def test_inspect_and_gradient_check_see_a_variable_read_in_place():
    """A custom variable whose only reader is one op is lent to it, not copied: inspection still reports it."""
    from kerust import ops

    class Shift(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(3,), initializer="ones")

        def call(self, x):
            return x * 2 + ops.sum(self.w)

    model = keras.Sequential([keras.Input((3,)), Shift(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 3)).astype(np.float32), rng.random((4, 1)).astype(np.float32)
    seen = model.inspect(x, y)
    grads = seen[model.layers[0].name]["weight_gradients"]
    assert len(grads) == 1 and np.all(np.isfinite(next(iter(grads.values()))))
    report = keras.utils.gradient_check(model, x.astype(np.float64), y)
    assert report and all(entry["ok"] for entry in report.values()), report

"""Masks handed to a custom layer's `call` (Keras's `mask` / `<arg>_mask` arguments) and through TimeDistributed to
the layer it wraps, against Keras 3.15.1 (JAX): forward values, one SGD step (Keras's `jax.grad` gradients), the
masks on the outputs, configs and `.keras` files both ways. Fixture: tests/reference/masks_more
(generate_masks_more.py)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import kerust as keras
from kerust import layers, ops

HERE = Path(__file__).resolve().parent
REF = HERE / "reference" / "masks_more"
DATA = np.load(REF / "masks_more.npz")


# ---- the models of the fixture (the same code as generate_masks_more.py, with kerust) --------------------------
class ZeroMasked(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        return ops.where(mask[..., None], x * 2.0, 0.0)


class MaskedAvg(layers.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x, mask=None):
        m = ops.cast(mask, x.dtype)[..., None]
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0) * self.scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


class Pair(layers.Layer):
    def call(self, inputs, mask=None):
        a, b = inputs
        m = ops.cast(mask[0], a.dtype)[..., None]
        return ops.sum(a * m + b, axis=1)


def build(case: str):
    if case == "where":
        i = keras.Input((5,), dtype="int32")
        h = layers.Embedding(7, 4, mask_zero=True)(i)
        h = ZeroMasked()(h)
        h = layers.LSTM(3)(h)
        return keras.Model(i, layers.Dense(2)(h))
    if case == "avg":
        i = keras.Input((5,), dtype="int32")
        h = layers.Embedding(7, 4, mask_zero=True)(i)
        return keras.Model(i, layers.Dense(2)(MaskedAvg()(h)))
    if case == "given":
        x = keras.Input((4, 3))
        mk = keras.Input((4,), dtype="bool")
        return keras.Model([x, mk], layers.Dense(2)(MaskedAvg()(x, mask=mk)))
    if case == "list":
        i = keras.Input((5,), dtype="int32")
        b = keras.Input((5, 4))
        e = layers.Embedding(7, 4, mask_zero=True)(i)
        return keras.Model([i, b], layers.Dense(2)(Pair()([e, b])))
    if case == "td_lstm":
        i = keras.Input((3, 4), dtype="int32")
        h = layers.Embedding(6, 2, mask_zero=True)(i)
        h = layers.TimeDistributed(layers.LSTM(3))(h)
        return keras.Model(i, layers.Dense(2)(layers.Flatten()(h)))
    if case == "td_custom":
        i = keras.Input((3, 4), dtype="int32")
        h = layers.Embedding(6, 3, mask_zero=True)(i)
        h = layers.TimeDistributed(MaskedAvg())(h)
        return keras.Model(i, layers.Dense(2)(layers.Flatten()(h)))
    if case == "td_given":
        x = keras.Input((3, 4, 2))
        mk = keras.Input((3, 4), dtype="bool")
        h = layers.TimeDistributed(layers.GRU(2))(x, mask=mk)
        return keras.Model([x, mk], layers.Dense(2)(layers.Flatten()(h)))
    if case == "td_dense_pass":
        i = keras.Input((5,), dtype="int32")
        h = layers.Embedding(6, 3, mask_zero=True)(i)
        h = layers.TimeDistributed(layers.Dense(4, activation="tanh"))(h)
        return keras.Model(i, layers.Dense(1)(layers.LSTM(2)(h)))
    raise ValueError(case)


CASES = ("where", "avg", "given", "list", "td_lstm", "td_custom", "td_given", "td_dense_pass")
SAVED = ("td_lstm", "td_given", "td_dense_pass")


def ref(case: str):
    xs = [DATA[f"{case}__x_{k}"] for k in range(3) if f"{case}__x_{k}" in DATA]
    ws = [DATA[f"{case}__w_{k:02d}"] for k in range(40) if f"{case}__w_{k:02d}" in DATA]
    gs = [DATA[f"{case}__gw_{k:02d}"] for k in range(40) if f"{case}__gw_{k:02d}" in DATA]
    return xs, ws, gs, DATA[f"{case}__y"], DATA[f"{case}__t"], float(DATA[f"{case}__loss"])


def feed(xs):
    return xs if len(xs) > 1 else xs[0]


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's "this layer does not support masking" warnings
        return fn(*args, **kwargs)


@pytest.mark.parametrize("case", CASES)
def test_forward_equals_keras(case):
    xs, ws, _, y, _, _ = ref(case)
    model = quiet(build, case)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in ws]
    model.set_weights(ws)
    np.testing.assert_allclose(model.predict(feed(xs), verbose=0), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_one_sgd_step_follows_keras_gradients(case):
    xs, ws, gs, _, t, loss = ref(case)
    model = quiet(build, case)
    model.set_weights(ws)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    got = model.train_on_batch(feed(xs), t)
    np.testing.assert_allclose(float(np.ravel(got)[0]), loss, rtol=1e-5)
    assert any(np.abs(g).max() > 1e-3 for g in gs)  # the step moves the weights
    for w, g, new in zip(ws, gs, model.get_weights()):
        np.testing.assert_allclose(new, w - 0.5 * g, rtol=1e-5, atol=1e-5)


# ---- files -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", SAVED)
def test_keras_files_load_and_predict(case):
    xs, _, _, y, _, _ = ref(case)
    model = quiet(keras.models.load_model, REF / f"{case}.keras")
    np.testing.assert_allclose(model.predict(feed(xs), verbose=0), y, rtol=1e-5, atol=1e-5)


def test_kerust_files_load_in_keras(tmp_path):
    from keras_files import run_in_keras

    for case in SAVED:
        _, ws, _, _, _, _ = ref(case)
        model = quiet(build, case)
        model.set_weights(ws)
        model.save(tmp_path / f"{case}.keras")
        again = quiet(keras.models.load_model, tmp_path / f"{case}.keras")  # and back into kerust
        xs, _, _, y, _, _ = ref(case)
        np.testing.assert_allclose(again.predict(feed(xs), verbose=0), y, rtol=1e-5, atol=1e-5)
    printed = run_in_keras(f"""
        import json
        import keras
        import numpy as np
        data = np.load({str(REF / "masks_more.npz")!r})
        out = {{}}
        for case in {list(SAVED)!r}:
            model = keras.models.load_model({str(tmp_path)!r} + "/" + case + ".keras")
            xs = [data[f"{{case}}__x_{{k}}"] for k in range(3) if f"{{case}}__x_{{k}}" in data.files]
            y = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
            out[case] = float(np.abs(y - data[f"{{case}}__y"]).max())
        print(json.dumps(out))
    """)
    errors = json.loads(printed.strip().splitlines()[-1])
    assert set(errors) == set(SAVED)
    assert all(e < 1e-5 for e in errors.values()), errors


def test_configs_write_the_masks_keras_writes():
    # a mask given as `mask=` is a keyword argument of the call; one found on the input is made again on loading
    given = quiet(build, "given")
    entry = [e for e in given.get_config()["layers"] if e["class_name"] == "MaskedAvg"][0]
    assert entry["inbound_nodes"][0]["kwargs"]["mask"]["config"]["keras_history"][0] == given.inputs[1].name
    found = quiet(build, "avg")
    entry = [e for e in found.get_config()["layers"] if e["class_name"] == "MaskedAvg"][0]
    assert entry["inbound_nodes"][0]["kwargs"] == {}
    td = quiet(build, "td_given")
    entry = [e for e in td.get_config()["layers"] if e["class_name"] == "TimeDistributed"][0]
    assert entry["inbound_nodes"][0]["kwargs"]["mask"]["config"]["keras_history"][0] == td.inputs[1].name
    td = quiet(build, "td_lstm")
    entry = [e for e in td.get_config()["layers"] if e["class_name"] == "TimeDistributed"][0]
    assert entry["inbound_nodes"][0]["kwargs"] == {"mask": None}


@pytest.mark.parametrize("case", ["where", "avg", "given", "list"])
def test_custom_layers_that_read_masks_save_and_load(case, tmp_path):
    xs, ws, _, y, _, _ = ref(case)
    model = quiet(build, case)
    model.set_weights(ws)
    model.save(tmp_path / "m.keras")
    again = quiet(keras.models.load_model, tmp_path / "m.keras",
                  custom_objects={"ZeroMasked": ZeroMasked, "MaskedAvg": MaskedAvg, "Pair": Pair})
    np.testing.assert_allclose(again.predict(feed(xs), verbose=0), y, rtol=1e-5, atol=1e-5)


# ---- what `call` is given, and the masks on the outputs ----------------------------------------------------------
def test_masks_on_outputs_follow_keras():
    i = keras.Input((5,), dtype="int32")
    e = layers.Embedding(7, 4, mask_zero=True)(i)
    z = ZeroMasked()(e)
    assert z._keras_mask is e._keras_mask  # supports_masking: handed on
    with pytest.warns(UserWarning, match="does not support masking"):
        a = MaskedAvg()(e)  # reads the mask, but does not hand it on
    assert a._keras_mask is None
    x = keras.Input((3, 4, 2))
    mk = keras.Input((3, 4), dtype="bool")
    assert layers.TimeDistributed(layers.GRU(2))(x, mask=mk)._keras_mask is mk  # Keras: the whole mask goes on


def test_call_gets_none_without_a_mask_and_named_masks_with_several_tensors():
    seen = []

    class Probe(layers.Layer):
        def call(self, x, mask=None):
            seen.append(mask)
            return x * 1.0

    x = keras.Input((3, 2))
    Probe()(x)
    assert seen == [None]

    class Named(layers.Layer):  # Keras: with several tensor arguments, `<name>_mask` gets each one's mask
        def call(self, inputs, other=None, inputs_mask=None, other_mask=None):
            return ops.cast(inputs_mask, "float32") + 2.0 * ops.cast(other_mask, "float32")

    i, j = keras.Input((4,), dtype="int32"), keras.Input((4,), dtype="int32")
    e = layers.Embedding(7, 2, mask_zero=True)(i)
    f = layers.Embedding(7, 2, mask_zero=True)(j)
    model = keras.Model([i, j], quiet(Named(), e, other=f))
    got = model.predict([np.array([[1, 0, 2, 0]]), np.array([[0, 3, 3, 0]])], verbose=0)
    np.testing.assert_array_equal(got, [[1.0, 2.0, 3.0, 0.0]])


def test_eager_call_with_a_mask_array():
    x = np.random.default_rng(0).normal(size=(2, 3, 2)).astype(np.float32)
    m = np.array([[1, 0, 0], [1, 1, 0]], bool)
    want = (x * m[..., None]).sum(1) / m.sum(1)[:, None]
    layer = MaskedAvg()
    np.testing.assert_allclose(quiet(layer, x, mask=m), want, rtol=1e-6)
    np.testing.assert_allclose(quiet(layer, x, mask=m.astype(np.float32)), want, rtol=1e-6)


def test_a_subclassed_model_whose_layers_read_masks_trains():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.emb = layers.Embedding(7, 4, mask_zero=True)
            self.avg = MaskedAvg()
            self.out = layers.Dense(1)

        def call(self, x, mask=None):  # as Keras on arrays: no mask reaches the model's own call
            assert mask is None
            return self.out(self.avg(self.emb(x)))

    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0], [4, 5, 6, 1]])
    model = Sub()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    hist = quiet(model.fit, ids, np.ones((3, 1)), epochs=5, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    emb, scale, kernel, bias = model.get_weights()
    kept = (ids != 0)[..., None]
    want = ((emb[ids] * kept).sum(1) / kept.sum(1) * scale) @ kernel + bias
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_time_distributed_hands_the_mask_to_a_custom_layer():
    i = keras.Input((3, 4), dtype="int32")
    e = layers.Embedding(6, 3, mask_zero=True)(i)
    inner = MaskedAvg()
    model = keras.Model(i, layers.TimeDistributed(inner)(e))
    ids = np.array([[[1, 2, 0, 0], [3, 0, 0, 0], [1, 1, 1, 1]]])
    emb, scale = model.get_weights()
    kept = (ids != 0)[..., None]
    want = (emb[ids] * kept).sum(2) / kept.sum(2) * scale
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-5, atol=1e-6)


# ---- refused -------------------------------------------------------------------------------------------------------
def test_bad_masks_raise():
    class NoMask(layers.Layer):
        def call(self, x):
            return x * 2.0

    x = keras.Input((3, 2))
    m = keras.Input((3,), dtype="bool")
    with pytest.raises(TypeError, match="takes no `mask` argument"):
        NoMask()(x, mask=m)
    with pytest.raises(ValueError, match="a list of masks given as `mask=`"):
        MaskedAvg()(x, mask=[m, None])
    # Keras accepts this call and fails when the model runs: the LSTM would get one value per (sample, step)
    with pytest.raises(ValueError, match=r"wrapped LSTM layer reads a mask.*\(batch, time, 4\).*\(None, 3\)"):
        layers.TimeDistributed(layers.LSTM(2))(keras.Input((3, 4, 2)), mask=keras.Input((3,)))
    with pytest.raises(ValueError, match="wrapped BatchNormalization layer is not supported"):
        layers.TimeDistributed(layers.BatchNormalization())(keras.Input((3, 4)), mask=m)

"""Models that run user code traced into the engine: keras.ops on symbolic tensors, custom layers whose `call`
branches on `training`, `keras.random` inside a call, ops that mix samples, custom metric functions, Lambda
configs. Gradients are checked through the public API: one SGD step gives `(w - w') / lr`, compared with
central differences of `evaluate`'s loss."""

from __future__ import annotations

import numpy as np
import pytest

import kerust as keras
from kerust import ops


def _sgd_gradients(model, x, y, lr=1e-3):
    before = model.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    model.train_on_batch(x, y)
    after = model.get_weights()
    model.set_weights(before)
    return [(b - a) / lr for b, a in zip(before, after)]


def _numeric_gradients(model, x, y, eps=1e-2, picks=6, seed=0):
    rng = np.random.default_rng(seed)
    weights = model.get_weights()
    out = []
    for i, w in enumerate(weights):
        entries = rng.choice(w.size, size=min(picks, w.size), replace=False)
        grads = {}
        for j in entries:
            for sign in (1, -1):
                trial = [v.copy() for v in weights]
                trial[i].reshape(-1)[j] += sign * eps
                model.set_weights(trial)
                grads.setdefault(j, []).append(model.evaluate(x, y, verbose=0, batch_size=len(x)))
            grads[j] = (grads[j][0] - grads[j][1]) / (2 * eps)
        out.append(grads)
    model.set_weights(weights)
    return out


def _check_gradients(model, x, y, tol=2e-2):
    model.compile(optimizer="sgd", loss="mse")
    analytic = _sgd_gradients(model, x, y)
    numeric = _numeric_gradients(model, x, y)
    checked = 0
    for a, n in zip(analytic, numeric):
        for j, v in n.items():
            assert abs(a.reshape(-1)[j] - v) <= tol * max(1.0, abs(v)), (j, a.reshape(-1)[j], v)
            checked += 1
    assert checked > 0


class Bilinear(keras.layers.Layer):
    """x^T W y over two inputs, with einsum, a bias and a gelu: exercises ops with weights and two inputs."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        (_, a), (_, b) = input_shape
        self.w = self.add_weight(shape=(a, b, self.units), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, inputs):
        x, y = inputs
        return ops.gelu(ops.einsum("bjk,bj->bk", ops.tensordot(x, self.w, axes=1), y) + self.b)


def test_ops_and_custom_layers_backpropagate_like_finite_differences():
    rng = np.random.default_rng(0)
    a, b = keras.Input((3,)), keras.Input((4,))
    h = Bilinear(5, name="bilinear")([a, b])
    h = h * ops.sigmoid(h) + ops.square(ops.tanh(h)) - ops.log1p(ops.abs(h))
    h = ops.concatenate([h, ops.softmax(h, axis=-1), ops.max(h, axis=-1, keepdims=True)], axis=-1)
    out = keras.layers.Dense(2, name="head")(h / (1.0 + ops.norm(h, axis=-1, keepdims=True)))
    model = keras.Model([a, b], out)
    x = [rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 4)).astype(np.float32)]
    y = rng.normal(size=(8, 2)).astype(np.float32)
    _check_gradients(model, x, y)
    assert [w.path for w in model.weights] == ["bilinear/w", "bilinear/b", "head/kernel", "head/bias"]


class NoisyInTraining(keras.layers.Layer):
    def call(self, x, training=None):
        if training:
            return x + keras.random.normal(ops.shape(x)[1:], stddev=0.5)
        return x * 1.0


def test_a_call_that_branches_on_training_runs_the_right_branch_in_each_mode():
    inp = keras.Input((3,))
    model = keras.Model(inp, NoisyInTraining()(inp))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # inference: the identity branch
    model.compile(optimizer="sgd", loss="mse")
    noisy = model.evaluate(x, x, verbose=0)
    assert noisy == 0.0  # evaluate runs in inference mode too
    loss = model.train_on_batch(x, x)
    assert 0.01 < float(np.ravel(loss)[0]) < 5.0  # training draws the noise: the loss is its variance


def test_random_ops_follow_their_seed():
    keras.utils.set_random_seed(4)
    a = keras.random.normal((3, 2), seed=7)
    b = keras.random.normal((3, 2), seed=7)
    np.testing.assert_array_equal(a, b)
    gen = keras.random.SeedGenerator(1)
    assert not np.array_equal(keras.random.uniform((4,), seed=gen), keras.random.uniform((4,), seed=gen))
    u = keras.random.uniform((1000,), minval=2.0, maxval=3.0, seed=1)
    assert u.dtype == np.float32 and u.min() >= 2.0 and u.max() < 3.0
    kept = keras.random.dropout(np.ones((200, 50), np.float32), 0.25, seed=3)
    assert set(np.unique(kept)) <= {0.0, np.float32(1 / 0.75)} and 0.2 < (kept == 0).mean() < 0.3


def test_an_op_that_mixes_samples_predicts_each_batch_whole():
    inp = keras.Input((4,))
    model = keras.Model(inp, inp - ops.mean(inp, axis=0, keepdims=True))  # centred over the batch
    x = np.random.default_rng(1).normal(size=(1200, 4)).astype(np.float32)
    got = model.predict(x, batch_size=600, verbose=0)
    want = np.concatenate([x[:600] - x[:600].mean(0), x[600:] - x[600:].mean(0)])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_metric_function_reports_the_mean_of_its_values():
    def abs_error(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(64, 3)).astype(np.float32), rng.normal(size=(64, 2)).astype(np.float32)
    histories = []
    for metric in (abs_error, "mae"):
        keras.utils.set_random_seed(5)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse", metrics=[metric])
        histories.append(model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history)
    np.testing.assert_allclose(histories[0]["abs_error"], histories[1]["mae"], rtol=1e-6)
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-6)


def test_lambda_config_round_trips_and_a_marshalled_lambda_needs_unsafe_mode():
    layer = keras.layers.Lambda(lambda x: ops.square(x) + 1.0, name="sq")
    config = layer.get_config()
    assert config["function"]["class_name"] == "__lambda__"
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.layers.Lambda.from_config(config)
    again = keras.layers.Lambda.from_config(config, safe_mode=False)
    model = keras.Sequential([keras.Input((2,)), again])
    np.testing.assert_allclose(model.predict(np.array([[1.0, 2.0]], np.float32), verbose=0), [[2.0, 5.0]])


def test_bad_op_arguments_name_the_op_and_the_shapes():
    x = keras.Input((2, 3))
    with pytest.raises(ValueError, match=r"matmul.*\(None, 2, 3\).*\(4, 5\)"):
        ops.matmul(x, np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"reshape.*\(None, 2, 3\).*\(None, 4\)"):
        ops.reshape(x, (None, 4))
    with pytest.raises(ValueError, match=r"take: index 7 is out of bounds"):
        ops.take(np.ones((3, 2)), np.array([7]), axis=0)
    with pytest.raises(ValueError, match="too large"):  # refused before anything is allocated
        ops.arange(0, 1e12)


def test_a_subclassed_model_round_trips_through_a_keras_file(tmp_path):
    class Tiny(keras.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="tanh", name="hidden")
            self.out = keras.layers.Dense(1, name="out")

        def call(self, x):
            return self.out(self.hidden(x) * 2.0)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    model = Tiny(units=4, name="tiny")
    x = np.random.default_rng(3).normal(size=(5, 2)).astype(np.float32)
    want = model.predict(x, verbose=0)
    assert [layer.name for layer in model.layers] == ["hidden", "out"]
    model.save(tmp_path / "tiny.keras")
    again = keras.models.load_model(tmp_path / "tiny.keras", custom_objects={"Tiny": Tiny})
    assert isinstance(again, Tiny) and again.units == 4
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)


def test_saving_a_functional_model_with_raw_ops_says_what_to_do(tmp_path):
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(ops.tanh(inp) * 2.0))
    with pytest.raises(NotImplementedError, match="Lambda or a custom layer"):
        model.save(tmp_path / "raw.keras")
    assert not (tmp_path / "raw.keras").exists()
    model.save_weights(tmp_path / "raw.weights.h5")  # the weights alone save


class SoftmaxDense(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return ops.softmax(ops.matmul(x, self.w) + self.b)


def test_an_ops_softmax_output_trains_as_a_softmax_dense_layer():
    # the softmax op feeding the loss fuses with the cross-entropy, as a Dense layer's softmax does
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(48, 5)).astype(np.float32), rng.integers(0, 3, size=48)
    dense = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    mine = keras.Sequential([keras.Input((5,)), SoftmaxDense(3)])
    mine.set_weights(dense.get_weights())
    for model in (dense, mine):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    h1 = dense.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    h2 = mine.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h2, h1, rtol=1e-5)
    for a, b in zip(mine.get_weights(), dense.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


class PenalisedDense(keras.layers.Layer):
    """A Dense layer that adds its own L2 penalty with add_loss (what kernel_regularizer does)."""

    def __init__(self, units, l2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.l2 = units, l2

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        self.add_loss(self.l2 * ops.sum(ops.square(self.w)))
        return ops.matmul(x, self.w) + self.b


def test_add_loss_joins_the_training_and_evaluation_loss_as_a_regularizer_does():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.normal(size=(40, 2)).astype(np.float32)
    reg = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.05))])
    mine = keras.Sequential([keras.Input((4,)), PenalisedDense(2, 0.05)])
    mine.set_weights(reg.get_weights())
    histories = []
    for model in (reg, mine):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        histories.append(model.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)
    for a, b in zip(mine.get_weights(), reg.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(mine.evaluate(x, y, verbose=0), reg.evaluate(x, y, verbose=0), rtol=1e-5)
    with pytest.raises(NotImplementedError, match="inside `call`"):
        PenalisedDense(2, 0.1).add_loss(1.0)

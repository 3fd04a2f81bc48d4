"""The Keras-shaped Python API: building models, summary, weights, fit/evaluate/predict results, losses,
optimizers and utils."""

from __future__ import annotations

import math

import kerust
import numpy as np
import pytest
from kerust import layers


def _mlp(uid, n_in=4, hidden=5, n_out=3, out_act="softmax"):
    return kerust.Sequential(
        [
            kerust.Input((n_in,)),
            layers.Dense(hidden, activation="tanh", name=uid("dense")),
            layers.Dense(n_out, activation=out_act, name=uid("dense")),
        ],
        name=uid("model"),
    )


def _toy(n=40, n_in=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype("float32")
    labels = rng.integers(0, n_classes, size=n)
    return x, labels, kerust.utils.to_categorical(labels, n_classes)


def _seed_cnn(uid):
    return kerust.Sequential(
        [
            layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1), name=uid("conv")),
            layers.MaxPooling2D((2, 2), name=uid("pool")),
            layers.Conv2D(64, (3, 3), activation="relu", name=uid("conv")),
            layers.MaxPooling2D((2, 2), name=uid("pool")),
            layers.Conv2D(64, (3, 3), activation="relu", name=uid("conv")),
            layers.Flatten(name=uid("flatten")),
            layers.Dense(64, activation="relu", name=uid("dense")),
            layers.Dense(10, activation="softmax", name=uid("dense")),
        ],
        name=uid("cnn"),
    )


# ---- building ------------------------------------------------------------------------------------------------


def test_sequential_from_list_and_add_are_equivalent(uid):
    a, b = layers.Dense(5, name=uid("d")), layers.Dense(2, name=uid("d"))
    m1 = kerust.Sequential([kerust.Input((3,)), a, b])
    c, d = layers.Dense(5, name=uid("d")), layers.Dense(2, name=uid("d"))
    m2 = kerust.Sequential()
    assert m2.layers == [] and not m2.built
    m2.add(kerust.Input((3,)))
    m2.add(c)
    m2.add(d)
    assert m1.layers == [a, b]
    assert m2.layers == [c, d]
    assert [w.shape for w in m1.get_weights()] == [w.shape for w in m2.get_weights()] == [(3, 5), (5,), (5, 2),
                                                                                          (2,)]
    assert m1.count_params() == m2.count_params() == 3 * 5 + 5 + 5 * 2 + 2
    # .layers is a copy: mutating it does not change the model
    m1.layers.pop()
    assert len(m1.layers) == 2


def test_pop_removes_last_layer_and_keeps_the_others_weights(uid):
    first = layers.Dense(4, name=uid("d"))
    last = layers.Dense(2, name=uid("d"))
    m = kerust.Sequential([kerust.Input((3,)), first, last])
    w_first = [w.copy() for w in first.get_weights()]
    popped = m.pop()
    assert popped is last
    assert m.layers == [first]
    assert m.predict(np.ones((2, 3)), verbose=0).shape == (2, 4)
    for w0, w1 in zip(w_first, m.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    m.add(layers.Dense(7, name=uid("d")))
    assert m.predict(np.ones((2, 3)), verbose=0).shape == (2, 7)
    np.testing.assert_array_equal(m.get_weights()[0], w_first[0])


def test_pop_on_empty_model_raises(uid):
    with pytest.raises(TypeError):
        kerust.Sequential(name=uid("m")).pop()


@pytest.mark.parametrize(
    "first",
    [
        lambda: [kerust.Input((6,))],
        lambda: [kerust.Input(shape=(6,))],
        lambda: [layers.InputLayer(shape=(6,))],
        lambda: [layers.InputLayer(input_shape=(6,))],
        lambda: [layers.InputLayer(batch_shape=(None, 6))],
    ],
)
def test_input_and_input_layer_declare_the_shape(first, uid):
    m = kerust.Sequential(first() + [layers.Dense(2, name=uid("d"))])
    assert m.built
    assert m.get_weights()[0].shape == (6, 2)
    assert m.layers[0].output_shape == (None, 2)


def test_input_shape_on_first_layer(uid):
    m = kerust.Sequential([layers.Dense(3, input_shape=(7,), name=uid("d")), layers.Dense(1, name=uid("d"))])
    assert m.built
    assert [w.shape for w in m.get_weights()] == [(7, 3), (3,), (3, 1), (1,)]
    m2 = kerust.Sequential([layers.Dense(3, input_dim=7, name=uid("d"))])
    assert m2.get_weights()[0].shape == (7, 3)


def test_model_without_input_builds_on_first_call(uid):
    m = kerust.Sequential([layers.Dense(3, name=uid("d"))])
    assert not m.built and m.get_weights() == []
    out = m.predict(np.zeros((2, 5)), verbose=0)
    assert out.shape == (2, 3) and m.built
    assert m.get_weights()[0].shape == (5, 3)


def test_summary_text_of_the_mnist_mlp(uid):
    n1, n2 = uid("dense"), uid("dense")
    m = kerust.Sequential(
        [kerust.Input((784,)), layers.Dense(128, activation="relu", name=n1),
         layers.Dense(10, activation="softmax", name=n2)],
        name=uid("mlp"),
    )
    lines: list = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f'Model: "{m.name}"' in text
    assert "Total params: 101,770" in text
    assert "Trainable params: 101,770" in text
    assert "Non-trainable params: 0" in text
    row1 = next(line for line in text.splitlines() if f"{n1} (Dense)" in line)
    assert "(None, 128)" in row1 and "100,480" in row1
    row2 = next(line for line in text.splitlines() if f"{n2} (Dense)" in line)
    assert "(None, 10)" in row2 and "1,290" in row2
    assert m.count_params() == 101770


def test_summary_uses_keras_default_names(capsys):
    m = kerust.Sequential([kerust.Input((784,)), layers.Dense(128, activation="relu"),
                           layers.Dense(10, activation="softmax")])
    m.summary()
    out = capsys.readouterr().out
    name = m.layers[0].name
    assert name == "dense" or name.startswith("dense_")
    assert f"{name} (Dense)" in out and "(None, 128)" in out
    assert "Total params: 101,770" in out


def test_seed_cnn_params_and_output_shapes(uid):
    m = _seed_cnn(uid)
    assert m.count_params() == 93322
    assert [layer.output_shape for layer in m.layers] == [
        (None, 26, 26, 32),
        (None, 13, 13, 32),
        (None, 11, 11, 64),
        (None, 5, 5, 64),
        (None, 3, 3, 64),
        (None, 576),
        (None, 64),
        (None, 10),
    ]
    assert [layer.count_params() for layer in m.layers] == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    lines: list = []
    m.summary(print_fn=lines.append)
    assert "Total params: 93,322" in lines[0]


def test_weights_are_in_keras_layouts(uid):
    m = _seed_cnn(uid)
    shapes = [w.shape for w in m.get_weights()]
    assert shapes == [(3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,), (576, 64), (64,),
                      (64, 10), (10,)]
    assert all(w.dtype == np.float32 for w in m.get_weights())
    # glorot_uniform kernels within the Keras limit, zero biases
    for kernel, bias in zip(m.get_weights()[::2], m.get_weights()[1::2]):
        fan_in = int(np.prod(kernel.shape[:-1]))
        fan_out = int(np.prod(kernel.shape[:-2])) * kernel.shape[-1]
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(kernel).max() <= limit + 1e-7
        assert np.abs(kernel).max() > 0.5 * limit
        np.testing.assert_array_equal(bias, 0)


def test_dense_kernel_layout_is_in_out(uid):
    d = layers.Dense(2, name=uid("d"))
    m = kerust.Sequential([kerust.Input((3,)), d])
    kernel = np.arange(6, dtype="float32").reshape(3, 2)
    bias = np.array([10.0, 20.0], dtype="float32")
    d.set_weights([kernel, bias])
    x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    np.testing.assert_allclose(m.predict(x, verbose=0), x @ kernel + bias, rtol=1e-6)


def test_get_set_weights_round_trip_and_change_predictions(uid):
    x, _, _ = _toy()
    m1, m2 = _mlp(uid), _mlp(uid)
    p1, p2 = m1.predict(x, verbose=0), m2.predict(x, verbose=0)
    assert not np.allclose(p1, p2)
    w1 = m1.get_weights()
    m2.set_weights(w1)
    for a, b in zip(m2.get_weights(), w1):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m2.predict(x, verbose=0), p1)
    # get_weights returns copies
    w1[0][...] = 0
    assert np.abs(m1.get_weights()[0]).max() > 0
    # float64 input is accepted and rounded once to float32
    m2.set_weights([w.astype("float64") * 2 for w in m1.get_weights()])
    np.testing.assert_array_equal(m2.get_weights()[0], m1.get_weights()[0] * 2)
    assert not np.allclose(m2.predict(x, verbose=0), p1)


def test_layer_get_set_weights(uid):
    m = _mlp(uid)
    first, second = m.layers
    k, b = first.get_weights()
    assert k.shape == (4, 5) and b.shape == (5,)
    np.testing.assert_array_equal(k, m.get_weights()[0])
    second_before = [w.copy() for w in second.get_weights()]
    first.set_weights([np.full((4, 5), 0.5, "float32"), np.arange(5, dtype="float32")])
    np.testing.assert_array_equal(m.get_weights()[0], np.full((4, 5), 0.5))
    np.testing.assert_array_equal(m.get_weights()[1], np.arange(5))
    for a, b in zip(second.get_weights(), second_before):
        np.testing.assert_array_equal(a, b)
    assert first.count_params() == 25 and second.count_params() == 18
    assert layers.Flatten().get_weights() == []


# ---- fit / evaluate / predict ----------------------------------------------------------------------------------


def test_history_keys_and_lengths(uid):
    x, _, y = _toy(n=50)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
    assert isinstance(hist, kerust.callbacks.History)
    assert hist is m.history
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    assert all(isinstance(v, float) and math.isfinite(v) for vs in hist.history.values() for v in vs)
    assert all(0.0 <= v <= 1.0 for v in hist.history["accuracy"] + hist.history["val_accuracy"])
    # without validation or metrics: only loss
    m2 = _mlp(uid)
    m2.compile(optimizer="sgd", loss="categorical_crossentropy")
    h2 = m2.fit(x, y, epochs=2, verbose=0)
    assert list(h2.history) == ["loss"] and len(h2.history["loss"]) == 2


def test_evaluate_return_forms(uid):
    x, labels, y = _toy(n=30)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    res = m.evaluate(x, y, verbose=0)
    assert isinstance(res, list) and len(res) == 2
    loss, acc = res
    p = m.predict(x, verbose=0).astype("float64")
    expected_loss = float(np.mean(-np.log(np.clip(p[np.arange(30), labels], 1e-7, 1 - 1e-7))))
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert acc == pytest.approx(float(np.mean(p.argmax(1) == labels)), abs=1e-6)
    d = m.evaluate(x, y, verbose=0, return_dict=True)
    assert set(d) == {"loss", "accuracy"}
    assert d["loss"] == pytest.approx(loss, rel=1e-6) and d["accuracy"] == pytest.approx(acc)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    scalar = m.evaluate(x, y, verbose=0)
    assert isinstance(scalar, float) and scalar == pytest.approx(loss, rel=1e-6)
    assert m.evaluate(x, y, verbose=0, return_dict=True) == {"loss": pytest.approx(loss, rel=1e-6)}


def test_evaluate_does_not_depend_on_batch_size(uid):
    x, _, y = _toy(n=37)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    a = m.evaluate(x, y, batch_size=37, verbose=0)
    b = m.evaluate(x, y, batch_size=5, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_predict_dtype_and_shape(uid):
    m = _mlp(uid)
    for dtype in ("float64", "int32", "float32", "bool"):
        out = m.predict(np.ones((9, 4), dtype=dtype), verbose=0)
        assert out.dtype == np.float32 and out.shape == (9, 3)
    out = m.predict(np.random.default_rng(0).normal(size=(70, 4)), batch_size=16, verbose=0)
    assert out.shape == (70, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    # predict on a list of lists
    assert m.predict([[0.0, 1.0, 2.0, 3.0]], verbose=0).shape == (1, 3)
    # the model called directly and predict_on_batch agree with predict
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(m(x), m.predict(x, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(m.predict_on_batch(x), m.predict(x, verbose=0), rtol=1e-6)
    # Fortran-ordered and strided views give the same result as a C-contiguous copy
    wide = np.random.default_rng(2).normal(size=(5, 8))
    expected = m.predict(np.ascontiguousarray(wide[:, ::2]), verbose=0)
    np.testing.assert_array_equal(m.predict(wide[:, ::2], verbose=0), expected)
    np.testing.assert_array_equal(m.predict(np.asfortranarray(wide[:, ::2]), verbose=0), expected)


def test_train_on_batch_returns_loss_before_update(uid):
    x, _, y = _toy(n=16)
    m = _mlp(uid)
    m.compile(optimizer=kerust.optimizers.SGD(0.1), loss="categorical_crossentropy", metrics=["accuracy"])
    before = m.evaluate(x, y, batch_size=16, verbose=0)
    loss, acc = m.train_on_batch(x, y)
    assert loss == pytest.approx(before[0], rel=1e-5)
    assert acc == pytest.approx(before[1])
    after = m.evaluate(x, y, batch_size=16, verbose=0)
    assert after[0] < before[0]
    assert m.optimizer.iterations == 1


# ---- losses -----------------------------------------------------------------------------------------------------


def test_mse_and_mae_of_known_arrays():
    yt = np.array([[1.0, 2.0], [3.0, 4.0]])
    yp = np.array([[1.5, 1.0], [3.0, 6.0]])
    # per-sample means over the last axis, then the batch mean
    assert kerust.losses.MeanSquaredError()(yt, yp) == pytest.approx(((0.25 + 1.0) / 2 + (0 + 4.0) / 2) / 2)
    assert kerust.losses.MeanAbsoluteError()(yt, yp) == pytest.approx(((0.5 + 1.0) / 2 + (0 + 2.0) / 2) / 2)
    assert kerust.losses.get("mse")(yt, yp) == pytest.approx(1.3125)
    assert isinstance(kerust.losses.get("mean_absolute_error"), kerust.losses.MeanAbsoluteError)


def test_categorical_crossentropy_clips_probabilities():
    cce = kerust.losses.CategoricalCrossentropy()
    yt = np.array([[0.0, 1.0, 0.0]])
    # probability 0 for the true class: -log(1e-7)
    assert cce(yt, np.array([[0.5, 0.0, 0.5]])) == pytest.approx(-math.log(1e-7), rel=1e-5)
    # exact probabilities, and renormalisation of rows that do not sum to 1
    assert cce(yt, np.array([[0.2, 0.5, 0.3]])) == pytest.approx(-math.log(0.5), rel=1e-6)
    assert cce(yt, np.array([[0.4, 1.0, 0.6]])) == pytest.approx(-math.log(0.5), rel=1e-6)
    # from_logits: log-softmax
    logits = np.array([[1.0, 2.0, 0.5]])
    expected = -(2.0 - math.log(sum(math.exp(v) for v in logits[0])))
    assert kerust.losses.CategoricalCrossentropy(from_logits=True)(yt, logits) == pytest.approx(expected,
                                                                                                rel=1e-6)


def test_sparse_and_binary_crossentropy_values():
    scce = kerust.losses.SparseCategoricalCrossentropy()
    p = np.array([[0.1, 0.7, 0.2], [0.3, 0.3, 0.4]])
    assert scce(np.array([1, 2]), p) == pytest.approx(-(math.log(0.7) + math.log(0.4)) / 2, rel=1e-6)
    bce = kerust.losses.BinaryCrossentropy()
    yt = np.array([[1.0], [0.0]])
    yp = np.array([[0.8], [0.1]])
    assert bce(yt, yp) == pytest.approx(-(math.log(0.8) + math.log(0.9)) / 2, rel=1e-5)
    z = np.array([[0.3], [-1.2]])
    sig = 1 / (1 + np.exp(-z))
    expected = float(np.mean(-(yt * np.log(sig) + (1 - yt) * np.log(1 - sig))))
    assert kerust.losses.BinaryCrossentropy(from_logits=True)(yt, z) == pytest.approx(expected, rel=1e-5)


def test_loss_get_config():
    cfg = kerust.losses.CategoricalCrossentropy(from_logits=True).get_config()
    assert cfg["from_logits"] is True and cfg["name"] == "categorical_crossentropy"
    assert cfg["reduction"] == "sum_over_batch_size"


# ---- optimizers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,cls,lr",
    [("adam", "Adam", 1e-3), ("sgd", "SGD", 1e-2), ("rmsprop", "RMSprop", 1e-3), ("adagrad", "Adagrad", 1e-3),
     ("adamw", "AdamW", 1e-3), ("Adam", "Adam", 1e-3)],
)
def test_optimizers_get(name, cls, lr):
    opt = kerust.optimizers.get(name)
    assert type(opt).__name__ == cls
    assert opt.learning_rate == pytest.approx(lr)
    again = kerust.optimizers.get(opt)
    assert again is opt


def test_optimizer_defaults_are_keras():
    adam = kerust.optimizers.Adam()
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.999, 1e-7)
    assert kerust.optimizers.RMSprop().rho == 0.9
    sgd = kerust.optimizers.SGD()
    assert sgd.momentum == 0.0 and sgd.nesterov is False
    cfg = kerust.optimizers.get({"class_name": "Adam", "config": {"learning_rate": 0.5}})
    assert isinstance(cfg, kerust.optimizers.Adam) and cfg.learning_rate == 0.5


def test_learning_rate_settable_after_compile_takes_effect(uid):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")

    def step_size(lr_after_compile):
        m = kerust.Sequential([kerust.Input((3,)), layers.Dense(1, name=uid("d"))])
        m.set_weights([np.full((3, 1), 0.1, "float32"), np.zeros(1, "float32")])
        opt = kerust.optimizers.SGD(learning_rate=0.01)
        m.compile(optimizer=opt, loss="mse")
        if lr_after_compile is not None:
            opt.learning_rate = lr_after_compile
            assert opt.learning_rate == pytest.approx(lr_after_compile)
        before = m.get_weights()[0].copy()
        m.train_on_batch(x, y)
        return np.abs(m.get_weights()[0] - before).max()

    base = step_size(None)
    big = step_size(100.0)
    assert base > 0
    assert big == pytest.approx(base * 1e4, rel=1e-3)


def test_learning_rate_changed_between_fits(uid):
    x, _, y = _toy(n=16)
    m = _mlp(uid)
    m.compile(optimizer=kerust.optimizers.SGD(learning_rate=0.01), loss="categorical_crossentropy")
    m.optimizer.learning_rate = 1e-30
    w0 = m.get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert m.optimizer.learning_rate == pytest.approx(1e-30)
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-12)


# ---- utils -------------------------------------------------------------------------------------------------------


def test_to_categorical():
    out = kerust.utils.to_categorical([0, 2, 1])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    out = kerust.utils.to_categorical(np.array([1, 0]), num_classes=4)
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [1, 0, 0, 0]])
    # a trailing axis of size 1 is dropped
    assert kerust.utils.to_categorical(np.array([[1], [2], [0]])).shape == (3, 3)
    # other shapes keep their axes
    assert kerust.utils.to_categorical(np.array([[1, 2], [0, 1]]), 3).shape == (2, 2, 3)
    np.testing.assert_array_equal(kerust.utils.to_categorical(np.array([[1, 2]]), 3)[0, 1], [0, 0, 1])
    with pytest.raises(ValueError):
        kerust.utils.to_categorical([0, 3], num_classes=3)


def test_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(kerust.utils.normalize(x), [[0.6, 0.8], [0, 0], [1, 0]])
    np.testing.assert_allclose(kerust.utils.normalize(x, axis=0), x / np.array([math.sqrt(10), 4.0]))
    np.testing.assert_allclose(kerust.utils.normalize(x, order=1), [[3 / 7, 4 / 7], [0, 0], [1, 0]])


# ---- progress output ------------------------------------------------------------------------------------------


def test_verbose_2_prints_one_line_per_epoch(uid, capsys):
    x, _, y = _toy(n=20)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    capsys.readouterr()
    m.fit(x, y, epochs=2, batch_size=5, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 4, lines
    assert lines[0] == "Epoch 1/2"
    assert lines[2] == "Epoch 2/2"
    for line in (lines[1], lines[3]):
        assert line.startswith("4/4")
        assert "loss:" in line and "accuracy:" in line
        assert "\r" not in line and "━" not in line


def test_verbose_1_and_0(uid, capsys):
    x, _, y = _toy(n=20)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    capsys.readouterr()
    m.fit(x, y, epochs=2, batch_size=5, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "4/4" in out and "━" in out and "loss:" in out
    m.fit(x, y, epochs=2, batch_size=5, verbose=0)
    m.evaluate(x, y, verbose=0)
    m.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    m.evaluate(x, y, verbose=2)
    assert "loss:" in capsys.readouterr().out

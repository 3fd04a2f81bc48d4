"""Training through the Python API: learning, determinism, validation_split, shuffle, every optimizer's update
against Keras's formula, loss gradients against finite differences, and Ctrl-C."""

from __future__ import annotations

import _thread
import math
import threading

import kerust
import numpy as np
import pytest
from kerust import layers, losses, optimizers


def _blobs(n=240, n_in=4, n_classes=3, seed=0):
    """Well separated Gaussian blobs: a linearly separable problem."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, n_in)) * 4.0
    labels = rng.integers(0, n_classes, size=n)
    x = centers[labels] + rng.normal(size=(n, n_in)) * 0.5
    return x.astype("float32"), labels, kerust.utils.to_categorical(labels, n_classes)


def _mlp(uid, n_in=4, n_out=3, dropout=0.0):
    stack = [kerust.Input((n_in,)), layers.Dense(16, activation="relu", name=uid("d"))]
    if dropout:
        stack.append(layers.Dropout(dropout, name=uid("drop")))
    stack.append(layers.Dense(n_out, activation="softmax", name=uid("d")))
    return kerust.Sequential(stack, name=uid("m"))


# ---- learning -----------------------------------------------------------------------------------------------------


def test_mlp_learns_a_separable_problem(uid):
    x, labels, y = _blobs()
    m = _mlp(uid)
    m.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, epochs=25, batch_size=16, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.2 * loss[0]
    assert loss[-1] < 0.1
    assert hist.history["accuracy"][-1] > 0.97
    _, eval_acc = m.evaluate(x, y, verbose=0)
    assert eval_acc > 0.97
    assert (m.predict(x, verbose=0).argmax(axis=1) == labels).mean() == pytest.approx(eval_acc)


def test_sparse_labels_train_the_same_as_one_hot(uid):
    x, labels, y = _blobs(n=64)
    m1, m2 = _mlp(uid), _mlp(uid)
    m2.set_weights(m1.get_weights())
    m1.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    m2.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h1 = m1.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    h2 = m2.fit(x, labels, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)
    np.testing.assert_allclose(h1["accuracy"], h2["accuracy"])
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


# ---- determinism --------------------------------------------------------------------------------------------------


def _seeded_run(seed, uid):
    kerust.utils.set_random_seed(seed)
    x, _, y = _blobs(n=64)
    m = _mlp(uid, dropout=0.3)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    return hist.history, m.get_weights()


def test_set_random_seed_makes_runs_bit_identical(uid):
    h1, w1 = _seeded_run(7, uid)
    h2, w2 = _seeded_run(7, uid)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    h3, w3 = _seeded_run(8, uid)
    assert h3["loss"] != h1["loss"]
    assert not np.array_equal(w3[0], w1[0])


def test_seed_drives_initialisation(uid):
    kerust.utils.set_random_seed(5)
    a = _mlp(uid).get_weights()
    kerust.utils.set_random_seed(5)
    b = _mlp(uid).get_weights()
    kerust.utils.set_random_seed(6)
    c = _mlp(uid).get_weights()
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


# ---- validation_split and shuffle -----------------------------------------------------------------------------


def test_validation_split_takes_the_last_fraction(uid):
    x, _, y = _blobs(n=47)
    k_train = math.floor(47 * (1 - 0.3))  # Keras: split_at = floor(n * (1 - validation_split))
    assert k_train == 32
    m = _mlp(uid)
    twin = _mlp(uid)
    twin.set_weights(m.get_weights())
    m.compile(optimizer=optimizers.SGD(0.5), loss="categorical_crossentropy", metrics=["accuracy"])
    twin.compile(optimizer=optimizers.SGD(0.5), loss="categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, epochs=1, batch_size=k_train, validation_split=0.3, verbose=0)
    val_loss, val_acc = m.evaluate(x[k_train:], y[k_train:], verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(val_loss, abs=1e-6)
    assert hist.history["val_accuracy"][0] == pytest.approx(val_acc, abs=1e-6)
    other_loss, _ = m.evaluate(x[-(47 - k_train) - 1:-1], y[-(47 - k_train) - 1:-1], verbose=0)
    assert abs(other_loss - val_loss) > 1e-4
    # the training part is the first k_train samples: one full-batch step on them gives the same weights
    twin.train_on_batch(x[:k_train], y[:k_train])
    for a, b in zip(m.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_validation_data_matches_evaluate(uid):
    x, _, y = _blobs(n=60)
    xv, _, yv = _blobs(n=20, seed=1)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    hist = m.fit(x, y, epochs=2, batch_size=10, validation_data=(xv, yv), verbose=0)
    assert hist.history["val_loss"][-1] == pytest.approx(m.evaluate(xv, yv, verbose=0), abs=1e-6)


def test_shuffle_false_is_sequential_batches(uid):
    x, _, y = _blobs(n=40)
    m = _mlp(uid)
    twin = _mlp(uid)
    other = _mlp(uid)
    w0 = m.get_weights()
    twin.set_weights(w0)
    other.set_weights(w0)
    for model in (m, twin, other):
        model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy")
    hist = m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    losses_seen = []
    for _ in range(2):
        epoch = []
        for start in range(0, 40, 16):
            epoch.append((twin.train_on_batch(x[start:start + 16], y[start:start + 16]),
                          len(x[start:start + 16])))
        losses_seen.append(sum(v * n for v, n in epoch) / 40)
    for a, b in zip(m.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # History's loss is the sample-weighted running mean over the epoch's batches
    np.testing.assert_allclose(hist.history["loss"], losses_seen, rtol=1e-5)
    # with shuffling, the batches differ and so do the weights
    other.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=0)
    assert not np.allclose(other.get_weights()[0], m.get_weights()[0], atol=1e-5)


def test_shuffle_false_is_deterministic_without_a_seed(uid):
    x, _, y = _blobs(n=40)
    a, b = _mlp(uid), _mlp(uid)
    b.set_weights(a.get_weights())
    for model in (a, b):
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    ha = a.fit(x, y, epochs=3, batch_size=7, shuffle=False, verbose=0).history
    hb = b.fit(x, y, epochs=3, batch_size=7, shuffle=False, verbose=0).history
    assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# ---- optimizer updates vs Keras formulas -----------------------------------------------------------------------


def _reference(kind, cfg, grads, w0):
    """Keras 3's update rules in float64, applied to ``grads(w)`` for several steps; returns each step's w."""
    w = w0.astype(np.float64).copy()
    lr = cfg.get("learning_rate", 0.01 if kind == "sgd" else 0.001)
    state = {}
    out = []
    for t in range(1, 4):
        g = grads(w)
        if cfg.get("clipvalue") is not None:
            g = np.clip(g, -cfg["clipvalue"], cfg["clipvalue"])
        if cfg.get("clipnorm") is not None:
            norm = np.sqrt(np.sum(g * g))
            if norm > cfg["clipnorm"]:
                g = g * cfg["clipnorm"] / norm
        wd = cfg.get("weight_decay", 0.004 if kind == "adamw" else None)
        if wd:
            w = w - w * wd * lr
        if kind == "sgd":
            mom = cfg.get("momentum", 0.0)
            if mom == 0:
                w = w - lr * g
            else:
                m = state.get("m", np.zeros_like(w))
                m = mom * m - lr * g
                state["m"] = m
                w = w + (mom * m - lr * g if cfg.get("nesterov") else m)
        elif kind in ("adam", "adamw"):
            b1, b2 = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999)
            eps = cfg.get("epsilon", 1e-7)
            m = state.get("m", np.zeros_like(w))
            v = state.get("v", np.zeros_like(w))
            m = m + (g - m) * (1 - b1)
            v = v + (g * g - v) * (1 - b2)
            state["m"], state["v"] = m, v
            alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            if cfg.get("amsgrad"):
                vhat = np.maximum(state.get("vhat", np.zeros_like(w)), v)
                state["vhat"] = vhat
                v = vhat
            w = w - alpha * m / (np.sqrt(v) + eps)
        elif kind == "rmsprop":
            rho, eps, mom = cfg.get("rho", 0.9), cfg.get("epsilon", 1e-7), cfg.get("momentum", 0.0)
            v = rho * state.get("v", np.zeros_like(w)) + (1 - rho) * g * g
            state["v"] = v
            if cfg.get("centered"):
                a = rho * state.get("a", np.zeros_like(w)) + (1 - rho) * g
                state["a"] = a
                denom = v - a * a + eps
            else:
                denom = v + eps
            inc = lr * g / np.sqrt(denom)
            if mom > 0:
                mv = mom * state.get("mom", np.zeros_like(w)) + inc
                state["mom"] = mv
                w = w - mv
            else:
                w = w - inc
        elif kind == "adagrad":
            eps = cfg.get("epsilon", 1e-7)
            acc = state.get("acc", np.full_like(w, cfg.get("initial_accumulator_value", 0.1))) + g * g
            state["acc"] = acc
            w = w - lr * g / np.sqrt(acc + eps)
        out.append(w.copy())
    return out


_OPTIMIZERS = [
    ("sgd", optimizers.SGD, {"learning_rate": 0.1}),
    ("sgd", optimizers.SGD, {}),
    ("sgd", optimizers.SGD, {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd", optimizers.SGD, {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd", optimizers.SGD, {"learning_rate": 0.1, "clipvalue": 0.05}),
    ("sgd", optimizers.SGD, {"learning_rate": 0.1, "clipnorm": 0.05}),
    ("adam", optimizers.Adam, {}),
    ("adam", optimizers.Adam, {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.9}),
    ("adam", optimizers.Adam, {"learning_rate": 0.05, "epsilon": 0.05}),  # epsilon placement matters here
    ("adam", optimizers.Adam, {"learning_rate": 0.05, "amsgrad": True}),
    ("adamw", optimizers.AdamW, {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("rmsprop", optimizers.RMSprop, {}),
    ("rmsprop", optimizers.RMSprop, {"learning_rate": 0.01, "rho": 0.8, "epsilon": 0.01}),
    ("rmsprop", optimizers.RMSprop, {"learning_rate": 0.01, "momentum": 0.5}),
    ("rmsprop", optimizers.RMSprop, {"learning_rate": 0.01, "centered": True, "epsilon": 0.01}),
    ("adagrad", optimizers.Adagrad, {"learning_rate": 0.1}),
]


@pytest.mark.parametrize("kind,cls,cfg", _OPTIMIZERS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(_OPTIMIZERS)])
def test_optimizer_update_matches_keras_formula(kind, cls, cfg, uid):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = rng.normal(size=(6, 1)).astype("float32")
    w0 = np.array([[0.3], [-0.2], [0.5]], dtype="float32")
    m = kerust.Sequential([kerust.Input((3,)),
                           layers.Dense(1, use_bias=False, kernel_initializer="zeros", name=uid("d"))])
    np.testing.assert_array_equal(m.get_weights()[0], 0)
    m.set_weights([w0])
    m.compile(optimizer=cls(**cfg), loss="mse")

    xd, yd = x.astype(np.float64), y.astype(np.float64)

    def grads(w):  # d/dw mean((x w - y)^2)
        return 2.0 / len(xd) * xd.T @ (xd @ w - yd)

    expected = _reference(kind, cfg, grads, w0)
    for t, w_ref in enumerate(expected, start=1):
        loss = m.train_on_batch(x, y)
        assert math.isfinite(loss)
        np.testing.assert_allclose(m.get_weights()[0], w_ref, rtol=0, atol=1e-6,
                                   err_msg=f"{kind} {cfg} step {t}")
        assert m.optimizer.iterations == t
    # the reference itself moved the weights (so the check is not vacuous)
    assert np.abs(expected[-1] - w0).max() > 1e-3


def test_frozen_layer_is_not_updated(uid):
    x, _, y = _blobs(n=16)
    m = _mlp(uid)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    m.layers[0].trainable = False
    w0 = m.get_weights()
    m.train_on_batch(x, y)
    w1 = m.get_weights()
    np.testing.assert_array_equal(w0[0], w1[0])
    np.testing.assert_array_equal(w0[1], w1[1])
    assert not np.array_equal(w0[2], w1[2])


# ---- loss gradients vs finite differences ----------------------------------------------------------------------


_LOSS_CASES = [
    ("mse", "linear", False),
    ("mse", "sigmoid", False),
    ("mae", "linear", False),
    (losses.MeanSquaredError(), "tanh", False),
    ("categorical_crossentropy", "softmax", False),  # fused softmax + cross-entropy
    ("categorical_crossentropy", "sigmoid", False),  # probabilities renormalised, not fused
    (losses.CategoricalCrossentropy(from_logits=True), "linear", False),
    ("sparse_categorical_crossentropy", "softmax", True),
    ("sparse_categorical_crossentropy", "sigmoid", True),
    (losses.SparseCategoricalCrossentropy(from_logits=True), "linear", True),
    ("binary_crossentropy", "sigmoid", False),  # fused sigmoid + binary cross-entropy
    ("binary_crossentropy", "softmax", False),
    (losses.BinaryCrossentropy(from_logits=True), "linear", False),
]


@pytest.mark.parametrize("loss,act,sparse", _LOSS_CASES,
                         ids=[f"{getattr(c[0], 'name', c[0])}-{getattr(c[0], 'from_logits', False)}-{c[1]}"
                              for c in _LOSS_CASES])
def test_loss_gradient_matches_finite_differences(loss, act, sparse, uid, fd_check):
    rng = np.random.default_rng(5)
    n = 6
    x = rng.normal(size=(n, 3)).astype("float32")
    name = loss if isinstance(loss, str) else loss.name
    if sparse:
        y = rng.integers(0, 3, size=n)
    elif "categorical" in name:
        y = kerust.utils.to_categorical(rng.integers(0, 3, size=n), 3)
    elif "binary" in name:
        y = rng.integers(0, 2, size=(n, 3)).astype("float32")
    else:
        y = rng.normal(size=(n, 3)).astype("float32")
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(4, activation="tanh", name=uid("d")),
                           layers.Dense(3, activation=act, name=uid("d"))])
    # weights large enough that logits are not all ~0
    m.set_weights([w * 2 for w in m.get_weights()[:1]] + [rng.normal(size=4).astype("float32") * 0.3]
                  + m.get_weights()[2:])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss=loss)
    fd_check(m, x, y)


def test_sample_weight_scales_the_gradient(uid):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)).astype("float32")
    y = rng.normal(size=(4, 1)).astype("float32")
    sw = np.array([1.0, 0.0, 2.0, 0.5], dtype="float32")
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(1, use_bias=False, name=uid("d"))])
    w0 = m.get_weights()[0].astype(np.float64)
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse")
    loss = m.train_on_batch(x, y, sample_weight=sw)
    e = x.astype(np.float64) @ w0 - y
    # Keras sum_over_batch_size: sum(w_i * l_i) / n
    assert loss == pytest.approx(float(np.sum(sw[:, None] * e**2) / 4), rel=1e-5)
    grad = 2.0 / 4 * x.T.astype(np.float64) @ (sw[:, None] * e)
    np.testing.assert_allclose(m.get_weights()[0], w0 - grad, atol=1e-6)


# ---- Ctrl-C -----------------------------------------------------------------------------------------------------


class _InterruptSoon(kerust.callbacks.Callback):
    """Sends Ctrl-C to the main thread shortly after training starts."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.timer = threading.Timer(delay, _thread.interrupt_main)

    def on_train_begin(self, logs=None) -> None:
        self.timer.start()


def test_ctrl_c_interrupts_fit_and_leaves_the_model_usable(uid):
    rng = np.random.default_rng(0)
    small = rng.normal(size=(64, 16)).astype("float32")
    labels = rng.integers(0, 10, size=64)
    reps = 1000
    x = np.tile(small, (reps, 1))  # one long epoch of 1000 heavy steps (about 10 s on 2 cores)
    y = kerust.utils.to_categorical(np.tile(labels, reps), 10)
    m = kerust.Sequential([kerust.Input((16,)), layers.Dense(1024, activation="relu", name=uid("d")),
                           layers.Dense(1024, activation="relu", name=uid("d")),
                           layers.Dense(10, activation="softmax", name=uid("d"))])
    m.compile(optimizer=optimizers.SGD(0.01), loss="categorical_crossentropy")
    steps = len(x) // 64
    interrupt = _InterruptSoon(0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            m.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0, callbacks=[interrupt])
    finally:
        interrupt.timer.cancel()
    # interrupted inside the epoch's loop in Rust, not after it
    done = m.optimizer.iterations
    assert 0 < done < steps
    out = m.predict(small, verbose=0)
    assert out.shape == (64, 10) and np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    hist = m.fit(small, y[:64], epochs=2, batch_size=32, verbose=0)
    assert len(hist.history["loss"]) == 2 and all(math.isfinite(v) for v in hist.history["loss"])
    assert m.optimizer.iterations == done + 4

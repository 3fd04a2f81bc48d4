"""`Sequential.inspect` (each layer's activations and gradients for one batch) and `utils.gradient_check`."""

from __future__ import annotations

import numpy as np
import pytest

import kerust as keras
from kerust import layers


def _data(n: int = 6, shape: tuple = (8, 8, 2), classes: int = 4, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape), dtype=np.float32)
    y = keras.utils.to_categorical(np.arange(n) % classes, classes)
    return x, y


def _cnn(dropout: float = 0.3, pool: bool = True) -> keras.Sequential:
    keras.utils.set_random_seed(3)
    stack = [keras.Input((8, 8, 2)), layers.Conv2D(3, 3, activation="tanh")]
    stack += [layers.MaxPooling2D(2)] if pool else []
    stack += [layers.BatchNormalization(), layers.Flatten(), layers.Dropout(dropout),
              layers.Dense(4, activation="softmax", kernel_regularizer="l2")]
    model = keras.Sequential(stack)
    model.compile("adam", "categorical_crossentropy")
    return model


def test_linear_model_gradients_match_closed_form() -> None:
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), layers.Dense(3)])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    y = rng.standard_normal((7, 3)).astype(np.float32)
    ins = model.inspect(x, y)
    kernel, bias = model.get_weights()
    pred = x @ kernel + bias
    dense = ins[model.layers[0].name]
    np.testing.assert_allclose(dense["output"], pred, rtol=1e-5, atol=1e-6)
    # Keras's MSE: mean over the last axis, then over the batch
    g = 2.0 * (pred - y) / (7 * 3)
    np.testing.assert_allclose(dense["output_gradient"], g, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(dense["weight_gradients"]["kernel"], x.T @ g, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dense["weight_gradients"]["bias"], g.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ins.input_gradient, g @ kernel.T, rtol=1e-4, atol=1e-6)
    assert ins.loss == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-5)
    assert dense["weights"]["kernel"].shape == (5, 3)


def test_arrays_are_consistent_across_layers() -> None:
    model = _cnn(dropout=0.0)
    x, y = _data()
    ins = model.inspect(x, y)
    assert list(ins) == [layer.name for layer in model.layers]
    conv, pool, bn, flat, drop, dense = (ins[layer.name] for layer in model.layers)
    assert conv["output"].shape == (6, 6, 6, 3) and pool["output"].shape == (6, 3, 3, 3)
    # Flatten only reshapes: its output and gradient are the previous layer's, flattened
    np.testing.assert_array_equal(flat["output"], bn["output"].reshape(6, -1))
    np.testing.assert_array_equal(flat["output_gradient"].reshape(bn["output_gradient"].shape), bn["output_gradient"])
    np.testing.assert_array_equal(drop["output"], flat["output"])  # rate 0
    # max pooling passes each window's gradient to its maximum only
    assert np.count_nonzero(conv["output_gradient"]) <= conv["output_gradient"].size // 4
    # cross-entropy on probabilities (Keras renormalises p by its sum first): dL/dp = (1/sum(p) - y/p) / batch
    p = dense["output"]
    np.testing.assert_allclose(dense["output_gradient"], (1.0 / p.sum(1, keepdims=True) - y / p) / 6, rtol=1e-4,
                               atol=1e-6)
    # the first layer's training-mode output is what predict computes for it
    probe = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(3, 3, activation="tanh")])
    probe.set_weights(model.layers[0].get_weights())
    np.testing.assert_allclose(conv["output"], probe.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_weight_gradients_match_finite_differences_of_evaluate() -> None:
    # without dropout or BatchNormalization the training loss is evaluate()'s loss: an independent check
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(2, 3, activation="tanh"), layers.Flatten(),
                              layers.Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    x, y = _data()
    grads = model.inspect(x, y)[model.layers[0].name]["weight_gradients"]["kernel"]
    weights = model.get_weights()
    eps = 1e-2
    for index in [(0, 0, 0, 0), (1, 2, 1, 1), (2, 1, 0, 1)]:
        losses = []
        for sign in (1, -1):
            w = [a.copy() for a in weights]
            w[0][index] += sign * eps
            model.set_weights(w)
            losses.append(model.evaluate(x, y, verbose=0, batch_size=6))
        numeric = (losses[0] - losses[1]) / (2 * eps)
        assert numeric == pytest.approx(float(grads[index]), rel=2e-2, abs=2e-4)
    model.set_weights(weights)


def test_inspect_changes_nothing() -> None:
    x, y = _data()
    model, twin = _cnn(), _cnn()
    before = model.get_weights()
    first = model.inspect(x, y)
    second = model.inspect(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # BatchNormalization's moving statistics included
    assert first.loss == second.loss  # same dropout mask: the random stream was put back
    for name in first:
        np.testing.assert_array_equal(first[name]["output"], second[name]["output"])
    dropped = first[model.layers[4].name]["output"]
    assert np.count_nonzero(dropped == 0) > 0  # dropout really ran in training mode
    # training afterwards is exactly what a model that was never inspected does
    model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    twin.fit(x, y, epochs=2, batch_size=3, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_gradient_check_passes_and_leaves_weights() -> None:
    model = _cnn(pool=False)
    x, y = _data()
    before = model.get_weights()
    report = keras.utils.gradient_check(model, x, y, samples_per_weight=6)
    assert list(report) == [model.layers[i].name for i in (0, 1, 4)]
    for name, entry in report.items():
        assert entry["ok"], (name, entry)
        assert entry["max_rel_error"] < 2e-2
        for stats in entry["weights"].values():
            assert stats["checked"] >= 1 and np.isfinite(stats["max_abs_error"])
    assert "moving_mean" not in report[model.layers[1].name]["weights"]
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_gradient_check_catches_a_wrong_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    # Corrupt what backprop reports for one weight: the check must flag that layer and only that layer.
    from kerust import _inspect

    real = _inspect.build_inspection

    def corrupted(model: keras.Sequential, raw: tuple) -> object:
        result = real(model, raw)
        grads = result[model.layers[0].name]["weight_gradients"]
        grads["kernel"] = grads["kernel"] * 1.5
        return result

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((5,)), layers.Dense(6, activation="tanh"), layers.Dense(3)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    monkeypatch.setattr(_inspect, "build_inspection", corrupted)
    report = keras.utils.gradient_check(model, x, y)
    first, second = (layer.name for layer in model.layers)
    assert not report[first]["ok"] and report[first]["max_rel_error"] > 0.1
    assert report[second]["ok"]


def test_inspect_errors_name_the_problem() -> None:
    model = keras.Sequential([keras.Input((5,)), layers.Dense(3)])
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(RuntimeError, match="compile"):
        model.inspect(x, np.zeros((2, 3), np.float32))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="dense"):
        model.inspect(np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="epsilon"):
        keras.utils.gradient_check(model, x, np.zeros((2, 3), np.float32), epsilon=0)
    with pytest.raises(ValueError, match="samples_per_weight"):
        keras.utils.gradient_check(model, x, np.zeros((2, 3), np.float32), samples_per_weight=0)


def test_gradient_check_leaves_out_frozen_layers() -> None:
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="tanh"), layers.Dense(2)])
    model.layers[0].trainable = False
    model.compile("sgd", "mse")
    x = np.random.default_rng(2).standard_normal((6, 5)).astype(np.float32)
    y = np.random.default_rng(3).standard_normal((6, 2)).astype(np.float32)
    report = keras.utils.gradient_check(model, x, y)
    assert list(report) == [model.layers[1].name] and report[model.layers[1].name]["ok"]

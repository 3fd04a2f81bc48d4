"""Dilated and grouped convolutions (Conv2D and Conv1D `dilation_rate`, `groups`): outputs equal Keras's on its
weights (tests/reference/conv/conv.npz, from generate_conv.py), gradients equal finite differences, `.keras`
files move both ways with Keras, and Keras's errors for arguments it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import kerust
import numpy as np
import pytest
from kerust import layers

from keras_files import run_in_keras

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference" / "conv"))
from conv_cases import CASES  # noqa: E402

REF = np.load(HERE / "reference" / "conv" / "conv.npz")


def _model(name: str) -> kerust.Sequential:
    cls, kwargs, shape = CASES[name]
    model = kerust.Sequential([kerust.Input(shape), getattr(layers, cls)(**kwargs)])
    n = len(model.get_weights())
    model.set_weights([REF[f"{name}/w{i}"] for i in range(n)])
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_equals_keras(name: str) -> None:
    model = _model(name)
    assert [w.shape for w in model.get_weights()] == [REF[f"{name}/w{i}"].shape
                                                    for i in range(len(model.get_weights()))]
    y = model.predict(REF[f"{name}/x"], verbose=0)
    np.testing.assert_allclose(y, REF[f"{name}/y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name: str, fd_check) -> None:
    model = _model(name)
    x = REF[f"{name}/x"][:2]
    y = np.random.default_rng(1).normal(size=REF[f"{name}/y"][:2].shape).astype(np.float32)
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    fd_check(model, x, y)


def test_input_gradient_matches_finite_differences() -> None:
    name = "conv2d_groups_dilated"
    model = _model(name)
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    x = REF[f"{name}/x"][:1].astype(np.float64)
    y = np.zeros_like(REF[f"{name}/y"][:1])
    analytic = np.asarray(model.inspect(x.astype(np.float32), y).input_gradient).reshape(-1)
    h = 1e-2
    for j in np.random.default_rng(0).choice(x.size, 12, replace=False):
        plus, minus = x.copy().reshape(-1), x.copy().reshape(-1)
        plus[j] += h
        minus[j] -= h
        lp = model.evaluate(plus.reshape(x.shape).astype(np.float32), y, verbose=0)
        lm = model.evaluate(minus.reshape(x.shape).astype(np.float32), y, verbose=0)
        assert abs((lp - lm) / (2 * h) - analytic[j]) < 2e-3 + 2e-2 * abs(analytic[j]), j


def test_threads_give_identical_grouped_training() -> None:
    from thread_counts import assert_same_for_thread_counts

    def train() -> list:
        kerust.utils.set_random_seed(3)
        model = _model("conv2d_groups")
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(2).normal(size=(40, 7, 6, 4)).astype(np.float32)
        model.fit(x, np.ones((40, 4, 3, 4), np.float32), batch_size=20, epochs=2, verbose=0)
        return model.get_weights()

    assert_same_for_thread_counts(train)


@pytest.mark.parametrize("name", ["conv2d_groups_dilated", "conv1d_groups_causal_dilated"])
def test_keras_files_move_both_ways(name: str, tmp_path: Path) -> None:
    model = _model(name)
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "m.keras"
    model.save(path)
    x = REF[f"{name}/x"]
    np.save(tmp_path / "x.npy", x)
    run_in_keras(f"""
        import keras, numpy as np
        m = keras.models.load_model({str(path)!r})
        np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))
        m.save({str(tmp_path / 'back.keras')!r})
    """)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), REF[f"{name}/y"], rtol=1e-5, atol=1e-5)
    back = kerust.models.load_model(tmp_path / "back.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), REF[f"{name}/y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build, message", [
    (lambda: layers.Conv2D(3, 3, groups=2), "The number of filters must be evenly divisible by the number of "
                                             "groups. Received: groups=2, filters=3."),
    (lambda: layers.Conv2D(4, 3, groups=0), "The number of groups must be a positive integer"),
    (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), "`strides > 1` not supported in conjunction with "
                                                              "`dilation_rate > 1`"),
    (lambda: kerust.Sequential([kerust.Input((5, 5, 3)), layers.Conv2D(4, 3, groups=2)]),
     "The number of input channels must be evenly divisible by the number of groups. Received groups=2, but the "
     "input has 3 channels (full input shape is (None, 5, 5, 3))."),
    (lambda: kerust.Sequential([kerust.Input((5, 3)), layers.Conv1D(4, 2, groups=2)]),
     "The number of input channels must be evenly divisible by the number of groups"),
    (lambda: kerust.Sequential([kerust.Input((5, 5, 3)), layers.Conv2D(4, 3, dilation_rate=3)]),
     "window (7, 7) is larger than the input (5, 5)"),
])
def test_refused_arguments_raise_keras_errors(build, message: str) -> None:
    with pytest.raises(ValueError) as err:
        build()
    assert message in str(err.value)

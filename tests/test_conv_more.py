"""Conv2DTranspose, DepthwiseConv2D and SeparableConv2D: outputs equal Keras's on its weights
(tests/reference/conv/conv_more.npz, from generate_more.py), gradients equal finite differences, training is
bit-identical for any thread count, `.keras` files move both ways with Keras, and Keras's errors for arguments it
refuses."""

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
from more_cases import CASES  # noqa: E402

REF = np.load(HERE / "reference" / "conv" / "conv_more.npz")


def _model(name: str) -> kerust.Sequential:
    cls, kwargs, shape = CASES[name]
    model = kerust.Sequential([kerust.Input(shape), getattr(layers, cls)(**kwargs)])
    n = len(model.get_weights())
    model.set_weights([REF[f"{name}/w{i}"] for i in range(n)])
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_equals_keras(name: str) -> None:
    model = _model(name)
    n = len(model.get_weights())
    assert n == sum(1 for k in REF.files if k.startswith(f"{name}/w"))
    assert [w.shape for w in model.get_weights()] == [REF[f"{name}/w{i}"].shape for i in range(n)]
    y = model.predict(REF[f"{name}/x"], verbose=0)
    assert y.shape == REF[f"{name}/y"].shape
    np.testing.assert_allclose(y, REF[f"{name}/y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name: str, fd_check) -> None:
    model = _model(name)
    x = REF[f"{name}/x"][:2]
    y = np.random.default_rng(1).normal(size=REF[f"{name}/y"][:2].shape).astype(np.float32)
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    fd_check(model, x, y)


@pytest.mark.parametrize("name", ["transpose_same_output_padding", "depthwise_same_multiplier", "separable_same"])
def test_input_gradient_matches_finite_differences(name: str) -> None:
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


def test_threads_give_identical_training() -> None:
    from thread_counts import assert_same_for_thread_counts

    def train() -> list:
        kerust.utils.set_random_seed(3)
        model = kerust.Sequential([
            kerust.Input((8, 8, 3)),
            layers.SeparableConv2D(6, 3, padding="same", activation="relu"),
            layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2),
            layers.Conv2DTranspose(2, 3, strides=2, padding="same"),
        ])
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(2).normal(size=(40, 8, 8, 3)).astype(np.float32)
        model.fit(x, np.ones((40, 6, 6, 2), np.float32), batch_size=20, epochs=2, verbose=0)
        return model.get_weights()

    assert_same_for_thread_counts(train)


def test_weight_names_are_keras() -> None:
    assert [w.path.split("/")[1] for w in _model("separable_same").weights] == [
        "depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.path.split("/")[1] for w in _model("depthwise_strided").weights] == ["kernel", "bias"]
    assert [w.path.split("/")[1] for w in _model("transpose_same").weights] == ["kernel", "bias"]


@pytest.mark.parametrize("name", ["transpose_same_output_padding", "depthwise_same_multiplier", "separable_same"])
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
    assert type(back.layers[0]).__name__ == CASES[name][0]
    np.testing.assert_allclose(back.predict(x, verbose=0), REF[f"{name}/y"], rtol=1e-5, atol=1e-5)


def test_config_round_trip() -> None:
    for name in CASES:
        layer = _model(name).layers[0]
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("build, message", [
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2),
     "`output_padding` must be strictly less than `strides` for all dimensions. At dimension 0, `output_padding` "
     "is 2 but `strides` is 2. Received: output_padding=(2, 2), strides=(2, 2)"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, dilation_rate=2),
     "`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    (lambda: layers.Conv2DTranspose(0, 3), "Invalid value for argument `filters`. Expected a strictly positive "
                                           "value. Received filters=0."),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0),
     "Invalid value for argument `depth_multiplier`. Expected a strictly positive value. Received "
     "depth_multiplier=0."),
    (lambda: layers.SeparableConv2D(0, 3), "Received filters=0."),
    (lambda: kerust.Sequential([kerust.Input((2, 2, 3)), layers.DepthwiseConv2D(3)]),
     "window (3, 3) is larger than the input (2, 2)"),
    (lambda: kerust.Sequential([kerust.Input((5, 3)), layers.SeparableConv2D(2, 3)]),
     "expected ndim=4"),
])
def test_refused_arguments_raise_keras_errors(build, message: str) -> None:
    with pytest.raises(ValueError) as err:
        build()
    assert message in str(err.value)


def test_wrong_input_shape_names_the_layer() -> None:
    model = _model("depthwise_strided")
    with pytest.raises(ValueError, match="depthwise"):
        model.predict(np.zeros((1, 5, 6, 4), np.float32), verbose=0)


def test_denoising_autoencoder_example_trains() -> None:
    import importlib.util

    path = HERE.parent / "examples" / "denoising_autoencoder.py"
    spec = importlib.util.spec_from_file_location("denoising_autoencoder", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    kerust.utils.set_random_seed(0)
    model = example.build()
    assert model.count_params() == 28_353  # Keras's count for the same model
    rng = np.random.default_rng(0)
    clean = (rng.random((64, 28, 28, 1)) > 0.7).astype(np.float32)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    losses = model.fit(example.noisy(clean, rng), clean, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < losses[0] * 0.9

"""``keras.metrics.Metric`` subclasses (``add_variable`` / ``update_state`` / ``result`` / ``reset_state``), eagerly
and traced into ``fit`` / ``evaluate``, checked against real Keras.

The classes are the ones in ``tests/reference/custom/custom_metrics.py``, written once for both libraries
(``define(keras)``); the reference values come from Keras 3.15.1 (JAX backend), written by
``tests/reference/custom/generate_metrics.py`` into ``metrics.npz`` and ``metrics.keras``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import kerust as keras
import numpy as np
import pytest
from kerust import ops

FIXTURES = Path(__file__).resolve().parent / "reference" / "custom"
EXPECTED = np.load(FIXTURES / "metrics.npz")
TOL = 1e-5


def _load():
    # under the module name the generator used, so `__module__` matches what Keras wrote in metrics.keras
    spec = importlib.util.spec_from_file_location("custom_metrics", FIXTURES / "custom_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["custom_metrics"] = mod
    spec.loader.exec_module(mod)
    return mod


CLASSES = _load().define(keras)
NAMES = sorted(CLASSES)


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([EXPECTED["weight_00"], EXPECTED["weight_01"]])
    return model


@pytest.mark.parametrize("name", NAMES)
def test_eager_update_result_reset_match_keras(name):
    m = CLASSES[name]()
    values = [float(m.result())]
    for k in range(3):
        m.update_state(EXPECTED[f"y__{k}"], EXPECTED[f"p__{k}"])
        values.append(float(m.result()))
    m.reset_state()
    values.append(float(m.result()))
    np.testing.assert_allclose(values, EXPECTED[f"{name}__eager"], rtol=TOL, atol=TOL, equal_nan=True)


def test_evaluate_and_fit_run_the_traced_metrics_as_keras():
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
                  metrics=[CLASSES[n]() for n in CLASSES])
    x, y = EXPECTED["x"], EXPECTED["y"]
    result = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for name, cls in CLASSES.items():
        key = cls().name
        assert result[key] == pytest.approx(float(EXPECTED[f"{name}__evaluate"]), rel=TOL, abs=TOL), name
        np.testing.assert_allclose(history[key], EXPECTED[f"{name}__fit"], rtol=TOL, atol=TOL, err_msg=name)
    np.testing.assert_allclose(history["loss"], EXPECTED["loss__fit"], rtol=TOL)


def test_traced_metric_equals_the_same_formula_on_predict():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 3)).astype(np.float32)
    y = (rng.random((37, 1)) > 0.5).astype(np.float32)
    model = _model()
    model.compile(loss="binary_crossentropy", metrics=[CLASSES["BinaryTruePositives"](), CLASSES["MeanAbsError"]()])
    logs = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)  # a last batch of 2
    p = model.predict(x, verbose=0)
    assert logs["binary_true_positives"] == float(((p > 0.5) & (y > 0.5)).sum())
    assert logs["mean_abs_error"] == pytest.approx(float(np.abs(p - y).mean()), rel=1e-6)
    # the model's own mae agrees with the user's
    model.compile(loss="binary_crossentropy", metrics=["mae", CLASSES["MeanAbsError"]()])
    logs = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    assert logs["mean_abs_error"] == pytest.approx(logs["mae"], rel=1e-6)


def test_each_epoch_starts_from_reset_state_and_the_python_state_is_left_alone():
    m = CLASSES["SumOfSquares"]()
    m.update_state(np.ones((2, 1), np.float32), np.zeros((2, 1), np.float32))
    before = [v.numpy() for v in m.variables]
    model = _model()
    model.compile(loss="binary_crossentropy", metrics=[m])
    x, y = EXPECTED["x"], EXPECTED["y"]
    first = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["sum_of_squares"]
    second = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["sum_of_squares"]
    assert first == second == pytest.approx(float(EXPECTED["SumOfSquares__evaluate"]), rel=TOL)
    assert [v.numpy() for v in m.variables] == before


def test_a_metric_may_return_its_variable_and_count_with_ints():
    class Seen(keras.metrics.Metric):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.n = self.add_variable((), "zeros", dtype="int32", name="n")

        def update_state(self, y_true, y_pred):  # no sample_weight argument: Keras's metrics= passes none
            self.n.assign_add(ops.shape(y_true)[1] * ops.size(y_pred) // ops.size(y_pred))

        def result(self):
            return self.n

    m = Seen()
    assert m.name == "seen" and m.dtype == "float32"
    assert m(np.zeros((4, 1)), np.zeros((4, 1))) is m.n and int(m.result()) == 1
    assert "value=1" in repr(m.n) and m.n.numpy().dtype == np.int32
    model = _model()
    model.compile(loss="binary_crossentropy", metrics=[Seen(name="batches")])
    logs = model.evaluate(EXPECTED["x"], EXPECTED["y"], batch_size=8, verbose=0, return_dict=True)
    assert logs["batches"] == 3.0


def test_config_round_trip_and_variables():
    m = CLASSES["ThresholdCounts"](thresholds=(0.1, 0.9), name="tc")
    assert m.get_config() == {"name": "tc", "dtype": "float32", "thresholds": [0.1, 0.9]}
    again = CLASSES["ThresholdCounts"].from_config(m.get_config())
    assert again.name == "tc" and again.thresholds == [0.1, 0.9]
    assert [(v.name, v.shape, v.dtype) for v in m.variables] == [("above", (2,), "float32"), ("seen", (), "int32")]
    rms = CLASSES["RootMeanSquare"]()
    assert [v.path for v in rms.variables] == ["sum_of_squares/total", "sum_of_squares/count"]
    assert [float(v) for v in rms.variables] == [0.0, 1.0]  # the initializers' values until reset_state


def test_keras_file_with_a_registered_user_metric_compiles_with_it():
    cls = CLASSES["BinaryTruePositives"]
    with pytest.warns(UserWarning, match="without compiling"):
        model = keras.saving.load_model(FIXTURES / "metrics.keras")
    assert not model.compiled
    model = keras.saving.load_model(FIXTURES / "metrics.keras", custom_objects={"BinaryTruePositives": cls})
    assert model.metrics_names == ["loss", "binary_true_positives"]
    logs = model.evaluate(EXPECTED["x"], EXPECTED["y"], batch_size=8, verbose=0, return_dict=True)
    p = model.predict(EXPECTED["x"], verbose=0)
    assert logs["binary_true_positives"] == float(((p > 0.5) & (EXPECTED["y"] > 0.5)).sum())
    # Keras saved the Adam it never built (no training): its step count and learning rate only
    assert model.optimizer.learning_rate == pytest.approx(0.001)
    history = model.fit(EXPECTED["x"], EXPECTED["y"], epochs=1, verbose=0).history
    assert np.isfinite(history["binary_true_positives"][0])


def test_saved_and_loaded_through_the_registry(tmp_path):
    @keras.saving.register_keras_serializable(package="MetricTests")
    class CountAbove(keras.metrics.Metric):
        def __init__(self, threshold=0.5, **kwargs):
            super().__init__(**kwargs)
            self.threshold = threshold
            self.count = self.add_variable((), "zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.count.assign_add(ops.sum(ops.cast(y_pred > self.threshold, "float32")))

        def result(self):
            return self.count

        def get_config(self):
            return {**super().get_config(), "threshold": self.threshold}

    model = _model()
    model.compile(loss="binary_crossentropy", metrics=[CountAbove(0.25)])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    metric = loaded._compile_args["heads"][0]["metrics"][0]
    assert isinstance(metric, CountAbove) and metric.threshold == 0.25
    a = model.evaluate(EXPECTED["x"], EXPECTED["y"], verbose=0, return_dict=True)
    b = loaded.evaluate(EXPECTED["x"], EXPECTED["y"], verbose=0, return_dict=True)
    assert a == b


def test_mistakes_are_named():
    class NoSuper(keras.metrics.Metric):
        def __init__(self):
            self.v = self.add_variable((), "zeros")

    with pytest.raises((RuntimeError, AttributeError), match="super"):
        NoSuper()

    class VectorResult(keras.metrics.Metric):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.v = self.add_variable((2,), "zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.v.assign_add(ops.ones((2,)))

        def result(self):
            return self.v

    model = _model()
    with pytest.raises(TypeError, match="'vector_result': result\\(\\) must return a scalar"):
        model.compile(loss="mse", metrics=[VectorResult()])

    class WrongShape(VectorResult):
        def update_state(self, y_true, y_pred, sample_weight=None):
            self.v.assign(ops.sum(y_pred))

        def result(self):
            return ops.sum(self.v)

    with pytest.raises(ValueError, match=r"'wrong_shape/variable': assign\(\) needs a value of shape \(2,\)"):
        model.compile(loss="mse", metrics=[WrongShape()])

    class BatchSize(VectorResult):
        def update_state(self, y_true, y_pred, sample_weight=None):
            self.v.assign_add(ops.ones((2,)) * ops.cast(ops.shape(y_pred)[0], "float32"))

        def result(self):
            return ops.sum(self.v)

    with pytest.raises(TypeError, match="ops.size"):
        model.compile(loss="mse", metrics=[BatchSize()])
    with pytest.raises(TypeError, match="unexpected arguments"):
        VectorResult(threshold=3)
    with pytest.raises(ValueError, match="Metric 'vector_result_.*': add_variable: .*shape"):
        VectorResult().add_variable((-1,), "zeros")  # unnamed metrics are numbered, as in Keras
    # a failed compile leaves the model as it was: compiling again with good metrics works
    model.compile(loss="mse", metrics=[CLASSES["MeanAbsError"]()])
    assert "mean_abs_error" in model.evaluate(EXPECTED["x"], EXPECTED["y"], verbose=0, return_dict=True)


def test_ops_size_and_divide_no_nan():
    assert ops.size(np.zeros((3, 4))) == 12 and ops.size(np.zeros((3, 4))).dtype == np.int32
    np.testing.assert_array_equal(ops.divide_no_nan(np.array([1.0, 2.0, 0.0]), np.array([2.0, 0.0, 0.0])),
                                  [0.5, 0.0, 0.0])
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: ops.divide_no_nan(t, t) * ops.cast(ops.size(t),
                                                                                                  "float32"))(inputs))
    out = model.predict(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 5.0]], np.float32), verbose=0)
    np.testing.assert_array_equal(out, [[6.0, 0.0, 6.0], [0.0, 0.0, 6.0]])

"""The rest of Keras 3.15's metrics (``kerust.metrics``: Mean, Sum, MeanMetricWrapper, RootMeanSquaredError,
R2Score, F1Score/FBetaScore, the IoU family, Precision/Recall with thresholds/top_k/class_id, the
sensitivity/specificity family and AUC's curves, summations and multi_label), checked against real Keras.

The cases are ``tests/reference/metrics/cases.py`` (``cases(keras)``, one definition for both libraries); the
reference values come from Keras 3.15.1 (JAX backend), written by ``generate_metrics_more.py`` next to it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import kerust as keras
import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "reference" / "metrics"
EXPECTED = np.load(FIXTURES / "metrics_more.npz")
CONFIGS = json.loads((FIXTURES / "metrics_more.json").read_text())
TOL = 1e-6


def _load():
    spec = importlib.util.spec_from_file_location("metric_cases", FIXTURES / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MOD = _load()
CASES = MOD.cases(keras)


def _update(m, kind, k, weighted):
    y, p = EXPECTED[f"{kind}__y__{k}"], EXPECTED[f"{kind}__p__{k}"]
    w = EXPECTED[f"{kind}__w__{k}"] if weighted else None
    if kind == "values":
        m.update_state(y, sample_weight=w)
    else:
        m.update_state(y, p, sample_weight=w)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_eager_batches_match_keras(case, weighted):
    make, kind = CASES[case]
    tag = "weighted" if weighted else "eager"
    m = make()
    if f"{case}__{tag}__refused" in EXPECTED:  # Keras refuses these weights for this metric: so does kerust
        with pytest.raises(ValueError):
            for k in range(3):
                _update(m, kind, k, weighted)
        return
    for k in range(3):
        _update(m, kind, k, weighted)
        np.testing.assert_allclose(np.asarray(m.result(), np.float64), EXPECTED[f"{case}__{tag}__{k}"],
                                   rtol=TOL, atol=TOL, err_msg=f"{case} batch {k}")
    if weighted:
        m.reset_state()
        _update(m, kind, 0, False)
        np.testing.assert_allclose(np.asarray(m.result(), np.float64), EXPECTED[f"{case}__reset"], rtol=TOL,
                                   atol=TOL)


@pytest.mark.parametrize("case", sorted(CASES))
def test_get_config_is_keras_and_round_trips(case):
    m = CASES[case][0]()
    config = m.get_config()
    expected = dict(CONFIGS[case])
    for key in ("fn", "label_weights"):  # a function / an array: compared by what they do (the eager test)
        if key in expected:
            assert key in config
            expected.pop(key)
            config = {k: v for k, v in config.items() if k != key}
    assert config == expected
    config = m.get_config()
    if "fn" in config:  # an unregistered function cannot be found again from its name (in Keras either)
        config["fn"] = m.fn
    again = type(m).from_config(config)
    assert again.get_config() == m.get_config() and again.name == m.name
    assert [v.name for v in again.variables] == [v.name for v in m.variables]


def test_variables_are_keras_names_and_shapes():
    f1 = keras.metrics.F1Score(average="macro")
    assert f1.variables == []
    f1.update_state(np.zeros((2, 4), np.float32), np.ones((2, 4), np.float32))
    assert [(v.name, tuple(v.shape)) for v in f1.variables] == [
        (n, (4,)) for n in ("true_positives", "false_positives", "false_negatives", "intermediate_weights")]
    iou = keras.metrics.MeanIoU(num_classes=3)
    assert [(v.name, tuple(v.shape), v.dtype) for v in iou.variables] == [("total_confusion_matrix", (3, 3),
                                                                          "int32")]
    auc = keras.metrics.AUC(num_thresholds=7, curve="PR")
    assert [(v.name, tuple(v.shape)) for v in auc.variables] == [
        (n, (7,)) for n in ("true_positives", "false_positives", "true_negatives", "false_negatives")]
    assert keras.metrics.Mean().variables[1].name == "count"
    assert [v.name for v in keras.metrics.R2Score().variables] == ["num_samples"]


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    model.set_weights([EXPECTED["weight_00"], EXPECTED["weight_01"]])
    return model


def test_compiled_metrics_evaluate_and_fit_as_keras():
    model = _model()
    metrics = [CASES[c][0]() for c in MOD.COMPILED]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=metrics)
    x, y = EXPECTED["x"], EXPECTED["y"]
    result = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for case, m in zip(MOD.COMPILED, metrics):
        assert result[m.name] == pytest.approx(float(EXPECTED[f"{case}__evaluate"]), rel=1e-5, abs=1e-5), case
        np.testing.assert_allclose(history[m.name], EXPECTED[f"{case}__fit"], rtol=1e-5, atol=1e-5, err_msg=case)
    np.testing.assert_allclose(history["loss"], EXPECTED["loss__fit"], rtol=1e-5)


def test_reads_the_metrics_of_a_keras_made_file():
    model = keras.saving.load_model(FIXTURES / "metrics_more.keras")
    logs = model.evaluate(EXPECTED["x"], EXPECTED["y"], batch_size=8, verbose=0, return_dict=True)
    expected = json.loads((FIXTURES / "metrics_more_saved.json").read_text())
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def test_keras_file_round_trip_keeps_the_metrics(tmp_path):
    model = _model()
    model.compile(loss="binary_crossentropy",
                  metrics=[keras.metrics.FBetaScore(beta=2.0, average="weighted", name="fbw"),
                           keras.metrics.Recall(top_k=1, class_id=0, name="r_top1"),
                           keras.metrics.OneHotMeanIoU(num_classes=3, name="ohmiou"),
                           keras.metrics.SpecificityAtSensitivity(0.7, name="sps")])
    x, y = EXPECTED["x"], EXPECTED["y"]
    before = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    after = loaded.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert after == pytest.approx(before, rel=1e-6)
    assert set(after) >= {"fbw", "r_top1", "ohmiou", "sps"}


def test_names_give_the_default_instances():
    assert isinstance(keras.metrics.get("f1_score"), keras.metrics.F1Score)
    assert isinstance(keras.metrics.get("R2Score"), keras.metrics.R2Score)
    assert isinstance(keras.metrics.get("root_mean_squared_error"), keras.metrics.RootMeanSquaredError)
    assert keras.metrics.get("mae") == "mae"
    with pytest.raises(ValueError):
        keras.metrics.get("rmse")  # not a Keras name


@pytest.mark.parametrize("make, message", [
    (lambda: keras.metrics.F1Score(average="mean"), "Invalid `average` argument value"),
    (lambda: keras.metrics.FBetaScore(beta=2), "It should be a Python float"),
    (lambda: keras.metrics.FBetaScore(beta=-1.0), "It should be > 0"),
    (lambda: keras.metrics.F1Score(threshold=1.5), "0 < threshold <= 1"),
    (lambda: keras.metrics.R2Score(class_aggregation="mean"), "class_aggregation"),
    (lambda: keras.metrics.R2Score(num_regressors=-1), "num_regressors"),
    (lambda: keras.metrics.IoU(num_classes=2, target_class_ids=[2]), "Target class id 2 is out of range"),
    (lambda: keras.metrics.AUC(curve="XY"), "Invalid AUC curve value"),
    (lambda: keras.metrics.AUC(summation_method="left"), "Invalid AUC summation method"),
    (lambda: keras.metrics.AUC(num_thresholds=1), "num_thresholds"),
    (lambda: keras.metrics.AUC(num_labels=3), "only when `multi_label` is True"),
    (lambda: keras.metrics.PrecisionAtRecall(1.5), "`recall` must be in the range [0, 1]"),
    (lambda: keras.metrics.SensitivityAtSpecificity(0.5, num_thresholds=0), "num_thresholds"),
    (lambda: keras.metrics.Precision(thresholds=[0.5, 2.0]), "Threshold values must be in [0, 1]"),
])
def test_bad_arguments_raise_keras_errors(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("`", "`")):
        make()


def test_f1_before_any_update_and_rank_checks():
    with pytest.raises(ValueError, match="FBetaScore expects 2D inputs"):
        keras.metrics.F1Score().update_state(np.zeros((2,)), np.zeros((2,)))
    with pytest.raises(ValueError, match="R2Score expects 2D inputs"):
        keras.metrics.R2Score().update_state(np.zeros((2, 1, 1)), np.zeros((2, 1, 1)))
    with pytest.raises(ValueError, match="class_id is provided"):
        keras.metrics.Precision(class_id=0).update_state(np.zeros((3,)), np.zeros((3,)))

"""kerust.wrappers: KerasClassifier / KerasRegressor under scikit-learn's estimator contract (clone, get/set_params,
cross_val_score, GridSearchCV, Pipeline, pickling, scikit-learn's own estimator checks) on tiny synthetic data."""

from __future__ import annotations

import copy
import inspect
import pickle
import subprocess
import sys
from typing import Any, Dict, List

import kerust
import numpy as np
import pytest
from kerust import layers

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from kerust.wrappers import KerasClassifier, KerasRegressor  # noqa: E402


# ---- model functions (module level, so they pickle by reference) -----------------------------------------------
def softmax_mlp(n_features_in: int, n_classes: int, hidden: int = 16, lr: float = 0.02) -> kerust.Sequential:
    model = kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(hidden, activation="relu"),
                               layers.Dense(n_classes, activation="softmax")])
    model.compile(optimizer=kerust.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def one_hot_mlp(n_features_in: int, n_classes: int) -> kerust.Sequential:
    model = kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(16, activation="relu"),
                               layers.Dense(n_classes, activation="softmax")])
    model.compile(optimizer=kerust.optimizers.Adam(0.02), loss="categorical_crossentropy")
    return model


def sigmoid_mlp(n_features_in: int) -> kerust.Sequential:
    model = kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(16, activation="relu"),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=kerust.optimizers.Adam(0.02), loss="binary_crossentropy")
    return model


def logits_mlp(n_features_in: int, n_classes: int) -> kerust.Sequential:
    model = kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(16, activation="relu"),
                               layers.Dense(n_classes)])
    model.compile(optimizer=kerust.optimizers.Adam(0.02),
                  loss=kerust.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def uncompiled_mlp(n_features_in: int, n_classes: int) -> kerust.Sequential:
    return kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(16, activation="relu"),
                              layers.Dense(n_classes, activation="softmax")])


def regression_mlp(n_features_in: int, n_outputs: int, hidden: int = 32) -> kerust.Sequential:
    model = kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(hidden, activation="relu"),
                               layers.Dense(n_outputs)])
    model.compile(optimizer=kerust.optimizers.Adam(0.01), loss="mse")
    return model


def image_model(input_shape: tuple, n_classes: int) -> kerust.Sequential:
    model = kerust.Sequential([kerust.Input(input_shape), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(n_classes, activation="softmax")])
    model.compile(optimizer=kerust.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    return model


def not_a_model(n_features_in: int) -> str:
    return "a string"


# ---- data ----------------------------------------------------------------------------------------------------
def _three_classes(n: int = 300) -> tuple:
    return make_classification(n_samples=n, n_features=8, n_informative=5, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, class_sep=1.5, random_state=0)


def _two_classes(n: int = 240) -> tuple:
    return make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=2,
                               class_sep=1.5, random_state=1)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y))


# ---- scikit-learn's model selection ---------------------------------------------------------------------------
def test_cross_val_score_is_well_above_chance() -> None:
    X, y = _three_classes()
    clf = KerasClassifier(softmax_mlp, epochs=15, random_state=0)
    scores = cross_val_score(clf, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.7, scores  # chance is 1/3
    assert not hasattr(clf, "model_")  # cross_val_score fits clones, never the estimator given


def test_grid_search_over_epochs_and_width() -> None:
    X, y = _three_classes(240)
    grid = GridSearchCV(KerasClassifier(softmax_mlp, random_state=0, hidden=4),
                        {"epochs": [1, 15], "hidden": [4, 16]}, cv=StratifiedKFold(3))
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_params_["epochs"] == 15  # one epoch of 5 steps cannot compete with fifteen
    assert grid.best_score_ > 0.7
    scores = dict(zip([tuple(sorted(p.items())) for p in grid.cv_results_["params"]],
                      grid.cv_results_["mean_test_score"]))
    assert scores[(("epochs", 15), ("hidden", 16))] > scores[(("epochs", 1), ("hidden", 16))] + 0.1
    # the refitted best estimator is built with the chosen width
    assert grid.best_estimator_.model_.layers[0].units == grid.best_params_["hidden"]
    assert grid.score(X, y) > 0.7


def test_grid_search_over_a_prefixed_model_argument_not_given_to_the_constructor() -> None:
    X, y = _three_classes(150)
    grid = GridSearchCV(KerasClassifier(softmax_mlp, epochs=2, random_state=0),
                        {"model__hidden": [3, 5]}, cv=3, refit=True)
    grid.fit(X, y)
    assert grid.best_estimator_.model_.layers[0].units == grid.best_params_["model__hidden"]


def test_pipeline_with_standard_scaler() -> None:
    X, y = _three_classes()
    X_bad = X * 500.0 + 2000.0  # far from zero mean / unit variance
    pipe = make_pipeline(StandardScaler(), KerasClassifier(softmax_mlp, epochs=15, random_state=0))
    scores = cross_val_score(pipe, X_bad, y, cv=3)
    assert scores.mean() > 0.8, scores
    pipe.fit(X_bad, y)
    assert pipe.predict(X_bad[:7]).shape == (7,)
    assert pipe.named_steps["kerasclassifier"].n_features_in_ == 8


# ---- parameters and cloning -----------------------------------------------------------------------------------
def test_get_params_round_trips_every_constructor_argument_and_clone_is_equal() -> None:
    cb = [kerust.callbacks.EarlyStopping(monitor="loss")]
    opt = kerust.optimizers.SGD(0.1)
    clf = KerasClassifier(softmax_mlp, optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                          epochs=3, batch_size=16, verbose=0, validation_split=0.1, callbacks=cb, shuffle=False,
                          random_state=7, warm_start=True, class_weight="balanced", hidden=8, model__lr=0.1,
                          fit__validation_freq=2)
    params = clf.get_params()
    signature = inspect.signature(KerasClassifier.__init__).parameters
    own = [name for name in signature if name not in ("self", "kwargs")]
    assert set(params) == set(own) | {"hidden", "model__lr", "fit__validation_freq"}
    assert params["callbacks"] is cb and params["optimizer"] is opt and params["hidden"] == 8
    assert params["epochs"] == 3 and params["random_state"] == 7 and params["model__lr"] == 0.1

    twin = clone(clf)
    assert twin is not clf and type(twin) is KerasClassifier
    twin_params = twin.get_params()
    assert set(twin_params) == set(params)
    for key, value in params.items():
        if key in ("callbacks", "optimizer"):  # clone deep-copies objects that are not estimators
            assert type(twin_params[key]) is type(value)
        else:
            assert twin_params[key] == value, key
    # the same constructor call from get_params(deep=False), as clone does it
    assert KerasClassifier(**clf.get_params(deep=False)).get_params() == clf.get_params()


def test_set_params_routes_model_arguments_and_rejects_unknown_plain_names() -> None:
    X, y = _three_classes(90)
    clf = KerasClassifier(softmax_mlp, epochs=1, random_state=0, hidden=4)
    assert clf.set_params(hidden=6, epochs=2) is clf
    assert clf.hidden == 6 and clf.epochs == 2
    clf.set_params(model__lr=0.5)  # a new routed argument is fine
    assert clf.get_params()["model__lr"] == 0.5
    with pytest.raises(ValueError, match="width"):
        clf.set_params(width=3)  # a plain name must already be a parameter
    with pytest.raises(ValueError, match="expected 'model__<name>'"):
        clf.set_params(model__=3)
    with pytest.raises(ValueError, match="expected 'fit__<name>'"):
        KerasClassifier(softmax_mlp, fit__=1).fit(X, y)
    clf.fit(X, y)
    assert clf.model_.layers[0].units == 6
    assert clf.model_.optimizer.learning_rate == pytest.approx(0.5)
    assert len(clf.history_["loss"]) == 2

    clone_of_fitted = clone(clf)
    assert not hasattr(clone_of_fitted, "model_") and clone_of_fitted.get_params()["model__lr"] == 0.5


def test_sklearn_estimator_checks_pass_except_the_documented_one() -> None:
    from sklearn.utils.estimator_checks import check_estimator

    if "callback" not in inspect.signature(check_estimator).parameters:
        pytest.skip("check_estimator(callback=...) needs scikit-learn >= 1.6")
    # minibatch gradient descent: weighting a sample by 2 is not the same as seeing it twice (different batches,
    # a different number of steps), so this check cannot pass for any minibatch trainer
    expected = {"check_sample_weight_equivalence_on_dense_data"}
    def run_checks(est: Any) -> List[Dict[str, Any]]:
        results: List[Dict[str, Any]] = []
        check_estimator(est, on_fail=None, on_skip=None, callback=lambda **kw: results.append(kw))
        return results

    for est, trained in ((KerasClassifier(softmax_mlp, epochs=20, random_state=0), "check_classifiers_train"),
                         (KerasRegressor(regression_mlp, epochs=20, random_state=0), "check_regressors_train")):
        results = run_checks(est)
        failed = {r["check_name"]: repr(r.get("exception"))[:300] for r in results if r["status"] == "failed"}
        passed = [r["check_name"] for r in results if r["status"] == "passed"]
        assert set(failed) == expected, failed
        assert len(passed) >= 45, passed
        for name in ("check_fit_idempotent", "check_estimators_pickle", "check_n_features_in",
                     "check_estimators_nan_inf", "check_methods_subset_invariance", "check_fit2d_1sample",
                     "check_estimators_unfitted", "check_dont_overwrite_parameters", trained):
            assert name in passed, name


# ---- the classifier ------------------------------------------------------------------------------------------
def test_string_labels_round_trip_and_proba_rows_sum_to_one() -> None:
    X, y = _three_classes()
    names = np.array(["setosa", "versicolor", "virginica"])
    labels = names[y]
    clf = KerasClassifier(softmax_mlp, epochs=15, random_state=0).fit(X, labels)
    assert list(clf.classes_) == list(names) and clf.n_classes_ == 3 and clf.n_features_in_ == 8
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred) <= set(names)
    assert _accuracy(pred, labels) > 0.8
    assert clf.score(X, labels) == pytest.approx(_accuracy(pred, labels))
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (proba >= 0).all()
    assert np.array_equal(names[np.argmax(proba, axis=1)], pred)
    assert set(clf.history_) == {"loss", "accuracy"} and len(clf.history_["loss"]) == 15
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]


def test_integer_labels_that_are_not_0_to_k_minus_1() -> None:
    X, y = _three_classes(150)
    labels = np.array([10, -3, 7])[y]
    clf = KerasClassifier(softmax_mlp, epochs=15, random_state=0).fit(X, labels)
    assert list(clf.classes_) == [-3, 7, 10]
    assert set(clf.predict(X)) <= {-3, 7, 10}
    assert clf.score(X, labels) > 0.7


@pytest.mark.parametrize("build", [sigmoid_mlp, softmax_mlp, one_hot_mlp, logits_mlp])
def test_binary_problems_with_one_sigmoid_unit_or_two_softmax_units(build: Any) -> None:
    X, y = _two_classes()
    labels = np.where(y == 1, "spam", "ham")
    clf = KerasClassifier(build, epochs=10, random_state=0).fit(X, labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (240, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert list(clf.classes_) == ["ham", "spam"]
    assert clf.score(X, labels) > 0.85
    # the column order follows classes_: column 1 is "spam"
    assert np.mean(proba[labels == "spam", 1]) > np.mean(proba[labels == "ham", 1]) + 0.3


def test_one_hot_loss_and_logits_multiclass_train_as_well_as_sparse() -> None:
    X, y = _three_classes()
    for build in (one_hot_mlp, logits_mlp):
        clf = KerasClassifier(build, epochs=15, random_state=0).fit(X, y)
        assert clf.score(X, y) > 0.8, build.__name__
        np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0, atol=1e-12)


def test_uncompiled_model_gets_the_wrappers_loss_and_optimizer() -> None:
    X, y = _three_classes()
    opt = kerust.optimizers.Adam(0.02)
    clf = KerasClassifier(uncompiled_mlp, optimizer=opt, metrics=["accuracy"], epochs=15, random_state=0).fit(X, y)
    assert clf.model_.loss == "sparse_categorical_crossentropy"
    assert isinstance(clf.model_.optimizer, kerust.optimizers.Adam) and clf.model_.optimizer is not opt
    assert opt.iterations == 0  # the parameter itself never trains
    assert clf.model_.optimizer.iterations == 15 * 10
    assert "accuracy" in clf.history_ and clf.score(X, y) > 0.8


def test_loss_override_recompiles_a_compiled_model() -> None:
    X, y = _three_classes(150)
    clf = KerasClassifier(softmax_mlp, loss="categorical_crossentropy", epochs=3, random_state=0).fit(X, y)
    assert clf.model_.loss == "categorical_crossentropy"
    assert "accuracy" in clf.history_  # the model's own metrics are kept
    assert clf.predict_proba(X).shape == (150, 3)


def test_class_weight_by_original_label() -> None:
    X, y = _two_classes()
    labels = np.where(y == 1, "rare", "common")
    plain = KerasClassifier(sigmoid_mlp, epochs=3, random_state=0).fit(X, labels)
    weighted = KerasClassifier(sigmoid_mlp, epochs=3, random_state=0, class_weight={"rare": 20.0, "common": 1.0})
    weighted.fit(X, labels)
    # a heavy weight on "rare" pushes its probability up everywhere
    assert weighted.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean() + 0.05
    assert np.mean(weighted.predict(X) == "rare") > np.mean(plain.predict(X) == "rare")


def test_images_with_conv2d() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6, 6, 1)).astype("float32")
    y = (X[:, :3].mean(axis=(1, 2, 3)) > X[:, 3:].mean(axis=(1, 2, 3))).astype(int)
    clf = KerasClassifier(image_model, epochs=10, random_state=0).fit(X, y)
    assert clf.n_features_in_ == 6 and clf.predict(X).shape == (60,)
    assert clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match=r"\(6, 5, 1\)"):
        clf.predict(X[:, :, :5])


# ---- the regressor ------------------------------------------------------------------------------------------
def test_regressor_r2_one_dimensional_predictions() -> None:
    X, y = make_regression(n_samples=300, n_features=5, n_informative=5, noise=5.0, random_state=0)
    reg = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), KerasRegressor(regression_mlp, epochs=30, random_state=0)),
        transformer=StandardScaler())
    scores = cross_val_score(reg, X, y, cv=3)  # R^2
    assert scores.min() > 0.97, scores  # one epoch gives about 0.9
    reg.fit(X, y)
    assert reg.predict(X[:4]).shape == (4,)
    inner = reg.regressor_.steps[-1][1]
    assert inner.n_outputs_ == 1 and inner.predict(StandardScaler().fit_transform(X)[:3]).shape == (3,)


def test_regressor_two_outputs_and_fit_routing() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.column_stack([X[:, 0] - 2 * X[:, 1], X[:, 2] * 0.5 + X[:, 3]])
    reg = KerasRegressor(regression_mlp, epochs=30, random_state=0, fit__validation_data=(X[:20], Y[:20]))
    reg.fit(X, Y)
    assert reg.n_outputs_ == 2 and reg.predict(X).shape == (200, 2)
    assert reg.score(X, Y) > 0.9
    assert len(reg.history_["val_loss"]) == 30  # fit__validation_data reached Sequential.fit
    # fit() keywords win over the wrapper's for that call
    reg2 = KerasRegressor(regression_mlp, epochs=30, random_state=0, validation_split=0.25).fit(X, Y, epochs=2)
    assert len(reg2.history_["loss"]) == 2 and len(reg2.history_["val_loss"]) == 2


# ---- reproducibility, warm start, callbacks, pickling -------------------------------------------------------------
def test_random_state_makes_fits_bit_identical_and_leaves_global_rngs_alone() -> None:
    X, y = _three_classes(150)
    p1 = KerasClassifier(softmax_mlp, epochs=3, random_state=11).fit(X, y).predict_proba(X)
    np.random.seed(99)
    before = np.random.get_state()[1].copy()
    p2 = KerasClassifier(softmax_mlp, epochs=3, random_state=11).fit(X, y).predict_proba(X)
    assert np.array_equal(np.random.get_state()[1], before)  # the caller's NumPy stream is untouched
    p3 = KerasClassifier(softmax_mlp, epochs=3, random_state=12).fit(X, y).predict_proba(X)
    assert np.array_equal(p1, p2)
    assert not np.allclose(p1, p3)
    # a RandomState draws the seed from itself: the same state gives the same fit
    p4 = KerasClassifier(softmax_mlp, epochs=3, random_state=np.random.RandomState(5)).fit(X, y).predict_proba(X)
    p5 = KerasClassifier(softmax_mlp, epochs=3, random_state=np.random.RandomState(5)).fit(X, y).predict_proba(X)
    assert np.array_equal(p4, p5)


def test_warm_start_continues_training_the_same_model() -> None:
    X, y = _three_classes(150)
    clf = KerasClassifier(softmax_mlp, epochs=2, random_state=0, warm_start=True).fit(X, y)
    model, first = clf.model_, clf.history_["loss"]
    clf.fit(X, y)
    assert clf.model_ is model and model.optimizer.iterations == 2 * 2 * 5
    assert clf.history_["loss"][0] < first[0]
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X, np.where(y == 0, 5, y))  # other classes
    assert list(clf.classes_) == [0, 1, 2] and clf.model_ is model  # a failed fit changes nothing
    cold = KerasClassifier(softmax_mlp, epochs=2, random_state=0).fit(X, y)
    m1 = cold.model_
    cold.fit(X, y)
    assert cold.model_ is not m1 and cold.history_["loss"] == pytest.approx(first)


def test_callbacks_are_copied_for_each_fit_and_work() -> None:
    X, y = _three_classes(150)
    stop = kerust.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=0)
    clf = KerasClassifier(softmax_mlp, epochs=10, random_state=0, callbacks=[stop]).fit(X, y)
    assert len(clf.history_["loss"]) == 2  # stopped: no epoch improved the loss by 100
    assert stop.model is None  # the parameter was not bound to the fitted model
    assert clone(clf).get_params()["callbacks"][0].min_delta == 100.0


def test_pickle_and_deepcopy_of_a_fitted_estimator_predict_the_same() -> None:
    X, y = _three_classes(150)
    clf = KerasClassifier(softmax_mlp, epochs=3, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    restored = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert list(restored.classes_) == ["a", "b", "c"]
    assert restored.model_ is not clf.model_
    twin = copy.deepcopy(clf)
    assert np.array_equal(twin.predict(X), clf.predict(X))
    # the restored model keeps its optimizer state and trains on
    restored.set_params(warm_start=True).fit(X, np.array(["a", "b", "c"])[y], epochs=1)
    assert restored.model_.optimizer.iterations == 4 * 5


def test_num_threads_applies_to_fit_and_predict_and_is_restored() -> None:
    X, y = _three_classes(150)
    before = kerust.config.get_num_threads()
    seen: List[int] = []
    watch = kerust.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        kerust.config.get_num_threads()))
    one = KerasClassifier(softmax_mlp, epochs=3, random_state=0, num_threads=1, callbacks=[watch]).fit(X, y)
    assert seen == [1, 1, 1]  # the copy of the callback ran inside fit, on one thread
    assert kerust.config.get_num_threads() == before
    three = KerasClassifier(softmax_mlp, epochs=3, random_state=0, num_threads=3).fit(X, y)
    assert kerust.config.get_num_threads() == before
    # bit-identical whatever the thread count
    assert one.history_["loss"] == three.history_["loss"]
    assert np.array_equal(one.predict_proba(X), three.predict_proba(X))
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        KerasClassifier(softmax_mlp, num_threads=0).fit(X, y)


# ---- errors ------------------------------------------------------------------------------------------------------
def test_bad_models_and_arguments_raise_clear_errors() -> None:
    X, y = _three_classes(60)
    with pytest.raises(ValueError, match="`model` must be a function"):
        KerasClassifier().fit(X, y)
    instance = softmax_mlp(8, 3)
    with pytest.raises(TypeError, match="model instance"):
        KerasClassifier(instance).fit(X, y)
    with pytest.raises(TypeError, match=r"\['width'\].*softmax_mlp"):
        KerasClassifier(softmax_mlp, width=3).fit(X, y)
    with pytest.raises(ValueError, match="given twice"):
        KerasClassifier(softmax_mlp, hidden=3, model__hidden=4).fit(X, y)
    with pytest.raises(TypeError, match="must return a kerust model.*str"):
        KerasClassifier(not_a_model).fit(X, y)
    with pytest.raises(ValueError, match="one output unit.*3 classes"):
        KerasClassifier(sigmoid_mlp).fit(X, y)
    with pytest.raises(ValueError, match="2 units, but y has 3 classes"):
        KerasClassifier(softmax_mlp, model__n_classes=2).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        KerasClassifier(softmax_mlp).fit(X, np.linspace(0, 1, 60))
    with pytest.raises(ValueError, match="one label per sample"):
        KerasClassifier(softmax_mlp).fit(X, kerust.utils.to_categorical(y, 3))
    with pytest.raises(ValueError, match="random_state"):
        KerasClassifier(softmax_mlp, random_state=-1).fit(X, y)
    with pytest.raises(TypeError, match="random_state"):
        KerasClassifier(softmax_mlp, random_state="seven").fit(X, y)
    with pytest.raises(ValueError, match="sample_weight is zero for every sample"):
        KerasClassifier(softmax_mlp).fit(X, y, sample_weight=np.zeros(60))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(60,\)"):
        KerasClassifier(softmax_mlp).fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        KerasClassifier(softmax_mlp).fit(np.full_like(X, np.nan), y)
    with pytest.raises(NotFittedError):
        KerasClassifier(softmax_mlp).predict(X)
    fitted = KerasClassifier(softmax_mlp).fit(X, y)
    model = fitted.model_
    with pytest.raises(ValueError, match=r"one output unit \(binary\), but y has 3 classes \['a', 'b', 'c'\]"):
        fitted.set_params(model__n_classes=1).fit(X[:, :5], np.array(["a", "b", "c"])[y])
    # the failed refit left the fitted state alone
    assert fitted.model_ is model and fitted.n_features_in_ == 8 and list(fitted.classes_) == [0, 1, 2]
    with pytest.raises(ValueError, match="X has 5 features, but KerasClassifier is expecting 8 features"):
        fitted.predict(X[:, :5])
    with pytest.raises(ValueError, match="1 units, but y has 2 output"):
        KerasRegressor(regression_mlp, model__n_outputs=1).fit(X, np.column_stack([y, y]))


# ---- optional dependency ------------------------------------------------------------------------------------------
def test_import_kerust_does_not_import_sklearn_and_missing_sklearn_is_explained() -> None:
    code = ("import sys, kerust\n"
            "assert 'sklearn' not in sys.modules, 'import kerust imported sklearn'\n"
            "sys.modules['sklearn'] = None  # as if it were not installed\n"
            "try:\n"
            "    import kerust.wrappers\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install scikit-learn" in out.stdout

"""Every Keras 3.15 loss kerust has, against Keras's values (tests/reference/losses, made by generate_losses.py
with real Keras): direct calls with every reduction and sample weights, the function forms, configs, evaluate of
a one-Dense model, the gradient the engine trains on (finite differences), training and saving by name, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kerust
from kerust import losses

REF = Path(__file__).parent / "reference" / "losses"
CASES = json.loads((REF / "cases.json").read_text())["cases"]
DATA = dict(np.load(REF / "losses.npz"))
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None]
BY_ID = {c["id"]: c for c in CASES}


def _inputs(case: dict) -> tuple:
    return DATA[f"{case['inputs']}__y_true"], DATA[f"{case['inputs']}__y_pred"]


def _loss(case: dict, **extra: object) -> losses.Loss:
    return getattr(losses, case["class_name"])(**case["kwargs"], **extra)


def _close(got: object, want: np.ndarray) -> None:
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want.astype(np.float64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("red", REDUCTIONS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_direct_call_matches_keras(case: dict, red: object) -> None:
    yt, yp = _inputs(case)
    loss = _loss(case, reduction=red)
    _close(loss(yt, yp), DATA[f"{case['id']}__{red}__nw"])
    key = f"{case['id']}__{red}__w"
    if key in DATA:
        _close(loss(yt, yp, sample_weight=DATA["sample_weight"]), DATA[key])
    else:  # Keras refuses (n,) weights for these values
        with pytest.raises(ValueError, match="sample_weight"):
            loss(yt, yp, sample_weight=DATA["sample_weight"])


@pytest.mark.parametrize("case", [c for c in CASES if c["fn"]], ids=[c["id"] for c in CASES if c["fn"]])
def test_function_form_matches_keras(case: dict) -> None:
    yt, yp = _inputs(case)
    _close(getattr(losses, case["fn"])(yt, yp, **case["kwargs"]), DATA[f"{case['id']}__fn"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_config_round_trip(case: dict) -> None:
    loss = _loss(case)
    config = loss.get_config()
    want = dict(case["config"])
    want.pop("dtype", None)
    config.pop("dtype", None)
    norm = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    assert norm == want
    again = type(loss).from_config(config)
    assert again.get_config() == config
    via_get = losses.get({"class_name": case["class_name"], "config": config})
    assert type(via_get) is type(loss) and via_get.get_config() == config
    if all(k in config for k in case["kwargs"]):  # Keras's Huber/CosineSimilarity configs drop delta/axis
        yt, yp = _inputs(case)
        assert again(yt, yp) == pytest.approx(loss(yt, yp), rel=1e-6, abs=1e-7)


MODEL_IDS = sorted({k.split("__")[1] for k in DATA if k.startswith("model__") and k.endswith("__evaluate")})
SPARSE_TARGETS = {"scce_ignore", "cgce"}


def _model(cid: str) -> kerust.Model:
    kernel, bias = DATA[f"model__{cid}__kernel"], DATA[f"model__{cid}__bias"]
    model = kerust.Sequential([kerust.Input((5,)), kerust.layers.Dense(kernel.shape[1],
                                                                        activation=BY_ID[cid]["model_activation"])])
    model.set_weights([kernel, bias])
    model.compile("sgd", loss=_loss(BY_ID[cid]))
    return model


@pytest.mark.parametrize("cid", [c for c in MODEL_IDS if c not in SPARSE_TARGETS])
def test_evaluate_and_gradient_match(cid: str) -> None:
    case = BY_ID[cid]
    yt, _ = _inputs(case)
    x = DATA["model__x"]
    model = _model(cid)
    sw = DATA["sample_weight"]
    assert model.evaluate(x, yt, verbose=0, batch_size=len(x)) == pytest.approx(
        float(DATA[f"model__{cid}__evaluate"]), rel=1e-5, abs=1e-6)
    assert model.evaluate(x, yt, sample_weight=sw, verbose=0, batch_size=len(x)) == pytest.approx(
        float(DATA[f"model__{cid}__evaluate_w"]), rel=1e-5, abs=1e-6)
    # dL/d(output) the engine trains on, against central differences of the direct loss call
    layer = model.layers[-1].name
    ins = model.inspect(x, yt)
    grad = np.asarray(ins[layer]["output_gradient"], dtype=np.float64)
    out = np.asarray(ins[layer]["output"], dtype=np.float64)
    loss = _loss(case)
    num = np.zeros_like(out)
    for idx in np.ndindex(*out.shape):
        h = min(1e-3, 0.05 * abs(out[idx])) or 1e-3  # small probabilities take small steps
        up, down = out.copy(), out.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (loss(yt, up.astype(np.float32)) - loss(yt, down.astype(np.float32))) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=2e-2, atol=2e-3)
    assert ins.loss == pytest.approx(loss(yt, out.astype(np.float32)), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("cid", sorted(SPARSE_TARGETS))
def test_sparse_target_traced_losses_refuse_training(cid: str) -> None:
    model = kerust.Sequential([kerust.Input((5,)), kerust.layers.Dense(4, activation="softmax")])
    with pytest.raises(ValueError, match="not supported by kerust yet"):
        model.compile("sgd", loss=_loss(BY_ID[cid]))


@pytest.mark.parametrize("red", ["sum", "mean_with_sample_weight", None])
def test_fit_reduction_reaches_engine(red: object) -> None:
    x = DATA["model__x"]
    yt = DATA["reg__y_true"]
    sw = DATA["sample_weight"]
    model = kerust.Sequential([kerust.Input((5,)), kerust.layers.Dense(4)])
    model.compile("sgd", loss=losses.Huber(reduction=red))
    pred = model.predict(x, verbose=0)
    direct = losses.Huber(reduction=red)(yt, pred, sample_weight=sw)
    if red is None:  # the engine trains on the mean of unreduced values
        direct = float(np.mean(direct))
    assert model.inspect(x, yt, sample_weight=sw).loss == pytest.approx(direct, rel=1e-5)


@pytest.mark.parametrize("name", ["huber", "log_cosh", "mape", "msle", "kld", "poisson", "hinge", "squared_hinge",
                                  "categorical_hinge", "cosine_similarity", "binary_focal_crossentropy",
                                  "categorical_focal_crossentropy", "dice", "tversky"])
def test_compile_by_name_trains_and_saves(name: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 5)).astype(np.float32)
    probs = name in ("kld", "categorical_hinge", "categorical_focal_crossentropy")
    act = "softmax" if probs else ("sigmoid" if name in ("binary_focal_crossentropy", "dice", "tversky")
                                   else "softplus" if name in ("mape", "msle", "poisson") else "linear")
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)] if probs else (rng.random((32, 3)) > 0.5).astype(
        np.float32) + (0.5 if name in ("mape", "msle", "poisson") else 0.0)
    model = kerust.Sequential([kerust.Input((5,)), kerust.layers.Dense(3, activation=act)])
    model.compile(kerust.optimizers.Adam(0.05), loss=name)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=15, batch_size=8, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < before
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = kerust.saving.load_model(path)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(after, rel=1e-5, abs=1e-6)


def test_names_resolve_as_keras() -> None:
    assert isinstance(losses.get("huber"), losses.Huber)
    assert isinstance(losses.get("kld"), losses.KLDivergence)
    assert isinstance(losses.get("kullback_leibler_divergence"), losses.KLDivergence)
    assert isinstance(losses.get("mape"), losses.MeanAbsolutePercentageError)
    assert isinstance(losses.get("msle"), losses.MeanSquaredLogarithmicError)
    with pytest.raises(ValueError, match="Could not interpret loss identifier"):
        losses.get("hubr")


@pytest.mark.parametrize("make, match", [
    (lambda: losses.MeanSquaredError(reduction="avg"), "Invalid value for argument `reduction`"),
    (lambda: losses.Huber(delta=-1.0), "delta"),
    (lambda: losses.Huber(delta="big"), "delta"),
    (lambda: losses.BinaryFocalCrossentropy(alpha=1.5), "alpha"),
    (lambda: losses.BinaryCrossentropy(label_smoothing=2.0), "label_smoothing"),
    (lambda: losses.CategoricalGeneralizedCrossEntropy(q=1.0), "q must be in the interval"),
    (lambda: losses.CategoricalCrossentropy(axis=True), "axis"),
    (lambda: losses.Tversky(beta=None), "beta"),
])
def test_bad_arguments(make: object, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()  # type: ignore[operator]


def test_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        losses.CategoricalCrossentropy(label_smoothing=0.1)(np.zeros((4, 3)), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="same shape"):
        losses.binary_crossentropy(np.zeros((4,)), np.full((4, 1), 0.5))


@pytest.mark.parametrize("loss", [losses.BinaryCrossentropy(label_smoothing=0.2, reduction="sum"),
                                  losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=1.0),
                                  losses.Tversky(alpha=0.7, beta=0.3, reduction="mean_with_sample_weight")],
                         ids=lambda obj: type(obj).__name__)
def test_saved_loss_keeps_its_arguments(loss: losses.Loss, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = (rng.random((16, 3)) > 0.5).astype(np.float32)
    model = kerust.Sequential([kerust.Input((5,)), kerust.layers.Dense(3, activation="sigmoid")])
    model.compile("sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = kerust.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(loss) and loaded.loss.get_config() == loss.get_config()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)

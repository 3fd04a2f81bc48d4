"""`activity_regularizer=` on any layer: the regularizer's penalty of each of the layer's outputs, divided by the
batch size, joins the loss (Keras 3's `Layer.__call__`). Evaluated losses, epoch losses and trained weights equal
Keras 3.15.1's on TensorFlow (tests/reference/activity/, from generate_activity.py); configs and `.keras` files
keep the regularizer; without it the same training ends elsewhere. A layer called several times adds its penalty
for each call, as Keras on TensorFlow and PyTorch do (its JAX trainer keeps only the last call's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import kerust
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference" / "activity"))
from activity_cases import CASES  # noqa: E402

REF = np.load(HERE / "reference" / "activity" / "activity.npz")


def _compiled(name: str, model=None):
    if model is None:
        model, _, _ = CASES[name](kerust)
    n = len(model.get_weights())
    model.set_weights([REF[f"{name}/init{i}"] for i in range(n)])
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=0.1), loss="mse")
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_evaluate_and_training_follow_keras(name: str) -> None:
    model = _compiled(name)
    x, y = REF[f"{name}/x"], REF[f"{name}/y"]
    assert model.evaluate(x, y, batch_size=12, verbose=0) == pytest.approx(float(REF[f"{name}/evaluate"]), rel=1e-5)
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], REF[f"{name}/losses"], rtol=1e-5)
    final = model.get_weights()
    assert len(final) == sum(1 for k in REF.files if k.startswith(f"{name}/final"))
    for i, w in enumerate(final):
        np.testing.assert_allclose(w, REF[f"{name}/final{i}"], rtol=1e-4, atol=2e-5, err_msg=f"weight {i}")


def _without_activity(config):
    if isinstance(config, dict):
        return {k: _without_activity(v) for k, v in config.items() if k != "activity_regularizer"}
    if isinstance(config, list):
        return [_without_activity(v) for v in config]
    return config


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_penalty_changes_the_loss(name: str) -> None:
    model, x, y = CASES[name](kerust)
    plain = _compiled(name, kerust.models.model_from_json(json.dumps(_without_activity(json.loads(model.to_json())))))
    assert plain.evaluate(x, y, batch_size=12, verbose=0) < float(REF[f"{name}/evaluate"]) - 1e-4


def test_penalty_is_the_mean_over_the_batch_of_each_output() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    dense = kerust.layers.Dense(3, activity_regularizer=kerust.regularizers.L1L2(0.01, 0.02))
    model = kerust.Sequential([kerust.Input((4,)), dense])
    model.compile(optimizer="sgd", loss="mse")
    out = model.predict(x, verbose=0)
    want = np.mean((out - y) ** 2) + (0.01 * np.abs(out).sum() + 0.02 * np.square(out).sum()) / 6
    assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(want, rel=1e-6)
    # its gradient: the engine's against finite differences of the whole loss
    report = kerust.utils.gradient_check(model, x, y)
    assert report and all(layer["ok"] for layer in report.values()), report


def test_a_shared_layer_adds_its_penalty_for_each_call() -> None:
    """Keras 3.15.1 on TensorFlow and PyTorch: 156 = mse 144 + the L1 penalties 2, 4 and 6 of the three calls."""
    inp = kerust.Input((2,))
    d = kerust.layers.Dense(1, activity_regularizer=kerust.regularizers.L1(1.0), kernel_initializer="ones")
    calls = [d(inp if k == 1 else kerust.layers.Lambda(lambda t, k=k: t * float(k))(inp)) for k in (1, 2, 3)]
    model = kerust.Model(inp, kerust.layers.Add()(calls))
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.ones((1, 2), np.float32), np.zeros((1, 1), np.float32)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(156.0)
    assert model.fit(x, y, verbose=0).history["loss"] == [pytest.approx(156.0)]


def test_config_and_keras_file_keep_the_regularizer(tmp_path: Path) -> None:
    layer = kerust.layers.Dense(2, activity_regularizer="l2")
    cfg = layer.get_config()
    # Keras's base config writes it after name/trainable/dtype
    assert list(cfg)[:4] == ["name", "trainable", "dtype", "activity_regularizer"]
    assert cfg["activity_regularizer"] == {"module": "keras.regularizers", "class_name": "L2",
                                           "config": {"l2": 0.01}, "registered_name": None}
    assert "activity_regularizer" not in kerust.layers.Dense(2).get_config()  # as Keras's Dense
    assert kerust.layers.Conv2D(2, 3).get_config()["activity_regularizer"] is None  # as Keras's Conv2D
    assert kerust.layers.Dense.from_config(cfg).get_config() == cfg
    model = _compiled("embedding_lstm")
    model.save(tmp_path / "m.keras")
    back = kerust.models.load_model(tmp_path / "m.keras")
    assert back.layers[1].activity_regularizer.get_config() == {"l1": 0.05}
    x, y = REF["embedding_lstm/x"], REF["embedding_lstm/y"]
    assert back.evaluate(x, y, batch_size=12, verbose=0) == pytest.approx(
        float(REF["embedding_lstm/evaluate"]), rel=1e-5)


def test_bad_identifier_names_the_argument() -> None:
    with pytest.raises(ValueError, match="Could not interpret regularizer identifier: 'l3'"):
        kerust.layers.Dense(2, activity_regularizer="l3")


def test_a_regularizer_subclass_is_refused_naming_the_layer() -> None:
    class Custom(kerust.regularizers.Regularizer):
        def __call__(self, x):
            return 0.0

        def get_config(self):
            return {}

    with pytest.raises(ValueError, match=r"Dense 'picky': `activity_regularizer` must be an L1, L2 or L1L2"):
        kerust.layers.Dense(2, activity_regularizer=Custom(), name="picky")

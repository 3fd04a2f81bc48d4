"""Weight constraints (`kerust.constraints`, `*_constraint=` arguments, `add_weight(constraint=)`): the engine
projects each weight after every optimizer update as Keras does. Trained weights equal Keras 3.15.1's after 3 SGD
epochs (tests/reference/constraints/, from generate_constraints.py); the NumPy call equals Keras's; configs and
`.keras` files keep the constraints; bad identifiers and axes raise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import kerust
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference" / "constraints"))
from constraint_cases import CASES  # noqa: E402

REF = np.load(HERE / "reference" / "constraints" / "constraints.npz")


def _trained(name: str) -> kerust.Sequential:
    model, _, _ = CASES[name](kerust)
    n = len(model.get_weights())
    model.set_weights([REF[f"{name}/init{i}"] for i in range(n)])
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.fit(REF[f"{name}/x"], REF[f"{name}/y"], batch_size=4, epochs=3, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_with_constraints_follows_keras(name: str) -> None:
    model = _trained(name)
    final = model.get_weights()
    assert len(final) == sum(1 for k in REF.files if k.startswith(f"{name}/final"))
    for i, w in enumerate(final):
        np.testing.assert_allclose(w, REF[f"{name}/final{i}"], rtol=1e-4, atol=2e-5, err_msg=f"weight {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_constraints_change_training(name: str) -> None:
    """Without the constraints the same training ends elsewhere (so the comparison above tests them)."""
    model, x, y = CASES[name](kerust)
    config = model.get_config()
    for layer in config["layers"]:
        cfg = layer["config"]
        for sub in [cfg] + [cfg[k]["config"] for k in ("layer", "backward_layer") if isinstance(cfg.get(k), dict)]:
            for key in list(sub):
                if key.endswith("_constraint"):
                    sub[key] = None
    plain = kerust.models.model_from_json(json.dumps({"class_name": "Sequential", "config": config}))
    n = len(plain.get_weights())
    plain.set_weights([REF[f"{name}/init{i}"] for i in range(n)])
    plain.compile(optimizer=kerust.optimizers.SGD(learning_rate=0.1), loss="mse")
    plain.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    assert any(not np.allclose(a, REF[f"{name}/final{i}"], atol=1e-4) for i, a in enumerate(plain.get_weights()))


@pytest.mark.parametrize("key, constraint", [
    ("max_norm", kerust.constraints.MaxNorm(1.5, axis=1)),
    ("non_neg", kerust.constraints.NonNeg()),
    ("unit_norm", kerust.constraints.UnitNorm(axis=[0, 2])),
    ("min_max_norm", kerust.constraints.MinMaxNorm(0.5, 2.0, rate=0.7, axis=-1)),
])
def test_direct_calls_equal_keras(key: str, constraint) -> None:
    np.testing.assert_allclose(constraint(REF["direct/w"]), REF[f"direct/{key}"], rtol=1e-6, atol=1e-7)


def test_names_configs_and_files_keep_constraints(tmp_path: Path) -> None:
    layer = kerust.layers.Dense(3, kernel_constraint="max_norm", bias_constraint="non_neg")
    cfg = layer.get_config()
    assert cfg["kernel_constraint"] == {"module": "keras.constraints", "class_name": "MaxNorm",
                                        "config": {"max_value": 2.0, "axis": 0}, "registered_name": None}
    assert kerust.layers.Dense.from_config(cfg).get_config() == cfg
    model = _trained("dense")
    model.save(tmp_path / "m.keras")
    back = kerust.models.load_model(tmp_path / "m.keras")
    assert back.layers[0].get_config()["kernel_constraint"]["config"] == {"max_value": 0.5, "axis": 0}
    back.fit(REF["dense/x"] * 10, REF["dense/y"] * 10, epochs=2, verbose=0)
    norms = np.sqrt((back.get_weights()[0] ** 2).sum(axis=0))
    assert norms.max() <= 0.5 + 1e-5
    assert back.get_weights()[1].min() >= 0.0


def test_custom_layer_add_weight_constraint() -> None:
    class Scale(kerust.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", constraint="non_neg")

        def call(self, x):
            return x * self.w

    model = kerust.Sequential([kerust.Input((3,)), Scale(), kerust.layers.Dense(1)])
    model.compile(optimizer=kerust.optimizers.SGD(learning_rate=1.0), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    model.fit(x, -50 * np.abs(x).sum(axis=1, keepdims=True), epochs=3, verbose=0)
    assert model.get_weights()[0].min() >= 0.0
    assert model.layers[0].w.constraint.get_config() == {}


@pytest.mark.parametrize("build, error, message", [
    (lambda: kerust.layers.Dense(2, kernel_constraint="nope"), ValueError, "Could not interpret constraint"),
    (lambda: kerust.layers.Dense(2, kernel_constraint=lambda w: w), TypeError, "Python callable"),
    (lambda: kerust.constraints.MaxNorm(axis="x"), ValueError, "`axis`"),
    (lambda: kerust.Sequential([kerust.Input((3,)), kerust.layers.Dense(2, kernel_constraint=kerust.constraints
                                                                        .MaxNorm(axis=2))]),
     ValueError, "out of bounds"),
])
def test_bad_constraints_raise(build, error, message: str) -> None:
    with pytest.raises(error, match=message):
        build()

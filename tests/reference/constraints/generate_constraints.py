"""Writes constraints.npz from real Keras: for each model of constraint_cases.py, its initial weights, the data,
and the weights after 3 epochs of SGD (learning rate 0.1, batch 4, no shuffling); and the four constraints
applied directly to one array. Run with Keras 3.15 on JAX from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/constraints/generate_constraints.py
"""

import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from constraint_cases import CASES  # noqa: E402

DIRECT = {
    "max_norm": keras.constraints.MaxNorm(1.5, axis=1),
    "non_neg": keras.constraints.NonNeg(),
    "unit_norm": keras.constraints.UnitNorm(axis=[0, 2]),
    "min_max_norm": keras.constraints.MinMaxNorm(0.5, 2.0, rate=0.7, axis=-1),
}


def main() -> None:
    keras.utils.set_random_seed(5)
    out = {}
    for name, build in CASES.items():
        model, x, y = build(keras)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        for i, w in enumerate(model.get_weights()):
            out[f"{name}/init{i}"] = w
        out[f"{name}/x"], out[f"{name}/y"] = x, y
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
        for i, w in enumerate(model.get_weights()):
            out[f"{name}/final{i}"] = w
    w = np.random.default_rng(9).normal(size=(3, 4, 2)).astype(np.float32)
    out["direct/w"] = w
    for key, c in DIRECT.items():
        out[f"direct/{key}"] = np.asarray(c(w))
    np.savez_compressed(os.path.join(HERE, "constraints.npz"), **out)
    print(f"wrote {len(CASES)} models to constraints.npz")


if __name__ == "__main__":
    main()

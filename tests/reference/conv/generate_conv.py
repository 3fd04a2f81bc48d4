"""Writes conv.npz from real Keras: for each case of conv_cases.py, a one-layer model's weights (Keras's own
initialisation with non-zero biases), an input batch and Keras's output. Run with Keras 3.15 on JAX from the
repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/conv/generate_conv.py
"""

import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from conv_cases import CASES  # noqa: E402


def main() -> None:
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    out = {}
    for name, (cls, kwargs, shape) in CASES.items():
        layer = getattr(keras.layers, cls)(**kwargs)
        model = keras.Sequential([keras.Input(shape), layer])
        weights = [w.copy() for w in model.get_weights()]
        if len(weights) > 1:
            weights[1] = rng.normal(size=weights[1].shape).astype(np.float32) * 0.1
        model.set_weights(weights)
        x = rng.normal(size=(3, *shape)).astype(np.float32)
        out[f"{name}/x"] = x
        out[f"{name}/y"] = np.asarray(model.predict(x, verbose=0))
        for i, w in enumerate(weights):
            out[f"{name}/w{i}"] = w
    np.savez_compressed(os.path.join(HERE, "conv.npz"), **out)
    print(f"wrote {len(CASES)} cases to conv.npz")


if __name__ == "__main__":
    main()

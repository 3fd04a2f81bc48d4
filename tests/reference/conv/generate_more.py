"""Writes conv_more.npz from real Keras: for each case of more_cases.py, a one-layer model's weights (Keras's own
initialisation for the first kernel, the other weights random so biases and pointwise kernels matter), an input
batch and Keras's output. Run with Keras 3.15 on JAX from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/conv/generate_more.py
"""

import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from more_cases import CASES  # noqa: E402


def main() -> None:
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    out = {}
    for name, (cls, kwargs, shape) in CASES.items():
        layer = getattr(keras.layers, cls)(**kwargs)
        model = keras.Sequential([keras.Input(shape), layer])
        weights = [w.copy() for w in model.get_weights()]
        for i in range(1, len(weights)):
            weights[i] = (rng.normal(size=weights[i].shape) * 0.3).astype(np.float32)
        model.set_weights(weights)
        x = rng.normal(size=(3, *shape)).astype(np.float32)
        out[f"{name}/x"] = x
        out[f"{name}/y"] = np.asarray(model.predict(x, verbose=0))
        for i, w in enumerate(weights):
            out[f"{name}/w{i}"] = w
    np.savez_compressed(os.path.join(HERE, "conv_more.npz"), **out)
    print(f"wrote {len(CASES)} cases to conv_more.npz")


if __name__ == "__main__":
    main()

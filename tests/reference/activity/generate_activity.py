"""Writes activity.npz from real Keras: for each model of activity_cases.py, its initial weights, the data, the
loss `evaluate` reports, the epoch losses of 3 epochs of SGD (learning rate 0.1, batch 4, no shuffling) and the
weights after them. Run with Keras 3.15 on TensorFlow (benches/bench.py's bench-venv) from the repository root:

    KERAS_BACKEND=tensorflow bench-venv/bin/python tests/reference/activity/generate_activity.py

TensorFlow (and PyTorch) rather than JAX: Keras's JAX trainer runs the model through `stateless_call`, where each
layer call starts a new call context that drops the losses of that layer's earlier calls, so a shared layer's
penalty counts only for its last call; on TensorFlow and PyTorch (and in kerust) every call counts.
"""

import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from activity_cases import CASES  # noqa: E402


def main() -> None:
    assert keras.backend.backend() == "tensorflow", "see the module docstring"
    keras.utils.set_random_seed(5)
    out = {}
    for name, build in CASES.items():
        model, x, y = build(keras)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        for i, w in enumerate(model.get_weights()):
            out[f"{name}/init{i}"] = w
        out[f"{name}/x"], out[f"{name}/y"] = x, y
        out[f"{name}/evaluate"] = np.float64(model.evaluate(x, y, batch_size=12, verbose=0))
        history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
        out[f"{name}/losses"] = np.asarray(history.history["loss"], np.float64)
        for i, w in enumerate(model.get_weights()):
            out[f"{name}/final{i}"] = w
    np.savez_compressed(os.path.join(HERE, "activity.npz"), **out)
    print(f"wrote {len(CASES)} models to activity.npz")


if __name__ == "__main__":
    main()

"""Write the Keras fixture for ``keras.metrics.Metric`` subclasses (``tests/test_custom_metrics.py``).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/custom/generate_metrics.py

The metric classes come from ``custom_metrics.py`` next to this file. It writes, next to itself:

- ``metrics.npz``: ``y__K`` / ``p__K`` (three batches of targets and predictions); per class ``<C>__eager``: the
  result before any update, after each of the three ``update_state`` calls and after ``reset_state``; the data
  ``x`` / ``y`` and ``weight_NN`` of a one-unit sigmoid Dense model, and per class ``<C>__evaluate`` (its value in
  ``evaluate(batch_size=8)``) and ``<C>__fit`` (its value in each of two epochs of ``fit(batch_size=8,
  shuffle=False)`` with ``SGD(0.1)``), plus ``loss__fit``;
- ``metrics.keras``: that model compiled with a registered ``BinaryTruePositives``, saved (after the fit), to test
  that kerust reads a user metric from a Keras-made compile config.

It is deterministic (fixed seeds) and takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def _load_module():
    spec = importlib.util.spec_from_file_location("custom_metrics", HERE / "custom_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CLASSES = _load_module().define(keras)
keras.saving.register_keras_serializable(package="Custom")(CLASSES["BinaryTruePositives"])


def main() -> None:
    rng = np.random.default_rng(7)
    out = {}
    for k in range(3):
        out[f"y__{k}"] = (rng.random((5, 1)) > 0.5).astype(np.float32)
        out[f"p__{k}"] = rng.random((5, 1)).astype(np.float32)
    for name, cls in CLASSES.items():
        m = cls()
        values = [float(m.result())]
        for k in range(3):
            m.update_state(out[f"y__{k}"], out[f"p__{k}"])
            values.append(float(m.result()))
        m.reset_state()
        values.append(float(m.result()))
        out[f"{name}__eager"] = np.array(values)

    keras.utils.set_random_seed(3)
    x = rng.normal(size=(24, 3)).astype(np.float32)
    y = (x[:, :1] + 0.3 * rng.normal(size=(24, 1)) > 0).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    out["x"], out["y"] = x, y
    for i, w in enumerate(model.get_weights()):
        out[f"weight_{i:02d}"] = w
    metric_objs = [cls() for cls in CLASSES.values()]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=metric_objs)
    result = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for name in CLASSES:
        out[f"{name}__evaluate"] = np.array(result[CLASSES[name]().name])
        out[f"{name}__fit"] = np.array(history[CLASSES[name]().name])
    out["loss__fit"] = np.array(history["loss"])
    np.savez(HERE / "metrics.npz", **out)

    saved = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    saved.set_weights(model.get_weights())
    saved.compile(optimizer="adam", loss="binary_crossentropy", metrics=[CLASSES["BinaryTruePositives"]()])
    saved.save(HERE / "metrics.keras")


if __name__ == "__main__":
    sys.exit(main())

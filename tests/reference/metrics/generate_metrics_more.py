"""Write the Keras fixture of ``tests/test_metrics_more.py`` (the rest of Keras 3.15's metrics).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/metrics/generate_metrics_more.py

The cases come from ``cases.py`` next to this file. It writes, next to itself:

- ``metrics_more.npz``: per data kind ``<kind>__y__K`` / ``<kind>__p__K`` / ``<kind>__w__K`` (three batches of
  targets, predictions and sample weights); per case ``<case>__eager__K`` and ``<case>__weighted__K``: the
  result after the K-th ``update_state`` (without / with the sample weights), ``<case>__reset``: after
  ``reset_state`` and one more update (``<case>__weighted__refused`` where Keras refuses the weights); the
  data ``x`` / ``y`` and ``weight_NN`` of a 3-unit sigmoid Dense model
  and, per compiled case, ``<case>__evaluate`` (``evaluate(batch_size=8)``) and ``<case>__fit`` (two epochs of
  ``fit(batch_size=8, shuffle=False)`` with ``SGD(0.1)``);
- ``metrics_more.json``: each case's ``get_config()``;
- ``metrics_more.keras``: that model (after the fit) compiled with a few of the metrics, to check that kerust reads
  them from a Keras-made compile config.

It is deterministic (fixed seeds) and takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def _load():
    spec = importlib.util.spec_from_file_location("metric_cases", HERE / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MOD = _load()
CASES = MOD.cases(keras)


def data(rng) -> dict:
    out = {}
    for k in range(3):
        n = 6
        out[f"values__y__{k}"] = rng.normal(size=(n, 2)).astype(np.float32)
        out[f"values__p__{k}"] = np.zeros((n, 2), np.float32)
        out[f"reg__y__{k}"] = rng.normal(size=(n, 3)).astype(np.float32)
        out[f"reg__p__{k}"] = rng.normal(size=(n, 3)).astype(np.float32)
        out[f"binary__y__{k}"] = (rng.random((n, 3)) > 0.5).astype(np.float32)
        out[f"binary__p__{k}"] = rng.random((n, 3)).astype(np.float32)
        out[f"sparse__y__{k}"] = rng.integers(0, 3, size=(n,)).astype(np.float32)
        out[f"sparse__p__{k}"] = rng.integers(0, 3, size=(n,)).astype(np.float32)
        out[f"onehot__y__{k}"] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=(n,))]
        out[f"onehot__p__{k}"] = rng.random((n, 3)).astype(np.float32)
        w = rng.integers(0, 4, size=(n,)).astype(np.float32)
        for kind in ("values", "reg", "binary", "sparse", "onehot"):
            out[f"{kind}__w__{k}"] = w
    return out


def update(m, kind, y, p, w=None):
    if kind == "values":
        m.update_state(y, sample_weight=w)
    else:
        m.update_state(y, p, sample_weight=w)


def main() -> None:
    rng = np.random.default_rng(11)
    out = data(rng)
    configs = {}
    for case, (make, kind) in CASES.items():
        for tag, weighted in (("eager", False), ("weighted", True)):
            m = make()
            try:
                for k in range(3):
                    w = out[f"{kind}__w__{k}"] if weighted else None
                    update(m, kind, out[f"{kind}__y__{k}"], out[f"{kind}__p__{k}"], w)
                    out[f"{case}__{tag}__{k}"] = np.asarray(m.result(), dtype=np.float64)
            except ValueError:  # Keras refuses these weights for this metric (BinaryIoU on 2-D targets)
                out[f"{case}__{tag}__refused"] = np.array(1)
                continue
            if weighted:
                m.reset_state()
                update(m, kind, out[f"{kind}__y__0"], out[f"{kind}__p__0"])
                out[f"{case}__reset"] = np.asarray(m.result(), dtype=np.float64)
        configs[case] = make().get_config()

    keras.utils.set_random_seed(5)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    y = (x[:, :3] + 0.5 * rng.normal(size=(24, 3)) > 0).astype(np.float32)
    out["x"], out["y"] = x, y
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    for i, w in enumerate(model.get_weights()):
        out[f"weight_{i:02d}"] = w
    metrics = [CASES[c][0]() for c in MOD.COMPILED]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=metrics)
    result = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for case, metric in zip(MOD.COMPILED, metrics):
        out[f"{case}__evaluate"] = np.array(result[metric.name])
        out[f"{case}__fit"] = np.array(history[metric.name])
    out["loss__fit"] = np.array(history["loss"])
    np.savez(HERE / "metrics_more.npz", **out)
    (HERE / "metrics_more.json").write_text(json.dumps(configs, indent=1, sort_keys=True, default=str) + "\n")

    saved = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    saved.set_weights(model.get_weights())
    saved.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[keras.metrics.F1Score(average="macro"), keras.metrics.AUC(curve="PR", name="pr_auc"),
                           keras.metrics.Precision(top_k=2, name="p_top2"), keras.metrics.R2Score()])
    saved_logs = saved.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    (HERE / "metrics_more_saved.json").write_text(json.dumps({k: float(v) for k, v in saved_logs.items()},
                                                             indent=1, sort_keys=True) + "\n")
    saved.save(HERE / "metrics_more.keras")


if __name__ == "__main__":
    sys.exit(main())

"""Write the Keras fixtures for ``tests/test_losses.py``: every ``keras.losses`` class kerust has, with default
and non-default arguments, every reduction, with and without sample weights, on fixed random inputs.

Run with the Keras venv (real Keras 3.15, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/losses/generate_losses.py

It writes, next to itself:

- ``cases.json``   the list of cases: ``{"id", "class_name", "kwargs", "inputs", "fn", "model_activation"}``
  (``inputs`` names the arrays
  below), and for each case Keras's ``get_config()``;
- ``losses.npz``   the inputs ``<inputs>__y_true`` / ``<inputs>__y_pred`` / ``sample_weight`` (8 samples), and for
  each case ``<id>__<reduction>__<w|nw>``: the loss object's value called with that reduction, with (``w``) or
  without (``nw``) ``sample_weight`` (a scalar, or the per-sample array for ``None``; ``w`` is missing where
  Keras refuses (n,) weights for the case's values);
  ``<id>__fn``: the function form (``keras.losses.<fn>(y_true, y_pred, **kwargs)``) where Keras exports one;
  ``model__*``: a one-Dense model's kernel/bias/x and, per case id in ``MODEL_CASES``, ``model__<id>__evaluate``
  (Keras's ``evaluate`` of that loss for those weights).

Deterministic (fixed seeds); a few seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
N = 8
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None]


def inputs() -> dict:
    rng = np.random.default_rng(18)
    f = np.float32

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype(f)

    onehot = np.eye(4, dtype=f)[rng.integers(0, 4, N)]
    labels = rng.integers(0, 4, N).astype(f)
    labels_ignored = labels.copy()
    labels_ignored[[1, 5]] = 2.0
    return {
        "reg": (rng.normal(size=(N, 4)).astype(f), rng.normal(size=(N, 4)).astype(f)),
        "pos": ((rng.random((N, 4)) + 0.1).astype(f), (rng.random((N, 4)) * 2 + 0.05).astype(f)),
        "prob": (softmax(rng.normal(size=(N, 4))), softmax(rng.normal(size=(N, 4)))),
        "onehot": (onehot, softmax(rng.normal(size=(N, 4)))),
        "onehot_logits": (onehot, (rng.normal(size=(N, 4)) * 2).astype(f)),
        "binary": ((rng.random((N, 3)) > 0.5).astype(f), (rng.random((N, 3)) * 0.98 + 0.01).astype(f)),
        "binary_logits": ((rng.random((N, 3)) > 0.5).astype(f), (rng.normal(size=(N, 3)) * 2).astype(f)),
        "binary_col": ((rng.random((N,)) > 0.5).astype(f), (rng.random((N, 1)) * 0.98 + 0.01).astype(f)),
        "pm1": (np.where(rng.random((N, 3)) > 0.5, 1.0, -1.0).astype(f), rng.normal(size=(N, 3)).astype(f)),
        "sparse": (labels, softmax(rng.normal(size=(N, 4)))),
        "sparse_col": (labels[:, None].copy(), softmax(rng.normal(size=(N, 4)))),
        "sparse_logits": (labels, (rng.normal(size=(N, 4)) * 2).astype(f)),
        "sparse_ignored": (labels_ignored, (rng.normal(size=(N, 4)) * 2).astype(f)),
        "seg": ((rng.random((N, 3, 3)) > 0.5).astype(f), rng.random((N, 3, 3)).astype(f)),
        "seq": (rng.normal(size=(N, 3, 4)).astype(f), rng.normal(size=(N, 3, 4)).astype(f)),
        "seq_onehot": (np.eye(4, dtype=f)[rng.integers(0, 4, (N, 3))], softmax(rng.normal(size=(N, 3, 4)))),
    }


# (id, class name, kwargs, inputs, function name or None)
CASES = [
    ("mse", "MeanSquaredError", {}, "reg", "mean_squared_error"),
    ("mse_seq", "MeanSquaredError", {}, "seq", "mean_squared_error"),
    ("mae", "MeanAbsoluteError", {}, "reg", "mean_absolute_error"),
    ("mape", "MeanAbsolutePercentageError", {}, "pos", "mean_absolute_percentage_error"),
    ("msle", "MeanSquaredLogarithmicError", {}, "pos", "mean_squared_logarithmic_error"),
    ("cosine", "CosineSimilarity", {}, "reg", "cosine_similarity"),
    ("cosine_axis", "CosineSimilarity", {"axis": 1}, "seq", "cosine_similarity"),
    ("huber", "Huber", {}, "reg", "huber"),
    ("huber_delta", "Huber", {"delta": 0.3}, "reg", "huber"),
    ("log_cosh", "LogCosh", {}, "reg", "log_cosh"),
    ("hinge", "Hinge", {}, "pm1", "hinge"),
    ("hinge_01", "Hinge", {}, "binary_logits", "hinge"),
    ("squared_hinge", "SquaredHinge", {}, "pm1", "squared_hinge"),
    ("squared_hinge_01", "SquaredHinge", {}, "binary_logits", "squared_hinge"),
    ("categorical_hinge", "CategoricalHinge", {}, "onehot_logits", "categorical_hinge"),
    ("kld", "KLDivergence", {}, "prob", "kl_divergence"),
    ("poisson", "Poisson", {}, "pos", "poisson"),
    ("bce", "BinaryCrossentropy", {}, "binary", "binary_crossentropy"),
    ("bce_col", "BinaryCrossentropy", {}, "binary_col", None),
    ("bce_logits", "BinaryCrossentropy", {"from_logits": True}, "binary_logits", "binary_crossentropy"),
    ("bce_smooth", "BinaryCrossentropy", {"label_smoothing": 0.2}, "binary", "binary_crossentropy"),
    ("bce_smooth_logits", "BinaryCrossentropy", {"label_smoothing": 0.1, "from_logits": True}, "binary_logits",
     "binary_crossentropy"),
    ("bce_axis", "BinaryCrossentropy", {"axis": 1}, "seg", "binary_crossentropy"),
    ("bfce", "BinaryFocalCrossentropy", {}, "binary", "binary_focal_crossentropy"),
    ("bfce_args", "BinaryFocalCrossentropy",
     {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "label_smoothing": 0.1}, "binary",
     "binary_focal_crossentropy"),
    ("bfce_logits", "BinaryFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, "binary_logits",
     "binary_focal_crossentropy"),
    ("cce", "CategoricalCrossentropy", {}, "onehot", "categorical_crossentropy"),
    ("cce_logits", "CategoricalCrossentropy", {"from_logits": True}, "onehot_logits", "categorical_crossentropy"),
    ("cce_smooth", "CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot", "categorical_crossentropy"),
    ("cce_smooth_logits", "CategoricalCrossentropy", {"label_smoothing": 0.3, "from_logits": True},
     "onehot_logits", "categorical_crossentropy"),
    ("cce_axis", "CategoricalCrossentropy", {"axis": 1}, "seq_onehot", "categorical_crossentropy"),
    ("cce_seq", "CategoricalCrossentropy", {}, "seq_onehot", "categorical_crossentropy"),
    ("cfce", "CategoricalFocalCrossentropy", {}, "onehot", "categorical_focal_crossentropy"),
    ("cfce_args", "CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1}, "onehot",
     "categorical_focal_crossentropy"),
    ("cfce_logits", "CategoricalFocalCrossentropy", {"from_logits": True}, "onehot_logits",
     "categorical_focal_crossentropy"),
    ("scce", "SparseCategoricalCrossentropy", {}, "sparse", "sparse_categorical_crossentropy"),
    ("scce_col", "SparseCategoricalCrossentropy", {}, "sparse_col", "sparse_categorical_crossentropy"),
    ("scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits",
     "sparse_categorical_crossentropy"),
    ("scce_ignore", "SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 2}, "sparse_ignored",
     "sparse_categorical_crossentropy"),
    ("dice", "Dice", {}, "seg", "dice"),
    ("dice_axis", "Dice", {"axis": [1, 2]}, "seg", "dice"),
    ("tversky", "Tversky", {}, "seg", "tversky"),
    ("tversky_args", "Tversky", {"alpha": 0.7, "beta": 0.3, "axis": [1, 2]}, "seg", "tversky"),
    ("cgce", "CategoricalGeneralizedCrossEntropy", {}, "sparse", None),
    ("cgce_q", "CategoricalGeneralizedCrossEntropy", {"q": 0.8}, "sparse", "categorical_generalized_cross_entropy"),
]

# cases checked through `evaluate` of a one-Dense model (8 inputs -> outputs of the case's y_pred sample shape)
MODEL_CASES = {
    "mse": "linear", "mae": "linear", "mape": "softplus", "msle": "softplus", "cosine": "linear", "huber": "linear",
    "huber_delta": "linear", "log_cosh": "linear", "hinge": "linear", "squared_hinge": "linear",
    "categorical_hinge": "linear", "kld": "softmax", "poisson": "softplus", "bce": "sigmoid",
    "bce_logits": "linear", "bce_smooth": "sigmoid", "bfce": "sigmoid", "bfce_args": "sigmoid",
    "bfce_logits": "linear", "cce": "softmax", "cce_logits": "linear", "cce_smooth": "softmax",
    "cce_smooth_logits": "linear", "cfce": "softmax", "cfce_args": "softmax", "cfce_logits": "linear",
    "scce": "softmax", "scce_logits": "linear", "scce_ignore": "linear", "cgce": "softmax",
}


def _listify(kwargs: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def main() -> None:
    data = inputs()
    rng = np.random.default_rng(7)
    sw = (rng.random(N) * 2).astype(np.float32)
    sw[3] = 0.0
    out: dict = {"sample_weight": sw}
    for name, (yt, yp) in data.items():
        out[f"{name}__y_true"], out[f"{name}__y_pred"] = yt, yp
    cases = []
    for cid, cls_name, kwargs, inp, fn in CASES:
        yt, yp = data[inp]
        cls = getattr(keras.losses, cls_name)
        for red in REDUCTIONS:
            loss = cls(reduction=red, **_listify(kwargs))
            out[f"{cid}__{red}__nw"] = np.asarray(loss(yt, yp), dtype=np.float32)
            try:
                out[f"{cid}__{red}__w"] = np.asarray(loss(yt, yp, sample_weight=sw), dtype=np.float32)
            except ValueError:  # per-sample values that (n,) weights do not broadcast against
                pass
        config = cls(**_listify(kwargs)).get_config()
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
        if fn is not None:
            out[f"{cid}__fn"] = np.asarray(getattr(keras.losses, fn)(yt, yp, **_listify(kwargs)), dtype=np.float32)
        cases.append({"id": cid, "class_name": cls_name, "kwargs": kwargs, "inputs": inp, "fn": fn,
                      "config": config, "model_activation": MODEL_CASES.get(cid)})
    # evaluate of a one-Dense model for fixed weights
    x = rng.normal(size=(N, 5)).astype(np.float32)
    out["model__x"] = x
    for cid, activation in MODEL_CASES.items():
        case = next(c for c in cases if c["id"] == cid)
        yt, yp = data[case["inputs"]]
        units = yp.shape[-1]
        kernel = (rng.normal(size=(5, units)) * 0.5).astype(np.float32)
        bias = (rng.normal(size=(units,)) * 0.1).astype(np.float32)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(units, activation=activation)])
        model.set_weights([kernel, bias])
        model.compile("sgd", loss=getattr(keras.losses, case["class_name"])(**_listify(case["kwargs"])))
        out[f"model__{cid}__kernel"], out[f"model__{cid}__bias"] = kernel, bias
        out[f"model__{cid}__evaluate"] = np.float32(model.evaluate(x, yt, verbose=0, batch_size=N))
        out[f"model__{cid}__evaluate_w"] = np.float32(model.evaluate(x, yt, sample_weight=sw, verbose=0,
                                                                     batch_size=N))
    np.savez_compressed(HERE / "losses.npz", **out)
    (HERE / "cases.json").write_text(json.dumps({"keras_version": keras.__version__, "cases": cases},
                                                indent=1) + "\n")
    print(f"wrote {len(cases)} cases, {len(out)} arrays")


if __name__ == "__main__":
    main()

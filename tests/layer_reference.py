"""Shared by the tests that compare layers with a Keras-written `.npz` of cases (tests/test_vision_layers.py,
tests/test_volumetric_layers.py): each case `K` stores `K__spec` (class name and arguments as JSON), `K__w_NN`
(weights) and arrays; `sandwich` gets a layer's training-mode output and gradients out of one SGD step; the file
helpers read `.keras` files and run real Keras."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import kerust as keras
import h5py
import numpy as np
from kerust import layers, ops

# The sandwich's target scale (the loss is C * sum(out * R) over the batch; SGD(1.0) moves each weight by C x grad)
C = 1024.0
TOL = 1e-5


class ReferenceCases:
    """The cases of one reference `.npz`."""

    def __init__(self, ref) -> None:
        self.ref = ref

    def spec(self, case: str) -> dict:
        return json.loads(str(self.ref[f"{case}__spec"]))

    def weights(self, case: str) -> list:
        return [self.ref[k] for k in sorted(k for k in self.ref.files if k.startswith(f"{case}__w_"))]

    def layer(self, case: str, **extra):
        spec = self.spec(case)
        return getattr(layers, spec["class_name"])(**spec["args"], **extra)


def close(actual, expected, what: str, tol: float = TOL) -> None:
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, Keras {e.shape}"
    err = np.abs(a - e)
    assert (err <= tol * np.maximum(1.0, np.abs(e))).all(), f"{what}: max |diff| {err.max():.3g}"


def _linear_loss(y_true, y_pred):
    return ops.multiply(y_true, y_pred)


def sandwich(make_layer, x: np.ndarray, R: np.ndarray, weights: list):
    """(training-mode output, d sum(out * R)/dx, [d/dw]) of `make_layer()`: the layer sits between a Dense that
    holds `x` as its kernel (fed the identity) and a Dense that holds `R`, trained one SGD(1.0) step on a linear
    loss, so each weight moves by C times its gradient. `x` and `R` are (batch, ...) arrays."""
    b = x.shape[0]
    x_flat, r_flat = x.reshape(b, -1), R.reshape(b, -1)
    model = keras.Sequential([keras.Input((b,)), layers.Dense(x_flat.shape[1], use_bias=False),
                              layers.Reshape(x.shape[1:]), make_layer(), layers.Flatten(),
                              layers.Dense(b, use_bias=False)])
    before = [x_flat, *weights, np.ascontiguousarray(r_flat.T)]
    model.set_weights(before)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=_linear_loss)
    model.train_on_batch(np.eye(b, dtype=np.float32), (C * b * b * np.eye(b)).astype(np.float32))
    after = model.get_weights()
    grads = [(w0.astype(np.float64) - w1.astype(np.float64)) / C for w0, w1 in zip(before, after)]
    out = grads[-1].T.reshape(b, *[int(d) for d in model.layers[2].output_shape[1:]])
    return out, grads[0].reshape(x.shape), grads[1:-1]

def run_keras(script: str) -> str:
    """Run `script` with real Keras (JAX) in `$KERUST_KERAS_PYTHON` and return what it printed."""
    python = os.environ.get("KERUST_KERAS_PYTHON")
    assert python, "KERUST_KERAS_PYTHON must name the Keras venv's python (test.sh sets it)"
    source = 'import os\nos.environ.setdefault("KERAS_BACKEND", "jax")\n' + textwrap.dedent(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", source], check=False, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def h5_paths(keras_file: Path, folder: Path) -> set:
    """(path, shape) of every group and dataset in a `.keras` file's weights."""
    with zipfile.ZipFile(keras_file) as z:
        z.extract("model.weights.h5", folder)
    out: set = set()
    with h5py.File(folder / "model.weights.h5", "r") as f:
        f.visititems(lambda name, obj: out.add((name, getattr(obj, "shape", None))))
    return out


def keras_entries(keras_file: Path) -> list:
    """A `.keras` file's layer entries, without the dtype policies' per-file object ids."""
    with zipfile.ZipFile(keras_file) as z:
        config = json.loads(z.read("config.json"))
    entries = config["config"]["layers"]
    for e in entries:
        if isinstance(e.get("config", {}).get("dtype"), dict):
            e["config"]["dtype"].pop("shared_object_id", None)
    return entries

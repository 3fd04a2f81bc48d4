"""Write the Keras fixtures for custom layers, ``keras.ops`` and subclassed models (``tests/test_custom_layers.py``).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/custom/generate_custom.py

The models come from ``custom_layers.py`` next to this file (``define(keras)`` plus the model builders), so kerust's
test builds exactly the same ones. The Keras classes are registered here with
``keras.saving.register_keras_serializable()`` (package ``Custom``, Keras's default). It writes, next to itself:

- ``expected.npz``       for each model ``a`` (TokenAndPositionEmbedding -> TransformerBlock -> MeanOverTime ->
  Dense), ``b`` (the same with a Linear -> ScaledResidual -> Scale head) and ``c`` (the subclassed SmallCNN on 8x8x1):
  ``<m>__x`` / ``<m>__y`` (batch 4), ``<m>__weight_NN`` (``get_weights()`` in Keras order, NN = index),
  ``<m>__pred`` (``predict``), and after one ``train_on_batch`` with ``SGD(learning_rate=0.1)`` and
  ``sparse_categorical_crossentropy`` on a copy of the model with dropout rate 0 started from the same weights:
  ``<m>__train_loss`` and ``<m>__trained_weight_NN``;
- ``weights.json``       per model the weight ``path`` / ``name`` / shape lists in ``model.weights`` order (the order
  of ``get_weights()``), ``model.layers`` names, the ``summary()`` lines, the layout of ``linear_scale.keras``
  (files in the zip, every h5 group and dataset path of ``model.weights.h5`` with shapes, and the
  ``module`` / ``class_name`` / ``registered_name`` Keras wrote for each layer of config.json), the h5 layout of
  ``SmallCNN.save_weights``, and the exception Keras raises when the file is loaded without the custom classes;
- ``linear_scale.keras`` model ``b`` saved by ``model.save`` (uncompiled), to test kerust's loader on a Keras-made
  file with registered custom objects.

It is deterministic (fixed seeds) and takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def _load_module():
    spec = importlib.util.spec_from_file_location("custom_layers", HERE / "custom_layers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["custom_layers"] = mod
    spec.loader.exec_module(mod)
    return mod


cl = _load_module()


def summary_lines(model) -> list:
    lines: list = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines).splitlines()


def h5_layout(path_or_file) -> list:
    out: list = []
    with h5py.File(path_or_file, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out.append({"path": name, "shape": list(obj.shape), "dtype": str(obj.dtype)})
            else:
                out.append({"path": name, "group": True})
        f.visititems(visit)
    return out


def record(arrays: dict, info: dict, key: str, model, x, y, train_model) -> None:
    arrays[f"{key}__x"], arrays[f"{key}__y"] = x, y
    for i, w in enumerate(model.get_weights()):
        arrays[f"{key}__weight_{i:02d}"] = w
    arrays[f"{key}__pred"] = model.predict(x, verbose=0)
    info[key] = {
        "model_name": model.name,
        "paths": [w.path for w in model.weights],
        "names": [w.name for w in model.weights],
        "shapes": [list(w.shape) for w in model.weights],
        "trainable_paths": [w.path for w in model.trainable_weights],
        "layers": [layer.name for layer in model.layers],
        "layer_classes": [type(layer).__name__ for layer in model.layers],
        "summary": summary_lines(model),
        "count_params": int(model.count_params()),
    }
    train_model.set_weights(model.get_weights())
    train_model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    loss = train_model.train_on_batch(x, y)
    arrays[f"{key}__train_loss"] = np.array(float(np.asarray(loss)), dtype=np.float64)
    for i, w in enumerate(train_model.get_weights()):
        arrays[f"{key}__trained_weight_{i:02d}"] = w
    info[key]["train_model_paths"] = [w.path for w in train_model.weights]


UNREGISTERED_LOAD = r"""
import os, sys, json
os.environ["KERAS_BACKEND"] = "jax"
import keras
try:
    keras.saving.load_model(sys.argv[1])
    print(json.dumps({"raised": None}))
except Exception as e:
    print(json.dumps({"raised": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__], "message": str(e)}))
"""


def main() -> None:
    keras.utils.set_random_seed(20240607)
    ns = cl.define(keras)
    for cls in ns.custom_objects.values():
        keras.saving.register_keras_serializable()(cls)
    rng = np.random.default_rng(11)
    tokens = rng.integers(0, cl.VOCAB, size=(4, cl.MAXLEN)).astype(F32)
    token_labels = np.array([0, 1, 1, 0], dtype=F32)
    images = rng.normal(size=(4, 8, 8, 1)).astype(F32)
    image_labels = np.array([3, 7, 0, 7], dtype=F32)

    arrays: dict = {}
    info: dict = {"keras_version": keras.__version__, "backend": keras.backend.backend()}

    a = cl.transformer_classifier(keras, ns, rate=0.1)
    a_train = cl.transformer_classifier(keras, ns, rate=0.0, name="transformer_classifier_train")
    record(arrays, info, "a", a, tokens, token_labels, a_train)

    b = cl.linear_scale_classifier(keras, ns, rate=0.1)
    b_train = cl.linear_scale_classifier(keras, ns, rate=0.0, name="linear_scale_classifier_train")
    record(arrays, info, "b", b, tokens, token_labels, b_train)

    c = cl.small_cnn(keras, ns)
    c_train = cl.small_cnn(keras, ns, name="small_cnn_train")
    record(arrays, info, "c", c, images, image_labels, c_train)

    # the .keras file of (b)
    path = HERE / "linear_scale.keras"
    b.save(path)
    with zipfile.ZipFile(path) as z:
        files = z.namelist()
        config = json.loads(z.read("config.json"))
        h5 = h5_layout(io.BytesIO(z.read("model.weights.h5")))
    info["linear_scale_keras"] = {
        "zip_files": files,
        "h5": h5,
        "h5_datasets": [e["path"] for e in h5 if not e.get("group")],
        "top_config": {k: config[k] for k in ("module", "class_name", "registered_name")},
        "layer_configs": [{k: lay.get(k) for k in ("module", "class_name", "registered_name", "name")}
                          for lay in config["config"]["layers"]],
    }
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(tokens, verbose=0), arrays["b__pred"], atol=1e-6)

    # the h5 layout Keras gives a subclassed model
    tmp = HERE / "_tmp_small_cnn.weights.h5"
    c.save_weights(tmp)
    info["c"]["save_weights_h5"] = h5_layout(tmp)
    tmp.unlink()

    # a fresh process that has not registered the classes
    proc = subprocess.run([sys.executable, "-c", UNREGISTERED_LOAD, str(path)], capture_output=True, text=True,
                          check=True)
    info["unregistered_load"] = json.loads(proc.stdout.strip().splitlines()[-1])

    np.savez_compressed(HERE / "expected.npz", **arrays)
    (HERE / "weights.json").write_text(json.dumps(info, indent=1) + "\n")
    total = sum(p.stat().st_size for p in (HERE / "expected.npz", HERE / "weights.json", path))
    print(f"wrote expected.npz, weights.json, linear_scale.keras ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()

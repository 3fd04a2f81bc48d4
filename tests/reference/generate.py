"""Write the Keras reference fixtures that ``tests/test_reference.py`` checks kerust against.

Run with a Python that has real Keras 3 + TensorFlow (not kerust's environment), from the repository root:

    bench-venv/bin/python tests/reference/generate.py

It writes, next to this file (float32 data, fixed seeds, Keras's TensorFlow backend on CPU):

- ``layers.npz``       every layer configuration kerust supports: input, weights, output, and the gradients of
                       ``sum(output * R)`` (fixed random ``R``) w.r.t. the input and every trainable weight
                       (``tf.GradientTape``); BatchNormalization also in training mode with its moving statistics
                       after the step; Dropout, SpatialDropout2D and GaussianNoise in inference mode.
- ``losses.npz``       every loss (``from_logits`` both ways) and metric on fixed arrays: the loss object's value,
                       ``model.evaluate`` of a model whose output is exactly those arrays (or softmax/sigmoid of
                       them, where Keras goes through the logits), with and without ``sample_weight``, and the
                       gradient ``fit`` takes w.r.t. those arrays; and small models with L1/L2/L1L2 weight
                       regularizers: evaluate, train_on_batch loss and the weights after one SGD step.
- ``optimizers.npz``   every optimizer variant (and learning-rate schedule, and a rate changed mid-way): 20
                       ``apply_gradients`` steps on two fixed variables with a fixed gradient sequence, the
                       variables after every step.
- ``trajectories.npz`` the seed CNN and an MLP trained 2 epochs on the first 512 MNIST images from Keras's initial
                       weights: per-epoch logs, final weights, predictions on the first 64 test images; and the
                       same runs from initial weights perturbed by 1e-6 relative, to measure the trajectories'
                       sensitivity to rounding.
- ``resume.npz``       the Keras files in ``tests/reference/keras`` trained one more epoch on MNIST training
                       images 2048..4095: that epoch's logs and the predictions after it (the Dropout model over
                       several seeds, to measure how much the dropout masks alone move the result).

Every array is stored under ``<case>__<field>``; a case's description is a JSON string under ``<case>__config``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
F32 = np.float32


def _save(name: str, arrays: dict) -> None:
    path = HERE / name
    np.savez_compressed(path, **arrays)
    print(f"wrote {path.relative_to(ROOT)}: {len(arrays)} arrays, {path.stat().st_size / 1024:.1f} KiB")


def _json(obj: dict) -> np.ndarray:
    return np.array(json.dumps(obj, sort_keys=True))


# ---- MNIST (IDX reader of our own: kerust is not importable here) ---------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(folder: Path):
    x_train = _read_idx(folder / "train-images.idx3-ubyte.gz")
    y_train = _read_idx(folder / "train-labels.idx1-ubyte.gz")
    x_test = _read_idx(folder / "t10k-images.idx3-ubyte.gz")
    y_test = _read_idx(folder / "t10k-labels.idx1-ubyte.gz")
    return (x_train, y_train), (x_test, y_test)


def images(x: np.ndarray) -> np.ndarray:
    """MNIST preprocessing used everywhere: (N, 28, 28, 1) float32 pixels / 255."""
    return (x.astype(F32) / F32(255.0)).reshape(-1, 28, 28, 1)


# ---- 1. layers ---------------------------------------------------------------------------------------------------
ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "softplus", "softsign",
               "swish", "silu", "relu6", "hard_sigmoid", "exponential", "leaky_relu"]

# (case name, Keras class, constructor kwargs, input shape with batch, mode)
# mode: "plain"  - output and gradients (training flag irrelevant);
#       "bn_train" - BatchNormalization in training mode (batch statistics, moving statistics updated);
#       "frozen" - the layer with trainable=False (BatchNormalization then runs in inference mode);
#       "dropout" - inference output only (training masks/noise are random; the test checks their semantics).
LAYER_CASES = [
    ("dense_linear", "Dense", {"units": 4}, (3, 5), "plain"),
    ("dense_relu", "Dense", {"units": 4, "activation": "relu"}, (3, 5), "plain"),
    ("dense_sigmoid", "Dense", {"units": 4, "activation": "sigmoid"}, (3, 5), "plain"),
    ("dense_tanh", "Dense", {"units": 4, "activation": "tanh"}, (3, 5), "plain"),
    ("dense_softmax", "Dense", {"units": 4, "activation": "softmax"}, (3, 5), "plain"),
    ("dense_nobias_elu", "Dense", {"units": 4, "activation": "elu", "use_bias": False}, (3, 5), "plain"),
    ("dense_3d_gelu", "Dense", {"units": 3, "activation": "gelu"}, (2, 4, 5), "plain"),
    *[(f"activation_{a}", "Activation", {"activation": a}, (4, 9), "plain") for a in ACTIVATIONS],
    ("activation_softmax_4d", "Activation", {"activation": "softmax"}, (2, 3, 2, 4), "plain"),
    ("flatten", "Flatten", {}, (2, 3, 4, 2), "plain"),
    ("reshape_to_2d", "Reshape", {"target_shape": [4, 6]}, (2, 3, 8), "plain"),
    ("reshape_to_3d", "Reshape", {"target_shape": [2, 3, 4]}, (2, 24), "plain"),
    ("conv_valid_3x3", "Conv2D", {"filters": 4, "kernel_size": 3}, (2, 7, 7, 3), "plain"),
    ("conv_same_3x3", "Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"}, (2, 7, 7, 3), "plain"),
    ("conv_same_3x3_s2", "Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
     (2, 7, 7, 3), "plain"),
    ("conv_valid_3x3_s2", "Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2}, (2, 8, 7, 3), "plain"),
    ("conv_same_2x2", "Conv2D", {"filters": 3, "kernel_size": 2, "padding": "same"}, (2, 6, 5, 2), "plain"),
    ("conv_same_4x4_s2_nobias", "Conv2D",
     {"filters": 3, "kernel_size": 4, "strides": 2, "padding": "same", "use_bias": False}, (2, 8, 7, 2), "plain"),
    ("conv_valid_3x2_s21_relu", "Conv2D",
     {"filters": 3, "kernel_size": [3, 2], "strides": [2, 1], "activation": "relu"}, (2, 7, 6, 2), "plain"),
    ("conv_same_5x5_s2_nobias", "Conv2D",
     {"filters": 4, "kernel_size": 5, "strides": 2, "padding": "same", "use_bias": False}, (2, 9, 9, 1), "plain"),
    ("conv_same_1x1_tanh", "Conv2D", {"filters": 5, "kernel_size": 1, "padding": "same", "activation": "tanh"},
     (2, 4, 4, 3), "plain"),
    ("maxpool_2_valid", "MaxPooling2D", {"pool_size": 2}, (2, 7, 7, 3), "plain"),
    ("maxpool_2_same", "MaxPooling2D", {"pool_size": 2, "padding": "same"}, (2, 7, 7, 3), "plain"),
    ("maxpool_3_s2_valid", "MaxPooling2D", {"pool_size": 3, "strides": 2}, (2, 8, 7, 2), "plain"),
    ("maxpool_3_s1_same", "MaxPooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}, (2, 5, 6, 2),
     "plain"),
    ("maxpool_3x2_s21_same", "MaxPooling2D", {"pool_size": [3, 2], "strides": [2, 1], "padding": "same"},
     (2, 7, 5, 2), "plain"),
    ("avgpool_2_valid", "AveragePooling2D", {"pool_size": 2}, (2, 7, 7, 3), "plain"),
    ("avgpool_2_same", "AveragePooling2D", {"pool_size": 2, "padding": "same"}, (2, 7, 7, 3), "plain"),
    ("avgpool_3_s2_valid", "AveragePooling2D", {"pool_size": 3, "strides": 2}, (2, 8, 7, 2), "plain"),
    ("avgpool_3_s1_same", "AveragePooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}, (2, 5, 6, 2),
     "plain"),
    ("avgpool_3x2_s21_same", "AveragePooling2D", {"pool_size": [3, 2], "strides": [2, 1], "padding": "same"},
     (2, 7, 5, 2), "plain"),
    ("global_avgpool", "GlobalAveragePooling2D", {}, (3, 4, 5, 2), "plain"),
    ("global_maxpool", "GlobalMaxPooling2D", {}, (3, 4, 5, 2), "plain"),
    ("global_avgpool_keepdims", "GlobalAveragePooling2D", {"keepdims": True}, (3, 4, 5, 2), "plain"),
    ("global_maxpool_keepdims", "GlobalMaxPooling2D", {"keepdims": True}, (3, 4, 5, 2), "plain"),
    ("leaky_relu_layer", "LeakyReLU", {}, (4, 9), "plain"),
    ("leaky_relu_layer_slope", "LeakyReLU", {"negative_slope": 0.05}, (4, 9), "plain"),
    ("relu_layer", "ReLU", {}, (4, 9), "plain"),
    ("relu_layer_capped_leaky_threshold", "ReLU", {"max_value": 2.5, "negative_slope": 0.1, "threshold": 0.5},
     (4, 9), "plain"),
    ("elu_layer", "ELU", {"alpha": 0.7}, (4, 9), "plain"),
    ("softmax_layer", "Softmax", {}, (2, 3, 5), "plain"),
    ("prelu", "PReLU", {}, (4, 6), "plain"),
    ("prelu_shared_axes", "PReLU", {"shared_axes": [1, 2]}, (2, 3, 4, 3), "plain"),
    ("dropout", "Dropout", {"rate": 0.3}, (40, 50), "dropout"),
    ("spatial_dropout2d", "SpatialDropout2D", {"rate": 0.4}, (16, 3, 4, 12), "dropout"),
    ("gaussian_noise", "GaussianNoise", {"stddev": 0.5}, (40, 50), "dropout"),
    ("batchnorm_2d_train", "BatchNormalization", {}, (8, 5), "bn_train"),
    ("batchnorm_4d_train", "BatchNormalization", {}, (3, 4, 3, 4), "bn_train"),
    ("batchnorm_custom_train", "BatchNormalization", {"momentum": 0.9, "epsilon": 0.01}, (6, 4), "bn_train"),
    ("batchnorm_noscale_nocenter_train", "BatchNormalization", {"scale": False, "center": False}, (6, 4),
     "bn_train"),
    ("batchnorm_2d_inference", "BatchNormalization", {}, (8, 5), "frozen"),
    ("batchnorm_4d_inference", "BatchNormalization", {}, (3, 4, 3, 4), "frozen"),
]


def _random_weights(layer, rng: np.random.Generator) -> list:
    """Non-default values for every weight, so biases, beta and the moving statistics all matter."""
    out = []
    for w in layer.weights:
        shape = tuple(w.shape)
        name = w.path.split("/")[-1]
        if name == "kernel":
            out.append(rng.normal(0.0, 0.6, shape))
        elif name in ("bias", "beta", "moving_mean"):
            out.append(rng.normal(0.0, 0.5, shape))
        elif name in ("gamma",):
            out.append(rng.uniform(0.5, 1.5, shape))
        elif name == "alpha":  # PReLU's slopes, both signs
            out.append(rng.uniform(-0.5, 0.8, shape))
        elif name == "moving_variance":
            out.append(rng.uniform(0.5, 2.0, shape))
        else:
            raise AssertionError(f"unexpected weight {w.path}")
    return [a.astype(F32) for a in out]


def _layer_input(name: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if name.startswith("activation_exponential"):
        return rng.uniform(-3.0, 2.5, shape).astype(F32)
    if name.startswith("activation_") or name.startswith(("relu_layer", "leaky_relu", "elu_layer")):
        return rng.uniform(-7.0, 7.0, shape).astype(F32)
    if name.startswith("batchnorm"):
        # channels with different means and spreads
        c = shape[-1]
        return (rng.normal(0.0, 1.0, shape) * rng.uniform(0.5, 3.0, c) + rng.normal(0.0, 2.0, c)).astype(F32)
    return rng.normal(0.0, 1.0, shape).astype(F32)


def gen_layers() -> dict:
    out: dict = {}
    for i, (name, cls, kwargs, shape, mode) in enumerate(LAYER_CASES):
        rng = np.random.default_rng(1000 + i)
        keras.utils.set_random_seed(1000 + i)
        x = _layer_input(name, shape, rng)
        layer = getattr(keras.layers, cls)(**kwargs)
        layer.build(shape)
        weights = _random_weights(layer, rng)
        if weights:
            layer.set_weights(weights)
        y_infer = np.asarray(layer(x, training=False))
        R = rng.normal(0.0, 1.0, y_infer.shape).astype(F32)
        names = [w.path.split("/")[-1] for w in layer.weights]
        trainable = [names.index(w.path.split("/")[-1]) for w in layer.trainable_weights]
        cfg = {"class_name": cls, "config": kwargs, "mode": mode, "weight_names": names}
        arrays = {"x": x, "y_infer": y_infer, "R": R}
        for j, w in enumerate(weights):
            arrays[f"w{j}"] = w
        if mode != "dropout":
            if mode == "frozen":
                layer.trainable = False
                trainable = []
            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = layer(xt, training=True)
                s = tf.reduce_sum(y * tf.constant(R))
            grads = tape.gradient(s, [xt] + list(layer.trainable_weights))
            if mode != "plain" or not np.array_equal(np.asarray(y), y_infer):
                arrays["y"] = np.asarray(y)  # the training-mode output, where it differs from inference
            arrays["gx"] = np.asarray(grads[0])
            for j, g in zip(trainable, grads[1:]):
                arrays[f"gw{j}"] = np.asarray(g)
            # weights after the call: BatchNormalization's moving statistics moved in training mode
            for j, w in enumerate(layer.get_weights()):
                arrays[f"w_after{j}"] = np.asarray(w)
        cfg["trainable"] = trainable
        out[f"{name}__config"] = _json(cfg)
        for k, v in arrays.items():
            out[f"{name}__{k}"] = v
    return out


# ---- 2. losses and metrics --------------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def loss_data() -> list:
    """(case, loss class, from_logits, y_true, y_pred, metrics) on fixed arrays of 8 samples."""
    rng = np.random.default_rng(7)
    b, c = 8, 4
    labels = np.array([0, 1, 2, 3, 2, 1, 0, 3])
    onehot = np.eye(c)[labels]
    logits = rng.normal(0.0, 2.0, (b, c))
    logits[1] = [30.0, -30.0, 0.0, 5.0]  # extreme logits: stability
    logits[5] = [-25.0, 40.0, 2.0, -3.0]
    probs = _softmax(logits)
    probs[2] = [0.0, 0.0, 1.0, 0.0]  # exact 0 and 1: clipping
    probs[3] = [0.5, 0.5, 0.0, 0.0]  # the true class has probability 0
    unnorm = probs * rng.uniform(0.5, 2.0, (b, 1))  # rows that do not sum to one
    unnorm[4] = [0.2, 0.1, 0.05, 0.1]
    soft = _softmax(rng.normal(0.0, 1.0, (b, c)))  # soft targets
    real_t = rng.normal(0.0, 1.0, (b, c))
    real_p = rng.normal(0.0, 1.0, (b, c))
    bin_t = rng.integers(0, 2, (b, 3)).astype(np.float64)
    bin_p = rng.uniform(0.0, 1.0, (b, 3))
    bin_p[0] = [0.0, 1.0, 0.5]
    bin_p[1] = [1.0, 0.0, 0.9999999]
    bin_z = rng.normal(0.0, 3.0, (b, 3))
    bin_z[2] = [50.0, -50.0, 0.0]
    bin_soft = rng.uniform(0.0, 1.0, (b, 3))
    # 8 x 4 scores with ties and exact 0 / 1, for precision / recall / AUC
    rank_t = rng.integers(0, 2, (b, 4)).astype(np.float64)
    rank_p = np.round(rng.uniform(0.0, 1.0, (b, 4)), 1)
    col_t = bin_t[:, :1]
    col_p = bin_p[:, 1:2]
    regression = ["mse", "mae"]
    categorical = ["accuracy", "categorical_accuracy", "mse", "mae", "top_k_categorical_accuracy",
                   {"class_name": "TopKCategoricalAccuracy", "config": {"k": 2, "name": "top2"}}]
    sparse = ["accuracy", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
              {"class_name": "SparseTopKCategoricalAccuracy", "config": {"k": 2, "name": "top2"}}]
    binary = ["accuracy", "binary_accuracy", "mse", "mae", "precision", "recall", "auc",
              {"class_name": "BinaryAccuracy", "config": {"threshold": 0.7, "name": "acc70"}},
              {"class_name": "Precision", "config": {"thresholds": 0.3, "name": "p30"}},
              {"class_name": "Recall", "config": {"thresholds": 0.6, "name": "r60"}},
              {"class_name": "AUC", "config": {"num_thresholds": 50, "name": "auc50"}}]
    return [
        ("mse", "MeanSquaredError", False, real_t, real_p, regression),
        ("mae", "MeanAbsoluteError", False, real_t, real_p, regression),
        ("cce_probs", "CategoricalCrossentropy", False, onehot, probs, categorical),
        ("cce_unnormalised", "CategoricalCrossentropy", False, onehot, unnorm, categorical),
        ("cce_soft_targets", "CategoricalCrossentropy", False, soft, probs, categorical),
        ("cce_logits", "CategoricalCrossentropy", True, onehot, logits, categorical),
        ("cce_logits_soft_targets", "CategoricalCrossentropy", True, soft, logits, ["categorical_accuracy"]),
        ("scce_probs", "SparseCategoricalCrossentropy", False, labels.astype(np.float64), probs, sparse),
        ("scce_probs_column_labels", "SparseCategoricalCrossentropy", False, labels[:, None].astype(np.float64),
         probs, sparse),
        ("scce_unnormalised", "SparseCategoricalCrossentropy", False, labels.astype(np.float64), unnorm, sparse),
        ("scce_logits", "SparseCategoricalCrossentropy", True, labels.astype(np.float64), logits, sparse),
        ("bce_probs_column", "BinaryCrossentropy", False, col_t, col_p, binary),
        ("bce_probs_flat_targets", "BinaryCrossentropy", False, col_t[:, 0], col_p, binary),
        ("bce_probs_multilabel", "BinaryCrossentropy", False, bin_t, bin_p, binary),
        ("bce_soft_targets", "BinaryCrossentropy", False, bin_soft, bin_p, ["binary_accuracy", "mae"]),
        ("bce_probs_ranking", "BinaryCrossentropy", False, rank_t, rank_p, binary),
        ("bce_logits", "BinaryCrossentropy", True, bin_t, bin_z, ["binary_accuracy"]),
        ("bce_logits_column", "BinaryCrossentropy", True, col_t, bin_z[:, :1], ["accuracy"]),
    ]


def fused_loss_data() -> list:
    """(case, loss class, output activation, y_true, logits, metrics): models whose last layer is softmax/sigmoid,
    where Keras's TF backend computes cross-entropy from the layer's logits (``_keras_logits``) inside ``fit`` and
    ``evaluate``. Logits are moderate: no probability underflows float32 (where kerust, computing the loss from the
    probabilities, documents a difference)."""
    rng = np.random.default_rng(11)
    b, c = 8, 5
    labels = rng.integers(0, c, b)
    logits = rng.normal(0.0, 2.5, (b, c))
    bin_t = rng.integers(0, 2, (b, 3)).astype(np.float64)
    bin_z = rng.normal(0.0, 3.0, (b, 3))
    return [
        ("cce_softmax_output", "CategoricalCrossentropy", "softmax", np.eye(c)[labels], logits,
         ["accuracy", "mse"]),
        ("scce_softmax_output", "SparseCategoricalCrossentropy", "softmax", labels.astype(np.float64), logits,
         ["accuracy"]),
        ("bce_sigmoid_output", "BinaryCrossentropy", "sigmoid", bin_t, bin_z, ["accuracy", "binary_accuracy"]),
        ("bce_sigmoid_output_column", "BinaryCrossentropy", "sigmoid", bin_t[:, :1], bin_z[:, :1], ["accuracy"]),
    ]


SAMPLE_WEIGHT = np.array([1.0, 0.5, 2.0, 0.0, 1.5, 1.0, 0.25, 3.0], dtype=F32)
EVAL_BATCH = 3  # the weighted evaluate runs 3 + 3 + 2: a partial last batch


def _metric(m):
    """A metric for ``compile``: a name, or ``{"class_name", "config"}`` built as that Keras class."""
    return m if isinstance(m, str) else getattr(keras.metrics, m["class_name"])(**m["config"])


def _output_model(kernel: np.ndarray, activation: str = "linear") -> keras.Model:
    """A model whose output on ``eye(8)`` is exactly ``activation(kernel)``: Dense without bias."""
    b, d = kernel.shape
    model = keras.Sequential([keras.Input((b,)), keras.layers.Dense(d, use_bias=False, activation=activation)])
    model.set_weights([kernel])
    return model


def _kernel_gradient(model: keras.Model, loss, yt: np.ndarray, sample_weight) -> np.ndarray:
    """dLoss/dkernel of the output model as ``fit`` computes it (inside a tf.function, so that a softmax/sigmoid
    output's loss goes through its logits): with one-hot inputs, the gradient w.r.t. the model's pre-activation."""
    eye = tf.constant(np.eye(model.input_shape[1], dtype=F32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y_pred = model(eye, training=True)
            value = loss(tf.constant(yt), y_pred, sample_weight=sample_weight)
        return value, tape.gradient(value, model.trainable_weights[0])

    value, grad = step()
    return float(value), np.asarray(grad)


def gen_losses() -> dict:
    out: dict = {"sample_weight": SAMPLE_WEIGHT}
    cases = [(n, cls, fl, "linear", yt, yp, m) for n, cls, fl, yt, yp, m in loss_data()]
    cases += [(n, cls, False, act, yt, z, m) for n, cls, act, yt, z, m in fused_loss_data()]
    for name, cls, from_logits, activation, yt, kernel, metrics in cases:
        yt = yt.astype(F32)
        kernel = kernel.astype(F32)
        kwargs = {"from_logits": from_logits} if "Crossentropy" in cls else {}
        model = _output_model(kernel, activation)
        cfg = {"class_name": cls, "config": kwargs, "metrics": list(metrics), "activation": activation}
        if activation == "linear":
            cfg["value"] = float(getattr(keras.losses, cls)(**kwargs)(yt, kernel))
        train_loss, grad = _kernel_gradient(model, getattr(keras.losses, cls)(**kwargs), yt, None)
        train_loss_w, grad_w = _kernel_gradient(model, getattr(keras.losses, cls)(**kwargs), yt,
                                                tf.constant(SAMPLE_WEIGHT))
        model.compile(optimizer="sgd", loss=getattr(keras.losses, cls)(**kwargs),
                      metrics=[_metric(m) for m in metrics])
        eye = np.eye(kernel.shape[0], dtype=F32)
        plain = model.evaluate(eye, yt, batch_size=kernel.shape[0], verbose=0, return_dict=True)
        weighted = model.evaluate(eye, yt, batch_size=EVAL_BATCH, sample_weight=SAMPLE_WEIGHT, verbose=0,
                                  return_dict=True)
        cfg.update({"evaluate": {k: float(v) for k, v in plain.items()},
                    "evaluate_weighted": {k: float(v) for k, v in weighted.items()},
                    "train_loss": train_loss, "train_loss_weighted": train_loss_w})
        out[f"{name}__config"] = _json(cfg)
        out[f"{name}__y_true"] = yt
        out[f"{name}__kernel"] = kernel
        out[f"{name}__grad"] = grad
        out[f"{name}__grad_weighted"] = grad_w
    return out


# Weight regularizers: (case, [(layer class, kwargs)], input shape, output units). The penalty enters the loss
# that fit/train_on_batch report and its gradient enters the update.
REG_CASES = [
    ("reg_dense", [("Dense", {"units": 3, "activation": "tanh",
                              "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.05}},
                              "bias_regularizer": {"class_name": "L1", "config": {"l1": 0.1}}}),
                   ("Dense", {"units": 2,
                              "kernel_regularizer": {"class_name": "L1L2", "config": {"l1": 0.02, "l2": 0.03}}})],
     (6, 4)),
    ("reg_conv", [("Conv2D", {"filters": 2, "kernel_size": 3,
                              "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.1}},
                              "bias_regularizer": {"class_name": "L2", "config": {"l2": 0.05}}}),
                  ("Flatten", {}),
                  ("Dense", {"units": 2, "kernel_regularizer": {"class_name": "L1", "config": {"l1": 0.01}}})],
     (3, 5, 5, 1)),
]


def gen_regularizers() -> dict:
    out: dict = {}
    for i, (name, specs, shape) in enumerate(REG_CASES):
        rng = np.random.default_rng(500 + i)
        model = keras.Sequential([keras.Input(shape[1:])] + [getattr(keras.layers, c)(**kw) for c, kw in specs])
        weights = [rng.normal(0.0, 0.5, w.shape).astype(F32) for w in model.get_weights()]
        model.set_weights(weights)
        x = rng.normal(0.0, 1.0, shape).astype(F32)
        y = rng.normal(0.0, 1.0, (shape[0], specs[-1][1]["units"])).astype(F32)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        evaluated = float(model.evaluate(x, y, batch_size=shape[0], verbose=0))
        penalty = float(sum(np.asarray(v) for v in model.losses))
        trained = float(model.train_on_batch(x, y))
        out[f"{name}__config"] = _json({"layers": [{"class_name": c, "config": kw} for c, kw in specs],
                                        "evaluate": evaluated, "penalty": penalty, "train_loss": trained,
                                        "n_weights": len(weights), "learning_rate": 0.1})
        out[f"{name}__x"] = x
        out[f"{name}__y"] = y
        for j, (w0, w1) in enumerate(zip(weights, model.get_weights())):
            out[f"{name}__w{j}"] = w0
            out[f"{name}__w_after{j}"] = np.asarray(w1)
    return out


# ---- 3. optimizers ----------------------------------------------------------------------------------------------
OPT_STEPS = 20
OPT_CASES = [
    ("sgd", "SGD", {"learning_rate": 0.1}),
    ("sgd_momentum", "SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd_nesterov", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd_weight_decay", "SGD", {"learning_rate": 0.1, "momentum": 0.5, "weight_decay": 0.05}),
    ("adam", "Adam", {"learning_rate": 0.01}),
    ("adam_defaults_tiny_gradients", "Adam", {}),
    ("adam_custom", "Adam", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("adam_amsgrad", "Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adamw", "AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adamw_amsgrad", "AdamW", {"learning_rate": 0.01, "weight_decay": 0.05, "amsgrad": True}),
    ("rmsprop", "RMSprop", {"learning_rate": 0.01}),
    ("rmsprop_tiny_gradients", "RMSprop", {}),
    ("rmsprop_momentum", "RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("rmsprop_centered", "RMSprop", {"learning_rate": 0.01, "centered": True}),
    ("rmsprop_centered_momentum", "RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("adagrad", "Adagrad", {"learning_rate": 0.1}),
    ("adagrad_custom", "Adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    ("sgd_clipnorm", "SGD", {"learning_rate": 0.1, "clipnorm": 1.5}),
    ("sgd_clipvalue", "SGD", {"learning_rate": 0.1, "clipvalue": 0.5}),
    ("sgd_global_clipnorm", "SGD", {"learning_rate": 0.1, "global_clipnorm": 2.5}),
    ("adam_clipnorm", "Adam", {"learning_rate": 0.01, "clipnorm": 1.5}),
    ("adam_clipvalue", "Adam", {"learning_rate": 0.01, "clipvalue": 0.5}),
    ("adam_global_clipnorm", "Adam", {"learning_rate": 0.01, "global_clipnorm": 2.5}),
    ("rmsprop_clipnorm", "RMSprop", {"learning_rate": 0.01, "clipnorm": 1.5}),
    # the learning rate changed before step 11 (``optimizer.learning_rate = ...``): Keras keeps the old rate inside
    # SGD's momentum buffer and RMSprop's momentum, which only a change of rate reveals
    ("sgd_momentum_lr_change", "SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd_nesterov_lr_change", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("rmsprop_momentum_lr_change", "RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("adam_lr_change", "Adam", {"learning_rate": 0.01}),
    ("adadelta", "Adadelta", {"learning_rate": 1.0}),
    ("adadelta_custom", "Adadelta", {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-4}),
    ("adamax", "Adamax", {"learning_rate": 0.02}),
    ("adamax_custom", "Adamax", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("nadam", "Nadam", {"learning_rate": 0.01}),
    ("nadam_custom", "Nadam", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    # learning-rate schedules, evaluated by the optimizer at its iteration count
    ("sgd_exponential_decay", "SGD", {"learning_rate": {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.7}}, "momentum": 0.9}),
    ("sgd_exponential_decay_staircase", "SGD", {"learning_rate": {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.7, "staircase": True}}}),
    ("adam_piecewise_constant", "Adam", {"learning_rate": {"class_name": "PiecewiseConstantDecay", "config": {
        "boundaries": [5, 12], "values": [0.02, 0.005, 0.001]}}}),
    ("rmsprop_polynomial_decay", "RMSprop", {"learning_rate": {"class_name": "PolynomialDecay", "config": {
        "initial_learning_rate": 0.02, "decay_steps": 15, "end_learning_rate": 0.001, "power": 2.0}}}),
    ("sgd_polynomial_decay_cycle", "SGD", {"learning_rate": {"class_name": "PolynomialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 6, "end_learning_rate": 0.01, "power": 1.0,
        "cycle": True}}}),
    ("adagrad_inverse_time_decay", "Adagrad", {"learning_rate": {"class_name": "InverseTimeDecay", "config": {
        "initial_learning_rate": 0.2, "decay_steps": 3, "decay_rate": 0.5}}}),
    ("adam_cosine_decay", "Adam", {"learning_rate": {"class_name": "CosineDecay", "config": {
        "initial_learning_rate": 0.02, "decay_steps": 15, "alpha": 0.1}}}),
    ("sgd_cosine_decay_warmup", "SGD", {"learning_rate": {"class_name": "CosineDecay", "config": {
        "initial_learning_rate": 0.0, "decay_steps": 12, "warmup_target": 0.1, "warmup_steps": 5}},
        "momentum": 0.5}),
]
LR_CHANGE_STEP, LR_CHANGE_FACTOR = 10, 0.2
# Keras refuses any two of clipnorm / clipvalue / global_clipnorm together (checked below, stored for the test)
CLIP_PAIRS = [{"clipnorm": 1.5, "clipvalue": 0.3}, {"clipvalue": 0.3, "global_clipnorm": 2.5},
              {"clipnorm": 1.5, "global_clipnorm": 2.5}]


def gen_optimizers() -> dict:
    """Variables: ``kernel`` (4, 3) and ``bias`` (3,). The kernel's gradient at step s is ``G[s]`` and the bias's
    is ``G[s].sum(0)``: exactly what a Dense layer fed one-hot rows receives when dLoss/dOutput = G[s]."""
    rng = np.random.default_rng(3)
    w0 = rng.normal(0.0, 1.0, (4, 3)).astype(F32)
    b0 = rng.normal(0.0, 1.0, (3,)).astype(F32)
    # decreasing scales with bumps, so clipping bites on some steps only and amsgrad's max matters
    scale = np.array([2.0, 1.5, 1.2, 0.3, 1.0, 0.8, 0.2, 0.6, 2.5, 0.5,
                      0.4, 0.1, 0.9, 0.3, 0.05, 0.7, 0.2, 1.1, 0.15, 0.4])
    grads = (rng.normal(0.0, 1.0, (OPT_STEPS, 4, 3)) * scale[:, None, None]).astype(F32)
    out: dict = {"w0": w0, "b0": b0, "grads": grads}
    # tiny-gradient cases start from tiny weights too, so the test can impose those gradients precisely
    tiny_scale = 1e-3
    refused = []
    for pair in CLIP_PAIRS:
        try:
            keras.optimizers.SGD(**pair)
        except ValueError:
            refused.append(pair)
    out["refused_clip_pairs"] = _json({"pairs": refused})
    for name, cls, kwargs in OPT_CASES:
        tiny = "tiny" in name
        g = grads * F32(1e-4) if tiny else grads
        init_scale = F32(tiny_scale if tiny else 1.0)
        kernel = keras.Variable(w0 * init_scale, name="kernel")
        bias = keras.Variable(b0 * init_scale, name="bias")
        args = dict(kwargs)
        if isinstance(args.get("learning_rate"), dict):
            sched = args["learning_rate"]
            args["learning_rate"] = getattr(keras.optimizers.schedules, sched["class_name"])(**sched["config"])
        opt = getattr(keras.optimizers, cls)(**args)
        ws, bs = [], []
        new_lr = None
        for s in range(OPT_STEPS):
            if name.endswith("_lr_change") and s == LR_CHANGE_STEP:
                new_lr = float(np.float32(kwargs["learning_rate"] * LR_CHANGE_FACTOR))
                opt.learning_rate = new_lr
            gk = tf.constant(g[s])
            opt.apply_gradients([(gk, kernel), (tf.reduce_sum(gk, axis=0), bias)])
            ws.append(np.asarray(kernel.numpy()))
            bs.append(np.asarray(bias.numpy()))
        out[f"{name}__config"] = _json({"class_name": cls, "config": kwargs, "grad_scale": 1e-4 if tiny else 1.0,
                                        "init_scale": float(init_scale), "iterations": int(opt.iterations.numpy()),
                                        "lr_change": None if new_lr is None else [LR_CHANGE_STEP, new_lr]})
        out[f"{name}__kernel"] = np.stack(ws)
        out[f"{name}__bias"] = np.stack(bs)
    return out


# ---- 4. whole-model trajectories ------------------------------------------------------------------------------
def seed_cnn() -> keras.Model:
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.Flatten(),
        L.Dense(64, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])


def mlp() -> keras.Model:
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])


TRAJ_N, TRAJ_EPOCHS, TRAJ_BATCH, N_TEST = 512, 2, 32, 64
# Sensitivity runs: the same training from the initial weights multiplied by (1 + 1e-6 * N(0, 1)), i.e. a few
# float32 ulps, as different (equally correct) rounding would move them. Where a trajectory passes close to a
# ReLU/max-pooling switch, such differences change a gradient discretely and the runs part; these runs measure how
# far Keras itself moves, which bounds what can be asked of kerust.
PERTURB_EPS, PERTURB_RUNS = 1e-6, 6


def _train(build, weights: list, loss: str, x: np.ndarray, labels: np.ndarray, xt: np.ndarray):
    """Adam, 2 epochs, batch 32, no shuffling, from ``weights``: (history, final weights, test predictions)."""
    model = build()
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    hist = model.fit(x, labels, batch_size=TRAJ_BATCH, epochs=TRAJ_EPOCHS, shuffle=False, verbose=0)
    return ({k: [float(v) for v in vs] for k, vs in hist.history.items()},
            [np.asarray(w) for w in model.get_weights()], model.predict(xt, batch_size=N_TEST, verbose=0))


def gen_trajectories(mnist) -> dict:
    (x_train, y_train), (x_test, _) = mnist
    x = images(x_train[:TRAJ_N])
    xt = images(x_test[:N_TEST])
    out: dict = {}
    for name, build, loss, labels in (
        ("cnn", seed_cnn, "categorical_crossentropy", keras.utils.to_categorical(y_train[:TRAJ_N], 10)),
        ("mlp", mlp, "sparse_categorical_crossentropy", y_train[:TRAJ_N].astype(F32)),
    ):
        keras.utils.set_random_seed(42)
        initial = [np.asarray(w) for w in build().get_weights()]
        history, final, pred = _train(build, initial, loss, x, labels, xt)
        perturbed = []
        for seed in range(PERTURB_RUNS):
            rng = np.random.default_rng(seed)
            weights = [(w * (1.0 + PERTURB_EPS * rng.standard_normal(w.shape))).astype(F32) for w in initial]
            perturbed.append(_train(build, weights, loss, x, labels, xt))
        out[f"{name}__config"] = _json({
            "loss": loss, "optimizer": "Adam", "metrics": ["accuracy"], "n": TRAJ_N, "epochs": TRAJ_EPOCHS,
            "batch_size": TRAJ_BATCH, "history": history, "n_weights": len(initial),
            "perturb_eps": PERTURB_EPS, "perturbed_history": [h for h, _, _ in perturbed],
            "perturbed_weight_maxdiff": [max(float(np.abs(a - b).max()) for a, b in zip(w, final))
                                         for _, w, _ in perturbed],
        })
        for i, (w0, w1) in enumerate(zip(initial, final)):
            out[f"{name}__initial{i}"] = w0
            out[f"{name}__final{i}"] = w1
        out[f"{name}__predictions"] = pred
        out[f"{name}__perturbed_predictions"] = np.stack([p for _, _, p in perturbed])
    out["pixel_checksum"] = np.array([int(x_train[:TRAJ_N].astype(np.int64).sum()),
                                      int(x_test[:N_TEST].astype(np.int64).sum())])
    return out


# ---- 5. resuming Keras files ------------------------------------------------------------------------------------
RESUME_START, RESUME_END = 2048, 4096
RESUME_FILES = ("seed_cnn", "bn_cnn_rmsprop", "mlp_dropout_sgd")
DROPOUT_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)


def _labels_for(model: keras.Model, y: np.ndarray) -> np.ndarray:
    loss = model.get_compile_config()["loss"]
    if loss == "categorical_crossentropy":
        return keras.utils.to_categorical(y, 10)
    assert loss == "sparse_categorical_crossentropy", loss
    return y.astype(F32)


def gen_resume(mnist, fixtures: Path) -> dict:
    (x_train, y_train), (x_test, _) = mnist
    x = images(x_train[RESUME_START:RESUME_END])
    xt = images(x_test[:N_TEST])
    out: dict = {"pixel_checksum": np.array([int(x_train[RESUME_START:RESUME_END].astype(np.int64).sum())])}
    for name in RESUME_FILES:
        seeds = DROPOUT_SEEDS if "dropout" in name else (0,)
        runs = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = keras.saving.load_model(fixtures / f"{name}.keras")
            y = _labels_for(model, y_train[RESUME_START:RESUME_END])
            before = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
            hist = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
            pred = model.predict(xt, batch_size=N_TEST, verbose=0)
            runs.append(({k: float(v) for k, v in before.items()},
                         {k: float(v[0]) for k, v in hist.history.items()}, pred,
                         int(model.optimizer.iterations.numpy())))
        out[f"{name}__config"] = _json({
            "loss": model.get_compile_config()["loss"], "seeds": list(seeds),
            "evaluate_before": runs[0][0], "epoch": [r[1] for r in runs], "iterations_after": runs[0][3],
        })
        out[f"{name}__predictions"] = np.stack([r[2] for r in runs])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, default=ROOT / "data" / "mnist")
    parser.add_argument("--keras-fixtures", type=Path, default=HERE / "keras")
    parser.add_argument("--only", nargs="*", default=["layers", "losses", "optimizers", "trajectories", "resume"])
    args = parser.parse_args()
    assert keras.backend.backend() == "tensorflow", keras.backend.backend()
    keras.config.set_floatx("float32")
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel("ERROR")
    print(f"Keras {keras.__version__}, TensorFlow {tf.__version__}, NumPy {np.__version__}, "
          f"Python {sys.version.split()[0]}")
    meta = {"keras": keras.__version__, "tensorflow": tf.__version__}
    if "layers" in args.only:
        _save("layers.npz", {"meta": _json(meta), **gen_layers()})
    if "losses" in args.only:
        _save("losses.npz", {"meta": _json(meta), **gen_losses(), **gen_regularizers()})
    if "optimizers" in args.only:
        _save("optimizers.npz", {"meta": _json(meta), **gen_optimizers()})
    mnist = load_mnist(args.mnist) if {"trajectories", "resume"} & set(args.only) else None
    if "trajectories" in args.only:
        _save("trajectories.npz", {"meta": _json(meta), **gen_trajectories(mnist)})
    if "resume" in args.only:
        _save("resume.npz", {"meta": _json(meta), **gen_resume(mnist, args.keras_fixtures)})


if __name__ == "__main__":
    main()

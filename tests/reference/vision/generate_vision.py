"""Write the Keras fixture for the vision shape, normalisation and noise layers and the activations
(``tests/test_vision_layers.py``).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/vision/generate_vision.py

It writes ``vision.npz`` next to itself. For each layer case ``K`` of ``LAYERS``: ``K__spec`` (JSON: the class,
its arguments and ``get_config()``), ``K__x`` (the input, from a fixed seed), ``K__w_NN`` (the weights, random
for GroupNormalization), ``K__y`` (the inference output), ``K__R`` (a fixed random array), ``K__gx`` and
``K__gw_NN`` (the gradients of ``sum(y * R)`` w.r.t. the input and each weight, by ``jax.grad`` through
``stateless_call``), and ``K__loss`` where the layer adds a loss (ActivityRegularization: what ``evaluate``
reports for ``mse`` against ``K__t``). For each activation case ``A`` of ``ACTIVATIONS``: the same fields for
``keras.activations.<name>(x, **args)``. ``vision_seq.keras`` and ``vision_3d.keras``: two models Keras saved
(``vision__*`` / ``vision3d__*``: their inputs and outputs). Deterministic; a few seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
L = keras.layers

# name: (class, arguments, input shape with the batch)
LAYERS = {
    "zp2d_int": ("ZeroPadding2D", {"padding": 1}, (2, 3, 4, 2)),
    "zp2d_pairs": ("ZeroPadding2D", {"padding": ((1, 2), (0, 3))}, (2, 3, 4, 2)),
    "zp2d_cf": ("ZeroPadding2D", {"padding": (1, 2), "data_format": "channels_first"}, (2, 2, 3, 4)),
    "crop2d_pairs": ("Cropping2D", {"cropping": ((1, 0), (2, 1))}, (2, 5, 6, 2)),
    "crop2d_int": ("Cropping2D", {"cropping": 1}, (2, 4, 5, 3)),
    "crop2d_cf": ("Cropping2D", {"cropping": (1, 2), "data_format": "channels_first"}, (2, 2, 4, 6)),
    "up2d_nearest": ("UpSampling2D", {"size": (2, 3)}, (2, 3, 2, 2)),
    "up2d_bilinear": ("UpSampling2D", {"size": 2, "interpolation": "bilinear"}, (2, 3, 4, 2)),
    "up2d_bilinear_odd": ("UpSampling2D", {"size": (3, 1), "interpolation": "bilinear"}, (2, 4, 3, 2)),
    "up2d_bilinear_cf": ("UpSampling2D", {"size": (2, 3), "interpolation": "bilinear",
                                          "data_format": "channels_first"}, (2, 2, 3, 3)),
    "up2d_bicubic": ("UpSampling2D", {"size": (2, 3), "interpolation": "bicubic"}, (2, 4, 3, 2)),
    "up2d_lanczos3": ("UpSampling2D", {"size": 2, "interpolation": "lanczos3"}, (1, 5, 4, 2)),
    "up2d_lanczos5": ("UpSampling2D", {"size": (3, 2), "interpolation": "lanczos5"}, (1, 4, 6, 1)),
    "zp3d": ("ZeroPadding3D", {"padding": ((1, 0), (0, 2), (1, 1))}, (2, 2, 3, 2, 2)),
    "zp3d_cf": ("ZeroPadding3D", {"padding": 1, "data_format": "channels_first"}, (1, 2, 2, 3, 2)),
    "crop3d": ("Cropping3D", {"cropping": ((1, 0), (0, 1), (1, 1))}, (2, 3, 3, 4, 2)),
    "up3d": ("UpSampling3D", {"size": (2, 1, 3)}, (2, 2, 3, 2, 2)),
    "up3d_cf": ("UpSampling3D", {"size": 2, "data_format": "channels_first"}, (1, 2, 2, 2, 3)),
    "unitnorm": ("UnitNormalization", {}, (3, 4, 5)),
    "unitnorm_axes": ("UnitNormalization", {"axis": [1, 2]}, (3, 4, 5)),
    "groupnorm": ("GroupNormalization", {"groups": 2}, (2, 3, 4, 4)),
    "groupnorm_instance": ("GroupNormalization", {"groups": -1, "epsilon": 0.01}, (3, 5, 3)),
    "groupnorm_axis1": ("GroupNormalization", {"groups": 2, "axis": 1}, (2, 4, 3, 2)),
    "groupnorm_plain": ("GroupNormalization", {"groups": 3, "center": False, "scale": False}, (2, 4, 6)),
    "groupnorm_one": ("GroupNormalization", {"groups": 1, "center": False}, (2, 5, 6)),
    "actreg": ("ActivityRegularization", {"l1": 0.01, "l2": 0.02}, (4, 3, 2)),
    "gaussian_dropout": ("GaussianDropout", {"rate": 0.3, "seed": 3}, (3, 4)),
    "alpha_dropout": ("AlphaDropout", {"rate": 0.2, "noise_shape": [None, 1, 3]}, (3, 2, 3)),
}

# name: (keras.activations function, arguments); inputs (4, 8) spanning every kink
ACTIVATIONS = {name: (name, {}) for name in (
    "relu", "leaky_relu", "relu6", "softmax", "celu", "elu", "selu", "softplus", "softsign", "squareplus",
    "soft_shrink", "sparse_plus", "silu", "gelu", "glu", "tanh", "tanh_shrink", "sigmoid", "sparse_sigmoid",
    "exponential", "hard_sigmoid", "hard_silu", "hard_tanh", "hard_shrink", "linear", "mish", "log_softmax",
    "log_sigmoid", "sparsemax", "swish", "hard_swish")}
ACTIVATIONS.update({
    "relu_args": ("relu", {"negative_slope": 0.1, "max_value": 2.5, "threshold": 0.5}),
    "relu_max6": ("relu", {"max_value": 6.0}),
    "relu_slope_threshold": ("relu", {"negative_slope": 0.2, "threshold": -0.5}),
    "leaky_relu_01": ("leaky_relu", {"negative_slope": 0.1}),
    "elu_05": ("elu", {"alpha": 0.5}),
    "celu_07": ("celu", {"alpha": 0.7}),
    "squareplus_2": ("squareplus", {"b": 2}),
    "soft_shrink_03": ("soft_shrink", {"threshold": 0.3}),
    "hard_shrink_03": ("hard_shrink", {"threshold": 0.3}),
    "threshold": ("threshold", {"threshold": 0.5, "default_value": -1.0}),
    "gelu_tanh": ("gelu", {"approximate": True}),
    "softmax_axis0": ("softmax", {"axis": 0}),
    "log_softmax_axis0": ("log_softmax", {"axis": 0}),
    "glu_axis0": ("glu", {"axis": 0}),
    "sparsemax_axis0": ("sparsemax", {"axis": 0}),
})


def _activation_input(rng: np.random.Generator) -> np.ndarray:
    # the kinks (0, +-0.3, +-0.5, +-1, +-2.5, +-3, 6) are avoided by 0.05, where the derivatives jump; ties
    # included for sparsemax (row 2)
    row0 = [-3.55, -2.45, -1.05, -0.55, -0.25, 0.05, 0.35, 0.95]
    row1 = [1.05, 2.55, 3.05, 6.05, -0.45, 0.45, 0.25, 5.95]
    row2 = list(rng.uniform(-2, 2, size=6)) + [0.7, 0.7]
    row3 = list(rng.uniform(-4, 4, size=8))
    return np.array([row0, row1, row2, row3], dtype=np.float32)


def _layer_case(name: str, out: dict, rng: np.random.Generator) -> None:
    cls, args, shape = LAYERS[name]
    layer = getattr(L, cls)(**args)
    x = rng.normal(size=shape).astype(np.float32)
    layer.build(shape)
    weights = []
    for v in layer.weights:
        w = rng.normal(size=v.shape).astype(np.float32) * 0.5 + (1.0 if v.name == "gamma" else 0.0)
        v.assign(w)
        weights.append(w)
    y = np.asarray(layer(x, training=False))
    R = rng.normal(size=y.shape).astype(np.float32)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def f(tv: list, xx: jnp.ndarray) -> jnp.ndarray:
        yy, _ = layer.stateless_call(tv, non_trainable, xx)  # inference (training defaults to False)
        return jnp.sum(yy * R)

    gw, gx = jax.grad(f, argnums=(0, 1))(trainable, jnp.asarray(x))
    cfg = layer.get_config()
    cfg.pop("dtype", None)
    out[f"{name}__spec"] = np.array(json.dumps({"class_name": cls, "args": args, "config": cfg,
                                                "weights": [v.name for v in layer.weights]}))
    out[f"{name}__x"] = x
    out[f"{name}__y"] = y
    out[f"{name}__R"] = R
    out[f"{name}__gx"] = np.asarray(gx)
    for i, w in enumerate(weights):
        out[f"{name}__w_{i:02d}"] = w
        out[f"{name}__gw_{i:02d}"] = np.asarray(gw[i])
    if cls == "ActivityRegularization":
        inp = keras.Input(shape[1:])
        model = keras.Model(inp, getattr(L, cls)(**args)(inp))
        model.compile(optimizer="sgd", loss="mse")
        t = rng.normal(size=shape).astype(np.float32)
        out[f"{name}__t"] = t
        out[f"{name}__loss"] = np.array(model.evaluate(x, t, batch_size=shape[0], verbose=0), dtype=np.float64)


def _activation_case(name: str, out: dict, rng: np.random.Generator) -> None:
    fn_name, args = ACTIVATIONS[name]
    fn = getattr(keras.activations, fn_name)
    x = _activation_input(rng)
    y = np.asarray(fn(jnp.asarray(x), **args))
    R = rng.normal(size=y.shape).astype(np.float32)
    gx = jax.grad(lambda xx: jnp.sum(fn(xx, **args) * R))(jnp.asarray(x))
    out[f"act_{name}__spec"] = np.array(json.dumps({"function": fn_name, "args": args}))
    out[f"act_{name}__x"] = x
    out[f"act_{name}__y"] = y
    out[f"act_{name}__R"] = R
    out[f"act_{name}__gx"] = np.asarray(gx)


def _files(out: dict, rng: np.random.Generator) -> None:
    keras.utils.set_random_seed(7)
    seq = keras.Sequential([
        keras.Input((5, 6, 4)), L.ZeroPadding2D(((1, 0), (2, 1))), L.Cropping2D(((0, 1), (1, 1))),
        L.UpSampling2D((2, 1), interpolation="bilinear"), L.GroupNormalization(2, name="gn"),
        L.UnitNormalization(), L.GaussianDropout(0.2), L.AlphaDropout(0.1), L.ActivityRegularization(0.01),
        L.UpSampling2D(2), L.Conv2D(3, 3, name="conv"),
    ], name="vision_seq")
    for v in seq.get_layer("gn").weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.3 + 1.0)
    x = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    out["vision__x"] = x
    out["vision__y"] = np.asarray(seq.predict(x, verbose=0))
    seq.save(HERE / "vision_seq.keras")

    inp = keras.Input((2, 3, 2, 2))
    h = L.ZeroPadding3D(1)(inp)
    h = L.Cropping3D(((1, 0), (0, 1), (1, 1)))(h)
    h = L.UpSampling3D((1, 2, 1))(h)
    h = L.GroupNormalization(-1, axis=-1, name="inst")(h)
    model = keras.Model(inp, L.Dense(2, name="head")(h), name="vision_3d")
    x3 = rng.normal(size=(2, 2, 3, 2, 2)).astype(np.float32)
    out["vision3d__x"] = x3
    out["vision3d__y"] = np.asarray(model.predict(x3, verbose=0))
    model.save(HERE / "vision_3d.keras")


def main() -> None:
    rng = np.random.default_rng(20261204)
    out: dict = {"meta": np.array(json.dumps({"keras": keras.__version__, "jax": jax.__version__,
                                              "backend": keras.backend.backend()}))}
    for name in LAYERS:
        _layer_case(name, out, rng)
    for name in ACTIVATIONS:
        _activation_case(name, out, rng)
    _files(out, rng)
    np.savez_compressed(HERE / "vision.npz", **out)
    print(f"wrote {len(out)} arrays to {HERE / 'vision.npz'}")


if __name__ == "__main__":
    main()

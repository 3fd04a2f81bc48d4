"""Write the Keras fixture for the volumetric layers (``tests/test_volumetric_layers.py``).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/volumetric/generate_volumetric.py

It writes ``volumetric.npz`` next to itself. For each layer case ``K`` of ``LAYERS``: ``K__spec`` (JSON: the
class, its arguments, ``get_config()`` and the weights' names), ``K__x`` (the input, from a fixed seed; integers
for the ``ties`` cases), ``K__w_NN`` (the weights, random), ``K__y`` (the inference output), ``K__R`` (a fixed
random array), ``K__gx`` and ``K__gw_NN`` (the gradients of ``sum(y * R)`` w.r.t. the input and each weight, by
``jax.grad`` through ``stateless_call``). ``volumetric_seq.keras`` and ``volumetric_fn.keras``: two models Keras saved
(``seq__*`` / ``fn__*``: their inputs and outputs). Deterministic; a few seconds.
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

# name: (class, arguments, input shape with the batch[, "ties": the input integers in [-1, 1]])
LAYERS = {
    "conv_valid": ("Conv3D", {"filters": 3, "kernel_size": 2}, (2, 4, 5, 4, 2)),
    "conv_same_strides": ("Conv3D", {"filters": 2, "kernel_size": (3, 2, 3), "strides": (2, 1, 2),
                                     "padding": "same"}, (2, 5, 5, 4, 3)),
    "conv_same_even": ("Conv3D", {"filters": 2, "kernel_size": 2, "padding": "same", "use_bias": False},
                       (2, 3, 4, 5, 2)),
    "conv_valid_strides": ("Conv3D", {"filters": 2, "kernel_size": (2, 3, 1), "strides": (2, 2, 3)},
                           (3, 5, 5, 4, 1)),
    "conv_dilation": ("Conv3D", {"filters": 2, "kernel_size": 2, "dilation_rate": (2, 1, 2)}, (2, 5, 4, 5, 2)),
    "conv_dilation_same": ("Conv3D", {"filters": 3, "kernel_size": (2, 3, 2), "dilation_rate": 2,
                                      "padding": "same", "activation": "tanh"}, (2, 4, 5, 4, 2)),
    "conv_groups": ("Conv3D", {"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same",
                               "activation": "sigmoid"}, (2, 4, 4, 3, 4)),
    "conv_groups3_strided": ("Conv3D", {"filters": 3, "kernel_size": (1, 3, 2), "strides": (1, 2, 2),
                                        "groups": 3, "padding": "same"}, (2, 3, 5, 5, 6)),
    "max_default": ("MaxPooling3D", {}, (2, 4, 5, 4, 2)),
    "max_same_strides": ("MaxPooling3D", {"pool_size": (3, 2, 2), "strides": (2, 1, 2), "padding": "same"},
                         (2, 5, 4, 5, 2)),
    "max_valid_overlap": ("MaxPooling3D", {"pool_size": (2, 3, 2), "strides": 1}, (2, 3, 4, 3, 2)),
    "max_cf": ("MaxPooling3D", {"pool_size": 2, "strides": 1, "data_format": "channels_first"}, (2, 2, 3, 4, 3)),
    # inputs of a few integers: windows with tied maxima (Keras's max pooling sends the gradient to the first,
    # its global max pooling shares it among the ties)
    "max_ties": ("MaxPooling3D", {"pool_size": (2, 2, 3), "strides": (1, 2, 2), "padding": "same"},
                 (2, 3, 4, 5, 2), "ties"),
    "max_ties_cf": ("MaxPooling3D", {"pool_size": 2, "strides": 1, "data_format": "channels_first"},
                    (1, 2, 3, 3, 3), "ties"),
    "avg_valid": ("AveragePooling3D", {"pool_size": (2, 2, 1)}, (2, 4, 4, 3, 2)),
    "avg_same": ("AveragePooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 4, 5, 2)),
    "avg_same_stride1": ("AveragePooling3D", {"pool_size": (2, 3, 2), "strides": 1, "padding": "same"},
                         (2, 3, 4, 3, 2)),
    "avg_same_cf": ("AveragePooling3D", {"pool_size": 2, "strides": 1, "padding": "same",
                                         "data_format": "channels_first"}, (1, 2, 3, 3, 4)),
    "gap": ("GlobalAveragePooling3D", {}, (2, 3, 4, 2, 3)),
    "gap_keepdims": ("GlobalAveragePooling3D", {"keepdims": True}, (2, 3, 2, 4, 3)),
    "gap_cf": ("GlobalAveragePooling3D", {"data_format": "channels_first"}, (2, 3, 2, 4, 2)),
    "gmp": ("GlobalMaxPooling3D", {}, (2, 3, 2, 4, 3)),
    "gmp_ties": ("GlobalMaxPooling3D", {}, (2, 2, 3, 2, 3), "ties"),
    "gmp_cf_keepdims": ("GlobalMaxPooling3D", {"data_format": "channels_first", "keepdims": True},
                        (2, 2, 3, 2, 4)),
    "sdrop": ("SpatialDropout3D", {"rate": 0.3, "seed": 2}, (2, 3, 2, 2, 3)),
    "sdrop_cf": ("SpatialDropout3D", {"rate": 0.5, "data_format": "channels_first"}, (2, 3, 2, 2, 3)),
}


def _layer_case(name: str, out: dict, rng: np.random.Generator) -> None:
    cls, args, shape, *kind = LAYERS[name]
    layer = getattr(L, cls)(**args)
    if kind == ["ties"]:
        x = rng.integers(-1, 2, size=shape).astype(np.float32)
    else:
        x = rng.normal(size=shape).astype(np.float32)
    layer.build(shape)
    weights = []
    for v in layer.weights:
        w = rng.normal(size=v.shape).astype(np.float32) * 0.5
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


def _files(out: dict, rng: np.random.Generator) -> None:
    keras.utils.set_random_seed(7)
    seq = keras.Sequential([
        keras.Input((5, 5, 5, 2)),
        L.Conv3D(4, 3, padding="same", groups=2, activation="relu", kernel_regularizer="l2", name="conv_a"),
        L.MaxPooling3D(2, padding="same"), L.SpatialDropout3D(0.2),
        L.AveragePooling3D(2, strides=1, padding="same"),
        L.Conv3D(3, 2, bias_initializer="random_normal", kernel_constraint="max_norm", name="conv_b"),
        L.GlobalMaxPooling3D(), L.Dense(2, name="head"),
    ], name="volumetric_seq")
    x = rng.normal(size=(2, 5, 5, 5, 2)).astype(np.float32)
    out["seq__x"] = x
    out["seq__y"] = np.asarray(seq.predict(x, verbose=0))
    seq.save(HERE / "volumetric_seq.keras")

    inp = keras.Input((4, 5, 4, 3))
    h = L.Conv3D(2, (1, 2, 2), strides=2, use_bias=False, name="conv_c")(inp)
    h = L.Conv3D(4, 2, dilation_rate=(1, 2, 1), padding="same", activation="tanh", name="conv_d")(h)
    a = L.GlobalAveragePooling3D(keepdims=True)(h)
    b = L.GlobalMaxPooling3D(keepdims=True)(h)
    joined = L.Concatenate()([a, b])
    model = keras.Model(inp, L.Dense(2, name="head")(L.Flatten()(joined)), name="volumetric_fn")
    x2 = rng.normal(size=(2, 4, 5, 4, 3)).astype(np.float32)
    out["fn__x"] = x2
    out["fn__y"] = np.asarray(model.predict(x2, verbose=0))
    model.save(HERE / "volumetric_fn.keras")


def main() -> None:
    rng = np.random.default_rng(20261206)
    out: dict = {"meta": np.array(json.dumps({"keras": keras.__version__, "jax": jax.__version__,
                                              "backend": keras.backend.backend()}))}
    for name in LAYERS:
        _layer_case(name, out, rng)
    _files(out, rng)
    np.savez_compressed(HERE / "volumetric.npz", **out)
    print(f"wrote {len(out)} arrays to {HERE / 'volumetric.npz'}")


if __name__ == "__main__":
    main()

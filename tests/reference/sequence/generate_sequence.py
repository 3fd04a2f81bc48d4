"""Write the Keras fixture for the sequence layers (``tests/test_sequence_layers.py``): SimpleRNN, LSTM, GRU,
Bidirectional, Embedding, LayerNormalization, the 1-D convolution, pooling and step layers and ``pad_sequences``.

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/sequence/generate_sequence.py

It writes ``sequence.npz`` next to itself. For each case ``K`` of ``CASES``: ``K__config`` (the layer's
arguments as JSON), ``K__x`` (a batch of 3), ``K__w_NN`` (``get_weights()`` after Keras built the layer from a
fixed seed), ``K__out`` (its output), ``K__r`` (a fixed random array shaped like the output) and the gradients of
``sum(out * r)``: ``K__gx`` (for the input; not for Embedding's integer ids) and ``K__gw_NN`` (for each weight),
from ``jax.grad`` over ``layer.stateless_call``. For ``T`` in ``TRAJECTORIES``: a model ``Input -> T -> Dense(1)``
trained three epochs (SGD 0.1, mse, batch 4, no shuffling) on ``T__x`` / ``T__y``, from ``T__w_NN``, with its
per-epoch losses in ``T__loss``. ``sequence.keras``: Embedding -> LayerNormalization -> Conv1D -> Bidirectional(LSTM)
-> GRU -> SimpleRNN saved by Keras, with ``file__x`` / ``file__pred`` (its predictions) in the npz. ``pad__K``:
``pad_sequences`` of ``PAD_SEQUENCES`` with the arguments ``PAD_CASES[K]``.

It is deterministic (fixed seeds) and takes a few seconds.
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

# name: (class, arguments, sample shape of the input)
CASES = {
    "simple": ("SimpleRNN", {"units": 4}, (5, 3)),
    "simple_seq_back_relu": ("SimpleRNN", {"units": 4, "return_sequences": True, "go_backwards": True,
                                           "activation": "relu"}, (5, 3)),
    "lstm": ("LSTM", {"units": 4}, (5, 3)),
    "lstm_seq": ("LSTM", {"units": 4, "return_sequences": True}, (6, 2)),
    "lstm_back_nobias": ("LSTM", {"units": 3, "go_backwards": True, "use_bias": False}, (5, 3)),
    "lstm_acts": ("LSTM", {"units": 4, "activation": "relu", "recurrent_activation": "hard_sigmoid",
                           "unit_forget_bias": False, "bias_initializer": "random_normal"}, (4, 3)),
    "gru": ("GRU", {"units": 4, "bias_initializer": "random_normal"}, (5, 3)),
    "gru_seq_back": ("GRU", {"units": 4, "return_sequences": True, "go_backwards": True,
                             "bias_initializer": "random_normal"}, (5, 3)),
    "gru_nobias_acts": ("GRU", {"units": 3, "use_bias": False, "activation": "softsign",
                                "recurrent_activation": "relu"}, (4, 2)),
    "bidi_concat_lstm": ("Bidirectional", {"layer": {"class_name": "LSTM", "config": {"units": 3}}}, (5, 3)),
    "bidi_sum_gru_seq": ("Bidirectional", {"layer": {"class_name": "GRU", "config": {
        "units": 3, "return_sequences": True, "bias_initializer": "random_normal"}}, "merge_mode": "sum"}, (5, 2)),
    "bidi_mul_simple_seq": ("Bidirectional", {"layer": {"class_name": "SimpleRNN", "config": {
        "units": 2, "return_sequences": True}}, "merge_mode": "mul"}, (4, 3)),
    "bidi_ave_lstm": ("Bidirectional", {"layer": {"class_name": "LSTM", "config": {"units": 2}},
                                        "merge_mode": "ave"}, (4, 3)),
    "embedding": ("Embedding", {"input_dim": 7, "output_dim": 3}, (4,)),
    "conv1d_same_stride": ("Conv1D", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same",
                                      "bias_initializer": "random_normal"}, (7, 2)),
    "conv1d_valid_tanh": ("Conv1D", {"filters": 2, "kernel_size": 2, "activation": "tanh"}, (6, 3)),
    "maxpool1d": ("MaxPooling1D", {"pool_size": 2}, (7, 3)),
    "avgpool1d_same": ("AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (7, 2)),
    "gap1d": ("GlobalAveragePooling1D", {}, (5, 3)),
    "gmp1d_keepdims": ("GlobalMaxPooling1D", {"keepdims": True}, (5, 3)),
    "upsampling1d": ("UpSampling1D", {"size": 3}, (4, 2)),
    "zeropadding1d": ("ZeroPadding1D", {"padding": [2, 1]}, (4, 2)),
    "cropping1d": ("Cropping1D", {"cropping": [1, 2]}, (6, 2)),
    "layernorm": ("LayerNormalization", {"gamma_initializer": "random_normal",
                                         "beta_initializer": "random_normal"}, (5, 4)),
    "layernorm_two_axes": ("LayerNormalization", {"axis": [-2, -1], "gamma_initializer": "random_normal"},
                           (3, 4)),
    "layernorm_rms": ("LayerNormalization", {"rms_scaling": True, "gamma_initializer": "random_normal"},
                      (5, 4)),
    "layernorm_plain": ("LayerNormalization", {"center": False, "scale": False, "epsilon": 0.1}, (6,)),
}

TRAJECTORIES = {"LSTM": {"units": 5}, "GRU": {"units": 5}}

# keras.utils.pad_sequences on these sequences, with each of these arguments
PAD_SEQUENCES = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9], [10, 11]]
PAD_CASES = {
    "default": {},
    "post_post_3": {"maxlen": 3, "padding": "post", "truncating": "post"},
    "pre_post_2_value": {"maxlen": 2, "truncating": "post", "value": -1},
    "float_8": {"maxlen": 8, "dtype": "float32", "value": 0.5, "padding": "post"},
}


def case(out: dict, key: str, cls_name: str, args: dict, shape: tuple, rng: np.random.Generator) -> None:
    keras.utils.set_random_seed(11)
    if cls_name == "Bidirectional":
        inner = getattr(keras.layers, args["layer"]["class_name"])(**args["layer"]["config"])
        layer = keras.layers.Bidirectional(inner,
                                           **{k: v for k, v in args.items() if k != "layer"})
    else:
        layer = getattr(keras.layers, cls_name)(**args)
    if cls_name == "Embedding":
        x = rng.integers(0, args["input_dim"], size=(3, *shape)).astype(np.int32)
    else:
        x = rng.normal(size=(3, *shape)).astype(np.float32)
    y = np.asarray(layer(x))
    r = rng.normal(size=y.shape).astype(np.float32)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def f(tv, xv):
        yv, _ = layer.stateless_call(tv, non_trainable, xv)
        return jnp.sum(yv * r)

    if cls_name == "Embedding":
        gw = jax.grad(f)(trainable, x)
        gx = None
    else:
        gw, gx = jax.grad(f, argnums=(0, 1))(trainable, jnp.asarray(x))
    out[f"{key}__config"] = np.array(json.dumps({"class_name": cls_name, "config": args}))
    out[f"{key}__x"] = x
    for i, w in enumerate(layer.get_weights()):
        out[f"{key}__w_{i:02d}"] = w
    out[f"{key}__out"] = y
    out[f"{key}__r"] = r
    if gx is not None:
        out[f"{key}__gx"] = np.asarray(gx)
    for i, g in enumerate(gw):
        out[f"{key}__gw_{i:02d}"] = np.asarray(g)


def trajectory(out: dict, cls_name: str, args: dict, rng: np.random.Generator) -> None:
    keras.utils.set_random_seed(5)
    x = rng.normal(size=(12, 6, 3)).astype(np.float32)
    y = (x[:, :, :1].sum(axis=1) * 0.3).astype(np.float32)
    model = keras.Sequential([keras.Input((6, 3)), getattr(keras.layers, cls_name)(**args), keras.layers.Dense(1)])
    out[f"{cls_name}__x"], out[f"{cls_name}__y"] = x, y
    for i, w in enumerate(model.get_weights()):
        out[f"{cls_name}__w_{i:02d}"] = w
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    out[f"{cls_name}__loss"] = np.array(history["loss"])


def main() -> None:
    rng = np.random.default_rng(2024)
    out: dict = {}
    for key, (cls_name, args, shape) in CASES.items():
        case(out, key, cls_name, args, shape, rng)
    for cls_name, args in TRAJECTORIES.items():
        trajectory(out, cls_name, args, rng)
    for name, kwargs in PAD_CASES.items():
        out[f"pad__{name}"] = keras.utils.pad_sequences(PAD_SEQUENCES, **kwargs)
    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Embedding(10, 4), keras.layers.LayerNormalization(),
                              keras.layers.Conv1D(4, 3, padding="same", activation="relu"),
                              keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True)),
                              keras.layers.GRU(2, return_sequences=True, bias_initializer="random_normal"),
                              keras.layers.SimpleRNN(2, go_backwards=True)])
    out["file__x"] = rng.integers(0, 10, size=(4, 6)).astype(np.int32)
    out["file__pred"] = model.predict(out["file__x"], verbose=0)
    model.save(HERE / "sequence.keras")
    np.savez(HERE / "sequence.npz", **out)


if __name__ == "__main__":
    main()

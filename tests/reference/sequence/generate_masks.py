"""Writes masks.npz (and masks_*.keras) from real Keras: the models of mask_models.py on Keras's weights, their
outputs on padded token ids (post-padded, pre-padded, a zero inside, all padding but one step), and the training
losses of two of them. Run with Keras 3.15 on JAX from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/sequence/generate_masks.py
"""

import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mask_models import CONV_CASES, GRU_V1_MASK, NAMES, STEPS, VOCAB, build, gru_v1_model  # noqa: E402




def ids(rng, n):
    out = rng.integers(1, VOCAB, size=(n, STEPS))
    for i in range(n):
        kind = i % 4
        k = int(rng.integers(1, STEPS))
        if kind == 0:
            out[i, k:] = 0  # post-padded
        elif kind == 1:
            out[i, :k] = 0  # pre-padded
        elif kind == 2:
            out[i, k] = 0  # a zero inside
        else:
            out[i, :STEPS - 1] = 0  # one step left
    return out.astype(np.int32)


def inputs_for(model, rng, n):
    xs = []
    for t in model.inputs:
        if t.dtype == "int32":
            xs.append(ids(rng, n))
        elif len(t.shape) == 3:  # Masking's input: whole steps of zeros where ids would pad
            x = rng.normal(size=(n, *t.shape[1:])).astype(np.float32)
            x[ids(rng, n) == 0] = 0.0
            xs.append(x)
        else:
            xs.append(rng.normal(size=(n, *t.shape[1:])).astype(np.float32))
    return xs


def main():
    rng = np.random.default_rng(7)
    out = {}
    for name in NAMES:
        keras.utils.set_random_seed(3)
        model = build(keras, name)
        weights = model.get_weights()
        for i, w in enumerate(weights):
            w = rng.normal(scale=0.5, size=w.shape).astype(np.float32)  # random biases too
            weights[i] = w
            out[f"{name}__w_{i:02d}"] = w
        model.set_weights(weights)
        xs = inputs_for(model, rng, 8)
        for i, x in enumerate(xs):
            out[f"{name}__x_{i}"] = x
        preds = model.predict(xs, verbose=0)
        preds = preds if isinstance(preds, list) else [preds]
        for i, p in enumerate(preds):
            out[f"{name}__out_{i}"] = p
        if name in ("bi_gap", "add_mask", "emb_gru_state"):
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
            ys = [rng.normal(size=p.shape).astype(np.float32) for p in preds]
            hist = model.fit(xs, ys, batch_size=4, epochs=2, shuffle=False, verbose=0)
            for i, y in enumerate(ys):
                out[f"{name}__y_{i}"] = y
            out[f"{name}__loss"] = np.array(hist.history["loss"], np.float64)
            out[f"{name}__trained_out_0"] = np.asarray(
                (lambda p: p if isinstance(p, list) else [p])(model.predict(xs, verbose=0))[0])
        if name in ("bi_gap", "masking_lstm_init"):
            fresh = build(keras, name)
            fresh.set_weights(weights)
            fresh.save(os.path.join(HERE, f"masks_{name}.keras"))
    # causal and dilated Conv1D (after the models above, so their arrays stay as they were)
    for name, kwargs in CONV_CASES.items():
        layer = keras.layers.Conv1D(**kwargs)
        x = rng.normal(size=(4, 9, 3)).astype(np.float32)
        y = layer(x)
        for i, w in enumerate(layer.get_weights()):
            out[f"conv__{name}__w_{i:02d}"] = w
        out[f"conv__{name}__x"] = x
        out[f"conv__{name}__out"] = np.asarray(y)
    # GRU(reset_after=False), after the cases above
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    layer = keras.layers.GRU(3, reset_after=False, return_sequences=True)
    layer.build((None, 5, 3))
    weights = [rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    for i, w in enumerate(weights):
        out[f"gru_v1__w_{i:02d}"] = w
    out["gru_v1__x"] = x
    out["gru_v1__out"] = np.asarray(layer(x))
    out["gru_v1__out_masked"] = np.asarray(layer(x, mask=np.array(GRU_V1_MASK, bool)))
    model = gru_v1_model(keras)
    model.set_weights(weights + [w.astype(np.float32) for w in
                                 (rng.normal(size=(3, 1)), rng.normal(size=(1,)))])
    out["gru_v1__model_w"] = np.concatenate([w.ravel() for w in model.get_weights()])
    y = rng.normal(size=(4, 1)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    out["gru_v1__y"] = y
    out["gru_v1__loss"] = np.array(model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
                                   .history["loss"], np.float64)
    np.savez(os.path.join(HERE, "masks.npz"), **out)
    print("wrote", len(out), "arrays")


if __name__ == "__main__":
    main()

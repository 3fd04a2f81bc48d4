"""Write the Keras fixture for the attention layers and TimeDistributed (``tests/test_attention.py``).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/attention/generate_attention.py

It writes ``attention.npz`` next to itself. For each case ``K`` of ``CASES`` (a functional model around one layer
call): ``K__spec`` (JSON: the layer's class and arguments, the call's keyword arguments, the input shapes and
which inputs are masks), ``K__x_NN`` (the inputs, a batch of 4; masks as 0/1 floats, no query row fully masked
but in the ``*empty*`` cases), ``K__w_NN`` (the weights, drawn from a fixed seed), ``K__out_NN`` (the model's
outputs), and for training: the model ``inputs -> layer -> first output -> Lambda(identity)`` fitted two epochs
on ``K__y`` (SGD 0.1, mse, batch 2, no shuffling) from those weights, with the per-epoch losses in ``K__loss``
and the weights after it in ``K__trained_NN``. For the cases in ``FILES`` Keras also saves ``K.keras`` (the
model, as Keras writes it). ``implicit__*`` and ``implicit_masks.keras``: Embedding(mask_zero=True) feeding
MultiHeadAttention, Attention and TimeDistributed, whose masks come from the input (``implicit_masks_model``).
Deterministic; a few seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
BATCH = 4

# name: (class, layer arguments, call keyword arguments, input sample shapes, input roles)
# roles: "q", "v", "k" tensors; "am" attention_mask (MultiHeadAttention); "qm", "vm" masks (mask=[qm, vm]);
# "amz" / "vmz": the same with a row masked everywhere
CASES = {
    "mha_cross": ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3},
                  {"return_attention_scores": True}, [(3, 4), (5, 6), (5, 2), (3, 5)], ["q", "v", "k", "am"]),
    # (Keras's fused dot_product_attention path, taken here, fails on JAX when value_dim != key_dim)
    "mha_causal": ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3, "output_shape": 5, "use_bias": False},
                   {"use_causal_mask": True}, [(4, 3)], ["q"]),
    "mha_masked_causal_scores": ("MultiHeadAttention", {"num_heads": 3, "key_dim": 2, "value_dim": 4},
                                 {"use_causal_mask": True, "return_attention_scores": True},
                                 [(4, 3), (4, 3), (4, 4)], ["q", "v", "am"]),
    "mha_axes": ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "attention_axes": [2]}, {},
                 [(2, 3, 4)], ["q"]),
    "att_dot_scale": ("Attention", {"use_scale": True}, {"return_attention_scores": True},
                      [(3, 4), (5, 4), (3,), (5,)], ["q", "v", "qm", "vm"]),
    "att_concat_key_causal": ("Attention", {"use_scale": True, "score_mode": "concat"},
                              {"use_causal_mask": True, "return_attention_scores": True},
                              [(4, 3), (4, 2), (4, 3)], ["q", "v", "k"]),
    "att_plain": ("Attention", {}, {}, [(3, 4), (5, 4)], ["q", "v"]),
    "add_mask": ("AdditiveAttention", {}, {}, [(3, 4), (5, 4), (3,), (5,)], ["q", "v", "qm", "vm"]),
    "add_noscale_key": ("AdditiveAttention", {"use_scale": False}, {"return_attention_scores": True},
                        [(3, 2), (4, 3), (4, 2)], ["q", "v", "k"]),
    # a query row masked everywhere (Keras's masked softmax: probabilities 0), and a sample whose value mask is
    # all False (Attention: every score less 1e9, so uniform weights)
    "mha_empty_row_scores": ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2},
                             {"return_attention_scores": True}, [(3, 4), (4, 4), (3, 4)], ["q", "v", "amz"]),
    # the same without scores: Keras's fused dot_product_attention path, where the row attends to every key
    "mha_empty_row": ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2}, {}, [(3, 4), (4, 4), (3, 4)],
                      ["q", "v", "amz"]),
    "att_empty_value_mask": ("Attention", {}, {"return_attention_scores": True},
                             [(3, 2), (4, 2), (3,), (4,)], ["q", "v", "qm", "vmz"]),
    "td_dense": ("TimeDistributed", {"layer": {"class_name": "Dense", "config": {"units": 3,
                                                                                "activation": "tanh"}}}, {},
                 [(4, 5)], ["q"]),
    "td_conv1d": ("TimeDistributed", {"layer": {"class_name": "Conv1D", "config": {"filters": 2,
                                                                                  "kernel_size": 2}}}, {},
                  [(3, 5, 2)], ["q"]),
}
FILES = ("mha_cross", "att_dot_scale", "td_conv1d")


def build(name: str):
    cls, args, call_kwargs, shapes, roles = CASES[name]
    inputs = [keras.Input(s) for s in shapes]
    got = dict(zip(roles, inputs))
    if cls == "TimeDistributed":
        inner = args["layer"]
        layer = keras.layers.TimeDistributed(getattr(keras.layers, inner["class_name"])(**inner["config"]))
        outs = layer(got["q"])
    elif cls == "MultiHeadAttention":
        layer = keras.layers.MultiHeadAttention(**args)
        kw = dict(call_kwargs)
        if "k" in got:
            kw["key"] = got["k"]
        if "am" in got or "amz" in got:
            kw["attention_mask"] = got.get("am", got.get("amz"))
        outs = layer(got["q"], got.get("v", got["q"]), **kw)
    else:
        layer = getattr(keras.layers, cls)(**args)
        tensors = [got["q"], got["v"]] + ([got["k"]] if "k" in got else [])
        kw = dict(call_kwargs)
        if "qm" in got:
            kw["mask"] = [got["qm"], got.get("vm", got.get("vmz"))]
        outs = layer(tensors, **kw)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    return keras.Model(inputs, outs), inputs, outs


def data(name: str, rng: np.random.Generator) -> list:
    _, _, _, shapes, roles = CASES[name]
    xs = []
    for shape, role in zip(shapes, roles):
        if role in ("q", "v", "k"):
            xs.append(rng.normal(size=(BATCH, *shape)).astype(np.float32))
            continue
        m = (rng.uniform(size=(BATCH, *shape)) > 0.3).astype(np.float32)
        if role == "am":
            m[..., 0] = 1.0  # every query attends to something (also under a causal mask)
        elif role == "vm":
            m[:, 0] = 1.0
        elif role == "amz":
            m[..., 0] = 1.0
            m[1, 2] = 0.0  # sample 1: query 2 attends to nothing
        elif role == "vmz":
            m[:, 0] = 1.0
            m[2] = 0.0  # sample 2: no value counts
        xs.append(m)
    return xs


def implicit_masks_model():
    """Embedding(mask_zero=True) feeding the layers: the Keras masks of the inputs, read implicitly."""
    # one Embedding called once per consumer: Keras's MultiHeadAttention clears the Keras masks of the tensors it
    # is called on when it runs (`set_keras_mask(query, None)`), so a later layer reading the same tensor would
    # see no mask, depending on the order the layers run in
    ids = keras.Input((5,), dtype="int32")
    embedding = keras.layers.Embedding(12, 4, mask_zero=True)
    e1, e2, e3, e4 = (embedding(ids) for _ in range(4))
    fused = keras.layers.MultiHeadAttention(2, 2)(e1, e1)
    out, scores = keras.layers.MultiHeadAttention(2, 3)(e2, e2, return_attention_scores=True, use_causal_mask=True)
    att = keras.layers.Attention(use_scale=True)([e3, e3])
    td = keras.layers.TimeDistributed(keras.layers.Dense(3))(e4)
    pooled = keras.layers.GlobalAveragePooling1D()(fused)  # reads the output's mask (the query's)
    return keras.Model(ids, [fused, out, scores, att, td, pooled])


def main() -> None:
    out: dict = {}
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    model = implicit_masks_model()
    model.set_weights([(rng.normal(size=w.shape) * 0.5).astype(np.float32) for w in model.get_weights()])
    ids = np.array([[3, 5, 0, 0, 0], [1, 2, 3, 4, 5], [7, 0, 0, 0, 0], [2, 9, 11, 4, 0]], dtype=np.int32)
    out["implicit__x"] = ids
    for j, p in enumerate(model.predict(ids, verbose=0)):
        out[f"implicit__out_{j:02d}"] = np.asarray(p)
    for j, w in enumerate(model.get_weights()):
        out[f"implicit__w_{j:02d}"] = w
    model.save(HERE / "implicit_masks.keras")
    for i, name in enumerate(sorted(CASES)):
        keras.utils.set_random_seed(100 + i)
        rng = np.random.default_rng(100 + i)
        model, inputs, outs = build(name)
        weights = [(rng.normal(size=w.shape) * 0.5).astype(np.float32) for w in model.get_weights()]
        model.set_weights(weights)
        xs = data(name, rng)
        preds = model.predict(xs, verbose=0)
        preds = preds if isinstance(preds, list) else [preds]
        cls, args, call_kwargs, shapes, roles = CASES[name]
        out[f"{name}__spec"] = json.dumps({"class_name": cls, "args": args, "call_kwargs": call_kwargs,
                                           "shapes": [list(s) for s in shapes], "roles": roles})
        for j, x in enumerate(xs):
            out[f"{name}__x_{j:02d}"] = x
        for j, w in enumerate(weights):
            out[f"{name}__w_{j:02d}"] = w
        for j, p in enumerate(preds):
            out[f"{name}__out_{j:02d}"] = p
        if name in FILES:
            model.save(HERE / f"{name}.keras")
        # training: the first output against a fixed target (through an identity Lambda, which drops the
        # output's Keras mask: Attention's output carries the query mask, and Keras would weight the loss by it)
        train = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 1.0)(outs[0]))
        y = rng.normal(size=preds[0].shape).astype(np.float32)
        train.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        hist = train.fit(xs, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
        out[f"{name}__y"] = y
        out[f"{name}__loss"] = np.array(hist.history["loss"], dtype=np.float64)
        for j, w in enumerate(train.get_weights()):
            out[f"{name}__trained_{j:02d}"] = w
    np.savez_compressed(HERE / "attention.npz", **out)
    print(f"wrote {len(out)} arrays for {len(CASES)} cases")


if __name__ == "__main__":
    main()

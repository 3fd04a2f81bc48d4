"""Writes dpa.npz from real Keras: `keras.ops.dot_product_attention` on random query/key/value, with no mask, a
random mask (one query row masked everywhere), `is_causal`, and a given scale. Run from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/attention/generate_dpa.py
"""

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    rng = np.random.default_rng(11)
    q = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)
    k = rng.normal(size=(2, 6, 3, 5)).astype(np.float32)
    v = rng.normal(size=(2, 6, 3, 5)).astype(np.float32)  # JAX's kernel wants the depth of the query
    mask = rng.random((2, 1, 4, 6)) > 0.4
    mask[1, 0, 2, :] = False  # a query step masked everywhere
    out = {"q": q, "k": k, "v": v, "mask": mask}
    out["plain"] = np.asarray(keras.ops.dot_product_attention(q, k, v))
    out["masked"] = np.asarray(keras.ops.dot_product_attention(q, k, v, mask=mask))
    out["causal"] = np.asarray(keras.ops.dot_product_attention(q, k[:, :4], v[:, :4], is_causal=True))
    out["scaled"] = np.asarray(keras.ops.dot_product_attention(q, k, v, scale=0.3))
    np.savez(os.path.join(HERE, "dpa.npz"), **out)
    print("wrote", len(out), "arrays")


if __name__ == "__main__":
    main()

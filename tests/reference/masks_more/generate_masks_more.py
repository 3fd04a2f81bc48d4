"""Write the Keras fixture for masks handed to `call` and through TimeDistributed (``tests/test_masks_more.py``).

Run with the Keras venv (real Keras 3, JAX backend), from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/masks_more/generate_masks_more.py

It writes ``masks_more.npz`` next to itself. For each model case ``K`` of ``CASES`` (built by ``build`` below, which
the test file repeats with kerust): ``K__x_N`` (the inputs: token ids with padding 0, floats, bool masks),
``K__w_NN`` (the weights, random, in ``model.get_weights()`` order), ``K__y`` (the inference output), ``K__t`` (a
fixed target), ``K__loss`` (``mean((y - t)**2)``) and ``K__gw_NN`` (its gradients w.r.t. each weight, by
``jax.grad`` through ``stateless_call``). The ``td_*`` cases are built-in layers only: Keras saved them as
``K.keras`` (with those weights). Deterministic; a few seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

HERE = Path(__file__).resolve().parent


class ZeroMasked(layers.Layer):
    """Zeros (and doubles the rest of) the masked steps; hands the mask on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        return ops.where(mask[..., None], x * 2.0, 0.0)


class MaskedAvg(layers.Layer):
    """The mean of the kept steps, scaled by a weight (a custom layer that trains)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x, mask=None):
        m = ops.cast(mask, x.dtype)[..., None]
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0) * self.scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


class Pair(layers.Layer):
    """Two inputs, the first masked: `mask` is the list [its mask, None]."""

    def call(self, inputs, mask=None):
        a, b = inputs
        m = ops.cast(mask[0], a.dtype)[..., None]
        return ops.sum(a * m + b, axis=1)


def build(case: str):
    """The model of one case (the same code builds the kerust twin in tests/test_masks_more.py)."""
    if case == "where":
        i = keras.Input((5,), dtype="int32")
        h = layers.Embedding(7, 4, mask_zero=True)(i)
        h = ZeroMasked()(h)
        h = layers.LSTM(3)(h)
        return keras.Model(i, layers.Dense(2)(h))
    if case == "avg":
        i = keras.Input((5,), dtype="int32")
        h = layers.Embedding(7, 4, mask_zero=True)(i)
        return keras.Model(i, layers.Dense(2)(MaskedAvg()(h)))
    if case == "given":
        x = keras.Input((4, 3))
        mk = keras.Input((4,), dtype="bool")
        return keras.Model([x, mk], layers.Dense(2)(MaskedAvg()(x, mask=mk)))
    if case == "list":
        i = keras.Input((5,), dtype="int32")
        b = keras.Input((5, 4))
        e = layers.Embedding(7, 4, mask_zero=True)(i)
        return keras.Model([i, b], layers.Dense(2)(Pair()([e, b])))
    if case == "td_lstm":
        i = keras.Input((3, 4), dtype="int32")
        h = layers.Embedding(6, 2, mask_zero=True)(i)
        h = layers.TimeDistributed(layers.LSTM(3))(h)
        return keras.Model(i, layers.Dense(2)(layers.Flatten()(h)))
    if case == "td_custom":
        i = keras.Input((3, 4), dtype="int32")
        h = layers.Embedding(6, 3, mask_zero=True)(i)
        h = layers.TimeDistributed(MaskedAvg())(h)
        return keras.Model(i, layers.Dense(2)(layers.Flatten()(h)))
    if case == "td_given":
        x = keras.Input((3, 4, 2))
        mk = keras.Input((3, 4), dtype="bool")
        h = layers.TimeDistributed(layers.GRU(2))(x, mask=mk)
        return keras.Model([x, mk], layers.Dense(2)(layers.Flatten()(h)))
    if case == "td_dense_pass":
        i = keras.Input((5,), dtype="int32")
        h = layers.Embedding(6, 3, mask_zero=True)(i)
        h = layers.TimeDistributed(layers.Dense(4, activation="tanh"))(h)
        return keras.Model(i, layers.Dense(1)(layers.LSTM(2)(h)))
    raise ValueError(case)


CASES = ("where", "avg", "given", "list", "td_lstm", "td_custom", "td_given", "td_dense_pass")
SAVED = ("td_lstm", "td_given", "td_dense_pass")


def inputs(case: str, rng: np.random.Generator) -> list:
    def ids(shape, vocab):
        a = rng.integers(1, vocab, size=shape)
        lengths = rng.integers(1, shape[-1] + 1, size=shape[:-1])
        a[np.arange(shape[-1]) >= lengths[..., None]] = 0  # padding at the end, at least one kept step
        return a.astype(np.int32)

    if case in ("where", "avg"):
        return [ids((3, 5), 7)]
    if case == "given":
        return [rng.normal(size=(3, 4, 3)).astype(np.float32),
                np.array([[1, 1, 0, 0], [1, 0, 1, 1], [1, 1, 1, 1]], dtype=bool)]
    if case == "list":
        return [ids((3, 5), 7), rng.normal(size=(3, 5, 4)).astype(np.float32)]
    if case in ("td_lstm", "td_custom"):
        return [ids((2, 3, 4), 6)]
    if case == "td_given":
        m = rng.random((2, 3, 4)) < 0.7
        m[..., 0] = True
        return [rng.normal(size=(2, 3, 4, 2)).astype(np.float32), m]
    return [ids((3, 5), 6)]


def main() -> None:
    rng = np.random.default_rng(17)
    out: dict = {}
    for case in CASES:
        keras.utils.set_random_seed(1)
        model = build(case)
        xs = inputs(case, rng)
        ws = [rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()]
        model.set_weights(ws)
        feed = xs if len(xs) > 1 else xs[0]
        y = np.asarray(model.predict(feed, verbose=0))
        t = rng.normal(size=y.shape).astype(np.float32)

        def loss(trainable, _model=model, _xs=xs, _t=t):
            pred, _ = _model.stateless_call(trainable, [v.value for v in _model.non_trainable_variables],
                                            _xs if len(_xs) > 1 else _xs[0], training=True)
            return jnp.mean((pred - _t) ** 2)

        trainable = [jnp.asarray(v.value) for v in model.trainable_variables]
        value, grads = jax.value_and_grad(loss)(trainable)
        where = {id(v): k for k, v in enumerate(model.trainable_variables)}
        assert len(model.weights) == len(where), "every weight trains"
        grads = [grads[where[id(w)]] for w in model.weights]
        for k, x in enumerate(xs):
            out[f"{case}__x_{k}"] = x
        for k, w in enumerate(ws):
            out[f"{case}__w_{k:02d}"] = w
        # the gradients in get_weights() order (a recurrent layer's seed state is a non-trainable variable)
        for k, g in enumerate(grads):
            out[f"{case}__gw_{k:02d}"] = np.asarray(g)
        out[f"{case}__y"] = y
        out[f"{case}__t"] = t
        out[f"{case}__loss"] = np.float32(value)
        if case in SAVED:
            model.save(HERE / f"{case}.keras")
    np.savez_compressed(HERE / "masks_more.npz", **out)
    print(f"wrote {len(out)} arrays")


if __name__ == "__main__":
    main()

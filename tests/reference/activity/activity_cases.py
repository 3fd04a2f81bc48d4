"""Models with activity regularizers, written once for Keras (generate_activity.py) and kerust
(tests/test_activity_regularizers.py): each builder takes the library module (`keras` or `kerust`) and returns
(model, x, y) for a few SGD epochs without shuffling."""

import numpy as np


def _data(shape, outputs=1, seed=0, ints=None):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, ints, size=(12, *shape)).astype(np.float32) if ints else \
        rng.normal(size=(12, *shape)).astype(np.float32)
    return x, rng.normal(size=(12, outputs)).astype(np.float32)


def dense(K):
    r = K.regularizers
    model = K.Sequential([K.Input((5,)), K.layers.Dense(4, activation="tanh", activity_regularizer=r.L2(0.05)),
                          K.layers.Dense(1, activity_regularizer="l1")])
    return (model, *_data((5,)))


def conv(K):
    r = K.regularizers
    model = K.Sequential([K.Input((6, 6, 2)), K.layers.Conv2D(3, 3, activation="tanh",
                                                          activity_regularizer=r.L1L2(0.01, 0.02)),
                          K.layers.Flatten(), K.layers.Dense(1)])
    return (model, *_data((6, 6, 2), seed=1))


def embedding_lstm(K):
    r = K.regularizers
    model = K.Sequential([K.Input((5,)), K.layers.Embedding(7, 3, activity_regularizer=r.L2(0.1)),
                          K.layers.LSTM(2, activity_regularizer=r.L1(0.05)),
                          K.layers.Dense(1)])
    return (model, *_data((5,), seed=2, ints=7))


def functional(K):
    """A shared layer (its penalty is added once per call), a layer with no weights, and a merge."""
    r = K.regularizers
    inp = K.Input((4,))
    shared = K.layers.Dense(3, activity_regularizer=r.L2(0.03))
    a, b = shared(inp), shared(K.layers.Dense(4)(inp))
    act = K.layers.Activation("relu", activity_regularizer=r.L1(0.02))(K.layers.Add()([a, b]))
    model = K.Model(inp, K.layers.Dense(1)(act))
    return (model, *_data((4,), seed=3))


CASES = {f.__name__: f for f in (dense, conv, embedding_lstm, functional)}

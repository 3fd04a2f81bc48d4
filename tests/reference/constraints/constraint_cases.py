"""Models with weight constraints, written once for Keras (generate_constraints.py) and kerust
(tests/test_constraints.py): each builder takes the library module (`keras` or `kerust`) and returns
(model, x, y) for a few SGD epochs without shuffling."""

import numpy as np


def _data(shape, outputs=1, seed=0, ints=None):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, ints, size=(12, *shape)).astype(np.float32) if ints else \
        rng.normal(size=(12, *shape)).astype(np.float32)
    return x, rng.normal(size=(12, outputs)).astype(np.float32)


def dense(K):
    c = K.constraints
    model = K.Sequential([K.Input((5,)), K.layers.Dense(4, kernel_constraint=c.MaxNorm(0.5),
                                                          bias_constraint=c.NonNeg()),
                          K.layers.Dense(1)])
    return (model, *_data((5,)))


def conv(K):
    c = K.constraints
    model = K.Sequential([K.Input((6, 6, 2)), K.layers.Conv2D(3, 3, kernel_constraint=c.UnitNorm(axis=[0, 1, 2])),
                          K.layers.Flatten(),
                          K.layers.Dense(1, kernel_constraint=c.MinMaxNorm(0.1, 0.3, rate=0.5))])
    return (model, *_data((6, 6, 2), seed=1))


def embedding_lstm(K):
    c = K.constraints
    model = K.Sequential([K.Input((5,)), K.layers.Embedding(7, 3, embeddings_constraint=c.NonNeg()),
                          K.layers.LSTM(2, kernel_constraint=c.MaxNorm(0.4), recurrent_constraint=c.UnitNorm(),
                                        bias_constraint=c.MaxNorm(0.2)),
                          K.layers.Dense(1)])
    return (model, *_data((5,), seed=2, ints=7))


def normalization(K):
    c = K.constraints
    model = K.Sequential([K.Input((4,)), K.layers.Dense(3),
                          K.layers.BatchNormalization(gamma_constraint=c.MaxNorm(0.8), beta_constraint=c.NonNeg()),
                          K.layers.LayerNormalization(gamma_constraint=c.MinMaxNorm(0.5, 1.0)),
                          K.layers.Dense(1)])
    return (model, *_data((4,), seed=3))


def depthwise(K):
    c = K.constraints
    model = K.Sequential([K.Input((5, 5, 2)),
                          K.layers.DepthwiseConv2D(3, depth_multiplier=2,
                                                   depthwise_constraint=c.MaxNorm(0.3, axis=[0, 1])),
                          K.layers.SeparableConv2D(2, 2, pointwise_constraint=c.UnitNorm(axis=2),
                                                   depthwise_constraint=c.NonNeg()),
                          K.layers.Flatten(), K.layers.Dense(1)])
    return (model, *_data((5, 5, 2), seed=4))


def bidirectional(K):
    c = K.constraints
    model = K.Sequential([K.Input((4, 3)), K.layers.Bidirectional(K.layers.GRU(2, kernel_constraint=c.MaxNorm(0.3))),
                          K.layers.Dense(1)])
    return (model, *_data((4, 3), seed=5))


CASES = {f.__name__: f for f in (dense, conv, embedding_lstm, normalization, depthwise, bidirectional)}

"""Tracing where non-finite values first appear (TerminateOnNaN's message) must not change training: the
engine replays a non-finite forward pass layer by layer from the same state."""

from __future__ import annotations

import warnings

import numpy as np

import kerust as keras
from kerust import layers


def test_replayed_pass_updates_batchnorm_statistics_once() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), layers.BatchNormalization(momentum=0.5), layers.Dense(2)])
    model.compile("sgd", "mse")
    kernel, bias = model.layers[1].get_weights()
    kernel[0, 0] = np.inf  # the prediction becomes non-finite after the BatchNormalization layer
    model.layers[1].set_weights([kernel, bias])
    x = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train_on_batch(x, np.zeros((2, 2), np.float32))
    gamma, beta, moving_mean, moving_var = model.layers[0].get_weights()
    # one update with momentum 0.5 from (0, 1): mean (2, 4, 6), variance (1, 4, 9)
    np.testing.assert_allclose(moving_mean, [1.0, 2.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(moving_var, [1.0, 2.5, 5.0], rtol=1e-6)


"""One check the thread tests share: a training run gives bit-identical weights for 1, 2 and 4 threads."""

from __future__ import annotations

from typing import Callable, List

import kerust as keras
import numpy as np


def assert_same_for_thread_counts(run: Callable[[], List[np.ndarray]], counts=(1, 2, 4)) -> None:
    """`run()` (which seeds and trains a model, returning its weights) under each thread count: every weight
    must be equal to the bit."""
    before = keras.config.get_num_threads()
    results = []
    try:
        for n in counts:
            keras.config.set_num_threads(n)
            results.append(run())
    finally:
        keras.config.set_num_threads(before)
    for weights in results[1:]:
        assert len(weights) == len(results[0])
        for a, b in zip(results[0], weights):
            np.testing.assert_array_equal(a, b)

"""Shared fixtures for the Python API tests: a fixed seed per test, unique layer names, and a finite-difference
gradient check that goes through the public API only (``evaluate`` / ``train_on_batch`` / ``set_weights``)."""

from __future__ import annotations

import itertools
from typing import Callable

import kerust
import numpy as np
import pytest

_names = itertools.count()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global seed, so a failure reproduces."""
    kerust.utils.set_random_seed(1234)


@pytest.fixture
def uid() -> Callable[[str], str]:
    """``uid("dense")`` -> a layer/model name never used before in this session (avoids the name counters)."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}_u{next(_names)}"

    return make


def finite_difference_check(
    model: kerust.Sequential,
    x: np.ndarray,
    y: np.ndarray,
    *,
    objective: str = "evaluate",
    h: float = 1e-3,
    rtol: float = 2e-2,
    atol: float = 2e-4,
    indices: list[int] | None = None,
) -> None:
    """Compare the gradient that one ``SGD(learning_rate=1.0)`` step applies (``w_new - w = -grad``) with central
    differences of the loss, perturbing each weight through ``set_weights``.

    ``objective="evaluate"``: the loss is ``model.evaluate(x, y, batch_size=N)`` (inference mode).
    ``objective="train"``: the loss is what ``train_on_batch`` reports for the step (computed before the update,
    in training mode); the weights are restored after every call.
    ``indices``: which entries of ``get_weights()`` to check (default: all).
    """
    n = (x[0] if isinstance(x, (list, tuple)) else x).shape[0]
    opt = model.optimizer
    assert isinstance(opt, kerust.optimizers.SGD) and opt.learning_rate == 1.0 and opt.momentum == 0.0
    base = [w.copy() for w in model.get_weights()]
    indices = list(range(len(base))) if indices is None else indices

    def loss_at(weights: list[np.ndarray]) -> float:
        model.set_weights(weights)
        if objective == "evaluate":
            return float(model.evaluate(x, y, batch_size=n, verbose=0))
        if objective == "train":
            value = float(model.train_on_batch(x, y))
            model.set_weights(weights)
            return value
        raise ValueError(objective)

    # analytic: one SGD step with learning rate 1
    model.set_weights(base)
    model.train_on_batch(x, y)
    after = model.get_weights()
    model.set_weights(base)

    for i in indices:
        analytic = (base[i].astype(np.float64) - after[i].astype(np.float64)).reshape(-1)
        numeric = np.zeros_like(analytic)
        flat = base[i].reshape(-1)
        for j in range(flat.size):
            plus = [w.copy() for w in base]
            minus = [w.copy() for w in base]
            plus[i].reshape(-1)[j] = np.float32(flat[j] + h)
            minus[i].reshape(-1)[j] = np.float32(flat[j] - h)
            # the step actually taken, after rounding to float32
            step = float(plus[i].reshape(-1)[j]) - float(minus[i].reshape(-1)[j])
            numeric[j] = (loss_at(plus) - loss_at(minus)) / step
        model.set_weights(base)
        scale = max(float(np.max(np.abs(numeric))), 1e-3)
        err = np.abs(numeric - analytic)
        bad = err > rtol * np.abs(numeric) + atol + rtol * 0.05 * scale
        assert not bad.any(), (
            f"weight {i} (shape {base[i].shape}): analytic gradient {analytic[bad][:5]} vs numeric "
            f"{numeric[bad][:5]} at flat indices {np.flatnonzero(bad)[:5]}"
        )
        # the check is meaningful only if the gradient is not trivially zero
        assert np.max(np.abs(analytic)) > 0 or np.max(np.abs(numeric)) < 1e-6


@pytest.fixture
def fd_check() -> Callable[..., None]:
    return finite_difference_check

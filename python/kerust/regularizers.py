"""Keras weight regularizers: ``kernel_regularizer=regularizers.L2(0.01)`` (or ``"l2"``) adds
``l2 * sum(w**2)`` to the loss; the engine adds the penalty and its gradient."""

from __future__ import annotations

from typing import Any


class Regularizer:
    """Base of the weight penalties; `regularizer(weights)` returns the penalty of an array."""
    def get_config(self) -> dict:
        """The penalty factors as a dict."""
        raise NotImplementedError

    def _serialized(self) -> dict:
        return {"module": "keras.regularizers", "class_name": type(self).__name__, "config": self.get_config(),
                "registered_name": None}

    @classmethod
    def from_config(cls, config: dict) -> "Regularizer":
        """A new regularizer from a `get_config()` dict."""
        return cls(**config)

    def __call__(self, weights: Any) -> float:
        import numpy as np

        w = np.asarray(weights, dtype=np.float64)
        cfg = self.get_config()
        return float(cfg.get("l1", 0.0) * np.abs(w).sum() + cfg.get("l2", 0.0) * np.square(w).sum())


def _check(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"Value for argument `{name}` must be a non-negative float, received {value!r}")
    return float(value)


class L1(Regularizer):
    """The penalty `l1 * sum(abs(w))`."""
    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = _check("l1", l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    """The penalty `l2 * sum(w ** 2)`."""
    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = _check("l2", l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """The penalty `l1 * sum(abs(w)) + l2 * sum(w ** 2)`."""
    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check("l1", l1)
        self.l2 = _check("l2", l2)

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier: Any) -> Any:
    """A regularizer from a name (`"l1"`, `"l2"`, `"l1_l2"`), a config dict or an instance; `None` stays `None`."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]].from_config(identifier.get("config") or {})
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}. Expected 'l1', 'l2', "
                     "'l1_l2' or a kerust.regularizers object")


def get_activity(identifier: Any, who: str) -> Any:
    """`get(identifier)` for a layer's `activity_regularizer`: L1, L2 or L1L2 (the penalties the engine traces);
    a subclass with its own `__call__` is refused with a ValueError naming the layer `who`."""
    regularizer = get(identifier)
    if regularizer is not None and type(regularizer) not in (L1, L2, L1L2):
        raise ValueError(f"{who}: `activity_regularizer` must be an L1, L2 or L1L2 regularizer (or its name), "
                         f"received {type(regularizer).__name__}")
    return regularizer


def activity_penalty(regularizer: Any, outputs: Any) -> Any:
    """Keras's activity penalty of a layer's `outputs` (batch first): the regularizer's penalty of the whole batch
    divided by the batch size, i.e. the mean over samples of `l1 * sum(|x|) + l2 * sum(x ** 2)`. Written with
    `kerust.ops`, so it traces into a model's loss (symbolic `outputs`) or computes on arrays."""
    from . import ops

    cfg = regularizer.get_config()
    rank = len(outputs.shape)
    axes = tuple(range(1, rank))
    per_sample: Any = None
    for key, fn in (("l1", ops.abs), ("l2", ops.square)):
        factor = float(cfg.get(key, 0.0))
        if factor:
            term = ops.multiply(factor, ops.sum(fn(outputs), axis=axes) if axes else fn(outputs))
            per_sample = term if per_sample is None else ops.add(per_sample, term)
    if per_sample is None:  # all factors zero: a zero penalty that still depends on the outputs
        per_sample = ops.multiply(0.0, ops.sum(outputs, axis=axes) if axes else outputs)
    return ops.mean(per_sample)


def serialize(regularizer: Any) -> Any:
    """The regularizer's Keras config dict, or `None`."""
    return regularizer._serialized() if isinstance(regularizer, Regularizer) else None

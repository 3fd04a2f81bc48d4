"""Keras weight constraints: ``kernel_constraint=constraints.MaxNorm(2.0)`` (or ``"max_norm"``) projects the
weight after every optimizer update, as Keras's optimizers do; the engine applies the projection. Calling a
constraint on an array computes the same projection in NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np

_EPSILON = 1e-7  # Keras's backend.epsilon()


class Constraint:
    """Base of the weight constraints (the identity); `constraint(w)` returns the projected array."""

    def __call__(self, w: Any) -> np.ndarray:
        return np.asarray(w, dtype=np.float32)

    def get_config(self) -> dict:
        """The constraint's arguments as a dict."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Constraint":
        """A new constraint from a `get_config()` dict."""
        return cls(**config)

    def _serialized(self) -> dict:
        return {"module": "keras.constraints", "class_name": type(self).__name__, "config": self.get_config(),
                "registered_name": None}

    def _norms(self, w: np.ndarray, axis: Any) -> np.ndarray:
        ax = tuple(axis) if isinstance(axis, (list, tuple)) else axis
        return np.sqrt(np.sum(np.square(w), axis=ax, keepdims=True))


def _axis(axis: Any) -> Any:
    if axis is None or (isinstance(axis, (int, np.integer)) and not isinstance(axis, bool)):
        return None if axis is None else int(axis)
    if isinstance(axis, (list, tuple)) and all(isinstance(a, (int, np.integer)) for a in axis):
        return [int(a) for a in axis]
    raise ValueError(f"Invalid value for argument `axis`: expected an int, a list of ints or None, received {axis!r}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value):
        raise ValueError(f"Invalid value for argument `{name}`: expected a finite number, received {value!r}")
    return float(value)


class MaxNorm(Constraint):
    """Scales each weight vector (the norm taken over `axis`) down to a norm of at most `max_value`."""

    def __init__(self, max_value: float = 2, axis: Any = 0) -> None:
        self.max_value = _number("max_value", max_value)
        self.axis = _axis(axis)

    def __call__(self, w: Any) -> np.ndarray:
        w = np.asarray(w, dtype=np.float32)
        norms = self._norms(w, self.axis)
        return w * (np.clip(norms, 0, self.max_value) / (_EPSILON + norms))

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative weights to zero."""

    def __call__(self, w: Any) -> np.ndarray:
        return np.maximum(np.asarray(w, dtype=np.float32), 0)


class UnitNorm(Constraint):
    """Scales each weight vector (the norm taken over `axis`) to a norm of 1."""

    def __init__(self, axis: Any = 0) -> None:
        self.axis = _axis(axis)

    def __call__(self, w: Any) -> np.ndarray:
        w = np.asarray(w, dtype=np.float32)
        return w / (_EPSILON + self._norms(w, self.axis))

    def get_config(self) -> dict:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each weight vector's norm (over `axis`) into `[min_value, max_value]`, a fraction `rate` of the way
    per update."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Any = 0) -> None:
        self.min_value = _number("min_value", min_value)
        self.max_value = _number("max_value", max_value)
        self.rate = _number("rate", rate)
        self.axis = _axis(axis)

    def __call__(self, w: Any) -> np.ndarray:
        w = np.asarray(w, dtype=np.float32)
        norms = self._norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_BY_NAME = {cls.__name__: cls for cls in (Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_BY_NAME.update({"constraint": Constraint, "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
                 "min_max_norm": MinMaxNorm})


def get(identifier: Any) -> Any:
    """A constraint from a name (`"max_norm"`, `"non_neg"`, `"unit_norm"`, `"min_max_norm"` or the class name), a
    config dict or an instance; `None` stays `None`."""
    if identifier is None or isinstance(identifier, Constraint):
        if identifier is not None and type(identifier) not in _BY_NAME.values():
            raise TypeError(f"kerust applies Keras's own constraints in its engine; a subclass "
                            f"({type(identifier).__name__}) cannot run there. Use one of "
                            f"{', '.join(c for c in _BY_NAME if c[0].isupper())}")
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]].from_config(identifier.get("config") or {})
    if callable(identifier):
        raise TypeError(f"kerust applies constraints in its engine; a Python callable ({identifier!r}) cannot run "
                        "there. Use MaxNorm, NonNeg, UnitNorm or MinMaxNorm")
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


def serialize(constraint: Any) -> Any:
    """The constraint's Keras config dict, or `None`."""
    return constraint._serialized() if isinstance(constraint, Constraint) else None


def deserialize(config: Any) -> Any:
    """A constraint from its Keras config dict."""
    return get(config)

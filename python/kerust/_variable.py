"""The variables a custom layer makes with ``add_weight``, and the tracing context in which reading one records a
graph node. Their values live in the engine of the model that holds the layer (as every layer's weights do).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ._graph import TensorOperators

_local = threading.local()


def _stack() -> List[Dict[Any, Any]]:
    stack = getattr(_local, "traces", None)
    if stack is None:
        stack = _local.traces = []
    return stack


def tracing() -> bool:
    """Whether a custom layer's `call` (or a model's) is being traced on this thread."""
    return bool(_stack())


@contextmanager
def trace_scope() -> Iterator[Dict[Any, Any]]:
    """While active, variables used in ops become variable-read nodes (one per variable per trace); the scope
    also collects what `add_loss` adds (under "losses")."""
    stack = _stack()
    scope: Dict[Any, Any] = {}
    stack.append(scope)
    try:
        yield scope
    finally:
        stack.pop()


def add_traced_loss(value: Any) -> None:
    _stack()[-1].setdefault("losses", []).append(value)


class VariableRead:
    """The graph operation that reads one variable (no inputs)."""

    class_name = "Weights"
    _is_operation = True

    def __init__(self, variable: "Variable") -> None:
        self.variable = variable
        self.name = f"{variable.path}_read"
        self._inbound_nodes: list = []


class Variable(TensorOperators):
    """``keras.Variable`` as ``add_weight`` returns it: shape, dtype, name, path and trainable flag; its value
    once a model holding the layer is built (``numpy()``, ``assign`` outside of a traced ``call``)."""

    def __init__(self, layer: Any, index: int, shape: Tuple[int, ...], dtype: str, name: str, trainable: bool,
                 initializer: Any, regularizer: Any, constraint: Any = None) -> None:
        self._layer = layer
        self._index = index
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self.trainable = bool(trainable)
        self._initializer = initializer
        self._regularizer = regularizer
        self.constraint = constraint  # applied by the engine after each optimizer update

    @property
    def path(self) -> str:
        return f"{self._layer.name}/{self.name}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _config(self) -> dict:
        from . import constraints, regularizers

        return {"shape": list(self.shape), "initializer": self._initializer, "trainable": self.trainable,
                "regularizer": regularizers.serialize(self._regularizer),
                "constraint": constraints.serialize(self.constraint)}

    def _symbolic(self) -> Any:
        from ._graph import record_op

        cache = _stack()[-1]
        t = cache.get(id(self))
        if t is None:
            t = record_op(VariableRead(self), [], list(self.shape), self.dtype)
            cache[id(self)] = t
        return t

    def numpy(self) -> np.ndarray:
        """The current value (a copy)."""
        return self._layer._own_weights()[self._index].copy()

    @property
    def value(self) -> np.ndarray:
        return self.numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        v = self.numpy()
        return v if dtype is None else v.astype(dtype)

    def assign(self, value: Any) -> None:
        if tracing():
            raise NotImplementedError(
                f"Variable '{self.path}': assign() inside a traced call is not supported by kerust (the graph runs "
                "without Python); compute the new value as a layer output instead")
        values = [w.copy() for w in self._layer._own_weights()]
        new = np.asarray(value, dtype=np.float32)
        if new.shape != self.shape:
            raise ValueError(f"Variable '{self.path}': expected a value of shape {self.shape}, received {new.shape}")
        values[self._index] = new
        self._layer._set_own_weights(values)

    def __repr__(self) -> str:
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    def __getitem__(self, key: Any) -> Any:
        if tracing():
            return _ops()._getitem(self._symbolic(), key)
        return self.numpy()[key]


def _ops() -> Any:
    from . import ops

    return ops


def check_shape(who: str, shape: Any) -> Tuple[int, ...]:
    """`shape` as a tuple of ints; `who` names the call in errors ("Layer 'scale': add_weight")."""
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{who}: cannot convert {shape!r} to a shape") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"{who}: cannot convert '{dims}' to a shape. Negative "
                         "dimensions are not allowed (every dimension must be a non-negative int).")
    return tuple(int(d) for d in dims)


def initializer_config(who: str, initializer: Any, dtype: str) -> Any:
    """The engine's form of an initializer argument (a name or a `{"class_name", "config"}` dict)."""
    from . import _core, _json

    if initializer is None:
        initializer = "glorot_uniform" if dtype.startswith("float") else "zeros"
    if hasattr(initializer, "get_config") and not isinstance(initializer, dict):
        initializer = {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    if not isinstance(initializer, (str, dict)):
        raise ValueError(f"{who}: could not interpret initializer identifier: "
                         f"{initializer!r}")
    try:
        _core.validate("initializer", _json.dumps(initializer))
    except ValueError as e:
        raise ValueError(f"{who}: could not interpret initializer identifier: "
                         f"{initializer!r} ({e})") from None
    return initializer


def free_name(taken: List[str], name: Optional[str]) -> str:
    if name is not None:
        return str(name)
    base = "variable"
    n = 0
    while (base if n == 0 else f"{base}_{n}") in taken:
        n += 1
    return base if n == 0 else f"{base}_{n}"


class StateVariable(Variable):
    """A variable of a `keras.metrics.Metric` (``add_variable``): its value lives here, in NumPy. Outside a trace,
    ops and ``assign`` work on that value; inside the trace of ``update_state``, ``assign`` records the new value
    as a graph tensor, which later reads in the same trace return (the engine then runs the trace per batch)."""

    def __init__(self, owner: Any, value: np.ndarray, dtype: str, name: str) -> None:
        self._owner = owner
        self._value = value
        self.shape = tuple(value.shape)
        self.dtype = dtype
        self.name = name
        self.trainable = False
        self._regularizer = None
        # the Weights unit and slot that read it in the graph being traced (see `metrics._trace_stateful`)
        self._layer: Any = None
        self._index = 0

    @property
    def path(self) -> str:
        return f"{self._owner.name}/{self.name}"

    def _config(self) -> dict:
        return {"shape": list(self.shape), "initializer": "zeros", "trainable": False, "regularizer": None}

    def _symbolic(self) -> Any:
        assigned = _stack()[-1].get(("assigned", id(self)))
        return assigned if assigned is not None else super()._symbolic()

    def numpy(self) -> np.ndarray:
        return self._value.copy()

    def assign(self, value: Any) -> None:
        from ._graph import KerasTensor

        if tracing():
            t = _ops()._as_symbolic(value)
            if tuple(t.shape) != self.shape:
                raise ValueError(f"Variable '{self.path}': assign() needs a value of shape {self.shape}, received "
                                 f"one of shape {t.shape}")
            if t.dtype != self.dtype:
                t = _ops().cast(t, self.dtype)
            _stack()[-1][("assigned", id(self))] = t
            return
        if isinstance(value, KerasTensor):
            raise TypeError(f"Variable '{self.path}': cannot assign a symbolic tensor outside of a traced "
                            "update_state")
        new = np.asarray(_ops().convert_to_numpy(value), dtype=self._value.dtype)
        if new.shape != self.shape:
            raise ValueError(f"Variable '{self.path}': assign() needs a value of shape {self.shape}, received one of "
                             f"shape {new.shape}")
        self._value = new.copy()

    def __repr__(self) -> str:
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, value={self._value}>"

    def assign_add(self, value: Any) -> None:
        self.assign(_ops().add(self, value))

    def assign_sub(self, value: Any) -> None:
        self.assign(_ops().subtract(self, value))

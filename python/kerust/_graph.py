"""Symbolic tensors and the graph they record: what ``keras.Input`` returns and what calling a layer on symbolic
tensors yields. A model is traced once from these records into the plain-data graph the Rust engine runs
(``flatten``); no Python runs per batch.

The topological sort (``map_graph``) follows Keras's own rules, since it fixes the order of ``model.layers`` and
so of ``model.weights``: nodes are found depth-first from the outputs, layers are ordered by depth (furthest
from the outputs first) and, within one depth, by the order the search first met them.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple

_tensor_ids = itertools.count()


def _user_line() -> str:
    """`file:line` of the innermost caller outside kerust (the user's code being traced)."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame: Any = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame = frame.f_back
    if frame is None:
        return "your code"
    return f"{frame.f_code.co_filename}, line {frame.f_lineno}"


class TensorOperators:
    """Python's operators as `keras.ops` calls, for symbolic tensors and variables alike (`ne` is element-wise;
    `==` stays identity on KerasTensor, as in Keras)."""

    def __add__(self, o: Any) -> Any:
        return _ops().add(self, o)

    def __radd__(self, o: Any) -> Any:
        return _ops().add(o, self)

    def __sub__(self, o: Any) -> Any:
        return _ops().subtract(self, o)

    def __rsub__(self, o: Any) -> Any:
        return _ops().subtract(o, self)

    def __mul__(self, o: Any) -> Any:
        return _ops().multiply(self, o)

    def __rmul__(self, o: Any) -> Any:
        return _ops().multiply(o, self)

    def __truediv__(self, o: Any) -> Any:
        return _ops().divide(self, o)

    def __rtruediv__(self, o: Any) -> Any:
        return _ops().divide(o, self)

    def __floordiv__(self, o: Any) -> Any:
        return _ops().floor_divide(self, o)

    def __rfloordiv__(self, o: Any) -> Any:
        return _ops().floor_divide(o, self)

    def __mod__(self, o: Any) -> Any:
        return _ops().mod(self, o)

    def __rmod__(self, o: Any) -> Any:
        return _ops().mod(o, self)

    def __pow__(self, o: Any) -> Any:
        return _ops().power(self, o)

    def __rpow__(self, o: Any) -> Any:
        return _ops().power(o, self)

    def __matmul__(self, o: Any) -> Any:
        return _ops().matmul(self, o)

    def __rmatmul__(self, o: Any) -> Any:
        return _ops().matmul(o, self)

    def __neg__(self) -> Any:
        return _ops().negative(self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return _ops().abs(self)

    def __invert__(self) -> Any:
        return _ops().logical_not(self)

    def __and__(self, o: Any) -> Any:
        return _ops().logical_and(self, o)

    def __rand__(self, o: Any) -> Any:
        return _ops().logical_and(o, self)

    def __or__(self, o: Any) -> Any:
        return _ops().logical_or(self, o)

    def __ror__(self, o: Any) -> Any:
        return _ops().logical_or(o, self)

    def __xor__(self, o: Any) -> Any:
        return _ops().logical_xor(self, o)

    def __ne__(self, o: Any) -> Any:
        return _ops().not_equal(self, o)

    def __lt__(self, o: Any) -> Any:
        return _ops().less(self, o)

    def __le__(self, o: Any) -> Any:
        return _ops().less_equal(self, o)

    def __gt__(self, o: Any) -> Any:
        return _ops().greater(self, o)

    def __ge__(self, o: Any) -> Any:
        return _ops().greater_equal(self, o)



class KerasTensor(TensorOperators):
    """A symbolic tensor: a shape (``None`` for the batch axis), a dtype, and the layer call that made it.

    ``_dims`` is the shape as the engine's shape rules see it: a size, or -m for m times the batch size (a
    reshape can fold the batch into another axis); ``shape`` shows both as ``None``."""

    def __init__(self, shape: Sequence[Optional[int]], dtype: str = "float32", name: Optional[str] = None,
                 dims: Optional[Sequence[int]] = None) -> None:
        if dims is None:
            dims = [-1 if d is None else int(d) for d in shape]
        self._dims: List[int] = list(dims)
        self.shape: Tuple[Optional[int], ...] = tuple(None if d < 0 else d for d in self._dims)
        self.dtype = dtype
        if name is None:
            n = next(_tensor_ids)
            name = "keras_tensor" if n == 0 else f"keras_tensor_{n}"
        self.name = name
        # (layer, index of the node in layer._inbound_nodes, index of this tensor in the node's outputs)
        self._keras_history: Tuple[Any, int, int] = (None, 0, 0)
        # Keras's mask: a symbolic bool tensor (batch, steps) saying which steps count, or None
        self._keras_mask: Any = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, sparse=False, ragged=False, name={self.name}>"

    def __bool__(self) -> bool:
        raise TypeError(
            f"A symbolic KerasTensor has no value, so it cannot be used as a Python bool (in an `if`, `and`, `or` or "
            f"`not`), at {_user_line()}. kerust traces `call` once into a graph: choose values with "
            "`keras.ops.where(condition, x, y)` or branches with `keras.ops.cond(pred, true_fn, false_fn)`."
        )

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"A symbolic KerasTensor cannot be converted to a NumPy array (at {_user_line()}): it has no value "
            "until the model runs. Use `keras.ops` functions on it instead of NumPy ones (`keras.ops.mean`, not "
            "`np.mean`)."
        )

    def __len__(self) -> int:
        if not self.shape or self.shape[0] is None:
            raise TypeError(f"len() of a symbolic tensor of shape {self.shape} is unknown (at {_user_line()})")
        return int(self.shape[0])

    def __iter__(self) -> Any:
        raise TypeError(f"A symbolic tensor cannot be iterated over (at {_user_line()}); use keras.ops.split or "
                        "indexing")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: Any) -> bool:  # as Keras: identity, so tensors stay usable as dict keys
        return self is other

    def numpy(self) -> Any:
        return self.__array__()

    def __getitem__(self, key: Any) -> Any:
        return _ops()._getitem(self, key)

    @property
    def T(self) -> Any:
        return _ops().transpose(self)


def _ops() -> Any:
    from . import ops

    return ops


_deriving = [False]


class deriving:
    """Within it, recorded ops are marked derived: they compute a mask, which a model's config leaves out."""

    def __enter__(self) -> None:
        self._before = _deriving[0]
        _deriving[0] = True

    def __exit__(self, *exc: Any) -> None:
        _deriving[0] = self._before


class Operation:
    """One `keras.ops` call on symbolic tensors (a node of the graph that is no layer): its engine config."""

    class_name = "Op"
    trainable = True
    _is_operation = True

    def __init__(self, config: Dict[str, Any]) -> None:
        from ._naming import unique_name

        self.name = unique_name(str(config["op"]))
        self.config = config
        self._inbound_nodes: list = []
        # made by kerust to compute a mask (not written in a model's config: loading makes it again)
        self._derived = _deriving[0]

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, **self.config}

    def __repr__(self) -> str:
        return f"<Operation {self.config['op']} name={self.name}>"


def record_op(operation: Any, inputs: List[KerasTensor], dims: Sequence[int], dtype: str) -> KerasTensor:
    """Record one call of an operation (an op, or a variable read) and return its symbolic output."""
    out = KerasTensor([], dtype=dtype, dims=dims)
    node = Node(operation, list(inputs), [out])
    operation._inbound_nodes.append(node)
    out._keras_history = (operation, len(operation._inbound_nodes) - 1, 0)
    return out


class Node:
    """One call of a layer: its input tensors (``call_args``: one tensor or a list, as given), its outputs.

    A recurrent layer's node may also read ``call_kwargs`` tensors (``initial_state``) and, last, a mask
    (``mask_input``: the mask the engine receives; ``mask_kwarg``: it was given as ``mask=``, not found on the
    input)."""

    def __init__(self, operation: Any, call_args: Any, outputs: List[KerasTensor], call_kwargs: Optional[dict] = None,
                 mask: Any = None, mask_kwarg: bool = False) -> None:
        self.operation = operation
        self.call_args = call_args
        self.outputs = outputs
        self.call_kwargs: Dict[str, Any] = dict(call_kwargs or {})
        self.input_tensors: List[KerasTensor] = list(call_args) if isinstance(call_args, (list, tuple)) else (
            [] if call_args is None else [call_args])
        self.input_tensors += flat_tensors(list(self.call_kwargs.values()))
        self.mask_input = mask is not None
        self.mask_kwarg = mask_kwarg
        if mask is not None:
            self.input_tensors.append(mask)
        self.is_input = call_args is None
        # a custom layer's call: the traced subgraph it runs, and the arguments it was traced with
        self._trace: Any = None
        self._trace_args: Any = None
        # a custom layer's call that reads masks found on its inputs: the tensors it was given (the masks left out)
        self._call_tensors: Optional[List[KerasTensor]] = None

    @property
    def call_tensors(self) -> List[KerasTensor]:
        """The tensors the call was given (a mask found on the input, which Keras makes again, left out)."""
        if self._call_tensors is not None:
            return list(self._call_tensors)
        if self.mask_input and not self.mask_kwarg:
            return self.input_tensors[:-1]
        return self.input_tensors

    @property
    def parent_nodes(self) -> List["Node"]:
        parents = []
        for t in self.input_tensors:
            layer, index, _ = t._keras_history
            if layer is not None:
                parents.append(layer._inbound_nodes[index])
        return parents


def record_call(layer: Any, call_args: Any, out_shapes: List[Tuple[Optional[int], ...]],
                call_kwargs: Optional[dict] = None, mask: Any = None, mask_kwarg: bool = False) -> List[KerasTensor]:
    """Record ``layer(call_args)`` as a new node of the layer and return its symbolic outputs."""
    outputs = [KerasTensor(s) for s in out_shapes]
    node = Node(layer, call_args, outputs, call_kwargs, mask, mask_kwarg)
    index = len(layer._inbound_nodes)
    layer._inbound_nodes.append(node)
    for i, t in enumerate(outputs):
        t._keras_history = (layer, index, i)
    return outputs


def flat_tensors(structure: Any) -> List[KerasTensor]:
    if isinstance(structure, dict):
        return [t for v in structure.values() for t in flat_tensors(v)]
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in flat_tensors(v)]
    return [structure]


def map_graph(inputs: List[KerasTensor], outputs: List[KerasTensor],
              check_names: bool = True) -> Tuple[List[Node], List[Any]]:
    """(nodes in a topological order from inputs to outputs, layers in Keras's ``model.layers`` order). Raises
    Keras's "Graph disconnected" error for a tensor the inputs cannot reach."""
    finished: set = set()
    in_progress: set = set()
    ordered: List[Node] = []
    layer_index: Dict[int, int] = {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor: KerasTensor) -> None:
        layer, node_index, _ = tensor._keras_history
        if layer is None:
            raise ValueError(f"Tensor {tensor} was not produced by a kerust layer (use kerust.Input and layers)")
        node = layer._inbound_nodes[node_index]
        if id(node) in finished:
            return
        if id(node) in in_progress:
            raise ValueError(f"Tensor {tensor} from operation '{layer.name}' is part of a cycle.")
        layer_index.setdefault(id(layer), len(layer_index))
        in_progress.add(id(node))
        if not node.is_input and id(tensor) not in input_ids:
            for t in node.input_tensors:
                visit(t)
        finished.add(id(node))
        in_progress.discard(id(node))
        ordered.append(node)

    for t in outputs:
        visit(t)

    node_depth: Dict[int, int] = {}
    layer_depth: Dict[int, int] = {}
    layers_by_id: Dict[int, Any] = {}
    for node in reversed(ordered):
        depth = node_depth.setdefault(id(node), 0)
        depth = max(depth, layer_depth.get(id(node.operation), 0))
        layer_depth[id(node.operation)] = depth
        layers_by_id[id(node.operation)] = node.operation
        node_depth[id(node)] = depth
        for parent in node.parent_nodes:
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:  # inputs that do not reach an output still belong to the model
        layer = t._keras_history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            layer_index[id(layer)] = -1
            layers_by_id[id(layer)] = layer
            node_depth[id(layer._inbound_nodes[0])] = 0
            ordered.insert(0, layer._inbound_nodes[0])

    layer_order = sorted(layers_by_id, key=lambda lid: (-layer_depth[lid], layer_index[lid]))
    layers = [layers_by_id[lid] for lid in layer_order]
    nodes = sorted(ordered, key=lambda n: -node_depth[id(n)])  # stable: ties keep the search order

    computable = {id(t) for t in inputs}
    seen_ok: List[str] = []
    for node in nodes:
        if node.is_input:
            continue  # an Input's tensor is computable only if it is one of `inputs`
        for t in node.input_tensors:
            if id(t) not in computable:
                raise ValueError(
                    f"Graph disconnected: cannot find parent for tensor {t} at layer '{node.operation.name}'. The "
                    f"model's inputs are {[i.name for i in inputs]}. The following previous layers were accessed "
                    f"without issue: {seen_ok}")
        if not node.is_input:
            seen_ok.append(node.operation.name)
        for t in node.outputs:
            computable.add(id(t))
    names = [layer.name for layer in layers if not getattr(layer, "_is_operation", False)] if check_names else []
    for name in names:
        if names.count(name) != 1:
            raise ValueError(f'The name "{name}" is used {names.count(name)} times in the model. All layer names '
                             "should be unique.")
    return nodes, layers

"""Custom layers: a subclass of ``keras.layers.Layer`` with its own ``call``. Calling one on symbolic tensors
traces ``call`` once per input signature (and ``training`` value) with placeholder tensors: built-in layers and
``keras.ops`` record nodes, variables from ``add_weight`` become variable reads. The traced subgraph is inlined
into the model's engine graph (``flatten_node``), so training runs it without Python.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Dict, List, Optional, Tuple

from ._graph import KerasTensor, Node, Operation, flat_tensors, map_graph
from ._variable import VariableRead, trace_scope


class Placeholder:
    """The input of a traced call (like an InputLayer, without taking a name from the user's counters)."""

    _is_input_layer = True
    _is_placeholder = True
    class_name = "InputLayer"

    def __init__(self, like: KerasTensor) -> None:
        self.name = "placeholder"
        self._inbound_nodes: list = []
        self.tensor = KerasTensor([], dtype=like.dtype, dims=like._dims)
        self._inbound_nodes.append(Node(self, None, [self.tensor]))
        self.tensor._keras_history = (self, 0, 0)


class Trace:
    """One traced call: its placeholder inputs, its outputs (as `call` returned them) and its nodes."""

    def __init__(self, inputs: List[KerasTensor], outputs: Any, losses: Optional[List[KerasTensor]] = None) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.flat_outputs: List[KerasTensor] = flat_tensors(outputs)
        # tensors `add_loss` added during the call: their sums join the training loss
        self.losses: List[KerasTensor] = list(losses or [])
        nodes, operations = map_graph(inputs, self.flat_outputs + self.losses, check_names=False)
        self.nodes = [n for n in nodes if not n.is_input]
        self.operations = operations

    def signature(self) -> str:
        """The graph as plain data, to tell whether two traces compute the same thing."""
        ids: Dict[int, int] = {id(t): i for i, t in enumerate(self.inputs)}
        rows = []
        for n in self.nodes:
            op = n.operation
            if isinstance(op, Operation):
                what: Any = {k: v for k, v in op.config.items()}
            elif isinstance(op, VariableRead):
                what = ["var", id(op.variable)]
            else:
                sub = getattr(n, "_trace", None)
                what = ["layer", id(op), sub.signature() if sub is not None else None]
            rows.append([what, [ids.get(id(t), -1) for t in n.input_tensors]])
            for t in n.outputs:
                ids[id(t)] = len(ids)
        rows.append([ids.get(id(t), -1) for t in self.flat_outputs])
        rows.append([ids.get(id(t), -1) for t in self.losses])
        return json.dumps(rows, default=str)


def is_custom(layer: Any) -> bool:
    """A user layer: it defines its own `call` (kerust's built-in layers are configs the engine runs)."""
    from .layers import Layer

    return isinstance(layer, Layer) and type(layer).call is not Layer.call


def accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _replace(structure: Any, fn: Any) -> Any:
    if isinstance(structure, KerasTensor):
        return fn(structure)
    if isinstance(structure, list):
        return [_replace(v, fn) for v in structure]
    if isinstance(structure, tuple):
        return tuple(_replace(v, fn) for v in structure)
    if isinstance(structure, dict):
        return {k: _replace(v, fn) for k, v in structure.items()}
    return structure


def _all_layers(layer: Any, seen: Optional[set] = None) -> List[Any]:
    """The layer and every layer tracked inside it, recursively."""
    seen = seen if seen is not None else set()
    if id(layer) in seen:
        return []
    seen.add(id(layer))
    out = [layer]
    for sub in getattr(layer, "_tracked_layers", lambda: [])():
        out.extend(_all_layers(sub, seen))
    return out


def trace(layer: Any, args: tuple, kwargs: dict, training: Any) -> Trace:
    """Run `layer.call` on placeholders for the symbolic tensors among `args`/`kwargs`."""
    placeholders: List[KerasTensor] = []

    def swap(t: KerasTensor) -> KerasTensor:
        p = Placeholder(t).tensor
        placeholders.append(p)
        return p

    args2 = _replace(args, swap)
    kwargs2 = _replace(kwargs, swap)
    if accepts(layer.call, "training"):
        kwargs2["training"] = training
    touched = _all_layers(layer)
    before = {id(x): len(x._inbound_nodes) for x in touched}
    try:
        with trace_scope() as scope:
            out = layer.call(*args2, **kwargs2)
            out = _replace(_constants_to_tensors(out), lambda t: t)
        losses = list(scope.get("losses", []))
    except BaseException:
        for x in touched:  # the failed call leaves no nodes behind
            del x._inbound_nodes[before[id(x)]:]
        raise
    if not flat_tensors(out) or not all(isinstance(t, KerasTensor) for t in flat_tensors(out)):
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}): `call` must return tensors (a tensor, or a "
                        f"list, tuple or dict of them), it returned {out!r}")
    return Trace(placeholders, out, losses)


def _constants_to_tensors(out: Any) -> Any:
    from . import ops
    from ._variable import Variable

    def conv(v: Any) -> Any:
        if isinstance(v, Variable):
            return v._symbolic()
        if isinstance(v, (list, tuple)):
            return type(v)(conv(x) for x in v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, KerasTensor):
            return v
        return ops._as_symbolic(v) if v is not None else v

    return conv(out)


def _key(args: tuple, kwargs: dict, training: Any) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, KerasTensor):
            return ["T", v._dims, v.dtype]
        if isinstance(v, (list, tuple)):
            return [type(v).__name__, [enc(x) for x in v]]
        if isinstance(v, dict):
            return ["dict", sorted((str(k), enc(x)) for k, x in v.items())]
        return repr(v)

    return json.dumps([enc(args), enc(kwargs), repr(training)])


def call_has_arg(layer: Any, name: str) -> bool:
    """Keras's `_call_has_mask_arg`: `call` names the argument (a `**kwargs` does not count)."""
    try:
        return name in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def call_symbolic(layer: Any, args: tuple, kwargs: dict, found_masks: Tuple[str, ...] = ()) -> Any:
    """`layer(*args, **kwargs)` with symbolic tensors: build on first call, trace, record one node.

    Masks reach `call` as Keras passes them: `found_masks` names the keyword arguments that hold masks found on
    the inputs (Keras's `mask` / `<arg>_mask`, filled in by `__call__`); they are inputs of the node and of the
    trace but not arguments of the call a config records. A `mask=` the caller gave is recorded as Keras does."""
    training = kwargs.pop("training", None)
    who = f"Layer '{layer.name}' ({type(layer).__name__})"
    given_mask = kwargs.get("mask") if "mask" not in found_masks else None
    if given_mask is not None and not isinstance(given_mask, KerasTensor):
        if not isinstance(given_mask, (list, tuple)) or not all(
                m is None or isinstance(m, KerasTensor) for m in given_mask):
            raise TypeError(f"{who}: `mask` must be a symbolic tensor (or a list of them), received {given_mask!r}")
        raise ValueError(f"{who}: a list of masks given as `mask=` is not supported by kerust yet (masks found on "
                         "the inputs reach `call` as a list; or pass one mask tensor)")
    if given_mask is not None and not call_has_arg(layer, "mask") and not accepts(layer.call, "mask"):
        raise TypeError(f"{who}: `call` takes no `mask` argument, but the layer was called with mask={given_mask!r}")
    # the node's tensors: the call's own, then a given mask, then the masks found on the inputs (the trace's
    # placeholders come in the order of `kwargs`, so they are ordered the same way)
    own = {k: v for k, v in kwargs.items() if k != "mask" and k not in found_masks}
    kwargs = {**own, **{k: kwargs[k] for k in found_masks if k in kwargs}}
    if given_mask is not None:
        kwargs["mask"] = given_mask
    inputs = flat_tensors([list(args), list(own.values())])
    inputs = [t for t in inputs if isinstance(t, KerasTensor)]
    mask_tensors = [t for k in found_masks for t in flat_tensors(kwargs.get(k)) if isinstance(t, KerasTensor)]
    if not layer.built:
        first = args[0] if args else next(iter(kwargs.values()))
        shapes = _replace(first, lambda t: t.shape)
        n_vars = len(layer._variables)
        try:
            layer.build(shapes)
        except BaseException:
            del layer._variables[n_vars:]
            raise
        layer.built = True
    key = _key(args, kwargs, training)
    cache = layer._traces
    tr = cache.get(key)
    if tr is None:
        tr = trace(layer, args, kwargs, False if training is None else training)
        cache[key] = tr
    outs = [KerasTensor([], dtype=t.dtype, dims=t._dims) for t in tr.flat_outputs]
    node = Node(layer, inputs if len(inputs) != 1 else inputs[0], outs, mask=given_mask,
                mask_kwarg=given_mask is not None)
    if mask_tensors:  # masks found on the inputs: read by the call, made again on loading (not in configs)
        node._call_tensors = list(node.input_tensors)
        node.input_tensors[len(inputs):len(inputs)] = mask_tensors
        node.mask_input = True
    node._trace = tr
    node._trace_args = (args, kwargs, training)
    layer._inbound_nodes.append(node)
    for i, t in enumerate(outs):
        t._keras_history = (layer, len(layer._inbound_nodes) - 1, i)
    it = iter(outs)
    return _replace(tr.outputs, lambda _t: next(it))


def node_trace(layer: Any, node: Any, training_too: bool = True) -> Tuple[Trace, Optional[Trace]]:
    """The trace a node runs in inference and, when `call` reads `training` and the training-mode trace
    differs, that one too (None otherwise)."""
    tr: Trace = node._trace
    args, kwargs, training = node._trace_args
    if training is not None or not training_too or not accepts(layer.call, "training"):
        return tr, None
    key = "train:" + _key(args, kwargs, None)
    tt = layer._traces.get(key)
    if tt is None:
        tt = trace(layer, args, kwargs, True)
        layer._traces[key] = tt
    if tt.signature() == tr.signature():
        return tr, None
    return tr, tt


def flatten_node(layer: Any, node: Any, flat: Any, ins: List[int]) -> List[int]:
    """Inline one call of a custom layer into `flat`; returns the ids of its outputs."""
    infer, train = node_trace(layer, node)
    before = len(flat.added_losses)
    outs = _inline(infer, flat, ins)
    if train is None:
        return outs
    del flat.added_losses[before:]  # both branches run; the training trace's added losses are the ones that count
    touts = _inline(train, flat, ins)
    return [flat.add_select(t, i) for t, i in zip(touts, outs)]


def _inline(tr: Trace, flat: Any, ins: List[int]) -> List[int]:
    from .models import _flatten_nodes

    ids = _flatten_nodes(tr.nodes, tr.inputs, tr.flat_outputs + tr.losses, flat, ins)
    n = len(tr.flat_outputs)
    flat.added_losses.extend(ids[n:])
    return ids[:n]


def used_layers(layer: Any) -> List[Any]:
    """Layers that the traces of `layer` call (in the order they were tracked, then first use)."""
    from .layers import Layer
    from .models import Model

    used: Dict[int, Any] = {}
    for tr in list(layer._traces.values()):
        for op in tr.operations:
            if isinstance(op, (Layer, Model)) and op is not layer:
                used.setdefault(id(op), op)
    ordered = [sub for sub in layer._tracked_layers() if id(sub) in used]
    ordered += [op for op in used.values() if all(op is not s for s in ordered)]
    return ordered

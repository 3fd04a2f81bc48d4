"""Keras layers. Each is plain configuration (Keras's ``get_config()`` shape); the Rust model owns the weights.

Arguments are checked at construction by the engine's own config parser, so a bad value fails here, naming
the layer, and not later inside ``fit``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _core
from . import regularizers as regularizers_module
from . import constraints as constraints_module
from ._naming import to_snake_case, unique_name
from . import _json

IntOrPair = Union[int, Sequence[int]]

_BASE_KWARGS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape", "input_dim", "batch_size")


def _activation_name(value: Any) -> Optional[str]:
    if value is None:
        return "linear"
    if isinstance(value, str):
        # Keras's aliases: its configs name the function itself (keras.activations.swish is silu)
        return {"swish": "silu", "hard_swish": "hard_silu"}.get(value, value)
    name = getattr(value, "__name__", None)
    if callable(value) and isinstance(name, str):
        return name
    raise TypeError(f"activation must be a name such as 'relu' or None; received {value!r}")


def _pair(value: IntOrPair) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _sample_shape(t: Any, who: str) -> list:
    dims = list(t.shape[1:])
    if any(d is None for d in dims):
        raise ValueError(f"{who}: kerust needs fully defined input shapes (only the batch axis may be None), "
                         f"received {t.shape}")
    return [int(d) for d in dims]


def _call_layer(layer: Any, inputs: Any, training: Any, mask: Any = None, extra: Optional[dict] = None) -> Any:
    """`layer(inputs)` for any layer or model: symbolic tensors record a node; arrays run eagerly. `extra`: tensors
    given by keyword (a recurrent layer's `initial_state`); `mask`: the `mask=` argument."""
    from ._graph import KerasTensor, flat_tensors, record_call
    from ._masking import check_mask, destroyed_warning, mask_of, set_mask

    extra = {k: v for k, v in (extra or {}).items() if v is not None}
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    leaves = flat_tensors([inputs, list(extra.values()), [] if mask is None else [mask]])
    symbolic = [isinstance(t, KerasTensor) for t in leaves]
    who = f"{layer.class_name} '{layer.name}'"
    if layer._expects_list() and not isinstance(inputs, (list, tuple)):
        raise ValueError(f"{who}: a merge layer should be called on a list of inputs. Received: inputs={inputs!r} "
                         "(not a list of tensors)")
    if any(symbolic):
        if not all(symbolic):
            raise TypeError(f"{who}: inputs mix symbolic tensors (from kerust.Input) and arrays; pass one kind")
        if not layer._expects_list() and len(items) != 1 and not getattr(layer, "_is_model", False):
            raise ValueError(f"Layer '{layer.name}' expects 1 input(s), but it received {len(items)} input tensors.")
        previous = mask if mask is not None else mask_of(inputs)
        single = previous[0] if isinstance(previous, list) and not layer._expects_list() else previous
        # as Keras: a call with more tensors than its input (an `initial_state`) reads no mask it is not given
        given = mask if extra else single
        engine_mask = given if getattr(layer, "_takes_mask", False) and not isinstance(given, list) else None
        if engine_mask is not None:
            check_mask(who, engine_mask, tuple(items[0].shape[:2]))
        engine_items = items + flat_tensors(list(extra.values())) + ([engine_mask] if engine_mask is not None else [])
        shapes = layer._symbolic_output_shapes(engine_items, masked=engine_mask is not None)
        # (a `mask=` the layer does not read is not one of the node's tensors: configs do not write it)
        outs = record_call(layer, inputs, shapes, extra, engine_mask, mask is not None and engine_mask is not None)
        out_mask = layer._output_mask(inputs, previous)
        has_mask = any(m is not None for m in (previous if isinstance(previous, list) else [previous]))
        if out_mask is None and has_mask and not layer._uses_mask():
            destroyed_warning(layer)
        set_mask(outs, out_mask)
        return outs[0] if len(outs) == 1 else outs
    if extra or mask is not None:
        return layer._eager_call_with(items, extra, mask)
    return layer._eager_call(items, training)


class _LayerCalls:
    """What every layer and model shares for calls: output shapes and eager runs through a one-node engine."""

    def _symbolic_output_shapes(self: Any, items: list, masked: bool = False) -> list:
        who = f"{self.class_name} '{self.name}'"
        inputs = [_sample_shape(t, who) for t in items]
        nodes = [{"layer": 0, "inputs": list(range(len(items))), "mask": masked}]
        if self._inbound_nodes and not self._expects_list():
            # called before: the engine checks that this call fits the weights of the first call
            node = self._inbound_nodes[0]
            first = [_sample_shape(t, who) for t in node.input_tensors]
            nodes.insert(0, {"layer": 0, "inputs": [len(inputs) + i for i in range(len(first))],
                             "mask": getattr(node, "mask_input", False)})
            inputs += first
        spec = {"layers": [{"class_name": self.class_name, "config": self.get_config()}], "inputs": inputs,
                "nodes": nodes, "outputs": [len(inputs) + len(nodes) - 1]}
        shapes = _core.graph_shapes(_json.dumps(spec))
        return [(None, *s) for s in self._output_pieces(shapes[-1])]

    def _output_pieces(self: Any, engine_shape: list) -> list:
        """The sample shapes of the call's outputs, from the engine's one output (several outputs come packed
        into one tensor: see `_unpack`)."""
        return [tuple(engine_shape)]

    def _output_mask(self: Any, inputs: Any, mask: Any) -> Any:
        """Keras's `compute_mask` of a built-in layer: none, unless it supports masking (then it passes on)."""
        return None

    def _uses_mask(self: Any) -> bool:
        """Whether the layer reads the mask it is given (so dropping it warns nobody)."""
        return bool(getattr(self, "_takes_mask", False))

    def _eager_call(self: Any, items: list, training: Any) -> Any:
        if training:
            raise ValueError(f"{self.class_name} '{self.name}': kerust runs training steps through fit / "
                             "train_on_batch; call layers eagerly with training=False")
        from ._arrays import as_float32
        from .models import Functional
        from ._graph import record_call

        arrays = [as_float32(f"{self.name} input {i}", x) for i, x in enumerate(items)]
        # a throwaway functional model around this one call: it pulls the layer's weights from its home, and
        # becomes the home of a layer that had none (so the weights made here are the layer's from now on)
        tensors = [Input(shape=a.shape[1:]) for a in arrays]
        before = len(self._inbound_nodes)
        try:
            outs = record_call(self, tensors if self._expects_list() else tensors[0],
                               self._symbolic_output_shapes(tensors))
            model = Functional(tensors if len(tensors) > 1 else tensors[0], outs[0] if len(outs) == 1 else outs,
                               name=f"{self.name}_eager")
            result = model.predict_on_batch(arrays if len(arrays) > 1 else arrays[0])
        finally:
            del self._inbound_nodes[before:]
        return result

    def _eager_call_with(self: Any, items: list, extra: dict, mask: Any) -> Any:
        """An eager call with keyword tensors or a mask: the same call on Inputs of their shapes, run once."""
        from ._arrays import as_float32
        from .models import Functional

        def placeholder(what: str, x: Any) -> Any:
            a = as_float32(f"{self.name} {what}", x)
            return a, Input(shape=a.shape[1:])

        pairs = [placeholder(f"input {i}", x) for i, x in enumerate(items)]
        extra_pairs = {k: [placeholder(k, x) for x in (v if isinstance(v, (list, tuple)) else [v])]
                       for k, v in extra.items()}
        mask_pair = placeholder("mask", mask) if mask is not None else None
        sym_in = [t for _, t in pairs]
        kw = {k: [t for _, t in v] for k, v in extra_pairs.items()}
        before = len(self._inbound_nodes)
        try:
            outs = self(sym_in if self._expects_list() else sym_in[0], mask=mask_pair[1] if mask_pair else None,
                        **kw)
            arrays = [a for a, _ in pairs] + [a for v in extra_pairs.values() for a, _ in v]
            tensors = sym_in + [t for v in kw.values() for t in v]
            if mask_pair is not None:
                arrays.append(mask_pair[0])
                tensors.append(mask_pair[1])
            model = Functional(tensors, outs, name=f"{self.name}_eager")
            return model.predict_on_batch(arrays)
        finally:
            del self._inbound_nodes[before:]


class Layer(_LayerCalls):
    """Base of every kerust layer."""

    _keras_class: Optional[str] = None
    # Keras's `supports_masking`: the layer hands the mask of its input on to its output
    supports_masking = False
    # call arguments, besides the inputs, that are tensors the engine reads (a recurrent layer's initial_state)
    _call_tensor_kwargs: tuple = ()

    def __init__(
        self,
        name: Optional[str] = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        input_dim: Optional[int] = None,
        batch_size: Optional[int] = None,
        activity_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("autocast", None)
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}"
            )
        if isinstance(dtype, dict):  # a DTypePolicy as Keras writes it in configs
            dtype = (dtype.get("config") or {}).get("name", dtype.get("class_name"))
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: kerust computes in float32; received dtype={dtype!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string, received {name!r}")
        self.name: str = name or unique_name(to_snake_case(self.class_name))
        self._trainable = bool(trainable)
        # Keras's activity regularizer: its penalty of each output joins the loss (see models._flatten_nodes)
        self.activity_regularizer = regularizers_module.get_activity(activity_regularizer,
                                                                     f"{self.class_name} '{self.name}'")
        self._input_shape_arg: Optional[tuple] = None
        if input_shape is not None:
            self._input_shape_arg = tuple(input_shape)
        elif batch_input_shape is not None:
            self._input_shape_arg = tuple(batch_input_shape)[1:]
        elif input_dim is not None:
            self._input_shape_arg = (input_dim,)
        # see kerust.models: the model whose engine holds the current weights, their version, and copies kept
        # when no model holds them
        self._home: Any = None
        self._version = 0
        self._detached: Optional[list] = None
        self._inbound_nodes: list = []
        # custom layers: their add_weight variables and traced calls (see kerust._custom)
        self._variables: list = []
        self._traces: dict = {}
        self.built = False
        self._internal_attrs = set(self.__dict__) | {"_internal_attrs"}

    # ---- custom layers: subclasses that define `call` ------------------------------------------------------
    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """The layer's computation, for subclasses to define (kerust traces it into the engine's graph)."""
        raise NotImplementedError(f"Layer {type(self).__name__} does not have a `call()` method implemented.")

    def build(self, input_shape: Any) -> None:
        """Create the layer's weights for inputs of `input_shape` (subclasses call `add_weight` here)."""
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        raise NotImplementedError(f"Layer {type(self).__name__}: kerust infers output shapes by tracing `call`")

    def add_weight(self, shape: Any = None, initializer: Any = None, dtype: Any = None, trainable: bool = True,
                   autocast: bool = True, regularizer: Any = None, constraint: Any = None,
                   aggregation: str = "none", overwrite_with_gradient: bool = False, name: Optional[str] = None) -> Any:
        """A new variable of this layer (`shape`, `initializer` name or config, `trainable`, `regularizer`); its
        values are made when a model holding the layer is built, from the model's seed."""
        from ._variable import Variable, check_shape, free_name, initializer_config

        if self._home is not None and self._home._core is not None:
            raise ValueError(f"Layer '{self.name}': add_weight after the layer's model was built is not supported "
                             "by kerust; create weights in `build` or `__init__`")
        dims = check_shape(f"Layer '{self.name}': add_weight", shape)
        dt = "float32" if dtype is None else str(np.dtype(dtype).name if not isinstance(dtype, str) else dtype)
        if dt != "float32":
            raise ValueError(f"Layer '{self.name}': add_weight: kerust variables are float32, received dtype={dt!r}")
        init = initializer_config(f"Layer '{self.name}': add_weight", initializer, dt)
        reg = regularizers_module.get(regularizer)
        var = Variable(self, len(self._variables), dims, dt, free_name([v.name for v in self._variables], name),
                       trainable, init, reg, constraints_module.get(constraint))
        self._variables.append(var)
        self._ordered_variables()
        return var

    def add_variable(self, shape: Any, initializer: Any = None, dtype: Any = None, trainable: bool = True,
                     name: Optional[str] = None, **kwargs: Any) -> Any:
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype, trainable=trainable, name=name,
                               **kwargs)

    def add_loss(self, loss: Any) -> None:
        """Add a term to the training loss from inside `call` (a tensor made of `keras.ops`; its sum is added,
        as Keras does, in `fit`, `train_on_batch` and `evaluate`)."""
        from . import ops
        from ._variable import add_traced_loss, tracing

        if not tracing():
            raise NotImplementedError(f"Layer '{self.name}': kerust takes add_loss inside `call` only (the call is "
                                      "traced into the model's graph); add a constant term to the loss instead")
        add_traced_loss(ops._as_symbolic(loss))

    def _tracked_layers(self) -> list:
        """Layers held as attributes (also in lists, tuples and dicts), in the order they were assigned."""
        from .models import Model

        out: list = []
        seen: set = set()

        def visit(v: Any) -> None:
            if isinstance(v, (Layer, Model)):
                if id(v) not in seen and v is not self:
                    seen.add(id(v))
                    out.append(v)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    visit(x)
            elif isinstance(v, dict):
                for x in v.values():
                    visit(x)

        internal: set = getattr(self, "_internal_attrs", set())
        for k, v in self.__dict__.items():
            if k not in internal:
                visit(v)
        return out

    def _ordered_variables(self) -> list:
        """The layer's own variables in Keras's order: trainable ones, then the others (each in creation order).
        A variable's `_index` is its place in this order (and in the engine's Weights unit)."""
        ordered = [v for v in self._variables if v.trainable] + [v for v in self._variables if not v.trainable]
        for i, v in enumerate(ordered):
            v._index = i
        return ordered

    def _own_weights(self) -> list:
        """The values of this layer's own `add_weight` variables."""
        if not self._variables:
            return []
        if self._home is None and self._detached is not None:
            return list(self._detached)
        first, n = self._weight_slot()
        if n == 0:
            raise ValueError(f"Layer '{self.name}' has no weight values yet: they are made when a model that "
                             "holds the layer is built (call the model on data, or build it)")
        return self._home._core.get_weights()[first:first + n]

    def _set_own_weights(self, values: list) -> None:
        if self._home is None or self._home._core is None:
            self._detached = [np.array(v, dtype=np.float32) for v in values]
            self._version += 1
            return
        first, n = self._weight_slot()
        self._home._core.set_weights(first, [np.ascontiguousarray(v, dtype=np.float32) for v in values], n,
                                     f"layer '{self.name}'")
        self._home._changed([self])

    @property
    def variables(self) -> list:
        return self._all_variables()

    def _all_variables(self) -> list:
        out = list(self._variables)
        for sub in self._tracked_layers():
            out.extend(getattr(sub, "_all_variables", lambda: [])())
        return out

    @property
    def class_name(self) -> str:
        """The Keras class name, as written in configs and files."""
        return self._keras_class or type(self).__name__

    def _layer_config(self) -> dict:
        return {}

    def get_config(self) -> dict:
        """The layer's arguments as a dict, in the shape of Keras's `get_config()`."""
        config: dict = {"name": self.name, "trainable": self._trainable, "dtype": "float32"}
        if getattr(self, "activity_regularizer", None) is not None:  # Keras's base config, in its place
            config["activity_regularizer"] = None
        config.update(self._layer_config())
        if "activity_regularizer" in config:
            config["activity_regularizer"] = regularizers_module.serialize(getattr(self, "activity_regularizer", None))
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        """A new layer from a `get_config()` dict."""
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def _validate(self) -> None:
        """Run the engine's parser on this config: bad arguments fail at construction."""
        config = self.get_config()
        for key, value in config.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{self.class_name} '{self.name}': invalid value received for argument "
                                 f"`{key}`: expected a finite number, received {value}")
        try:
            text = _json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.class_name} '{self.name}': arguments must be plain numbers, strings, "
                            f"bools or None ({e})") from None
        _core.validate(f"layer:{self.class_name}", text)

    # ---- calling --------------------------------------------------------------------------------------
    def __call__(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        """On symbolic tensors (from `kerust.Input`): record this call in the graph and return symbolic outputs.
        On NumPy arrays: run the layer now (inference mode) and return NumPy, as Keras does eagerly."""
        from ._custom import is_custom

        if is_custom(self):
            return self._call_custom(inputs, training, mask, kwargs)
        extra = {k: kwargs.pop(k) for k in self._call_tensor_kwargs if k in kwargs}
        if kwargs:
            raise TypeError(f"{self.class_name} '{self.name}': unexpected call arguments {sorted(kwargs)}")
        return _call_layer(self, inputs, training, mask, extra)

    def _call_custom(self, inputs: Any, training: Any, mask: Any, kwargs: dict) -> Any:
        from ._custom import call_symbolic
        from ._graph import KerasTensor, flat_tensors

        args = (inputs,)
        kw = dict(kwargs)
        kw["training"] = training
        if mask is not None:
            kw["mask"] = mask
        leaves = flat_tensors([inputs, list(kwargs.values())])
        if any(isinstance(t, KerasTensor) for t in leaves):
            if getattr(self, "_keras_builtin", False):
                return call_symbolic(self, args, kw)  # kerust's traced built-ins read and set masks themselves
            return self._call_custom_masked(inputs, args, kw, mask)
        if training:
            raise ValueError(f"{self.class_name} '{self.name}': kerust runs training steps through fit / "
                             "train_on_batch; call layers eagerly with training=False")
        # eagerly: the layer called on Inputs of the arrays' shapes, run as a one-off model
        from ._arrays import as_float32
        from .models import Functional

        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        arrays = [as_float32(f"{self.name} input {i}", x) for i, x in enumerate(items)]
        tensors = [Input(shape=a.shape[1:]) for a in arrays]
        extra: list = []
        if mask is not None:  # a mask array: one more input of the one-off model, handed to `call` as `mask`
            if isinstance(mask, (list, tuple)):
                raise ValueError(f"{self.class_name} '{self.name}': an eager call takes one mask array, received "
                                 f"a {type(mask).__name__}")
            m = np.asarray(mask)
            dtype = "bool" if m.dtype == np.bool_ else "float32"
            extra = [(m if dtype == "bool" else as_float32(f"{self.name} mask", m),
                      Input(shape=m.shape[1:], dtype=dtype))]
            kw["mask"] = extra[0][1]
        before = len(self._inbound_nodes)
        try:
            sym = tensors if isinstance(inputs, (list, tuple)) else tensors[0]
            kw["training"] = False
            outs = call_symbolic(self, (sym,), kw)
            model_in = tensors + [t for _, t in extra] if extra else sym
            model = Functional(model_in, outs, name=f"{self.name}_eager")
            feed = arrays + [a for a, _ in extra]
            return model.predict_on_batch(feed if len(feed) > 1 else feed[0])
        finally:
            del self._inbound_nodes[before:]

    def _call_custom_masked(self, inputs: Any, args: tuple, kw: dict, mask: Any) -> Any:
        """A user layer's symbolic call with Keras's masks: the outputs carry `compute_mask(inputs, mask)` when
        the layer supports masking (`supports_masking = True` or its own `compute_mask`); otherwise a mask is
        dropped with Keras's warning. Its `call` is handed the masks as Keras's `__call__` hands them: with one
        tensor argument, a `mask` argument gets the input's mask (a list of them for a list of inputs) unless one
        is given; with several, each `<name>_mask` argument gets the mask of the tensor argument `<name>`."""
        from ._custom import call_symbolic
        from ._graph import deriving
        from ._masking import destroyed_warning, found_call_masks, mask_of, set_mask

        found = found_call_masks(self, inputs, kw)
        kw.update(found)
        if "mask" in found:
            mask = found["mask"]
        previous = mask if mask is not None else mask_of(inputs)
        present = any(m is not None for m in (previous if isinstance(previous, list) else [previous]))
        outs = call_symbolic(self, args, kw, tuple(found))
        if self.supports_masking or type(self).compute_mask is not Layer.compute_mask:
            with deriving():
                out_mask = self.compute_mask(inputs, previous if present else None)
            set_mask(outs, out_mask)
        elif present:
            destroyed_warning(self)
        return outs

    def _expects_list(self) -> bool:
        """Merge layers take a list of tensors; every other layer one tensor."""
        return False

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """Keras's `compute_mask`: the output's mask (the input's, for a layer that supports masking)."""
        return previous_mask if self.supports_masking else None

    def _output_mask(self, inputs: Any, mask: Any) -> Any:
        return self.compute_mask(inputs, mask)

    def _unpack(self, flat: Any, packed: int, shapes: list) -> list:
        """The tensors of a call with several outputs, cut from the one the engine gives (`_packed_flat`: each
        output flattened and laid end to end per sample; else side by side along the last axis)."""
        outs = []
        lo = 0
        flat_layout = getattr(self, "_packed_flat", True)
        for shape in shapes:
            n = int(np.prod(shape)) if flat_layout else int(shape[-1])
            rank = 2 if flat_layout else 1 + len(shape)
            items = [[None, None, 1]] * (rank - 1) + [[lo, lo + n, 1]]
            t = flat._add_op_unit("Op", {"name": unique_name("slice"), "op": "slice", "items": items}, [packed])
            if flat_layout and len(shape) != 1:
                t = flat._add_op_unit("Op", {"name": unique_name("reshape"), "op": "reshape",
                                             "shape": [None, *shape]}, [t])
            outs.append(t)
            lo += n
        return outs

    @property
    def _first_node(self) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' is not connected, no input to return.")
        return self._inbound_nodes[0]

    @property
    def input(self) -> Any:
        """The symbolic input(s) of the layer's first call."""
        node = self._first_node
        return node.call_args

    @property
    def output(self) -> Any:
        """The symbolic output of the layer's first call."""
        outs = self._first_node.outputs
        return outs[0] if len(outs) == 1 else outs

    # ---- weights: they live in the engine of the model that used the layer last (its "home") ---------------
    def _weight_slot(self) -> tuple:
        home = self._home
        if home is None or home._core is None:
            return (0, 0)
        return home._weight_slot_of(self)

    def get_weights(self) -> list:
        """Copies of the layer's weights as NumPy arrays, in Keras's order and layouts (empty before a model that
        uses the layer is built)."""
        from ._custom import is_custom

        if is_custom(self):  # own variables first, then the tracked layers' weights (Keras's order)
            out = [w.copy() for w in self._own_weights()]
            for sub in self._tracked_layers():
                out.extend(sub.get_weights())
            return out
        if self._home is None and self._detached is not None:
            return [w.copy() for w in self._detached]
        first, n = self._weight_slot()
        if n == 0:
            return []
        return self._home._core.get_weights()[first : first + n]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace the layer's weights with arrays of the same shapes, in `get_weights()` order; nothing is written
        if one does not fit."""
        from ._custom import is_custom

        if is_custom(self):
            parts = [(self, [v.shape for v in self._ordered_variables()])]
            parts += [(sub, [np.shape(w) for w in sub.get_weights()]) for sub in self._tracked_layers()]
            want = [s for _, shapes in parts for s in shapes]
            given = [tuple(np.shape(w)) for w in weights]
            if [tuple(s) for s in want] != given:
                raise ValueError(f"Layer '{self.name}': expected weights of shapes {want}, received {given}")
            at = 0
            for layer, shapes in parts:
                chunk = list(weights[at:at + len(shapes)])
                at += len(shapes)
                if not shapes:
                    continue
                if layer is self:
                    self._set_own_weights(chunk)
                else:
                    layer.set_weights(chunk)
            return
        if self._home is None and self._detached is not None:
            if len(weights) != len(self._detached) or any(np.shape(w) != d.shape
                                                          for w, d in zip(weights, self._detached)):
                raise ValueError(f"Layer '{self.name}': expected weights of shapes "
                                 f"{[d.shape for d in self._detached]}, received {[np.shape(w) for w in weights]}")
            self._detached = [np.array(w, dtype=np.float32) for w in weights]
            self._version += 1
            return
        if self._home is None or self._home._core is None:
            raise ValueError(f"Layer '{self.name}' has no weights yet: build the model first.")
        first, n = self._weight_slot()
        arrays = [np.ascontiguousarray(w, dtype=np.float32) for w in weights]
        self._home._core.set_weights(first, arrays, n, f"layer '{self.name}'")
        self._home._changed([self])

    @property
    def weights(self) -> list:
        """The values of `get_weights()`, each a NumPy array with Keras's `name`, `path` and `trainable`."""
        from ._weights import weights_of

        return weights_of(self, self.name)

    @property
    def trainable_weights(self) -> list:
        from ._weights import weights_of

        return weights_of(self, self.name, "trainable")

    @property
    def non_trainable_weights(self) -> list:
        from ._weights import weights_of

        return weights_of(self, self.name, "non_trainable")

    def count_params(self) -> int:
        """The number of scalars in the layer's weights."""
        return int(sum(w.size for w in self.get_weights()))

    @property
    def trainable(self) -> bool:
        """Whether training updates this layer's weights; it can be changed at any time, also after `compile`."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        home = self._home
        if home is not None and home._core is not None:
            home._push_trainable(self)
        for sub in self._tracked_layers() if "_internal_attrs" in self.__dict__ else []:
            sub.trainable = value

    @property
    def output_shape(self) -> tuple:
        """The layer's output shape, `None` for the batch axis (once it has been called or built in a model)."""
        if self._inbound_nodes:
            out = self._inbound_nodes[0].outputs
            return out[0].shape if len(out) == 1 else tuple(t.shape for t in out)
        home = self._home
        if home is None or home._core is None:
            raise AttributeError(f"Layer '{self.name}' has no defined output shape: it is not built yet.")
        return home._layer_output_shape(self)

    def __repr__(self) -> str:
        return f"<{self.class_name} name={self.name}, built={self._home is not None}>"


class InputLayer:
    """A model's input: `kerust.Input(shape)` makes one and returns its symbolic tensor."""

    _is_input_layer = True

    def __init__(
        self,
        shape: Optional[Sequence[int]] = None,
        batch_size: Optional[int] = None,
        dtype: Any = None,
        name: Optional[str] = None,
        input_shape: Optional[Sequence[int]] = None,
        batch_shape: Optional[Sequence[Optional[int]]] = None,
        **kwargs: Any,
    ) -> None:
        from ._graph import KerasTensor, Node

        kwargs.pop("sparse", None)
        kwargs.pop("ragged", None)
        kwargs.pop("optional", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to InputLayer: {kwargs}")
        # the engine computes in float32; an int or bool input (token ids) is converted when data comes in
        if isinstance(dtype, dict):
            dtype = (dtype.get("config") or {}).get("name", "float32")
        # "string": an input that a TextVectorization vectorizes on the host (see kerust._preprocess)
        dtype_name = "float32" if dtype is None else "string" if dtype in ("string", str) else np.dtype(dtype).name
        if dtype_name not in ("float32", "float16", "float64", "bool", "int8", "int16", "int32", "int64", "uint8",
                              "string"):
            raise ValueError(f"InputLayer: unsupported dtype={dtype!r}")
        dims: Optional[Sequence[Any]] = shape
        if dims is None:
            dims = input_shape if input_shape is not None else (tuple(batch_shape)[1:] if batch_shape else None)
        if dims is None:
            raise ValueError("InputLayer: you must pass a `shape` argument.")
        dims = tuple(dims)
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 < d < 2**31 for d in dims):
            raise ValueError(f"InputLayer: every dimension of `shape` must be a positive int, received {dims}")
        self.shape = (None, *(int(d) for d in dims))
        self.batch_size = batch_size
        self.name = name or unique_name("input_layer")
        self.dtype = {"float64": "float32", "int64": "int32"}.get(dtype_name, dtype_name)
        self.trainable = True
        self.class_name = "InputLayer"
        self._inbound_nodes: list = []
        tensor = KerasTensor(self.shape, dtype=self.dtype, name=self.name)
        node = Node(self, None, [tensor])
        self._inbound_nodes.append(node)
        tensor._keras_history = (self, 0, 0)
        self.output = tensor

    def get_config(self) -> dict:
        return {"batch_shape": [self.batch_size, *self.shape[1:]], "dtype": self.dtype, "sparse": False,
                "ragged": False, "name": self.name, "optional": False}

    def get_weights(self) -> list:
        return []

    @property
    def weights(self) -> list:
        return []

    def count_params(self) -> int:
        return 0

    @property
    def output_shape(self) -> tuple:
        return self.shape

    def __repr__(self) -> str:
        return f"<InputLayer name={self.name}, shape={self.shape}>"


def Input(
    shape: Optional[Sequence[int]] = None,
    batch_size: Optional[int] = None,
    dtype: Any = None,
    name: Optional[str] = None,
    **kwargs: Any,
) -> Any:
    """``keras.Input``: a symbolic tensor of `shape` (without the batch axis) to build models on."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, **kwargs).output


def _no_unsupported(layer: str, **args: Any) -> None:
    for key, value in args.items():
        if value is not None:
            raise ValueError(f"{layer}: `{key}` is not supported by kerust yet (received {value!r})")


def _set_kernel_bias(layer: Any, use_bias: bool, kernel_initializer: Any, bias_initializer: Any,
                     kernel_regularizer: Any, bias_regularizer: Any, activity_regularizer: Any,
                     kernel_constraint: Any, bias_constraint: Any) -> None:
    """The kernel/bias arguments Dense and Conv2D share (the engine's `KernelBias` reads the same keys)."""
    layer.activity_regularizer = regularizers_module.get_activity(activity_regularizer,
                                                                  f"{layer.class_name} '{layer.name}'")
    layer.use_bias = use_bias
    layer.kernel_constraint = constraints_module.get(kernel_constraint)
    layer.bias_constraint = constraints_module.get(bias_constraint)
    layer.kernel_initializer = kernel_initializer
    layer.bias_initializer = bias_initializer
    layer.kernel_regularizer = regularizers_module.get(kernel_regularizer)
    layer.bias_regularizer = regularizers_module.get(bias_regularizer)


def _kernel_bias_config(layer: Any) -> dict:
    return {
        "use_bias": layer.use_bias,
        "kernel_initializer": layer.kernel_initializer,
        "bias_initializer": layer.bias_initializer,
        "kernel_regularizer": regularizers_module.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers_module.serialize(layer.bias_regularizer),
        "kernel_constraint": constraints_module.serialize(layer.kernel_constraint),
        "bias_constraint": constraints_module.serialize(layer.bias_constraint),
    }


class Dense(Layer):
    """Fully connected layer: `activation(x @ kernel + bias)` over the last axis, with a kernel of shape
    `(input_dim, units)`."""
    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.activation = _activation_name(activation)
        _set_kernel_bias(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint)
        self._validate()

    def _layer_config(self) -> dict:
        return {"units": self.units, "activation": self.activation, **_kernel_bias_config(self)}


class Activation(Layer):
    """Applies an activation function, given by name, to every element."""
    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = _activation_name(activation)
        self._validate()

    def _layer_config(self) -> dict:
        return {"activation": self.activation}


class Flatten(Layer):
    """Reshapes each sample to one axis (the batch axis is kept)."""
    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format
        self._validate()

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format or "channels_last"}


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (without the batch axis; one entry may be -1)."""
    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        self._validate()

    def _layer_config(self) -> dict:
        return {"target_shape": list(self.target_shape)}


class Conv2D(Layer):
    """2D convolution over channels-last images `(batch, height, width, channels)`, with a kernel of shape
    `(kernel_h, kernel_w, in_channels / groups, filters)`; `padding` is `"valid"` or `"same"`; `dilation_rate`
    spaces the kernel's taps (not with `strides` > 1, as in Keras); `groups` splits the channels into groups
    convolved separately."""
    def __init__(
        self,
        filters: int,
        kernel_size: IntOrPair,
        strides: IntOrPair = (1, 1),
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: IntOrPair = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _set_kernel_bias(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint)
        self.filters = filters
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = _pair(dilation_rate)
        self.groups = groups
        self.activation = _activation_name(activation)
        self._validate()

    def _layer_config(self) -> dict:
        def as_list(v: Any) -> list:
            return list(v) if isinstance(v, (list, tuple)) else [v, v]

        return {
            "filters": self.filters,
            "kernel_size": as_list(self.kernel_size),
            "strides": as_list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format or "channels_last",
            "dilation_rate": as_list(self.dilation_rate),
            "groups": self.groups,
            "activation": self.activation,
            **_kernel_bias_config(self),
            "activity_regularizer": None,
        }


def _as_pair_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


class Conv2DTranspose(Layer):
    """Transposed 2D convolution (the adjoint of a Conv2D, "deconvolution") over channels-last images, with a
    kernel of shape `(kernel_h, kernel_w, filters, in_channels)`; the output size follows Keras's
    `padding` / `output_padding` rules."""
    def __init__(
        self,
        filters: int,
        kernel_size: IntOrPair,
        strides: IntOrPair = (1, 1),
        padding: str = "valid",
        output_padding: Any = None,
        data_format: Optional[str] = None,
        dilation_rate: IntOrPair = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _set_kernel_bias(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint)
        self.filters = filters
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.output_padding = None if output_padding is None else _pair(output_padding)
        self.data_format = data_format
        self.dilation_rate = _pair(dilation_rate)
        self.activation = _activation_name(activation)
        self._validate()

    def _layer_config(self) -> dict:
        return {
            "filters": self.filters,
            "kernel_size": _as_pair_list(self.kernel_size),
            "strides": _as_pair_list(self.strides),
            "padding": self.padding,
            "output_padding": None if self.output_padding is None else _as_pair_list(self.output_padding),
            "data_format": self.data_format or "channels_last",
            "dilation_rate": _as_pair_list(self.dilation_rate),
            "activation": self.activation,
            **_kernel_bias_config(self),
            "activity_regularizer": None,
        }


class DepthwiseConv2D(Layer):
    """Depthwise 2D convolution: each input channel convolved on its own with `depth_multiplier` kernels, a
    kernel of shape `(kernel_h, kernel_w, in_channels, depth_multiplier)`; output channel `c * m + j` comes from
    input channel `c`."""
    def __init__(
        self,
        kernel_size: IntOrPair,
        strides: IntOrPair = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: Optional[str] = None,
        dilation_rate: IntOrPair = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        depthwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.activity_regularizer = regularizers_module.get_activity(activity_regularizer,
                                                                     f"{self.class_name} '{self.name}'")
        self.depthwise_constraint = constraints_module.get(depthwise_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.depth_multiplier = depth_multiplier
        self.data_format = data_format
        self.dilation_rate = _pair(dilation_rate)
        self.activation = _activation_name(activation)
        self.use_bias = use_bias
        self.depthwise_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer
        self.depthwise_regularizer = regularizers_module.get(depthwise_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self._validate()

    def _layer_config(self) -> dict:
        return {
            "kernel_size": _as_pair_list(self.kernel_size),
            "strides": _as_pair_list(self.strides),
            "padding": self.padding,
            "depth_multiplier": self.depth_multiplier,
            "data_format": self.data_format or "channels_last",
            "dilation_rate": _as_pair_list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
            "depthwise_initializer": self.depthwise_initializer,
            "bias_initializer": self.bias_initializer,
            "depthwise_regularizer": regularizers_module.serialize(self.depthwise_regularizer),
            "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
            "activity_regularizer": None,
            "depthwise_constraint": constraints_module.serialize(self.depthwise_constraint),
            "bias_constraint": constraints_module.serialize(self.bias_constraint),
        }


class SeparableConv2D(Layer):
    """Depthwise separable 2D convolution: a depthwise convolution (kernel `(kh, kw, in, depth_multiplier)`) then
    a 1x1 convolution to `filters` channels (kernel `(1, 1, in * depth_multiplier, filters)`), the bias and the
    activation."""
    def __init__(
        self,
        filters: int,
        kernel_size: IntOrPair,
        strides: IntOrPair = (1, 1),
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: IntOrPair = (1, 1),
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        pointwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        depthwise_constraint: Any = None,
        pointwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.activity_regularizer = regularizers_module.get_activity(activity_regularizer,
                                                                     f"{self.class_name} '{self.name}'")
        self.depthwise_constraint = constraints_module.get(depthwise_constraint)
        self.pointwise_constraint = constraints_module.get(pointwise_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.filters = filters
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = _pair(dilation_rate)
        self.depth_multiplier = depth_multiplier
        self.activation = _activation_name(activation)
        self.use_bias = use_bias
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer
        self.depthwise_regularizer = regularizers_module.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers_module.get(pointwise_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self._validate()

    def _layer_config(self) -> dict:
        return {
            "depth_multiplier": self.depth_multiplier,
            "filters": self.filters,
            "kernel_size": _as_pair_list(self.kernel_size),
            "strides": _as_pair_list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format or "channels_last",
            "dilation_rate": _as_pair_list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
            "depthwise_initializer": self.depthwise_initializer,
            "pointwise_initializer": self.pointwise_initializer,
            "bias_initializer": self.bias_initializer,
            "depthwise_regularizer": regularizers_module.serialize(self.depthwise_regularizer),
            "pointwise_regularizer": regularizers_module.serialize(self.pointwise_regularizer),
            "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
            "activity_regularizer": None,
            "depthwise_constraint": constraints_module.serialize(self.depthwise_constraint),
            "pointwise_constraint": constraints_module.serialize(self.pointwise_constraint),
            "bias_constraint": constraints_module.serialize(self.bias_constraint),
        }


Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D


class _Pooling2D(Layer):
    def __init__(
        self,
        pool_size: IntOrPair = (2, 2),
        strides: Optional[IntOrPair] = None,
        padding: str = "valid",
        data_format: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else None
        self.padding = padding
        self.data_format = data_format
        self._validate()

    def _layer_config(self) -> dict:
        def as_list(v: Any) -> list:
            return list(v) if isinstance(v, (list, tuple)) else [v, v]

        return {
            "pool_size": as_list(self.pool_size),
            "padding": self.padding,
            "strides": as_list(self.strides if self.strides is not None else self.pool_size),
            "data_format": self.data_format or "channels_last",
        }


class MaxPooling2D(_Pooling2D):
    """The maximum over each `pool_size` window of each channel; `strides` default to `pool_size`."""


class AveragePooling2D(_Pooling2D):
    """The mean over each `pool_size` window of each channel (with `padding="same"`, padded cells are not counted);
    `strides` default to `pool_size`."""


class _GlobalPooling2D(Layer):
    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format
        self.keepdims = keepdims
        self._validate()

    def _layer_config(self) -> dict:
        return {"data_format": self.data_format or "channels_last", "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over height and width of each channel: `(batch, h, w, c)` to `(batch, c)`, or `(batch, 1, 1, c)` with
    `keepdims=True`."""


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over height and width of each channel: `(batch, h, w, c)` to `(batch, c)`, or `(batch, 1, 1, c)`
    with `keepdims=True`."""


class Dropout(Layer):
    """In training, sets a fraction `rate` of the inputs to zero and scales the others by `1 / (1 - rate)`; passes
    inputs through unchanged in `predict` and `evaluate`."""
    def __init__(self, rate: float, noise_shape: Any = None, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise ValueError(
                f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                f"Received: rate={rate!r}"
            )
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = seed
        self._validate()

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


class BatchNormalization(Layer):
    """Normalizes over the last axis: with the batch's statistics in training (updating the moving averages with
    `momentum`), with the moving averages in inference."""
    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 0.001,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _no_unsupported(
            "BatchNormalization",
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
        )
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self.synchronized = synchronized
        self._validate()

    def _layer_config(self) -> dict:
        return {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": self.beta_initializer,
            "gamma_initializer": self.gamma_initializer,
            "moving_mean_initializer": self.moving_mean_initializer,
            "moving_variance_initializer": self.moving_variance_initializer,
            "beta_regularizer": None,
            "gamma_regularizer": None,
            "beta_constraint": constraints_module.serialize(self.beta_constraint),
            "gamma_constraint": constraints_module.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
        }


class LeakyReLU(Layer):
    """`x` for positive inputs, `negative_slope * x` otherwise (`alpha=` is accepted as the Keras 2 name)."""
    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        if "alpha" in kwargs:  # the Keras 2 name
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = negative_slope
        self._validate()

    def _layer_config(self) -> dict:
        return {"negative_slope": self.negative_slope}


class ReLU(Layer):
    """Rectified linear unit as in Keras: `x` between `threshold` and `max_value` (where it saturates, if given),
    `negative_slope * (x - threshold)` below `threshold`."""
    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self._validate()

    def _layer_config(self) -> dict:
        return {"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold}


class ELU(Layer):
    """`x` for positive inputs, `alpha * (exp(x) - 1)` otherwise."""
    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha
        self._validate()

    def _layer_config(self) -> dict:
        return {"alpha": self.alpha}


class Softmax(Layer):
    """Softmax over the last axis (the only axis supported)."""
    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

        self._validate()

    def _layer_config(self) -> dict:
        return {"axis": self.axis}


class PReLU(Layer):
    """A leaky ReLU whose slope `alpha` is learned, one per input element or shared over `shared_axes`."""
    def __init__(self, alpha_initializer: Any = "Zeros", alpha_regularizer: Any = None, alpha_constraint: Any = None,
                 shared_axes: Optional[Sequence[int]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _no_unsupported("PReLU", alpha_regularizer=alpha_regularizer, alpha_constraint=alpha_constraint)
        self.alpha_initializer = alpha_initializer
        self.shared_axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else shared_axes
        self._validate()

    def _layer_config(self) -> dict:
        return {"alpha_initializer": self.alpha_initializer, "alpha_regularizer": None, "alpha_constraint": None,
                "shared_axes": self.shared_axes}


class SpatialDropout2D(Layer):
    """Dropout of whole feature maps: in training each channel of each sample is set to zero with probability `rate`,
    and the others are scaled by `1 / (1 - rate)`."""
    def __init__(self, rate: float, data_format: Optional[str] = None, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise ValueError(f"SpatialDropout2D: `rate` must be a float in [0, 1), received {rate!r}")
        self.rate = float(rate)
        self.data_format = data_format
        self.seed = seed
        self._validate()

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "data_format": self.data_format or "channels_last", "seed": self.seed}

    def get_config(self) -> dict:
        """As `Layer.get_config`, without `trainable` (Keras writes none for this layer)."""
        config = super().get_config()
        config.pop("trainable")  # Keras's SpatialDropout2D config has no `trainable` (its __init__ rejects it)
        return config


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation `stddev` in training; passes inputs through unchanged in
    inference."""
    def __init__(self, stddev: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed = seed
        self._validate()

    def _layer_config(self) -> dict:
        return {"stddev": self.stddev, "seed": self.seed}


# Keras's aliases
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

# Keras's layers that hand a mask on unchanged
for _cls in (Dense, Activation, LeakyReLU, ReLU, ELU, Softmax, PReLU, Dropout, SpatialDropout2D, BatchNormalization,
             GaussianNoise):
    _cls.supports_masking = True

_CLASSES: Dict[str, Any] = {
    cls.__name__: cls
    for cls in (
        Dense,
        Activation,
        Flatten,
        Reshape,
        Conv2D,
        Conv2DTranspose,
        DepthwiseConv2D,
        SeparableConv2D,
        MaxPooling2D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        Dropout,
        BatchNormalization,
        LeakyReLU,
        ReLU,
        ELU,
        Softmax,
        PReLU,
        SpatialDropout2D,
        GaussianNoise,
    )
}


def deserialize(config: dict) -> Layer:
    """Build a layer from ``{"class_name": ..., "config": {...}}`` (known classes only, no code lookup)."""
    class_name = config.get("class_name")
    cls = _CLASSES.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"Unknown layer class {class_name!r}. kerust supports: {', '.join(sorted(_CLASSES))}"
        )
    return cls.from_config(config.get("config", {}))


def serialize(layer: Layer) -> dict:
    """The `{"class_name": ..., "config": ...}` dict Keras writes for a layer."""
    return {"class_name": layer.class_name, "config": layer.get_config()}


# ---- several inputs: merge layers -----------------------------------------------------------------------------
class _Merge(Layer):
    """Base of the layers that combine a list of tensors (no weights)."""
    supports_masking = True

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        from ._masking import merge_masks

        return merge_masks(list(inputs), list(previous_mask)) if isinstance(previous_mask, list) else None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._validate()

    def _expects_list(self) -> bool:
        return True


class Add(_Merge):
    """Element-wise sum of a list of tensors of one shape (or shapes that broadcast)."""


class Subtract(_Merge):
    """`inputs[0] - inputs[1]`, for exactly two tensors."""


class Multiply(_Merge):
    """Element-wise product of a list of tensors."""


class Average(_Merge):
    """Element-wise mean of a list of tensors."""


class Maximum(_Merge):
    """Element-wise maximum of a list of tensors."""


class Minimum(_Merge):
    """Element-wise minimum of a list of tensors."""


class Concatenate(_Merge):
    """Joins a list of tensors along `axis` (the others must match)."""

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        self.axis = axis
        super().__init__(**kwargs)

    def _layer_config(self) -> dict:
        return {"axis": self.axis}

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        from ._masking import concatenate_mask

        if not isinstance(previous_mask, list):
            return None
        return concatenate_mask(list(inputs), list(previous_mask), self.axis)


class Dot(_Merge):
    """Dot product of two tensors along `axes` (per sample, as Keras's `batch_dot`); `normalize=True` takes the
    cosine similarity (both inputs L2-normalised along the axes first)."""

    def __init__(self, axes: Any, normalize: bool = False, **kwargs: Any) -> None:
        self.axes = list(axes) if isinstance(axes, (list, tuple)) else axes
        self.normalize = normalize
        super().__init__(**kwargs)

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        return None  # as Keras: a dot product has no steps left to mask

    def _layer_config(self) -> dict:
        return {"axes": self.axes, "normalize": self.normalize}


def add(inputs: Any, **kwargs: Any) -> Any:
    """Functional form of `Add`."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Any, **kwargs: Any) -> Any:
    """Functional form of `Subtract`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Any, **kwargs: Any) -> Any:
    """Functional form of `Multiply`."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Any, **kwargs: Any) -> Any:
    """Functional form of `Average`."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Any, **kwargs: Any) -> Any:
    """Functional form of `Maximum`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Any, **kwargs: Any) -> Any:
    """Functional form of `Minimum`."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Any, axis: int = -1, **kwargs: Any) -> Any:
    """Functional form of `Concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: Any, axes: Any = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """Functional form of `Dot`."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)


# ---- moving values around --------------------------------------------------------------------------------------
class Permute(Layer):
    """Reorders the sample axes: `dims` is a permutation of 1..rank (the batch axis stays first)."""

    def __init__(self, dims: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        self._validate()

    def _layer_config(self) -> dict:
        return {"dims": list(self.dims)}


class RepeatVector(Layer):
    """Repeats a `(batch, features)` input `n` times: `(batch, n, features)`."""

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = n
        self._validate()

    def _layer_config(self) -> dict:
        return {"n": self.n}


class Identity(Layer):
    """Returns its input unchanged."""
    supports_masking = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._validate()


_CLASSES.update({cls.__name__: cls for cls in (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
                                              Dot, Permute, RepeatVector, Identity)})



class Embedding(Layer):
    """Integer ids `(batch, ...)` to rows of `embeddings (input_dim, output_dim)`; an id outside `[0, input_dim)`
    raises a ValueError naming it."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None, mask_zero: bool = False,
                 weights: Any = None, lora_rank: Any = None, **kwargs: Any) -> None:
        kwargs.pop("input_length", None)  # Keras 2's argument, accepted and ignored as Keras 3 does
        super().__init__(**kwargs)
        _no_unsupported("Embedding", lora_rank=lora_rank)
        self.embeddings_constraint = constraints_module.get(embeddings_constraint)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = regularizers_module.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self._validate()
        if weights is not None:
            raise ValueError("Embedding: `weights=` is not supported by kerust yet; call `layer.set_weights([matrix])` "
                             "once the model is built")

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """With `mask_zero`, id 0 is padding: the mask is `inputs != 0`."""
        from ._masking import embedding_mask

        return embedding_mask(inputs) if self.mask_zero else None

    def _layer_config(self) -> dict:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": self.embeddings_initializer,
                "embeddings_regularizer": regularizers_module.serialize(self.embeddings_regularizer),
                "activity_regularizer": None,
                "embeddings_constraint": constraints_module.serialize(self.embeddings_constraint),
                "mask_zero": self.mask_zero}


class Masking(Layer):
    """Marks the steps whose every feature equals `mask_value` as masked: they become zeros, and the output's
    mask (`any(x != mask_value, axis=-1)`) tells the layers after it to skip them."""
    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self._validate()

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        from ._masking import masking_mask

        return masking_mask(inputs, self.mask_value)

    def _layer_config(self) -> dict:
        return {"mask_value": self.mask_value}


class LayerNormalization(Layer):
    """Normalizes each sample over `axis` (trailing axes; the last by default): `(x - mean) / sqrt(var +
    epsilon) * gamma + beta`, or `x / sqrt(var + epsilon) * gamma` with `rms_scaling`."""
    supports_masking = True

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.rms_scaling = rms_scaling
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self._validate()

    def _layer_config(self) -> dict:
        return {"axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "rms_scaling": self.rms_scaling, "beta_initializer": self.beta_initializer,
                "gamma_initializer": self.gamma_initializer,
                "beta_regularizer": regularizers_module.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers_module.serialize(self.gamma_regularizer),
                "beta_constraint": constraints_module.serialize(self.beta_constraint),
                "gamma_constraint": constraints_module.serialize(self.gamma_constraint)}


class _RNN(Layer):
    """What SimpleRNN, LSTM and GRU share: Keras's recurrent arguments (the engine's `Recurrent` reads the same
    keys), masks (a masked step keeps the state), `initial_state`, `return_state`, and `dropout` /
    `recurrent_dropout` (one mask per sequence, per gate with recurrent dropout, as Keras draws them), and
    `stateful` (each batch starts from the states the last one ended in, until `reset_states()`)."""
    _gated = True
    supports_masking = True
    _takes_mask = True
    _call_tensor_kwargs = ("initial_state",)

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Any = None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        name = type(self).__name__
        self.activity_regularizer = regularizers_module.get_activity(activity_regularizer,
                                                                     f"{self.class_name} '{self.name}'")
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.recurrent_constraint = constraints_module.get(recurrent_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        for key, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: `{key}` must be a number in [0, 1], received {value!r}")
        self.units = units
        self.activation = _activation_name(activation) if activation is not None else "linear"
        self.recurrent_activation = (_activation_name(recurrent_activation) if recurrent_activation is not None
                                     else "linear")
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers_module.get(recurrent_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        # as Keras: clipped to [0, 1] (a rate of 1 drops nothing: Keras applies rates strictly inside (0, 1))
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        self.seed = seed
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.unroll = unroll

    def _layer_config(self) -> dict:
        out: Dict[str, Any] = {"units": self.units, "activation": self.activation}
        if self._gated:
            out["recurrent_activation"] = self.recurrent_activation
        out.update({
            "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
            "recurrent_initializer": self.recurrent_initializer, "bias_initializer": self.bias_initializer,
            "kernel_regularizer": regularizers_module.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers_module.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
            "activity_regularizer": None,
            "kernel_constraint": constraints_module.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints_module.serialize(self.recurrent_constraint),
            "bias_constraint": constraints_module.serialize(self.bias_constraint), "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed, "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        })
        return out

    @property
    def _n_states(self) -> int:
        return 2 if isinstance(self, LSTM) else 1

    def reset_states(self) -> None:
        """`stateful`: the next batch starts from zero states again (in the model that last ran this layer)."""
        home = self._home
        index = getattr(home, "_unit_index", {}).get(id(self)) if home is not None else None
        if index is not None and home._core is not None:
            home._core.reset_states(index)

    reset_state = reset_states

    def __call__(self, inputs: Any, initial_state: Any = None, mask: Any = None,  # type: ignore[override]
                 training: Any = None, **kwargs: Any) -> Any:
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != self._n_states:
                raise ValueError(f"{type(self).__name__} '{self.name}': `initial_state` needs {self._n_states} "
                                 f"tensor(s) (one per state), received {len(states)}")
            kwargs["initial_state"] = states
        return super().__call__(inputs, training=training, mask=mask, **kwargs)

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """As Keras: the sequence output keeps the input's mask; the last output and the states have none."""
        out = previous_mask if self.return_sequences else None
        return [out] + [None] * self._n_states if self.return_state else out

    def _output_pieces(self, engine_shape: list) -> list:
        if not self.return_state:
            return [tuple(engine_shape)]
        u = self.units
        state = [(u,)] * self._n_states
        if self.return_sequences:
            return [((engine_shape[0] - self._n_states * u) // u, u), *state]
        return [(u,), *state]


class SimpleRNN(_RNN):
    """A fully connected recurrent layer: `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`."""
    _gated = False

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)
        self._validate()


class LSTM(_RNN):
    """Long short-term memory (Hochreiter 1997) with Keras's gates i, f, c, o and `unit_forget_bias`."""

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias
        self._validate()

    def _layer_config(self) -> dict:
        out = super()._layer_config()
        out["unit_forget_bias"] = self.unit_forget_bias
        return out


class GRU(_RNN):
    """Gated recurrent unit (Cho 2014) with Keras's gates z, r, h: `reset_after=True` (Keras's default) applies the
    reset gate after the recurrent projection (bias `(2, 3 * units)`), `reset_after=False` before it (the
    candidate reads `(r * h) @ recurrent_kernel`; bias `(3 * units,)`)."""

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)
        self._validate()

    def _layer_config(self) -> dict:
        out = super()._layer_config()
        out["reset_after"] = self.reset_after
        return out


def _single(value: Any) -> list:
    """A 1-D size argument (`3`, `(3,)` or `[3]`) as Keras's config writes it: `[3]`."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Conv1D(Layer):
    """1D convolution over channels-last sequences `(batch, steps, channels)`, with a kernel of shape
    `(kernel_size, in_channels, filters)`; `padding` is `"valid"`, `"same"` or `"causal"` (output step t sees
    input steps up to t), with `dilation_rate` and `groups` (each group of `in_channels / groups` channels has its
    own `filters / groups` filters; the kernel is then `(kernel_size, in_channels / groups, filters)`)."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: Optional[str] = None, dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _set_kernel_bias(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint)
        self.filters = filters
        self.kernel_size = tuple(_single(kernel_size))
        self.strides = tuple(_single(strides))
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = tuple(_single(dilation_rate))
        self.groups = groups
        self.activation = _activation_name(activation)
        self._validate()

    def _layer_config(self) -> dict:
        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format or "channels_last",
                "dilation_rate": list(self.dilation_rate), "groups": self.groups, "activation": self.activation,
                **_kernel_bias_config(self), "activity_regularizer": None}


class _Pooling1D(Layer):
    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = tuple(_single(pool_size))
        self.strides = tuple(_single(strides)) if strides is not None else None
        self.padding = padding
        self.data_format = data_format
        self._validate()

    def _layer_config(self) -> dict:
        return {"pool_size": list(self.pool_size), "padding": self.padding,
                "strides": list(self.strides if self.strides is not None else self.pool_size),
                "data_format": self.data_format or "channels_last"}


class MaxPooling1D(_Pooling1D):
    """The maximum over each `pool_size` window of steps, per channel; `strides` default to `pool_size`."""


class AveragePooling1D(_Pooling1D):
    """The mean over each `pool_size` window of steps, per channel (with `padding="same"`, padded steps are not
    counted); `strides` default to `pool_size`."""


class GlobalAveragePooling1D(_GlobalPooling2D):
    """The mean over the steps of each channel: `(batch, steps, c)` to `(batch, c)`, or `(batch, 1, c)` with
    `keepdims=True`; with a mask, the mean of the steps it keeps."""
    supports_masking = True
    _takes_mask = True

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        return None


class GlobalMaxPooling1D(_GlobalPooling2D):
    """The maximum over the steps of each channel: `(batch, steps, c)` to `(batch, c)`, or `(batch, 1, c)` with
    `keepdims=True`."""


class SpatialDropout1D(SpatialDropout2D):
    """Dropout of whole channels of a sequence: in training each channel of each sample is set to zero over every
    step with probability `rate`, and the others are scaled by `1 / (1 - rate)`."""

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(rate, seed=seed, **kwargs)

    def _layer_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed}


class UpSampling1D(Layer):
    """Repeats each step `size` times: `(batch, steps, features)` to `(batch, steps * size, features)`."""

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size
        self._validate()

    def _layer_config(self) -> dict:
        return {"size": self.size}


class ZeroPadding1D(Layer):
    """Adds zero steps before and after each sequence: `padding` is an int (both ends) or a pair."""

    def __init__(self, padding: Any = 1, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"ZeroPadding1D: data_format={data_format!r} is not supported by kerust yet "
                             "(channels_last only)")
        self.padding = tuple(padding) if isinstance(padding, (list, tuple)) else (padding, padding)
        self.data_format = data_format
        self._validate()

    def _layer_config(self) -> dict:
        return {"padding": list(self.padding), "data_format": self.data_format or "channels_last"}


class Cropping1D(Layer):
    """Cuts steps from the start and the end of each sequence: `cropping` is an int (both ends) or a pair."""

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = tuple(cropping) if isinstance(cropping, (list, tuple)) else (cropping, cropping)
        self._validate()

    def _layer_config(self) -> dict:
        return {"cropping": list(self.cropping)}


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D


class Bidirectional(Layer):
    """Runs a recurrent `layer` over the sequence in both directions and merges the two outputs (`merge_mode`
    "concat", "sum", "mul", "ave", or None for both outputs); the backward direction is a copy of `layer` with
    `go_backwards` flipped, or `backward_layer`. Its weights: the forward layer's, then the backward layer's.
    With a mask, a masked step's sequence output is zeros in both directions (Keras sets `zero_output_for_mask`)."""
    supports_masking = True
    _takes_mask = True
    _packed_flat = False  # merge_mode=None: the engine's concat, cut along the last axis

    def __init__(self, layer: Any, merge_mode: Any = "concat", weights: Any = None, backward_layer: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layer, dict):  # from a config
            layer = deserialize(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize(backward_layer)
        for what, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and not isinstance(value, _RNN):
                raise ValueError(f"Bidirectional: `{what}` must be a SimpleRNN, LSTM or GRU layer, received "
                                 f"{value!r}")
        if merge_mode not in ("concat", "sum", "mul", "ave", None):
            raise ValueError(f"Bidirectional: merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or None, "
                             f"received {merge_mode!r}")
        for what, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and value.return_state:
                raise ValueError(f"Bidirectional: return_state=True in `{what}` is not supported by kerust yet")
        if weights is not None:
            raise ValueError("Bidirectional: `weights=` is not supported by kerust yet; call `set_weights` once "
                             "the model is built")
        self.layer = layer
        self.merge_mode = merge_mode
        self.backward_layer = backward_layer
        self._validate()

    @property
    def forward_layer(self) -> Any:
        return self.layer

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        out = previous_mask if self.layer.return_sequences else None
        return [out, out] if self.merge_mode is None else out

    def _output_pieces(self, engine_shape: list) -> list:
        if self.merge_mode is not None:
            return [tuple(engine_shape)]
        uf = self.layer.units
        ub = engine_shape[-1] - uf
        return [(*engine_shape[:-1], uf), (*engine_shape[:-1], ub)]

    def _sub_config(self, layer: Any, prefix: str, flip: bool) -> dict:
        cfg = dict(layer.get_config())
        if not cfg.get("name", "").startswith(prefix):
            cfg["name"] = f"{prefix}{layer.name}"
        if flip:
            cfg["go_backwards"] = not cfg.get("go_backwards", False)
        return {"module": "keras.layers", "class_name": layer.class_name, "config": cfg, "registered_name": None}

    def _layer_config(self) -> dict:
        backward = self.backward_layer
        return {"merge_mode": self.merge_mode, "layer": self._sub_config(self.layer, "forward_", False),
                "backward_layer": (self._sub_config(backward, "backward_", False) if backward is not None
                                   else self._sub_config(self.layer, "backward_", True))}


_CLASSES.update({cls.__name__: cls for cls in (Embedding, Masking, LayerNormalization, SimpleRNN, LSTM, GRU,
                                               Bidirectional, Conv1D, MaxPooling1D, AveragePooling1D,
                                               GlobalAveragePooling1D, GlobalMaxPooling1D, SpatialDropout1D,
                                               UpSampling1D, ZeroPadding1D, Cropping1D)})

class Lambda(Layer):
    """Wraps a function of tensors (made of `keras.ops`) as a layer: `Lambda(lambda x: ops.square(x))`. The
    function is traced like a custom layer's `call`."""

    def __init__(self, function: Any, output_shape: Any = None, mask: Any = None, arguments: Optional[dict] = None,
                 **kwargs: Any) -> None:
        if not callable(function):
            raise TypeError(f"Lambda: `function` must be callable, received {function!r}")
        if mask is not None:
            raise ValueError("Lambda: `mask` is not supported by kerust yet")
        super().__init__(**kwargs)
        self.function = function
        self.output_shape_arg = output_shape
        self.arguments = dict(arguments or {})

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
        from ._custom import accepts

        kwargs = dict(self.arguments)
        if accepts(self.function, "training"):
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def get_config(self) -> dict:
        from ._registry import serialize_function

        config = super().get_config()
        config.update({"function": serialize_function(self.function), "output_shape": self.output_shape_arg,
                       "arguments": self.arguments})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None, safe_mode: Optional[bool] = None
                    ) -> "Lambda":
        from ._registry import deserialize_function

        config = dict(config)
        config.pop("dtype", None)
        config["function"] = deserialize_function(config["function"], custom_objects, safe_mode)
        config.pop("output_shape_type", None)
        config.pop("function_type", None)
        config.pop("module", None)
        config.pop("output_shape_module", None)
        return cls(**config)


from ._attention import AdditiveAttention, Attention, MultiHeadAttention, TimeDistributed  # noqa: E402
_CLASSES.update({cls.__name__: cls for cls in (MultiHeadAttention, Attention, AdditiveAttention, TimeDistributed)})

from ._text import TextVectorization  # noqa: E402  (a host-side preprocessing layer; imports Layer from here)

_CLASSES.update({"TextVectorization": TextVectorization})

# Keras's vision shape, normalisation and noise layers, traced calls of keras.ops (python/kerust/_vision_layers.py)
from ._vision_layers import (  # noqa: E402
    ActivityRegularization, AlphaDropout, Cropping2D, Cropping3D, GaussianDropout, GroupNormalization,
    UnitNormalization, UpSampling2D, UpSampling3D, ZeroPadding2D, ZeroPadding3D)

_CLASSES.update({cls.__name__: cls for cls in (
    ZeroPadding2D, ZeroPadding3D, Cropping2D, Cropping3D, UpSampling2D, UpSampling3D, UnitNormalization,
    GroupNormalization, ActivityRegularization, GaussianDropout, AlphaDropout)})

# Keras's preprocessing and augmentation layers, traced calls of keras.ops (python/kerust/_preprocessing_layers.py)
from ._preprocessing_layers import (  # noqa: E402
    CategoryEncoding, CenterCrop, Discretization, Normalization, RandomBrightness, RandomContrast, RandomCrop,
    RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling, Resizing)

_CLASSES.update({cls.__name__: cls for cls in (
    Rescaling, Resizing, CenterCrop, Normalization, CategoryEncoding, Discretization, RandomFlip, RandomRotation,
    RandomZoom, RandomTranslation, RandomCrop, RandomContrast, RandomBrightness)})

# Keras's volumetric convolution, pooling and dropout layers, traced calls of keras.ops
# (python/kerust/_volumetric_layers.py)
from ._volumetric_layers import (  # noqa: E402, F401  (with Keras's aliases)
    AveragePooling3D, AvgPool3D, Conv3D, Convolution3D, GlobalAveragePooling3D, GlobalAvgPool3D, GlobalMaxPool3D,
    GlobalMaxPooling3D, MaxPool3D, MaxPooling3D, SpatialDropout3D)

_CLASSES.update({cls.__name__: cls for cls in (
    Conv3D, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D, SpatialDropout3D)})

"""Keras's models over one Rust engine object per model: ``Model`` (the base, with the training loops),
``Sequential`` (the chain graph) and ``Functional`` (``keras.Model(inputs, outputs)``).

Every model is traced into one flat graph for the engine: nested models are inlined into their parent's graph
and a layer called several times is one set of weights with several nodes. A layer's current weights live in the
engine of the model that changed them last (the layer's *home*: the last to train it or set its weights); each
change bumps the layer's version. Before it runs, a model copies from their homes the weights of its layers whose
version moved since it last looked (always, while the home is training), so models that share layers see each
other's training; only a model that changes weights takes the home.
"""

from __future__ import annotations

import contextlib
import _thread  # `threading` itself costs `import kerust` over a millisecond; only the lock and ident are used
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import _data_sources
from ._arrays import as_float32, as_sample_weight, warn_non_finite
from ._naming import to_snake_case, unique_name
from .layers import InputLayer, Layer, _LayerCalls
from . import _json
from . import _preprocess

if TYPE_CHECKING:
    from ._inspect import Inspection


def _sorted_logs(pairs: list) -> Dict[str, float]:
    """Keras 3 reports metrics in name order ("accuracy" before "loss")."""
    return {k: float(v) for k, v in sorted(pairs, key=lambda kv: kv[0])}


def _is_input_layer(layer: Any) -> bool:
    return getattr(layer, "_is_input_layer", False)


class _FlatGraph:
    """A model traced into the engine's plain data: unique layers (Keras's weight order), nodes, outputs. Op
    nodes' units (no weights) come after every layer's, so the layers' unit indices are their weight order."""

    def __init__(self, n_inputs: int) -> None:
        self.units: List[Any] = []
        self.index: Dict[int, int] = {}
        self.op_units: List[dict] = []
        self.nodes: List[dict] = []
        self.added_losses: List[int] = []
        self.n_inputs = n_inputs
        self._visited: set = set()

    def register(self, model: "Model") -> None:
        """Add every layer of `model` (nested models recursively) in `model.layers` order."""
        from ._custom import used_layers

        layers = used_layers(model) if getattr(model, "_subclassed", False) else model.layers
        for layer in layers:
            self.register_layer(layer)

    def register_layer(self, layer: Any) -> None:
        from ._custom import is_custom, used_layers

        if isinstance(layer, Model):
            self.register(layer)
        elif _is_input_layer(layer) or id(layer) in self._visited:
            return
        elif is_custom(layer):
            # its own variables (one Weights unit), then the layers its calls use, in Keras's weight order
            self._visited.add(id(layer))
            if layer._variables:
                self.index[id(layer)] = len(self.units)
                self.units.append(layer)
            for sub in used_layers(layer):
                self.register_layer(sub)
        else:
            self._visited.add(id(layer))
            self.index[id(layer)] = len(self.units)
            self.units.append(layer)

    @staticmethod
    def leaves(model: "Model") -> List[Any]:
        flat = _FlatGraph(0)
        flat.register(model)
        return flat.units

    def _unit(self, layer: Any) -> int:
        if id(layer) not in self.index:  # a layer reached only through a call (not tracked as an attribute)
            self.register_layer(layer)
        return self.index[id(layer)]

    def add_node(self, layer: Any, inputs: List[int], mask: bool = False) -> int:
        """A call of `layer` on tensors `inputs` (with `mask`, the last one is the layer's Keras mask)."""
        node: dict = {"layer": self._unit(layer), "inputs": inputs}
        if mask:
            node["mask"] = True
        self.nodes.append(node)
        return self.n_inputs + len(self.nodes) - 1

    def _add_op_unit(self, class_name: str, config: dict, inputs: List[int], index: int = 0) -> int:
        self.op_units.append({"class_name": class_name, "config": config})
        self.nodes.append({"layer": -len(self.op_units), "inputs": inputs, "index": index})
        return self.n_inputs + len(self.nodes) - 1

    def add_op(self, op: Any, inputs: List[int]) -> int:
        return self._add_op_unit("Op", op.get_config(), inputs)

    def add_var(self, variable: Any) -> int:
        self.nodes.append({"layer": self._unit(variable._layer), "inputs": [], "index": variable._index})
        return self.n_inputs + len(self.nodes) - 1

    def add_select(self, when_training: int, otherwise: int) -> int:
        return self._add_op_unit("SelectTraining", {"name": "select_training"}, [when_training, otherwise])

    def unit_spec(self, u: Any) -> dict:
        from ._custom import is_custom

        if is_custom(u) or getattr(u, "_holds_variables", False):
            return {"class_name": "Weights",
                    "config": {"name": u.name, "weights": [v._config() for v in u._variables]}}
        return {"class_name": u.class_name, "config": u.get_config()}

    def spec(self, input_shapes: List[List[int]], outputs: List[int]) -> dict:
        n = len(self.units)
        nodes = [dict(node, layer=node["layer"] if node["layer"] >= 0 else n - node["layer"] - 1)
                 for node in self.nodes]
        return {"layers": [self.unit_spec(u) for u in self.units] + self.op_units,
                "inputs": input_shapes, "nodes": nodes, "outputs": outputs, "losses": self.added_losses}


class Model(_LayerCalls):
    """The base of kerust's models: `keras.Model(inputs, outputs)` makes a functional model (see `Functional`)."""

    _is_model = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Model:
            if args or "inputs" in kwargs:
                return super().__new__(Functional)
            raise TypeError("kerust.Model(...) needs `inputs` and `outputs` (the functional API), or subclass "
                            "keras.Model with layers in `__init__` and a `call` method")
        return super().__new__(cls)

    def __init__(self, *args: Any, name: Optional[str] = None, trainable: bool = True, **kwargs: Any) -> None:
        """A subclassed model: layers made in the subclass's `__init__`, used in its `call`; built (traced)
        on the first call or `build(input_shape)`."""
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise NotImplementedError("kerust does not support subclassing keras.Model with inputs/outputs (a "
                                      "functional subclass) yet; use keras.Model(inputs, outputs)")
        kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        self._init_model(name, trainable, to_snake_case(type(self).__name__))
        self._subclassed = True
        self._traces: dict = {}
        self._variables: list = []
        self._internal_attrs = set(self.__dict__) | {"_internal_attrs"}

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"Model {type(self).__name__} does not have a `call()` method implemented.")

    def _tracked_layers(self) -> List[Any]:
        from .layers import Layer

        return Layer._tracked_layers(self)  # type: ignore[arg-type]

    def _init_model(self, name: Optional[str], trainable: bool, default_name: str) -> None:
        self.name = name or unique_name(default_name)
        self._core: Any = None
        self._units: List[Any] = []
        self._unit_index: Dict[int, int] = {}
        self._core_flags: List[bool] = []
        self._versions: List[int] = []
        self._compile_args: Optional[dict] = None
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.loss: Any = None
        self.stop_training = False
        self.history: Optional[callbacks_module.History] = None
        self._trainable = bool(trainable)
        self._inbound_nodes: list = []
        self._home: Any = None
        self._version = 0
        self._detached: Optional[list] = None
        self._layers: List[Any] = []
        self.inputs: List[Any] = []
        self.outputs: List[Any] = []

    # ---- structure -------------------------------------------------------------------------------------
    @property
    def class_name(self) -> str:
        return type(self).__name__

    @property
    def layers(self) -> List[Any]:
        """The model's layers, in order (a subclassed model's: the layers it holds, in assignment order)."""
        if getattr(self, "_subclassed", False):
            return self._tracked_layers()
        return list(self._layers)

    @property
    def built(self) -> bool:
        """Whether the model is built: its input shapes are known and its weights exist."""
        return self._core is not None

    @property
    def trainable(self) -> bool:
        """Whether training updates the model's weights. Setting it sets every layer inside (as Keras)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._layers:
            if not _is_input_layer(layer):
                layer.trainable = value

    def _expects_list(self) -> bool:
        return False

    def _flatten_into(self, flat: _FlatGraph, inputs: List[int]) -> List[int]:
        """Add this model's nodes to `flat`, reading tensor ids `inputs`; return its output tensor ids."""
        from ._custom import _inline, accepts, trace

        infer = self._sub_trace
        before = len(flat.added_losses)
        outs = _inline(infer, flat, inputs)
        if accepts(self.call, "training"):
            train = self._traces.get("train")
            if train is None:
                train = self._traces["train"] = trace(self, (self._sub_arg,), {}, True)
            if train.signature() != infer.signature():
                del flat.added_losses[before:]
                touts = _inline(train, flat, inputs)
                outs = [flat.add_select(t, i) for t, i in zip(touts, outs)]
        return outs

    def _input_sample_shapes(self) -> List[List[int]]:
        from .layers import _sample_shape

        return [_sample_shape(t, f"Model '{self.name}'") for t in self.inputs]

    def _trace_subclassed(self, shapes: List[List[int]]) -> None:
        """Trace `call` on inputs of `shapes` (a subclassed model); the engine is built from the trace."""
        from ._custom import trace
        from .layers import Input

        tensors = [Input(shape=s) for s in shapes]
        arg: Any = tensors[0] if len(tensors) == 1 else tensors
        tr = trace(self, (arg,), {}, False)
        # the placeholders of the trace are the model's inputs
        self.inputs = list(tr.inputs)
        self.outputs = list(tr.flat_outputs)
        self._sub_trace = tr
        self._sub_arg = arg
        self._traces = {"infer": tr}
        out = tr.outputs
        if isinstance(out, dict):
            self._out_kind, self._out_keys = "dict", list(out.keys())
        elif isinstance(out, (list, tuple)):
            self._out_kind, self._out_keys = "list", [f"output_{i}" for i in range(len(out))]
        else:
            self._out_kind, self._out_keys = "single", ["output_0"]
        self._in_keys = [f"input_{i}" for i in range(len(shapes))]

    def _build_core(self) -> None:
        """(Re)build the engine from the traced graph. Each layer's weights are copied from its home (the model
        that used it last, this one's previous engine included), so rebuilding keeps them; the layers' home is
        this model from then on. If the build fails, nothing changes."""
        shapes = self._input_sample_shapes()
        for i, shape in enumerate(shapes):
            _check_shape(f"Model '{self.name}': input {i} shape", shape)
        flat = _FlatGraph(len(shapes))
        flat.register(self)
        if not flat.units and not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers.")
        outputs = self._flatten_into(flat, list(range(len(shapes))))
        core = _core.CoreModel(_json.dumps(flat.spec(shapes, outputs)), [], name=str(self.name))
        ranges = core.layer_weight_ranges()
        sources: Dict[int, list] = {}
        for i, layer in enumerate(flat.units):
            home = layer._home
            if ranges[i][1] == 0:
                continue
            if home is None and layer._detached is not None:
                values = layer._detached  # weights kept by a layer its model let go (Sequential.pop)
            else:
                src = self._core if home is self else (home._core if home is not None else None)
                if src is None:
                    continue
                if id(src) not in sources:
                    sources[id(src)] = src.get_weights()
                first, n = home._weight_slot_of(layer) if home is not self else self._weight_slot_of(layer)
                values = sources[id(src)][first:first + n]
            core.set_weights(ranges[i][0], values, ranges[i][1], f"layer '{layer.name}'")
        if getattr(self, "_trainer", (None, 0))[0] == _thread.get_ident():
            core.claim_training()  # built inside this thread's fit
        self._core = core
        self._units = flat.units
        self._unit_index = flat.index
        self._ranges = ranges
        self._core_flags = [bool(u.trainable) for u in flat.units]
        # this engine now holds a current copy of every layer's weights; it becomes the home of the layers that
        # had none (their weights were made here), not of those another model holds (that one may go on training)
        training = self._training_here()
        for layer in flat.units:
            home = layer._home
            if home is None or home is self or home._core is None or training:
                layer._home = self
            layer._detached = None
        self._versions = [layer._version for layer in flat.units]
        if self._compile_args is not None:
            self._compile_core()

    def _weight_slot_of(self, layer: Any) -> Tuple[int, int]:
        return self._ranges[self._unit_index[id(layer)]]

    def _layer_output_shape(self, layer: Any) -> tuple:
        return (None, *self._core.layer_info()[self._unit_index[id(layer)]][2])

    def _push_trainable(self, layer: Any) -> None:
        i = self._unit_index.get(id(layer))
        if i is not None and self._core_flags[i] != layer.trainable:
            self._core.set_layer_trainable(i, bool(layer.trainable))
            self._core_flags[i] = bool(layer.trainable)

    def _training_here(self) -> bool:
        """Whether this thread is inside a training call of this model (fit, train_on_batch)."""
        return getattr(self, "_trainer", (None, 0))[0] == _thread.get_ident()

    def _sync(self, claim: bool = False) -> None:
        """Before the engine runs: copy in the weights of every shared layer whose version moved since this model
        last had them (or whose home is training right now), and apply `trainable` flags changed since. With
        `claim`, and always while this model trains, this model becomes the layers' home (their weights are about
        to change here)."""
        if self._core is None:
            return
        claim = claim or self._training_here()
        pulls: Dict[int, Tuple[Any, list]] = {}
        for i, layer in enumerate(self._units):
            home = layer._home
            if home is None:
                if layer._detached is not None:  # weights a model let go of (Sequential.pop): take them
                    mine = self._weight_slot_of(layer)
                    self._core.set_weights(mine[0], layer._detached, mine[1], f"layer '{layer.name}'")
                    layer._detached = None
                layer._home = home = self
                self._versions[i] = layer._version
            if home is not self:
                busy = getattr(home, "_trainer", (None, 0))[0] is not None
                stale = self._versions[i] != layer._version or busy
                if stale and home._core is not None and home._weight_slot_of(layer)[1]:
                    pulls.setdefault(id(home), (home, []))[1].append(layer)
                self._versions[i] = layer._version
                if claim:
                    layer._home = self
        for home, shared in pulls.values():
            values = home._core.get_weights()
            for layer in shared:
                first, n = home._weight_slot_of(layer)
                mine = self._weight_slot_of(layer)
                self._core.set_weights(mine[0], values[first:first + n], mine[1], f"layer '{layer.name}'")
        for layer in self._units:
            self._push_trainable(layer)

    def _changed(self, layers: Optional[List[Any]] = None) -> None:
        """After this model's engine changed the weights of `layers` (all its layers by default): bump their
        versions, so the other models that share them copy them before they next run."""
        for layer in self._units if layers is None else layers:
            if layer._home is self:
                layer._version += 1
                self._versions[self._unit_index[id(layer)]] = layer._version

    def _ensure_built(self, x: List[np.ndarray]) -> None:
        if self._core is None:
            self._build_from_data(x)
        self._sync()

    def _build_from_data(self, x: List[np.ndarray]) -> None:
        if getattr(self, "_subclassed", False):
            self._build_for_shapes([list(a.shape[1:]) for a in x])
            return
        raise ValueError(f"Model '{self.name}' is not built.")

    # ---- training configuration --------------------------------------------------------------------------
    @property
    def output_names(self) -> List[str]:
        """The names the outputs go by in `compile` dicts and History keys (the output layers' names)."""
        return self._output_names()

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto", auto_scale_loss: bool = True) -> None:
        """Choose the optimizer, the loss(es) and the metrics for training, by name or as objects. With several
        outputs `loss`, `loss_weights` and `metrics` may be one value for all, a list in output order, or a dict
        by output name."""
        if weighted_metrics is not None:
            raise ValueError("compile: weighted_metrics are not supported by kerust yet")
        if loss is None:
            raise ValueError("compile: a `loss` is required for training (e.g. loss='categorical_crossentropy')")
        names = self._output_names()
        multi = len(names) > 1
        per_loss = _per_output("loss", loss, names, broadcast=True)
        loss_objs = [None if v is None else losses_module.get(v) for v in per_loss]
        weights = _per_output("loss_weights", loss_weights, names, broadcast=False) if loss_weights is not None \
            else [1.0] * len(names)
        if any(w is None for w in weights):
            weights = [1.0 if w is None else w for w in weights]
        if metrics is not None and not isinstance(metrics, (list, tuple, dict)):
            raise TypeError(f"`metrics` must be a list, received {type(metrics).__name__}")
        if not multi:
            per_metrics = [_as_list(metrics.get(names[0])) if isinstance(metrics, dict) else list(metrics or [])]
        elif not metrics:
            per_metrics = [[] for _ in names]
        elif isinstance(metrics, dict):
            _check_keys("metrics", metrics, names)
            per_metrics = [_as_list(metrics.get(n)) for n in names]
        elif len(metrics) == len(names) and all(isinstance(m, (list, tuple)) or m is None for m in metrics):
            per_metrics = [_as_list(m) for m in metrics]
        else:
            raise ValueError(f"Invalid `metrics`. `metrics` should contain metrics objects and either be a dict or a "
                             f"list matching the output names of the functional model {names}. Received: "
                             f"metrics={metrics!r}")
        heads = []
        for j, name in enumerate(names):
            objs = [metrics_module.get(m) for m in per_metrics[j]]
            unique: List[str] = []
            for m in objs:
                base = metrics_module.name_of(m)
                candidate, k = base, 0
                while candidate in unique:
                    k += 1
                    candidate = f"{base}_{k}"
                unique.append(candidate)
            labels = [f"{name}_{u}" if multi else u for u in unique]
            heads.append({"metrics": objs, "metric_names": labels})
        opt = optimizers_module.get(optimizer)
        self.optimizer = opt
        self.loss = loss
        self._loss_objs = loss_objs
        self._compile_args = {"heads": heads, "weights": [float(w) for w in weights], "loss": loss,
                              "loss_weights": loss_weights, "metrics": metrics}
        if self._core is not None:
            self._compile_core()

    def _compile_core(self) -> None:
        assert self._compile_args is not None and self.optimizer is not None
        names = self._output_names()
        multi = len(names) > 1
        heads = []
        out_shapes = self._core.output_shapes()
        for j, head in enumerate(self._compile_args["heads"]):
            loss = self._loss_objs[j]
            out = list(out_shapes[j])
            heads.append({"loss": None if loss is None else loss._engine_spec(out, out),
                          "weight": self._compile_args["weights"][j],
                          "loss_name": f"{names[j]}_loss" if multi else None,
                          "metrics": [metrics_module.spec(m, n, out) for m, n in zip(head["metrics"],
                                                                                     head["metric_names"])]})
        self._core.compile_heads(_json.dumps(heads), _json.dumps(self.optimizer._serialized()))
        self.optimizer._attach(self._core)

    @property
    def compiled(self) -> bool:
        """Whether `compile` has been called."""
        return self._compile_args is not None

    @property
    def metrics_names(self) -> List[str]:
        """The names of the values `evaluate` returns, in order: `loss`, each output's loss (several outputs),
        then the metrics."""
        if self._compile_args is None:
            return ["loss"]
        names = self._output_names()
        out = ["loss"]
        if len(names) > 1:
            out += [f"{n}_loss" for n, lo in zip(names, self._loss_objs) if lo is not None]
        for head in self._compile_args["heads"]:
            out += head["metric_names"]
        return out

    def _require_compiled(self, what: str) -> None:
        if self._compile_args is None:
            raise RuntimeError(f"You must call `compile()` before using the model for {what}.")

    # ---- data structures ---------------------------------------------------------------------------------
    def _inputs_list(self, x: Any, what: str = "x") -> List[np.ndarray]:
        """`x` as one float32 array per model input: one array, a list/tuple in input order, or a dict by input
        name."""
        x = _preprocess.host_data(self, x, what)  # strings through a host-side TextVectorization, once per call
        keys = self._input_keys()
        if isinstance(x, dict):
            missing = [k for k in keys if k not in x]
            if missing:
                raise ValueError(f'Missing data for input "{missing[0]}". You passed a data dictionary with keys '
                                 f"{sorted(x)}. Expected the following keys: {keys}")
            items = [x[k] for k in keys]
        elif isinstance(x, (list, tuple)) and len(keys) > 1:
            if len(x) != len(keys):
                raise ValueError(f"The model expects {len(keys)} input arrays ({keys}), but it received {len(x)}")
            items = list(x)
        elif len(keys) > 1:
            raise ValueError(f"The model expects {len(keys)} inputs ({keys}): pass a list or a dict of arrays, "
                             f"received one {type(x).__name__}")
        elif isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            items = [x[0]]  # as Keras: a list holding the one input's array
        else:
            items = [x]
        label = [what] if len(items) == 1 else [f"{what}[{k!r}]" for k in keys]
        arrays = [as_float32(n, a) for n, a in zip(label, items)]
        return arrays

    def _outputs_list(self, y: Any, what: str = "y") -> List[Any]:
        names = self._output_names()
        if isinstance(y, dict):
            _check_keys(what, y, names, data=True)
            return [y.get(n) for n in names]
        if isinstance(y, (list, tuple)) and len(names) > 1:
            if len(y) != len(names):
                raise ValueError(f"The model has {len(names)} outputs ({names}), but `{what}` has {len(y)} "
                                 "arrays")
            return list(y)
        if len(names) > 1:
            raise ValueError(f"The model has {len(names)} outputs ({names}): pass `{what}` as a list or a dict of "
                             f"arrays, received one {type(y).__name__}")
        return [y]

    def _targets(self, y: Any, what: str = "y") -> List[np.ndarray]:
        """Targets as float32, one per output; (n,) targets for a (n, 1) output get their trailing axis."""
        shapes = self._core.output_shapes()
        out_list = []
        for j, (item, shape) in enumerate(zip(self._outputs_list(y, what), shapes)):
            loss = self._loss_objs[j] if self._compile_args is not None else None
            if item is None:
                if loss is not None:
                    raise ValueError(f"`{what}` has no targets for output '{self._output_names()[j]}', which has a "
                                     "loss")
                # an output without loss and targets: a placeholder that nothing reads
                item = np.zeros((1,) + tuple(shape), np.float32)
            arr = as_float32(what if len(shapes) == 1 else f"{what}[{j}]", item)
            sparse = isinstance(loss, losses_module.SparseCategoricalCrossentropy)
            out = tuple(shape)
            if not sparse and arr.ndim == len(out) and out[-1:] == (1,):
                arr = arr.reshape(arr.shape + (1,))
            out_list.append(arr)
        return out_list

    def _fill_missing_targets(self, ys: List[np.ndarray], n: int) -> List[np.ndarray]:
        return [y if y.shape[0] == n or self._loss_objs[j] is not None else
                np.zeros((n,) + y.shape[1:], np.float32) for j, y in enumerate(ys)]

    def _sample_weights(self, sample_weight: Any, n: int) -> Optional[List[Optional[np.ndarray]]]:
        if sample_weight is None:
            return None
        names = self._output_names()
        if isinstance(sample_weight, dict):
            _check_keys("sample_weight", sample_weight, names, data=True)
            items = [sample_weight.get(k) for k in names]
        elif isinstance(sample_weight, (list, tuple)) and len(names) > 1:
            items = list(sample_weight)
        else:
            items = [sample_weight] * len(names)  # one array weighs every output (as Keras)
        return [None if w is None else as_sample_weight(w, n) for w in items]

    def get_config(self) -> dict:
        """A subclassed model's base config (`name`, `trainable`): a subclass adds its own arguments."""
        if getattr(self, "_subclassed", False):
            return {"name": self.name, "trainable": self.trainable}
        raise NotImplementedError

    # ---- loops -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _training(self) -> Any:
        """Claim the model for a training call (fit, train_on_batch) for this thread: another thread's training
        call meanwhile raises RuntimeError instead of interleaving with it (the engine's lock covers one engine
        call; fit is many). The same thread may re-enter (a callback calling train_on_batch)."""
        me = _thread.get_ident()
        with _CLAIM_LOCK:
            owner, depth = getattr(self, "_trainer", (None, 0))
            if owner is not None and owner != me:
                raise RuntimeError(f"model '{self.name}' is busy: another thread is running fit/evaluate/predict "
                                   "on it")
            if depth == 0 and self._core is not None:
                self._core.claim_training()  # the engine refuses other threads' weight changes until released
            self._trainer: tuple[Optional[int], int] = (me, depth + 1)
        try:
            if depth == 0:
                self._sync(claim=True)  # training changes the weights: this model becomes their home
            yield
        finally:
            with _CLAIM_LOCK:
                owner, depth = self._trainer
                self._trainer = (None, 0) if depth <= 1 else (owner, depth - 1)
                if depth <= 1 and self._core is not None:
                    self._core.release_training()
            if depth <= 1:
                self._changed()

    def _data(self, x: Any, y: Any, sample_weight: Any, what: str) -> Tuple[list, list, Optional[list]]:
        """Inputs, targets and sample weights as the engine takes them (built and synced first)."""
        xs = self._inputs_list(x)
        _require_samples(xs)
        self._ensure_built(xs)
        n = xs[0].shape[0]
        ys = self._fill_missing_targets(self._targets(y), n)
        for i, a in enumerate(xs):
            warn_non_finite("x" if len(xs) == 1 else f"x[{i}]", a, what)
        for j, a in enumerate(ys):
            warn_non_finite("y" if len(ys) == 1 else f"y[{j}]", a, what)
        return xs, ys, self._sample_weights(sample_weight, n)

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None, epochs: int = 1,
            verbose: Union[str, int] = "auto", callbacks: Optional[List[Any]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Optional[Dict[int, float]] = None, sample_weight: Any = None, initial_epoch: int = 0,
            steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None,
            validation_batch_size: Optional[int] = None, validation_freq: int = 1) -> callbacks_module.History:
        """Train for `epochs` epochs on NumPy arrays, a `keras.utils.PyDataset` or a generator / iterator of
        batches, and return the `History` of the per-epoch logs."""
        self._require_compiled("training")
        with self._training():
            if _data_sources.is_source(x) or _data_sources.is_source(validation_data) or \
                    _data_sources.needs_batches(x, y, sample_weight) or (
                        isinstance(validation_data, (tuple, list)) and _data_sources.needs_batches(*validation_data)):
                # a PyDataset, a generator, or arrays read batch by batch (uint8/float64 not copied whole)
                return _data_sources.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                         validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                                         steps_per_epoch, validation_steps, validation_batch_size, validation_freq)
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                             shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch,
                             validation_batch_size, validation_freq, validation_steps)

    def _fit(self, x: Any, y: Any, batch_size: Optional[int], epochs: int, verbose: Union[str, int],
             callbacks: Optional[List[Any]], validation_split: float, validation_data: Any, shuffle: bool,
             class_weight: Optional[Dict[int, float]], sample_weight: Any, initial_epoch: int,
             steps_per_epoch: Optional[int], validation_batch_size: Optional[int],
             validation_freq: int, validation_steps: Optional[int] = None) -> callbacks_module.History:
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        if y is None:
            raise ValueError("fit: `y` is required (kerust models are supervised)")
        xs, ys, sw = self._data(x, y, sample_weight, "fit")
        if class_weight is not None:
            if len(ys) > 1:
                raise ValueError("`class_weight` is only supported for models with a single output.")
            sw = [_apply_class_weight(class_weight, ys[0], sw[0] if sw else None)]
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, received {epochs!r}")
        if not isinstance(validation_freq, int) or validation_freq < 1:
            raise ValueError(f"validation_freq must be a positive int, received {validation_freq!r}")

        val = None
        if validation_data is not None:
            val = self._unpack_validation(validation_data)
        elif validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), received {validation_split!r}")
            total = xs[0].shape[0]
            split_at = int(total * (1.0 - float(validation_split)))
            if split_at == 0 or split_at == total:
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation "
                                 f"data with {total} samples")
            # the last fraction, before any shuffling (as Keras)
            val = ([a[split_at:] for a in xs], [a[split_at:] for a in ys],
                   None if sw is None else [None if w is None else w[split_at:] for w in sw])
            xs, ys = [a[:split_at] for a in xs], [a[:split_at] for a in ys]
            sw = None if sw is None else [None if w is None else w[:split_at] for w in sw]
        vbs = _batch_size(validation_batch_size or batch_size)
        if val is not None and validation_steps is not None:
            # as Keras's fit: its validation is an evaluate(steps=validation_steps), the first batches only
            rows, _ = _data_sources.array_steps(val[0][0].shape[0], vbs, validation_steps, "fit: validation_steps")
            val = ([a[:rows] for a in val[0]], [a[:rows] for a in val[1]],
                   None if val[2] is None else [None if w is None else w[:rows] for w in val[2]])
        if val is not None:
            self._core.prepare(val[0], val[1], val[2])
        self._core.prepare(xs, ys, sw)

        n = xs[0].shape[0]
        steps = -(-n // batch_size)
        max_steps = min(steps, steps_per_epoch) if steps_per_epoch else steps
        cbs = callbacks_module.CallbackList(
            callbacks, self, {"verbose": verbose, "epochs": epochs, "steps": max_steps}, verbose, add_history=True
        )
        self.history = cbs.history
        self.stop_training = False
        cbs.call("on_train_begin", {})
        # BackupAndRestore restored a backup: resume after its last finished epoch (Keras: self._initial_epoch)
        initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch
        self._initial_epoch = None
        epoch_logs: Dict[str, float] = {}
        every_batch = cbs.needs_every_batch
        progress = None if every_batch else cbs.progress("on_train_batch_end")
        # With steps_per_epoch an epoch may end mid-pass; as Keras, the next epoch continues the same pass and a
        # new (reshuffled) pass starts when the data is used up.
        pass_done = True
        for epoch in range(initial_epoch, epochs):
            cbs.call("on_epoch_begin", epoch, {})
            self._core.reset_logs()
            step, logs = 0, []
            while step < max_steps:
                if pass_done:
                    self._core.begin_pass(n, bool(shuffle))
                if every_batch:
                    cbs.call("on_train_batch_begin", step, {})
                self._sync()  # a callback may have changed shared layers through another model
                done, pass_done, logs = self._core.train_steps(xs, ys, sw, batch_size,
                                                               1 if every_batch else max_steps - step, progress)
                if every_batch:
                    cbs.call("on_train_batch_end", step, _sorted_logs(logs))
                step += done
                if (pass_done and not steps_per_epoch) or (every_batch and self.stop_training):
                    break
            epoch_logs = _sorted_logs(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                # as Keras's fit: an evaluate with fit's callbacks (on_test_begin, the batches, on_test_end)
                val_logs = _data_sources.validate_arrays(self, cbs, val[0], val[1], val[2], vbs)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            cbs.call("on_epoch_end", epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.call("on_train_end", epoch_logs)
        assert self.history is not None
        return self.history

    def _unpack_validation(self, data: Any) -> tuple:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight); "
                             f"received {type(data).__name__}")
        xv = self._inputs_list(data[0], "validation_data x")
        _require_samples(xv)
        yv = self._fill_missing_targets(self._targets(data[1], "validation_data y"), xv[0].shape[0])
        for a in xv:
            warn_non_finite("validation_data x", a, "fit")
        for a in yv:
            warn_non_finite("validation_data y", a, "fit")
        swv = self._sample_weights(data[2], xv[0].shape[0]) if len(data) == 3 else None
        return xv, yv, swv

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[str, int] = "auto", sample_weight: Any = None, steps: Optional[int] = None,
                 callbacks: Optional[List[Any]] = None, return_dict: bool = False) -> Any:
        """The loss and metrics on `x` and `y`: a float, a list in `metrics_names` order, or a dict with
        `return_dict=True`."""
        self._require_compiled("evaluation")
        if _data_sources.is_source(x) or _data_sources.needs_batches(x, y, sample_weight):
            return _data_sources.evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks,
                                          return_dict)
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        xs, ys, sw = self._data(x, y, sample_weight, "evaluate")
        rows, n_steps = _data_sources.array_steps(xs[0].shape[0], batch_size, steps, "evaluate")
        if rows < xs[0].shape[0]:  # Keras's steps: the first `steps` batches
            xs, ys = [a[:rows] for a in xs], [a[:rows] for a in ys]
            sw = None if sw is None else [None if w is None else w[:rows] for w in sw]
        cbs = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "epochs": 1, "steps": n_steps},
                                            verbose)
        # Keras's hooks: on_test_begin({}), per batch on_test_batch_begin/end (running logs), on_test_end(logs)
        raw = _data_sources.evaluate_arrays(self, cbs, xs, ys, sw, batch_size, cbs.progress("on_test_batch_end"))
        if return_dict:
            return _sorted_logs(raw)
        values = [float(v) for _, v in raw]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Union[str, int] = "auto",
                steps: Optional[int] = None, callbacks: Optional[List[Any]] = None) -> Any:
        """The model's outputs for `x`, computed in batches in inference mode (no dropout, BatchNormalization's
        moving statistics): an array, or a list / dict of arrays for several outputs."""
        if _data_sources.is_source(x) or _data_sources.needs_batches(x):
            return _data_sources.predict(self, x, batch_size, verbose, steps, callbacks)
        verbose = callbacks_module.resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        xs = self._inputs_list(x)
        _require_samples(xs)
        self._ensure_built(xs)
        rows, n_steps = _data_sources.array_steps(xs[0].shape[0], batch_size, steps, "predict")
        if rows < xs[0].shape[0]:  # Keras's steps: the first `steps` batches
            xs = [a[:rows] for a in xs]
        cbs = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "epochs": 1, "steps": n_steps},
                                            verbose)
        # Keras's hooks: on_predict_begin({}), per batch on_predict_batch_begin/end ({"outputs": ...}), on_predict_end
        out = _data_sources.predict_arrays(self, cbs, xs, batch_size, cbs.progress("on_predict_batch_end"))
        return self._outputs_result(out)

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """On symbolic tensors: use the model as a layer of a bigger model. On arrays: the outputs for them as one
        batch, as `model(x)` does in Keras; `training=True` is refused (train with `fit` or `train_on_batch`)."""
        from ._graph import KerasTensor, flat_tensors, record_call

        if any(isinstance(t, KerasTensor) for t in flat_tensors(inputs)):
            items = self._inputs_symbolic(inputs)
            shapes = self._symbolic_output_shapes(items)
            outs = record_call(self, items if len(items) > 1 else items[0], shapes)
            return self._outputs_result(outs)
        if training:
            raise ValueError("kerust runs training steps through fit/train_on_batch; call the model with "
                             "training=False")
        return self.predict_on_batch(inputs)

    def _inputs_symbolic(self, inputs: Any) -> list:
        keys = self._input_keys()
        if isinstance(inputs, dict):
            return [inputs[k] for k in keys]
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(items) != len(keys):
            raise ValueError(f"Model '{self.name}' expects {len(keys)} input(s), but it received {len(items)} "
                             "input tensors.")
        return items

    def _symbolic_output_shapes(self, items: list, masked: bool = False) -> list:
        shapes = [list(t.shape[1:]) for t in items]
        if self._core is None:
            self._build_for_shapes(shapes)
        mine = [list(s) for s in self._input_sample_shapes()]
        if shapes != mine:
            raise ValueError(f"Model '{self.name}' expects inputs of shapes {[(None, *s) for s in mine]}, received "
                             f"{[t.shape for t in items]}")
        return [(None, *s) for s in self._core.output_shapes()]

    def _build_for_shapes(self, shapes: List[List[int]]) -> None:
        if getattr(self, "_subclassed", False):
            self._trace_subclassed(shapes)
            try:
                self._build_core()
            except BaseException:
                self.inputs, self.outputs = [], []
                raise
            return
        raise ValueError(f"Model '{self.name}' is not built.")

    def build(self, input_shape: Any = None) -> None:
        """Build a subclassed model for inputs of `input_shape` (with the batch axis, as Keras)."""
        if not getattr(self, "_subclassed", False):
            return  # a functional model is built from its inputs
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument to build the model.")
        shapes = input_shape if isinstance(input_shape, list) and input_shape and isinstance(
            input_shape[0], (list, tuple)) else [input_shape]
        if self._core is None:
            self._build_for_shapes([list(s)[1:] for s in shapes])

    def _input_keys(self) -> List[str]:
        return list(getattr(self, "_in_keys", ["input_0"]))

    def _output_names(self) -> List[str]:
        return list(getattr(self, "_out_keys", ["output_0"]))

    def _outputs_result(self, arrays: List[Any]) -> Any:
        """Engine outputs (arrays, or symbolic tensors) in the structure the model's outputs were given in (a
        subclassed model's: the structure its `call` returned)."""
        kind = getattr(self, "_out_kind", "single")
        if kind == "dict":
            return dict(zip(self._out_keys, arrays))
        if kind == "list":
            return list(arrays)
        return arrays[0]

    def predict_on_batch(self, x: Any) -> Any:
        """The model's outputs for `x`, as one batch."""
        xs = self._inputs_list(x)
        _require_samples(xs)
        self._ensure_built(xs)
        return self._outputs_result(self._core.predict(xs, max(int(xs[0].shape[0]), 1), None))

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None,
                       return_dict: bool = False) -> Any:
        """One training step on `x` and `y`; returns that batch's loss and metrics."""
        self._require_compiled("training")
        xs, ys, sw = self._data(x, y, sample_weight, "train_on_batch")
        if class_weight is not None:
            if len(ys) > 1:
                raise ValueError("`class_weight` is only supported for models with a single output.")
            sw = [_apply_class_weight(class_weight, ys[0], sw[0] if sw else None)]
        with self._training():
            raw = self._core.train_on_batch(xs, ys, sw)
        if return_dict:
            return _sorted_logs(raw)
        values = [float(v) for _, v in raw]
        return values[0] if len(values) == 1 else values

    def inspect(self, x: Any, y: Any = None, sample_weight: Any = None) -> Inspection:
        """Every layer's output and gradients for one batch, as NumPy arrays by layer name.

        Runs one training-mode forward and backward pass (dropout active, BatchNormalization on batch statistics)
        without changing anything: no weight update, and BatchNormalization's moving statistics and the random
        stream are restored, so calling it twice gives the same arrays. Returns a dict from layer name to a dict
        with ``output``, ``output_gradient`` (dL/d output, for the compiled loss with weight penalties, averaged
        over the batch as in training), ``weights`` and ``weight_gradients`` (dicts by weight name such as
        ``kernel`` and ``bias``); the result also has ``.loss`` and ``.input_gradient`` (dL/d x; a list for
        several inputs).
        """
        from ._inspect import build_inspection

        self._require_compiled("inspect")
        xs, ys, sw = self._inspect_arrays(x, y, sample_weight)
        return build_inspection(self, self._core.inspect(xs, ys, sw, True))

    def _inspect_arrays(self, x: Any, y: Any, sample_weight: Any) -> Tuple[list, list, Optional[list]]:
        return self._data(x, y, sample_weight, "inspect")

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        """The loss and metrics on `x` and `y` as one batch, without training."""
        xs = self._inputs_list(x)
        return self.evaluate(x, y, batch_size=max(int(xs[0].shape[0]), 1), verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)

    # ---- weights -----------------------------------------------------------------------------------------
    def get_weights(self) -> List[np.ndarray]:
        """Copies of every weight, in Keras's order and layouts."""
        if self._core is None:
            return []
        self._sync()
        return self._core.get_weights()

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace every weight with arrays in `get_weights()` order and shapes; nothing is written if one does not
        fit."""
        if self._core is None:
            raise ValueError(f"Model '{self.name}' is not built yet: build it (or give an input shape) before "
                             "set_weights.")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights expects a list of arrays, received {type(weights).__name__}")
        arrays = [as_float32(f"weights[{i}]", w) if np.ndim(w) else np.asarray(w, dtype=np.float32)
                  for i, w in enumerate(weights)]
        self._sync(claim=True)
        n = sum(k for _, k in self._core.layer_weight_ranges())
        self._core.set_weights(0, arrays, n, f"model '{self.name}'")
        self._changed()

    @property
    def weights(self) -> List[Any]:
        """The values of `get_weights()`, each a NumPy array with Keras's `name`, `path` and `trainable`."""
        from ._weights import weights_of

        if self._core is None:
            return []
        self._sync()
        return weights_of(self, self.name if getattr(self, "_subclassed", False) else "")

    @property
    def trainable_weights(self) -> List[Any]:
        from ._weights import weights_of

        if self._core is None:
            return []
        return weights_of(self, self.name if getattr(self, "_subclassed", False) else "", "trainable")

    @property
    def non_trainable_weights(self) -> List[Any]:
        from ._weights import weights_of

        if self._core is None:
            return []
        return weights_of(self, self.name if getattr(self, "_subclassed", False) else "", "non_trainable")

    def count_params(self) -> int:
        """The number of scalars in all the weights (the model must be built)."""
        if self._core is None:
            raise ValueError(f"You tried to call `count_params` on model '{self.name}', but the model has not "
                             "been built.")
        self._sync()
        return int(sum(info[3] for info in self._core.layer_info()))

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Any:
        """A layer by `name` or by `index`."""
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[lay.name for lay in self._layers]}.")

    # ---- files -------------------------------------------------------------------------------------------
    def save(self, filepath: Any, overwrite: bool = True) -> None:
        """Write a Keras v3 `.keras` file (config, weights, optimizer state), atomically."""
        from . import saving

        _preprocess.refuse_file(self)
        self._sync()
        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """Write a Keras `.weights.h5` file, atomically."""
        from . import saving

        self._sync()
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Any) -> None:
        """Read the weights from a Keras `.weights.h5` file, or from the weights of a `.keras` file; every shape is
        checked first."""
        from . import saving

        self._sync(claim=True)
        try:
            saving.load_weights(self, filepath)
        finally:
            self._changed()

    def to_json(self, **kwargs: Any) -> str:
        """The model's architecture as Keras's JSON, read back by `kerust.models.model_from_json`."""
        from . import saving

        _preprocess.refuse_file(self)
        return _json.dumps(saving.keras_config(self), **kwargs)

    # ---- display -----------------------------------------------------------------------------------------
    def summary(self, line_length: Optional[int] = None, positions: Any = None, print_fn: Any = None,
                expand_nested: bool = False, show_trainable: bool = False, layer_range: Any = None) -> None:
        """Print a table of the layers with their output shapes and parameter counts (a notebook also shows the model
        as an HTML table); functional models add Keras's "Connected to" column."""
        from ._summary import render_summary

        self._sync()
        text = render_summary(self, expand_nested=expand_nested, show_trainable=show_trainable)
        (print_fn or print)(text)

    def _repr_html_(self) -> str:
        from ._summary import render_summary_html

        self._sync()
        return render_summary_html(self)

    def __repr__(self) -> str:
        return f"<{self.class_name} name={self.name}, built={self.built}>"

    # ---- Python objects: pickle, copy, deepcopy (Keras's KerasSaveable.__reduce__: the .keras bytes) --------
    def __reduce__(self) -> Any:
        """Pickle as Keras 3 does: the model's `.keras` bytes (config, weights, optimizer state), loaded back with
        `compile=True, safe_mode=False`; `copy.copy` and `copy.deepcopy` go the same way (an independent model)."""
        from ._pickling import reduce_model

        return reduce_model(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Every pickle protocol uses `__reduce__` (as Keras's does)."""
        return self.__reduce__()


class Sequential(Model):
    """A linear stack of layers (and models), as ``keras.Sequential``."""

    def __init__(self, layers: Optional[Sequence[Any]] = None, trainable: bool = True,
                 name: Optional[str] = None) -> None:
        self._init_model(name, trainable, "sequential")
        self._input_shape: Optional[tuple] = None
        self._input_name: Optional[str] = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or a model), or give the input shape with `kerust.Input(...)` first; if the layer is
        refused, the model stays as it was."""
        from ._graph import KerasTensor

        if isinstance(layer, KerasTensor) and _is_input_layer(layer._keras_history[0]):
            layer = layer._keras_history[0]
        if _preprocess.sequential_add(self, layer):  # a string Input or a TextVectorization: kept on the host
            return
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("An Input/InputLayer must be the first thing added to a Sequential model.")
            self._input_shape = tuple(layer.shape[1:])
            self._input_name = layer.name
            return
        if not isinstance(layer, (Layer, Model)):
            raise TypeError(
                f"Only instances of `kerust.layers.Layer` can be added to a Sequential model. Received: {layer!r} "
                f"(of type {type(layer)})"
            )
        if layer is self:
            raise ValueError(f"Model '{self.name}' cannot be added to itself.")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                             f"'{layer.name}' is already the name of a layer in this model.")
        shape_arg = getattr(layer, "_input_shape_arg", None)
        if not self._layers and self._input_shape is None:
            if shape_arg is not None:
                self._input_shape = tuple(shape_arg)
            elif isinstance(layer, Model) and layer.built:
                self._input_shape = tuple(layer._input_sample_shapes()[0])
        self._layers.append(layer)
        if self._input_shape is not None:
            try:
                self._build_core()
            except Exception:
                self._layers.pop()
                raise

    def pop(self) -> Any:
        """Remove the last layer and return it; the other layers keep their weights."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        _detach(layer, self)
        if self._layers and self._input_shape is not None:
            self._build_core()
        else:
            self._core = None
            if hasattr(self, "_trace_outs"):
                del self._trace_outs[len(self._layers):]
        return layer

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build for ``input_shape`` (with the batch axis, as Keras: ``(None, 784)``)."""
        if input_shape is not None:
            shape = tuple(input_shape)[1:]
            if self._input_shape is not None and tuple(self._input_shape) != shape:
                raise ValueError(f"Model '{self.name}' was built for input shape {(None, *self._input_shape)}, "
                                 f"received {tuple(input_shape)}")
            self._input_shape = shape
        if self._input_shape is None:
            raise ValueError("You must provide an `input_shape` argument (or an Input) to build the model.")
        if self._core is None:
            self._build_core()

    def _build_core(self) -> None:
        if not self._layers:
            return
        _check_shape(f"Model '{self.name}': input shape", self._input_shape or ())
        # Trace the stack on a symbolic input (as Keras does), so that `layer.input` / `layer.output` and feature
        # extractors `keras.Model(model.inputs, model.layers[i].output)` work. Layers traced before keep their
        # nodes (a new layer is called on the last output), so tensors handed out earlier stay valid.
        from .layers import Input

        if not self.inputs:
            self.inputs = [Input(shape=self._input_shape, name=self._input_name or "input_layer")]
            self._trace_outs: List[Any] = []
        del self._trace_outs[len(self._layers):]
        added = []
        try:
            for layer in self._layers[len(self._trace_outs):]:
                cur = layer(self._trace_outs[-1] if self._trace_outs else self.inputs[0])
                if isinstance(cur, list):
                    raise ValueError(f"Layer '{layer.name}' of Sequential model '{self.name}' has several outputs; "
                                     "a Sequential model needs a single output at every step")
                self._trace_outs.append(cur)
                added.append(cur)
            before = self.outputs
            self.outputs = [self._trace_outs[-1]]
            try:
                super()._build_core()
            except Exception:
                self.outputs = before
                raise
        except Exception:
            del self._trace_outs[len(self._trace_outs) - len(added):]
            raise

    def _input_sample_shapes(self) -> List[List[int]]:
        return [list(self._input_shape or ())]

    def _flatten_into(self, flat: _FlatGraph, inputs: List[int]) -> List[int]:
        from ._graph import map_graph

        if len(inputs) != 1:
            raise ValueError(f"Sequential model '{self.name}' takes one input, received {len(inputs)}")
        # the traced stack, with the ops that compute masks between its layers
        nodes, _ = map_graph(self.inputs, self.outputs, check_names=False)
        return _flatten_nodes([n for n in nodes if not n.is_input], self.inputs, self.outputs, flat, inputs)

    def _build_from_data(self, x: List[np.ndarray]) -> None:
        if not self._layers:
            raise ValueError(f"Model '{self.name}' has no layers.")
        self._input_shape = tuple(x[0].shape[1:])
        self._build_core()

    def _build_for_shapes(self, shapes: List[List[int]]) -> None:
        self._input_shape = tuple(shapes[0])
        self._build_core()

    def _input_keys(self) -> List[str]:
        return [self._input_name or "input_layer"]

    def _output_names(self) -> List[str]:
        return [self._layers[-1].name] if self._layers else ["output"]

    def _outputs_result(self, arrays: List[Any]) -> Any:
        return arrays[0]

    def _layer_configs(self) -> List[dict]:
        return [_serialize(layer) for layer in self._layers]

    def get_config(self) -> dict:
        """The model's config (`name` and `layers`), as Keras's `Sequential.get_config()`."""
        _preprocess.refuse_config(self)
        layers = []
        if self._input_shape is not None:
            layers.append({"class_name": "InputLayer",
                           "config": {"batch_shape": [None, *self._input_shape], "dtype": "float32",
                                      "sparse": False, "name": self._input_name or "input_layer"}})
        layers += self._layer_configs()
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32", "layers": layers}


def _structure(value: Any, what: str) -> Tuple[str, List[Any], List[str]]:
    """(kind, flat tensors, dict keys) of a model's `inputs`/`outputs`: one tensor, a list/tuple, or a dict
    (flattened in sorted key order, as Keras's `tree.flatten`)."""
    from ._graph import KerasTensor

    if isinstance(value, dict):
        keys = sorted(value)
        items = [value[k] for k in keys]
        kind = "dict"
    elif isinstance(value, (list, tuple)):
        items, keys, kind = list(value), [], "list"
    else:
        items, keys, kind = [value], [], "single"
    for t in items:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"All `{what}` of a functional model must be symbolic tensors (from kerust.Input and "
                            f"layer calls); received {t!r} of type {type(t).__name__}")
    if not items:
        raise ValueError(f"A functional model needs at least one tensor in `{what}`")
    return kind, items, keys


class Functional(Model):
    """A model defined by calling layers on symbolic inputs: ``keras.Model(inputs, outputs)``."""

    def __init__(self, inputs: Any, outputs: Any, name: Optional[str] = None, trainable: bool = True) -> None:
        from ._graph import map_graph

        self._init_model(name, trainable, "functional")
        inputs = _preprocess.engine_inputs(self, inputs)  # string Inputs -> their TextVectorization's output
        self._in_kind, self.inputs, in_keys = _structure(inputs, "inputs")
        self._out_kind, self.outputs, out_keys = _structure(outputs, "outputs")
        for t in self.inputs:
            if not _is_input_layer(t._keras_history[0]):
                raise ValueError(f"The inputs of a functional model must come from kerust.Input; {t} is the output "
                                 f"of layer '{t._keras_history[0].name}'")
        nodes, layers = map_graph(self.inputs, self.outputs)
        self._nodes = [n for n in nodes if not n.is_input]
        self._layers = [x for x in layers if not getattr(x, "_is_operation", False)]
        self._in_keys = in_keys or [t._keras_history[0].name for t in self.inputs]
        self._out_keys = out_keys or [t._keras_history[0].name for t in self.outputs]
        self._build_core()

    def _input_sample_shapes(self) -> List[List[int]]:
        from .layers import _sample_shape

        return [_sample_shape(t, f"Model '{self.name}'") for t in self.inputs]

    def _flatten_into(self, flat: _FlatGraph, inputs: List[int]) -> List[int]:
        return _flatten_nodes(self._nodes, self.inputs, self.outputs, flat, inputs)

    def _input_keys(self) -> List[str]:
        return list(self._in_keys)

    def _output_names(self) -> List[str]:
        return list(self._out_keys)

    def _outputs_result(self, arrays: List[Any]) -> Any:
        if self._out_kind == "dict":
            return dict(zip(self._out_keys, arrays))
        if self._out_kind == "list" and (len(arrays) > 1 or not isinstance(arrays[0], np.ndarray)):
            return list(arrays)
        return arrays[0]  # one array, also for outputs given as a list of one (Keras's predict unwraps it)

    def _node_key(self) -> Dict[int, Tuple[Any, int]]:
        """For each node of this model: (its layer, its index among that layer's nodes in this model)."""
        counts: Dict[int, int] = {}
        keys: Dict[int, Tuple[Any, int]] = {}
        for layer in self._layers:
            for node in layer._inbound_nodes:
                if id(node) in self._node_ids():
                    keys[id(node)] = (layer, counts.get(id(layer), 0))
                    counts[id(layer)] = counts.get(id(layer), 0) + 1
        return keys

    def _node_ids(self) -> set:
        ids = getattr(self, "_node_id_cache", None)
        if ids is None:
            ids = {id(n) for n in self._nodes} | {id(t._keras_history[0]._inbound_nodes[0]) for t in self.inputs}
            self._node_id_cache = ids
        return ids

    def _history_of(self, t: Any, keys: Dict[int, Tuple[Any, int]]) -> list:
        layer, node_index, tensor_index = t._keras_history
        node = layer._inbound_nodes[node_index]
        return [layer.name, keys[id(node)][1], tensor_index]

    def get_config(self) -> dict:
        """Keras's `Functional` config: every layer with the `inbound_nodes` of its calls in this model, and
        `input_layers` / `output_layers`."""
        _preprocess.refuse_config(self)
        if any(getattr(n.operation, "_is_operation", False) and not getattr(n.operation, "_derived", False)
               for n in self._nodes):
            raise NotImplementedError(
                f"Model '{self.name}' calls keras.ops directly on its symbolic tensors; kerust cannot write such a "
                "model's config yet (its weights save with save_weights). Wrap the ops in a layers.Lambda or a "
                "custom layer to save the whole model.")
        keys = self._node_key()

        def tensor(t: Any) -> dict:
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(t.shape), "dtype": "float32", "keras_history": self._history_of(t, keys)}}

        entries = []
        for layer in self._layers:
            entry = _serialize(layer)
            entry["name"] = layer.name
            inbound = []
            for node in layer._inbound_nodes:
                if id(node) not in self._node_ids() or node.is_input:
                    continue
                if hasattr(layer, "_node_config"):  # a call with Keras's own arguments (kerust/_attention.py)
                    inbound.append(layer._node_config(node, tensor))
                    continue
                call_args = node.call_args
                args = [tensor(t) for t in (call_args if isinstance(call_args, (list, tuple)) else [call_args])]
                kwargs: dict = {"mask": None} if isinstance(layer, Model) else {}
                for key, value in node.call_kwargs.items():
                    kwargs[key] = [tensor(t) for t in value] if isinstance(value, list) else tensor(value)
                if node.mask_kwarg:  # a mask given as `mask=` (one found on the input is made again on loading)
                    kwargs["mask"] = tensor(node.input_tensors[-1])
                inbound.append({"args": [args] if isinstance(node.call_args, (list, tuple)) else args,
                                "kwargs": kwargs})
            entry["inbound_nodes"] = inbound
            entries.append(entry)

        def layers_of(tensors: List[Any], kind: str, names: List[str]) -> Any:
            hist = [self._history_of(t, keys) for t in tensors]
            if kind == "dict":  # Keras keeps the structure: {key: [layer, node, tensor]}
                return dict(zip(names, hist))
            return hist[0] if kind == "single" else hist

        return {"name": self.name, "trainable": self.trainable, "layers": entries,
                "input_layers": layers_of(self.inputs, self._in_kind, self._in_keys),
                "output_layers": layers_of(self.outputs, self._out_kind, self._out_keys)}


def _flatten_nodes(nodes: List[Any], in_tensors: List[Any], out_tensors: List[Any], flat: _FlatGraph,
                   inputs: List[int]) -> List[int]:
    """Add the nodes of a functional graph to `flat` (nested models, custom layers and ops inlined)."""
    from ._custom import flatten_node, is_custom
    from ._graph import Operation
    from ._variable import VariableRead

    ids = {id(t): i for t, i in zip(in_tensors, inputs)}
    for node in nodes:
        ins = [ids[id(t)] for t in node.input_tensors]
        op = node.operation
        if isinstance(op, Model):
            outs = op._flatten_into(flat, ins)
        elif isinstance(op, Operation):
            outs = [flat.add_op(op, ins)]
        elif isinstance(op, VariableRead):
            outs = [flat.add_var(op.variable)]
        elif is_custom(op):
            outs = flatten_node(op, node, flat, ins)
        else:
            outs = [flat.add_node(op, ins, node.mask_input)]
            if len(node.outputs) > 1:  # several outputs come packed in the engine's one
                outs = op._unpack(flat, outs[0], [t.shape[1:] for t in node.outputs])
        if not isinstance(op, (Model, Operation, VariableRead)) and \
                getattr(op, "activity_regularizer", None) is not None:
            for t, o in zip(node.outputs, outs):
                flat.added_losses.append(_activity_penalty(op.activity_regularizer, t, flat, o))
        for t, o in zip(node.outputs, outs):
            ids[id(t)] = o
    return [ids[id(t)] for t in out_tensors]


def _activity_penalty(regularizer: Any, output: Any, flat: _FlatGraph, output_id: int) -> int:
    """Keras's activity regularizer of one layer output, as op nodes reading tensor `output_id`: the id of the
    penalty, which joins the model's added losses (Keras's `Layer.__call__` adds it with `add_loss`)."""
    from ._custom import Placeholder, Trace
    from .regularizers import activity_penalty

    placeholder = Placeholder(output)
    penalty = Trace([placeholder.tensor], [], [activity_penalty(regularizer, placeholder.tensor)])
    return _flatten_nodes(penalty.nodes, penalty.inputs, penalty.losses, flat, [output_id])[0]


def _detach(layer: Any, model: "Model") -> None:
    """`layer` (or a model's layers) leaves `model`: the layers whose weights live in its engine keep copies, which
    the next model built with them takes (as in Keras, a popped layer keeps its weights)."""
    leaves = [u for u in _FlatGraph.leaves(layer)] if isinstance(layer, Model) else [layer]
    if model._core is None:
        return
    values = None
    for leaf in leaves:
        if leaf._home is model and id(leaf) in model._unit_index:
            values = model._core.get_weights() if values is None else values
            first, n = model._weight_slot_of(leaf)
            leaf._detached = [w.copy() for w in values[first:first + n]]
            leaf._home = None


def _serialize(layer: Any) -> dict:
    if isinstance(layer, Model):
        return {"module": "keras", "class_name": layer.class_name, "config": layer.get_config(),
                "registered_name": None}
    if _is_input_layer(layer):
        return {"module": "keras.layers", "class_name": "InputLayer", "config": layer.get_config(),
                "registered_name": None}
    return {"module": "keras.layers", "class_name": layer.class_name, "config": layer.get_config(),
            "registered_name": None}


def _as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_keys(what: str, given: dict, names: List[str], data: bool = False) -> None:
    unknown = [k for k in given if k not in names]
    if unknown:
        if data:
            raise ValueError(f"`{what}` has keys {sorted(given)}, which do not all match the model's outputs. "
                             f"Expected the following keys: {names}")
        raise ValueError(f"Expected keys {names} in {what} dict, but found {what}.keys()={sorted(given)}")


def _per_output(what: str, value: Any, names: List[str], broadcast: bool) -> List[Any]:
    """`value` for each output: one value (for all outputs), a list in output order, or a dict by name."""
    if isinstance(value, dict):
        _check_keys(what, value, names)
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"`{what}` has {len(value)} entries, but the model has {len(names)} outputs "
                             f"({names})")
        return list(value)
    if not broadcast and len(names) > 1:
        raise ValueError(f"`{what}` must be a list or a dict for a model with {len(names)} outputs ({names})")
    return [value] * len(names)



_MAX_DIM = 2**31 - 1

# guards every model's training claim (``Sequential._training``)
_CLAIM_LOCK = _thread.allocate_lock()


def _check_shape(what: str, shape: Sequence[Any]) -> None:
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 < d <= _MAX_DIM for d in shape):
        raise ValueError(f"{what} must be positive integers (at most {_MAX_DIM}), received {(None, *shape)}")


def _require_samples(xs: List[np.ndarray]) -> None:
    for x in xs:
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError("Expected input data to be non-empty. Received: x.shape=" + str(x.shape))


def _batch_size(value: Any) -> int:
    if value is None:
        return 32
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"batch_size must be a positive int, received {value!r}")
    return int(value)


def _apply_class_weight(class_weight: Dict[int, float], y: np.ndarray, sw: Optional[np.ndarray]) -> np.ndarray:
    if not isinstance(class_weight, dict):
        raise TypeError(f"`class_weight` must be a dict mapping class indices to weights, received "
                        f"{type(class_weight).__name__}")
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(y.shape[0], -1)[:, 0]
    weights = np.ones(y.shape[0], dtype=np.float32)
    for i, label in enumerate(labels.reshape(y.shape[0], -1)[:, 0] if labels.ndim > 1 else labels):
        weights[i] = class_weight.get(int(round(float(label))), 1.0)
    return weights if sw is None else (weights * sw).astype(np.float32)


def load_model(filepath: Any, custom_objects: Any = None, compile: bool = True, safe_mode: bool = True) -> Model:
    """Load a Keras v3 `.keras` file (see `kerust.saving.load_model`)."""
    from . import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def model_from_json(json_string: str) -> Model:
    """A model (uncompiled, freshly initialised) from `to_json()` output or Keras's JSON config."""
    from . import saving

    return saving.model_from_config(_json.loads(json_string))


def clone_model(model: Model, input_tensors: Any = None, clone_function: Any = None) -> Model:
    """A new model with the same architecture (`keras.models.clone_model`): new layers, freshly initialised
    weights, not compiled."""
    if input_tensors is not None or clone_function is not None:
        raise ValueError("clone_model: `input_tensors` and `clone_function` are not supported by kerust yet")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model expects a kerust model, received {type(model).__name__}")
    from . import saving

    config = saving.keras_config(model)
    config.pop("compile_config", None)
    return saving.model_from_config(config)

"""Host-side preprocessing at the front of a model: ``TextVectorization`` as a model's first layer.

Keras's text tutorials put the vectorizer inside the model::

    model = keras.Sequential([keras.Input(shape=(1,), dtype="string"), vectorize_layer,
                              layers.Embedding(...), ...])

The engine computes on numbers, so kerust splits such a model in two: the vectorizer runs in Python/NumPy on the
strings once per ``fit`` / ``evaluate`` / ``predict`` call (before batching, not per batch), and the engine's
graph starts at the vectorizer's output, an input of the vectorizer's output shape. Calling the vectorizer on a
string ``Input`` returns that engine input (a root tensor, tagged with where it came from); a functional model
given the string ``Input`` is built on the tagged tensor instead, and a Sequential model keeps the vectorizer
beside its engine layers. The vectorizer's output must have a fixed shape: ``output_sequence_length`` in
``"int"`` mode, a vocabulary (or ``pad_to_max_tokens``) in the other modes.

A Sequential model that starts with a vectorizer is saved as Keras saves it (``.keras``: the string InputLayer and
the vectorizer's config in ``config.json``, its vocabulary in ``assets/layers/text_vectorization/vocabulary.txt``)
and loaded from Keras's files. Not yet: the ``"tf_idf"`` mode's weights in files, a functional model's config or
file (refused with NotImplementedError), and ``model.layers`` / ``summary()`` listing the vectorizer.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np


def _is_host_layer(layer: Any) -> bool:
    from ._text import TextVectorization

    return isinstance(layer, TextVectorization)


def _engine_shape(layer: Any, input_shape: Tuple[Optional[int], ...]) -> Tuple[int, ...]:
    """The vectorizer's output shape without the batch axis (one string per sample: ``(n,)`` or ``(n, 1)`` in,
    ``(n, length)`` or ``(n, depth)`` out), which must be fixed for the engine."""
    if tuple(input_shape[1:]) not in ((), (1,)):
        raise ValueError(f"{layer._what()}: in front of a model it takes one string per sample (an Input of shape "
                         f"(1,) or ()), received shape {tuple(input_shape)}")
    mode = layer._output_mode
    where = "kerust runs it on the host in front of the model's engine, which needs a fixed output shape"
    if mode == "int":
        if layer._output_sequence_length is None:
            raise ValueError(f"{layer._what()}: {where}: set `output_sequence_length`")
        return (int(layer._output_sequence_length),)
    if mode == "one_hot" and layer._split is not None:
        raise ValueError(f"{layer._what()}: {where}; output_mode='one_hot' on split text has one row per token "
                         "(ragged): use 'multi_hot', 'count' or 'tf_idf'")
    depth = layer._max_tokens if layer._pad_to_max_tokens else layer._frozen_vocab_size
    if depth is None:
        raise ValueError(f"{layer._what()}: {where}, and its depth is the vocabulary size: call `adapt` (or pass "
                         "`vocabulary`, or `pad_to_max_tokens=True`) before building the model")
    return (int(depth),)


def _output_dtype(layer: Any) -> str:
    return "int64" if layer._output_mode == "int" else "float32"


def symbolic_call(layer: Any, inputs: Any) -> Any:
    """``vectorizer(string_input)``: the engine input that stands for the vectorizer's output."""
    from ._naming import unique_name
    from .layers import Input

    if getattr(inputs, "dtype", None) != "string":
        raise TypeError(f"{layer._what()}: called on a symbolic tensor of dtype {inputs.dtype!r}; it takes strings "
                        "(keras.Input(shape=(1,), dtype='string'))")
    history = inputs._keras_history[0]
    if not getattr(history, "_is_input_layer", False):
        raise ValueError(f"{layer._what()}: kerust runs TextVectorization on the host, so it must be called on "
                         "a model input (keras.Input(shape=(1,), dtype='string')) directly")
    if getattr(inputs, "_host_out", None) is not None:
        raise ValueError(f"{layer._what()}: the string input '{inputs.name}' already feeds "
                         f"'{inputs._host_out._host[0].name}'; kerust takes one vectorizer per string input")
    shape = _engine_shape(layer, tuple(inputs.shape))
    out = Input(shape=shape, dtype=_output_dtype(layer), name=unique_name(f"{layer.name}_output"))
    out._host = (layer, inputs)
    inputs._host_out = out
    return out


def engine_inputs(model: Any, inputs: Any) -> Any:
    """A functional model's inputs with each string Input replaced by its vectorizer's engine input; records
    on ``model._host`` which engine input comes from which vectorizer and string input."""
    from ._graph import KerasTensor

    def swap(t: Any) -> Any:
        if isinstance(t, KerasTensor) and getattr(t, "dtype", None) == "string":
            out = getattr(t, "_host_out", None)
            if out is None:
                raise ValueError(f"Model '{model.name}': the string input '{t.name}' must feed a TextVectorization "
                                 "layer (kerust computes on numbers: strings are vectorized on the host first)")
            hosts.append((out, out._host[0], t))
            return out
        return t

    hosts: List[Tuple[Any, Any, Any]] = []
    if isinstance(inputs, dict):
        swapped: Any = {k: swap(v) for k, v in inputs.items()}
    elif isinstance(inputs, (list, tuple)):
        swapped = type(inputs)(swap(v) for v in inputs)
    else:
        swapped = swap(inputs)
    if hosts:
        model._host = hosts
    return swapped


def sequential_add(model: Any, layer: Any) -> bool:
    """``Sequential.add`` of a string Input or of a TextVectorization at the front: kept on the host (True), or
    not a host matter (False)."""
    is_string_input = getattr(layer, "_is_input_layer", False) and getattr(layer, "dtype", None) == "string"
    if is_string_input:
        if model._layers or getattr(model, "_host_layers", None):
            raise ValueError("An Input/InputLayer must be the first thing added to a Sequential model.")
        model._host_input = layer
        return True
    if not _is_host_layer(layer):
        if getattr(model, "_host_input", None) is not None and not getattr(model, "_host_layers", None):
            raise ValueError(f"Model '{model.name}': a string Input must be followed by a TextVectorization layer "
                             "(kerust computes on numbers: strings are vectorized on the host first)")
        return False
    if model._layers or getattr(model, "_host_layers", None):
        raise ValueError(f"{layer._what()}: kerust runs TextVectorization on the host, before the engine, so it "
                         "must be the first layer of a Sequential model")
    string_input = getattr(model, "_host_input", None)
    input_shape = tuple(string_input.shape) if string_input is not None else (None, 1)
    model._input_shape = _engine_shape(layer, input_shape)
    model._input_name = f"{layer.name}_output"
    model._host_layers = [layer]
    return True


def host_data(model: Any, x: Any, what: str = "x") -> Any:
    """``x`` with the strings of each host input vectorized (once per call), keyed and ordered for the engine."""
    host_layers = getattr(model, "_host_layers", None)
    if host_layers:
        return _vectorize(host_layers[0], x, what)
    hosts = getattr(model, "_host", None)
    if not hosts or x is None:
        return x
    keys = model._input_keys()
    by_engine = {id(out): (layer, string_in) for out, layer, string_in in hosts}
    routes = [by_engine.get(id(t)) for t in model.inputs]
    if isinstance(x, dict):
        out = dict(x)
        for key, route in zip(keys, routes):
            if route is None:
                continue
            layer, string_in = route
            source = key if key in x else string_in.name if string_in.name in x else None
            if source is not None:
                out[key] = _vectorize(layer, out.pop(source), f"{what}[{source!r}]")
        return out
    if len(keys) == 1:
        return _vectorize(routes[0][0], x, what) if routes[0] is not None else x
    if isinstance(x, (list, tuple)) and len(x) == len(keys):
        return [(_vectorize(r[0], v, f"{what}[{i}]") if r is not None else v) for i, (v, r) in
                enumerate(zip(x, routes))]
    return x


def _vectorize(layer: Any, x: Any, what: str) -> Any:
    if x is None:
        return None
    arr = np.asarray(x, dtype=object) if isinstance(x, (list, tuple)) else np.asarray(x)
    if arr.dtype.kind not in "USO":
        raise TypeError(f"{what}: the model starts with {layer._what()}, which takes strings; received an array "
                        f"of dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]  # one string per sample, as the model's (n, 1) string input
    return layer(arr)


_ASSET_DIR = "assets/layers/text_vectorization"


def refuse_file(model: Any) -> None:
    """``save`` / ``to_json``: a Sequential model with a vectorizer is written as Keras writes it (not in
    ``"tf_idf"`` mode yet); a functional one not yet."""
    host_layers = getattr(model, "_host_layers", None)
    if host_layers and host_layers[0]._output_mode == "tf_idf":
        raise NotImplementedError(f"Model '{model.name}': kerust does not write the TF-IDF weights of "
                                  f"{host_layers[0]._what()} to files yet")
    if getattr(model, "_host", None):
        refuse_config(model)


def keras_sequential_entry(model: Any, out: dict, policy: dict) -> dict:
    """Keras's ``config.json`` entry of a Sequential model that starts with a vectorizer: the string InputLayer,
    the vectorizer (with its ``build_config``), then the engine's layers as kerust wrote them."""
    import json

    host_layers = getattr(model, "_host_layers", None)
    if not host_layers:
        return out
    layer = host_layers[0]
    string_input = getattr(model, "_host_input", None)
    shape = [int(d) for d in string_input.shape[1:]] if string_input is not None else [1]
    batch = [None, *shape]
    entries = out["config"]["layers"]
    if entries and entries[0].get("class_name") == "InputLayer":
        entries.pop(0)
    taken = {e.get("config", {}).get("name") for e in entries} | {layer.name}
    name, n = (string_input.name if string_input is not None else "input_layer"), 0
    while name in taken:
        n += 1
        name = f"input_layer_{n}"
    config = layer.get_config()
    config["dtype"] = json.loads(json.dumps(policy))
    entries[:0] = [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": batch, "dtype": "string", "sparse": False, "ragged": False, "name": name,
                    "optional": False}, "registered_name": None},
        {"module": "keras.layers", "class_name": "TextVectorization", "config": config, "registered_name": None,
         "build_config": {"input_shape": list(batch)}},
    ]
    out["config"]["build_input_shape"] = list(batch)
    out["build_config"] = {"input_shape": list(batch)}
    return out


def write_host_groups(f: Any, model: Any) -> None:
    """The vectorizer's (empty) groups in ``model.weights.h5``, where Keras has them."""
    if getattr(model, "_host_layers", None):
        for path in ("layers/text_vectorization/vars", "layers/text_vectorization/_lookup_layer/vars"):
            f.create_group(path)


def host_assets(model: Any) -> List[Tuple[str, bytes]]:
    """The vectorizer's ``.keras`` assets as Keras writes them (the vocabulary, when it was not given to the
    constructor and so is not in the config), for the vectorizer and its inner StringLookup."""
    host_layers = getattr(model, "_host_layers", None)
    if not host_layers or host_layers[0]._input_vocabulary is not None:
        return []
    data = "\n".join(host_layers[0].get_vocabulary(include_special_tokens=True)).encode("utf-8")
    return [(f"{_ASSET_DIR}/vocabulary.txt", data), (f"{_ASSET_DIR}/_lookup_layer/vocabulary.txt", data)]


def starts_on_host(layers: List[Any]) -> bool:
    """Whether a Sequential model's layer list (as read from a file) starts with a string InputLayer."""
    return bool(layers) and getattr(layers[0], "_is_input_layer", False) and layers[0].dtype == "string"


def load_host_assets(model: Any, read: Any, has: Any, where: str) -> None:
    """Give a loaded model's vectorizer the vocabulary of the file's assets (``read``/``has``: the archive's)."""
    host_layers = getattr(model, "_host_layers", None)
    if not host_layers or host_layers[0]._input_vocabulary is not None:
        return
    layer = host_layers[0]
    name = f"{_ASSET_DIR}/vocabulary.txt"
    if not has(name):
        raise ValueError(f"Cannot load {where}: {layer._what()} has no vocabulary in its config and the file has "
                         f"no {name}")
    try:
        lines = read(name).decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"Cannot load {where}: {name} is not UTF-8 text ({exc})") from None
    while lines and lines[-1] == "":
        lines.pop()
    try:
        layer.set_vocabulary(lines)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"Cannot load {where}: {name}: {exc}") from None


def refuse_config(model: Any) -> None:
    """Configs and ``.keras`` files of models with a host-side vectorizer are not written yet."""
    if getattr(model, "_host_layers", None) or getattr(model, "_host", None):
        raise NotImplementedError(
            f"Model '{model.name}' starts with a TextVectorization layer, which kerust runs on the host; kerust "
            "cannot write such a model's config or .keras file yet. Save the engine part (a model from the "
            "vectorizer's output on) and the vectorizer's get_config()/get_vocabulary() separately")

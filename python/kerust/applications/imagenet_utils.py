"""``keras.applications.imagenet_utils``: the input preprocessing of the ImageNet models, ``decode_predictions``
(from a local copy of Keras's class index; kerust never downloads), and what the model functions share: the
checks of their arguments, their input and their weights."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_ORIGIN = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"

_CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

_CLASS_INDEX: Optional[dict] = None  # loaded once per process, as Keras keeps its CLASS_INDEX


def _data_format(data_format: Any) -> str:
    if data_format is None:
        return "channels_last"
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError("Expected data_format to be one of `channels_first` or `channels_last`. "
                         f"Received: data_format={data_format}")
    return str(data_format)


def preprocess_input(x: Any, data_format: Optional[str] = None, mode: str = "caffe") -> Any:
    """Preprocesses a NumPy array (3D or 4D, 3 colour channels, values in [0, 255]) of images, as Keras does:

    - ``"caffe"``: RGB to BGR, then each channel zero-centred on ImageNet's mean, without scaling;
    - ``"tf"``: scaled to [-1, 1];
    - ``"torch"``: scaled to [0, 1], then each channel normalised with ImageNet's mean and standard deviation.

    A floating-point array is preprocessed in place (and returned), as in Keras; others are converted to float32
    first. Symbolic tensors (inside a model) are not supported: preprocess the data before `fit`/`predict`."""
    if mode not in ("caffe", "tf", "torch"):
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    data_format = _data_format(data_format)
    from .._graph import KerasTensor

    if isinstance(x, KerasTensor):
        raise TypeError("preprocess_input: kerust preprocesses NumPy arrays; received a symbolic tensor (preprocess "
                        "the images before passing them to the model)")
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if not issubclass(x.dtype.type, np.floating):
        x = x.astype(np.float32, copy=False)
    channel_axis = (0 if x.ndim == 3 else 1) if data_format == "channels_first" else x.ndim - 1
    if x.ndim < 1 or x.shape[channel_axis] != 3:
        raise ValueError(f"preprocess_input: expected images with 3 colour channels on axis {channel_axis} "
                         f"({data_format}); received an array of shape {x.shape}")
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x

    def channel(i: int) -> Tuple[Any, ...]:
        index: List[Any] = [slice(None)] * x.ndim
        index[channel_axis] = i
        return tuple(index)

    if mode == "torch":
        x /= 255.0
        mean: Sequence[float] = _TORCH_MEAN
        std: Optional[Sequence[float]] = _TORCH_STD
    else:
        flip: List[Any] = [slice(None)] * x.ndim
        flip[channel_axis] = slice(None, None, -1)
        x = x[tuple(flip)]  # a view, as in Keras: the subtraction below writes through it
        mean, std = _CAFFE_MEAN, None
    for i in range(3):
        x[channel(i)] -= mean[i]
        if std is not None:
            x[channel(i)] /= std[i]
    return x


def _class_index_dirs() -> List[Path]:
    dirs: List[Path] = []
    env = os.environ.get("KERUST_DATA")
    if env:
        dirs += [Path(env), Path(env) / "models"]
    kerust_home = os.environ.get("KERUST_HOME")
    dirs.append((Path(kerust_home) if kerust_home else Path.home() / ".kerust") / "models")
    keras_home = os.environ.get("KERAS_HOME")
    dirs.append((Path(keras_home) if keras_home else Path.home() / ".keras") / "models")
    return dirs


def _read_class_index(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"decode_predictions: cannot read the ImageNet class index {path} ({e})") from None
    ok = isinstance(index, dict) and all(
        isinstance(index.get(str(i)), list) and len(index[str(i)]) == 2 and all(isinstance(s, str)
                                                                                for s in index[str(i)])
        for i in range(1000))
    if not ok:
        raise ValueError(f"decode_predictions: {path} is not Keras's ImageNet class index (a JSON object mapping "
                         '"0" ... "999" to [wordnet_id, class_name])')
    return index


def _class_index() -> dict:
    global _CLASS_INDEX
    if _CLASS_INDEX is None:
        looked = _class_index_dirs()
        for d in looked:
            if (d / CLASS_INDEX_FILE).is_file():
                _CLASS_INDEX = _read_class_index(d / CLASS_INDEX_FILE)
                break
        else:
            raise FileNotFoundError(
                f"decode_predictions: {CLASS_INDEX_FILE} not found (looked in {', '.join(str(d) for d in looked)}). "
                f"kerust never downloads: get Keras's file ({CLASS_INDEX_ORIGIN}; Keras's own decode_predictions "
                "stores it in ~/.keras/models) and put it in one of those folders or in $KERUST_DATA")
    return _CLASS_INDEX


def decode_predictions(preds: Any, top: int = 5) -> List[List[Tuple[str, str, Any]]]:
    """Decodes the predictions of an ImageNet model: for each sample, the `top` classes as
    `(class_name, class_description, score)`, best first. The class index is Keras's `imagenet_class_index.json`,
    read from `$KERUST_DATA` (or its `models/` folder), `$KERUST_HOME/models` (`~/.kerust/models`) or Keras's cache
    `$KERAS_HOME/models` (`~/.keras/models`); it is never downloaded."""
    preds = np.asarray(preds)
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape (samples, "
                         f"1000)). Received array with shape: {preds.shape}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"decode_predictions: `top` must be a positive int, received top={top!r}")
    index = _class_index()
    results = []
    for pred in preds:
        best = pred.argsort()[-int(top):][::-1]
        row = [(index[str(i)][0], index[str(i)][1], pred[i]) for i in best]
        row.sort(key=lambda t: t[2], reverse=True)
        results.append(row)
    return results


# ---- what the model functions share ----------------------------------------------------------------------------
def _check_weights(weights: Any, who: str, download_name: str) -> None:
    """`weights` is None or the path of an existing file; "imagenet" is refused (kerust never downloads)."""
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(
            f"{who}: kerust never downloads weights, so `weights='imagenet'` is not available. Pass `weights=None` "
            f"(random initialization) or the path of a local Keras weights file: Keras's own ImageNet file "
            f"({download_name}, which Keras keeps in ~/.keras/models after downloading it), or a `.weights.h5` "
            "file saved by `model.save_weights`")
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError("The `weights` argument should be either `None` (random initialization), `imagenet` "
                         "(pre-training on ImageNet), or the path to the weights file to be loaded.  Received "
                         f"`weights={weights}`")


def _check_pooling(pooling: Any, who: str) -> None:
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{who}: `pooling` must be None, 'avg' or 'max'; received pooling={pooling!r}")


def _check_classes(classes: Any, who: str) -> None:
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise ValueError(f"{who}: `classes` must be a positive int, received classes={classes!r}")


def obtain_input_shape(input_shape: Any, default_size: int, min_size: int, data_format: str, require_flatten: bool,
                       weights: Any = None) -> Tuple[Any, ...]:
    """Keras's check of a model's `input_shape` (channels-last): the default `(default_size, default_size, 3)`
    when none is given and the top is included, a three-int shape of at least `min_size` pixels otherwise."""
    if data_format != "channels_last":
        raise ValueError(f"kerust's applications are channels-last only; received data_format={data_format!r}")
    if input_shape is not None:
        if not isinstance(input_shape, (list, tuple)):
            raise ValueError(f"`input_shape` must be a tuple of three integers. Received: input_shape={input_shape}")
        input_shape = tuple(input_shape)
    if input_shape and len(input_shape) == 3:
        if input_shape[-1] not in (1, 3):
            warnings.warn("This model usually expects 1 or 3 input channels. However, it was passed an input_shape "
                          f"with {input_shape[-1]} input channels.", stacklevel=3)
        default_shape: Tuple[Any, ...] = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        if (input_shape[0] is not None and input_shape[0] < min_size) or \
                (input_shape[1] is not None and input_shape[1] < min_size):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. Received: "
                         f"input_shape={input_shape}")
    return input_shape


def correct_pad(inputs: Any, kernel_size: Any) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The zero padding before a strided 'valid' convolution that makes it match TensorFlow's 'same' (Keras's)."""
    size = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation: Any, weights: Any) -> None:
    """With pretrained weights, the top's activation must be None or softmax (Keras's rule)."""
    if weights is None:
        return
    if classifier_activation not in (None, "softmax", "linear"):
        raise ValueError("Only `None` and `softmax` activations are allowed for the `classifier_activation` "
                         "argument when using pretrained weights, with `include_top=True`; Received: "
                         f"classifier_activation={classifier_activation}")


def _source_inputs(tensor: Any) -> List[Any]:
    """The model inputs a tensor comes from (Keras's get_source_inputs), in the order they are first reached."""
    found: List[Any] = []
    seen: set = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        layer, node_index, _ = t._keras_history
        node = layer._inbound_nodes[node_index]
        if node.is_input:
            found.append(t)
        else:
            stack.extend(reversed(node.call_tensors))
    return found


def _image_input(input_tensor: Any, input_shape: Tuple[Any, ...], who: str) -> Any:
    """The tensor the model starts from: a new Input of `input_shape`, or `input_tensor`."""
    from .. import layers
    from .._graph import KerasTensor

    if input_tensor is None:
        if None in input_shape:
            raise ValueError(
                f"{who}: kerust builds models of static shapes, and this input shape is {input_shape} (Keras's "
                "default without a top). Pass `input_shape=(height, width, channels)`")
        return layers.Input(shape=input_shape)
    if not isinstance(input_tensor, KerasTensor) or getattr(input_tensor, "_keras_history", None) is None:
        raise ValueError(f"input_tensor is not a Keras tensor; Received `input_tensor={input_tensor}`")
    if len(input_tensor.shape) != 4:
        raise ValueError(f"{who}: `input_tensor` must be a batch of images (rank 4, channels-last); received a "
                         f"tensor of shape {tuple(input_tensor.shape)}")
    return input_tensor


def _check_input_tensor_shape(input_tensor: Any, input_shape: Any) -> None:
    """Keras's check when both `input_tensor` and `input_shape` are given (the columns must agree)."""
    if input_tensor is not None and input_shape is not None and len(input_shape) > 1 and \
            input_tensor.shape[2] != input_shape[1]:
        raise ValueError("input_tensor.shape[2] must equal input_shape[1]; Received `input_tensor.shape="
                         f"{tuple(input_tensor.shape)}`, `input_shape={tuple(input_shape)}`")


def _finish(img_input: Any, input_tensor: Any, x: Any, name: str, weights: Any) -> Any:
    """The functional model from the input(s) to `x`, with `weights` loaded."""
    from ..models import Model

    inputs = _source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Model(inputs, x, name=name)
    if weights is not None:
        load_weights(model, weights)
    return model


def _top(x: Any, include_top: bool, pooling: Any, classes: int, classifier_activation: Any, weights: Any,
         pool_names: Tuple[Optional[str], Optional[str]], dense: Optional[Callable[[Any], Any]] = None,
         dense_kwargs: Optional[dict] = None) -> Any:
    """The classifier (global average pooling and Dense "predictions") or the optional pooling, as Keras's
    applications end; `pool_names`: the names of the average and max pooling layers (None: automatic)."""
    from .. import layers

    avg_name, max_name = pool_names
    if include_top:
        x = layers.GlobalAveragePooling2D(name=avg_name)(x) if dense is None else dense(x)
        validate_activation(classifier_activation, weights)
        return layers.Dense(classes, activation=classifier_activation, name="predictions",
                            **(dense_kwargs or {}))(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


# ---- weights files ---------------------------------------------------------------------------------------------
def _attr_strings(group: Any, name: str) -> List[str]:
    """An attribute list of strings, also when Keras split it into chunks (`name0`, `name1`, ...)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values = []
        chunk = 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def load_weights(model: Any, weights: Any) -> None:
    """`model.load_weights(weights)` as Keras's applications call it: a Keras 3 `.weights.h5` (or `.keras`) file,
    or a legacy Keras HDF5 weights file (`.h5`, the format of Keras's ImageNet files), read layer by layer in the
    order of the model's weighted layers, as Keras reads it; every count and shape is checked before any weight
    is set."""
    path = os.fspath(weights)
    if path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5"):
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise ValueError(f"Cannot load weights from '{path}': not an HDF5 file ({e})") from None
        with f:
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            if "layer_names" in group.attrs:
                _load_legacy(model, group, path)
                return
    model.load_weights(path)


def _load_legacy(model: Any, group: Any, path: str) -> None:
    weighted = [layer for layer in model.layers if layer.weights]
    names = [n for n in _attr_strings(group, "layer_names") if n in group and _attr_strings(group[n], "weight_names")]
    if len(names) != len(weighted):
        raise ValueError(f"Cannot load '{path}': Layer count mismatch when loading weights from file. Model expected "
                         f"{len(weighted)} layers, found {len(names)} saved layers.")
    values: List[np.ndarray] = []
    for k, (layer, name) in enumerate(zip(weighted, names)):
        layer_group = group[name]
        saved = [layer_group[w] for w in _attr_strings(layer_group, "weight_names")]
        expected = layer.weights
        if len(saved) != len(expected):
            raise ValueError(f"Cannot load '{path}': Weight count mismatch for layer #{k} (named {layer.name} in the "
                             f"current model, {name} in the save file). Layer expects {len(expected)} weight(s). "
                             f"Received {len(saved)} saved weight(s)")
        for var, ds in zip(expected, saved):
            if tuple(ds.shape) != tuple(var.shape):
                raise ValueError(f"Cannot load '{path}': Shape mismatch in layer #{k} (named {layer.name}) for "
                                 f"weight {var.path}. Weight expects shape {tuple(var.shape)}. Received saved weight "
                                 f"with shape {tuple(ds.shape)}")
            if ds.dtype.kind != "f":
                raise ValueError(f"Cannot load '{path}': layer #{k} (named {layer.name}): weight {var.path} has "
                                 f"dtype {ds.dtype} (expected floats)")
    for name in names:
        layer_group = group[name]
        values.extend(np.asarray(layer_group[w], dtype=np.float32)
                      for w in _attr_strings(layer_group, "weight_names"))
    model.set_weights(_in_model_order(model, weighted, values))


def _in_model_order(model: Any, weighted: List[Any], values: List[np.ndarray]) -> List[np.ndarray]:
    """`values` (per weighted layer, in layer order) rearranged into the order of `model.weights`."""
    by_id = {}
    i = 0
    for layer in weighted:
        for var in layer.weights:
            by_id[id(var)] = values[i]
            i += 1
    order = [by_id.get(id(var)) for var in model.weights]
    if any(v is None for v in order):  # variables are views made per call: match them by path instead
        by_path = {}
        i = 0
        for layer in weighted:
            for var in layer.weights:
                by_path[var.path] = values[i]
                i += 1
        order = [by_path[var.path] for var in model.weights]
    return order  # type: ignore[return-value]

"""Keras utilities: one-hot labels, padding sequences, normalisation, the global random seed, and a gradient
check."""

from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from . import _core
from ._data_sources import PyDataset, Sequence  # noqa: F401  (keras.utils.PyDataset and its alias Sequence)
from ._directory_datasets import image_dataset_from_directory, text_dataset_from_directory  # noqa: F401


def to_categorical(x: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """One-hot encode integer labels (float64, as Keras); a trailing axis of size 1 is dropped first."""
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"to_categorical expects integer labels, received dtype {arr.dtype}")
    if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError("to_categorical expects integer class labels, received non-integer values")
    arr = arr.astype("int64")
    shape = arr.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    flat = arr.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise ValueError(
            f"to_categorical: labels must be in [0, {num_classes}); received values from {flat.min()} to {flat.max()}"
        )
    out = np.zeros((flat.shape[0], num_classes))
    out[np.arange(flat.shape[0]), flat] = 1
    return out.reshape(shape + (num_classes,))


def pad_sequences(sequences: Any, maxlen: Optional[int] = None, dtype: Any = "int32", padding: str = "pre",
                  truncating: str = "pre", value: Any = 0.0) -> np.ndarray:
    """Sequences of different lengths as one array `(len(sequences), maxlen, ...)`: each cut to its last (or,
    with ``truncating="post"``, first) `maxlen` items and filled with `value` before (or after, ``padding="post"``)
    it, as Keras does. `maxlen` defaults to the longest sequence."""
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    lengths = []
    item_shape: tuple = ()
    found = False
    for seq in sequences:
        try:
            n = len(seq)
        except TypeError:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {seq}") from None
        lengths.append(n)
        if n and not found:  # the shape of one item, from the first non-empty sequence
            item_shape = np.asarray(seq).shape[1:]
            found = True
    if maxlen is None:
        maxlen = max(lengths, default=0)
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: `maxlen` must be a non-negative int or None, received {maxlen!r}")
    maxlen = int(maxlen)
    text = np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype), np.bytes_)
    if isinstance(value, str) and dtype is not object and not text:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\nYou should set "
                         "`dtype=object` for variable length strings.")
    out = np.full((len(lengths), maxlen) + item_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, seq in enumerate(sequences):
        if not len(seq):
            continue
        kept = np.asarray(seq[-maxlen:] if truncating == "pre" else seq[:maxlen], dtype=dtype)
        if kept.shape[1:] != item_shape:
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {i} is different from "
                             f"expected shape {item_shape}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, maxlen - len(kept):] = kept
    return out


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """Scale ``x`` to unit ``order``-norm along ``axis`` (zero vectors stay zero)."""
    arr = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(arr, order, axis))
    norm[norm == 0] = 1
    return arr / np.expand_dims(norm, axis)


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and kerust: models built afterwards (init, shuffling, dropout) are reproducible."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed expects a non-negative int, received {seed!r}")
    import random  # here, not at import: it costs `import kerust` a few milliseconds

    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    _core.set_random_seed(int(seed))


def gradient_check(model: Any, x: Any, y: Any, *, sample_weight: Any = None, epsilon: float = 3e-3,
                   samples_per_weight: int = 8, seed: int = 0, tolerance: float = 2e-2) -> dict:
    """Check backpropagation against central finite differences, layer by layer.

    For each trainable weight of each trainable layer (frozen layers and BatchNormalization's moving statistics
    are left out: training gives them no gradient), ``samples_per_weight`` randomly chosen entries are nudged by
    ``±epsilon`` and the change of the training loss on ``(x, y)`` (dropout masks held fixed, BatchNormalization
    on batch statistics, weight penalties included) is compared with the gradient from ``model.inspect``. The
    model is left exactly as it was. The engine computes in float32, so expect relative errors near 1e-3; a
    ReLU or max-pool switching inside ``±epsilon`` can make one entry disagree.

    Returns ``{layer_name: {"weights": {weight_name: {"max_abs_error", "max_rel_error", "checked"}},
    "max_rel_error": float, "ok": bool}}`` where ``ok`` means the largest relative error is at most
    ``tolerance``; relative error is ``|numeric - backprop| / max(|numeric| + |backprop|, floor)``, the floor
    being 5% of the weight's largest backprop gradient (at least 1e-4), so float32 round-off on tiny entries
    does not count.
    """
    from ._inspect import gradient_check as check

    return check(model, x, y, sample_weight=sample_weight, epsilon=epsilon, samples_per_weight=samples_per_weight,
                 seed=seed, tolerance=tolerance)


# ---- issue 20: datasets as NumPy, progress bar, cached downloads ----------------------------------------------
from .callbacks import Progbar as Progbar  # noqa: E402  (keras.utils.Progbar)


def _split_sizes(left_size: Any, right_size: Any, total_length: int) -> tuple:
    """Keras's ``_rescale_dataset_split_sizes``: the two sizes as ints, with its checks and messages."""
    lt, rt = type(left_size), type(right_size)
    if (left_size is not None and lt not in [int, float]) and (right_size is not None and rt not in [int, float]):
        raise TypeError("Invalid `left_size` and `right_size` Types. Expected: integer or float or None, Received: "
                        f"type(left_size)={lt} and type(right_size)={rt}")
    if left_size is not None and lt not in [int, float]:
        raise TypeError(f"Invalid `left_size` Type. Expected: int or float or None, Received: type(left_size)={lt}.  ")
    if right_size is not None and rt not in [int, float]:
        raise TypeError(f"Invalid `right_size` Type. Expected: int or float or None,Received: type(right_size)={rt}.")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the split sizes must be "
                         "non-zero.")
    if lt is int and (left_size <= 0 or left_size >= total_length) or lt is float and (left_size <= 0
                                                                                        or left_size >= 1):
        raise ValueError(f"`left_size` should be either a positive integer smaller than {total_length}, or a float "
                         f"within the range `[0, 1]`. Received: left_size={left_size}")
    if rt is int and (right_size <= 0 or right_size >= total_length) or rt is float and (right_size <= 0
                                                                                          or right_size >= 1):
        raise ValueError(f"`right_size` should be either a positive integer and smaller than {total_length} or a "
                         f"float within the range `[0, 1]`. Received: right_size={right_size}")
    if rt is lt is float and right_size + left_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than or equal "
                         "to 1.")
    left: Any = round(left_size * total_length) if lt is float else (float(left_size) if lt is int else None)
    right: Any = round(right_size * total_length) if rt is float else (float(right_size) if rt is int else None)
    if left is None:
        left = total_length - right
    elif right is None:
        right = total_length - left
    if left + right > total_length:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the {total_length}. "
                         f"Received: left_size + right_size = {left + right}and total_length = {total_length}")
    for split, side in [(left, "left"), (right, "right")]:
        if split == 0:
            raise ValueError(f"With `dataset` of length={total_length}, `left_size`={left} and `right_size`={right}."
                             f"Resulting {side} side dataset split will be empty. Adjust any of the aforementioned "
                             "parameters")
    return int(left), int(right)


def split_dataset(dataset: Any, left_size: Any = None, right_size: Any = None, shuffle: bool = False,
                  seed: Optional[int] = None) -> tuple:
    """Keras's ``keras.utils.split_dataset`` on a NumPy array or a list/tuple of arrays of the same length: the
    left and right splits, as arrays (or tuples of arrays) that ``fit`` takes, where Keras returns two
    ``tf.data.Dataset``. Sizes and order are Keras's: ``left_size``/``right_size`` an int (samples) or a float
    fraction, the other its complement; with ``shuffle``, the samples are shuffled as Keras does
    (``random.seed(seed); random.shuffle``) before the left ``left_size`` and the last ``right_size`` are taken."""
    import random

    if isinstance(dataset, (list, tuple)):
        if len(dataset) == 0:
            raise ValueError("Received an empty list dataset. Please provide a non-empty list of arrays.")
        kind = "list" if isinstance(dataset, list) else "tuple"
        for i, element in enumerate(dataset):
            if not isinstance(element, np.ndarray):
                raise ValueError(f"Expected a {kind} of `numpy.ndarray` objects,Received: {type(element)} at index "
                                 f"{i}.")
            if element.shape[0] != dataset[0].shape[0]:
                raise ValueError(f"Received a {kind} of NumPy arrays with different lengths.Mismatch found at index "
                                 f"{i}, Expected shape={dataset[0].shape} Received shape={element.shape}.Please "
                                 f"provide a {kind} of NumPy arrays of the same length.")
        total = dataset[0].shape[0]
    elif isinstance(dataset, np.ndarray):
        total = dataset.shape[0]
    else:
        raise TypeError("The `dataset` argument must be eithera `tf.data.Dataset` object, ora list/tuple of arrays. "
                        f"Received: dataset={dataset} of type {type(dataset)}")
    if right_size is None and left_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. Received: "
                         "left_size=None and right_size=None")
    if total == 0:
        raise ValueError("Received an empty dataset. Argument `dataset` must be a non-empty list/tuple of "
                         "`numpy.ndarray` objects or `tf.data.Dataset` objects.")
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(1e6))
        random.Random(seed).shuffle(order)  # the sequence of Keras's random.seed(seed); random.shuffle(list)
    left, right = _split_sizes(left_size, right_size, total)
    li, ri = np.asarray(order[:left]), np.asarray(order[-right:])
    if isinstance(dataset, np.ndarray):
        return dataset[li], dataset[ri]
    return tuple(a[li] for a in dataset), tuple(a[ri] for a in dataset)


def timeseries_dataset_from_array(data: Any, targets: Any, sequence_length: int, sequence_stride: int = 1,
                                  sampling_rate: int = 1, batch_size: Optional[int] = 128, shuffle: bool = False,
                                  seed: Optional[int] = None, start_index: Optional[int] = None,
                                  end_index: Optional[int] = None) -> Any:
    """Keras's ``keras.utils.timeseries_dataset_from_array`` as NumPy: the windows
    ``data[start_index:end_index][i : i + sequence_length * sampling_rate : sampling_rate]`` for the start
    positions ``i = 0, sequence_stride, ...`` with, when ``targets`` is given, ``targets[start_index + i]``.

    Keras returns a ``tf.data.Dataset``; kerust returns what iterating it gives: a list of ``(inputs, targets)``
    batches of ``batch_size`` windows (just ``inputs`` without targets). With ``batch_size=None`` it returns one
    ``(inputs, targets)`` pair of arrays holding every window (or the ``inputs`` array), which ``fit`` takes
    directly. ``shuffle`` orders the start positions as Keras does (``np.random.RandomState(seed).shuffle``);
    Keras's further in-buffer ``tf.data`` shuffle of each batch window is not reproduced."""
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: start_index={start_index}")
        if start_index >= len(data):
            raise ValueError("`start_index` must be lower than the length of the data. Received: "
                             f"start_index={start_index}, for data of length {len(data)}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError("`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index} ")
        if end_index >= len(data):
            raise ValueError("`end_index` must be lower than the length of the data. Received: "
                             f"end_index={end_index}, for data of length {len(data)}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be higher than 0. Received: sampling_rate={sampling_rate}")
    if sampling_rate >= len(data):
        raise ValueError("`sampling_rate` must be lower than the length of the data. Received: "
                         f"sampling_rate={sampling_rate}, for data of length {len(data)}")
    if sequence_stride <= 0:
        raise ValueError(f"`sequence_stride` must be higher than 0. Received: sequence_stride={sequence_stride}")
    if sequence_stride >= len(data):
        raise ValueError("`sequence_stride` must be lower than the length of the data. Received: "
                         f"sequence_stride={sequence_stride}, for data of length {len(data)}")
    start = 0 if start_index is None else start_index
    end = len(data) if end_index is None else end_index
    num_seqs = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    positions = np.arange(0, max(num_seqs, 0), sequence_stride, dtype="int32" if num_seqs < 2147483647 else "int64")
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1000000))
        np.random.RandomState(seed).shuffle(positions)
    steps = np.asarray(data)[start:end]
    offsets = np.arange(sequence_length) * sampling_rate
    inputs = steps[positions[:, None] + offsets[None, :]] if positions.size else steps[:0][:, None].repeat(
        sequence_length, axis=1)
    ys = None if targets is None else np.asarray(targets)[start:end][positions]
    if batch_size is None:
        return inputs if ys is None else (inputs, ys)
    out = []
    for b in range(0, len(positions), batch_size):
        out.append(inputs[b:b + batch_size] if ys is None else (inputs[b:b + batch_size], ys[b:b + batch_size]))
    return out


def _hash_file(path: str, algorithm: str, file_hash: Optional[str]) -> str:
    import hashlib

    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None and len(file_hash) == 64):
        hasher = hashlib.sha256()
    else:
        hasher = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65535), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def get_file(fname: Optional[str] = None, origin: Optional[str] = None, untar: bool = False,
             md5_hash: Optional[str] = None, file_hash: Optional[str] = None, cache_subdir: str = "datasets",
             hash_algorithm: str = "auto", extract: bool = False, archive_format: str = "auto",
             cache_dir: Optional[str] = None, force_download: bool = False) -> str:
    """Keras's ``keras.utils.get_file``: the path of ``cache_dir/cache_subdir/fname`` (``cache_dir`` defaults
    to ``$KERAS_HOME`` or ``~/.keras``), downloaded from ``origin`` when it is not cached (or ``force_download``)
    and checked against ``file_hash`` (sha256, or md5 for a 32-character hash / ``md5_hash``): a cached file
    that does not match is downloaded again, a download that does not match raises ValueError. A failed
    download raises an Exception naming the file, its cache path and the origin. With ``extract`` (or
    ``untar``) the tar/zip archive is extracted beside it and the extraction folder is returned, as Keras."""
    import os
    import tempfile
    import urllib.error
    import urllib.parse
    import urllib.request

    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    base = os.path.expanduser(cache_dir)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    datadir = os.path.join(base, cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    provided = fname
    fname = os.fspath(fname) if fname is not None else None
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'.Please specify the "
                             "`fname` argument.")
    elif os.sep in fname:
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the file's parent "
                         f"directory, use the `cache_dir` argument. Received: fname={fname}")
    extraction_dir = None
    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[:fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)
    download = True
    if not force_download and os.path.exists(target):
        download = False
        if file_hash is not None and _hash_file(target, hash_algorithm, file_hash) != str(file_hash):
            print(f"A local file was found, but it seems to be incomplete or outdated because the {hash_algorithm} "
                  f"file hash does not match the original value of {file_hash} so we will re-download the data.")
            download = True
    if download:
        print(f"Downloading data from {origin}")
        try:
            urllib.request.urlretrieve(origin, target)
        except (Exception, KeyboardInterrupt) as err:
            if os.path.exists(target):
                os.remove(target)
            if isinstance(err, KeyboardInterrupt):
                raise
            raise Exception(f"get_file: {fname!r} is not in the cache ({target}) and downloading it from "
                            f"{origin} failed: {err}") from err
        if file_hash is not None and _hash_file(target, hash_algorithm, file_hash) != str(file_hash):
            raise ValueError(f"Incomplete or corrupted file detected. The {hash_algorithm} file hash does not match "
                             f"the provided value of {file_hash}.")
    if extraction_dir is not None:
        import shutil

        fmt = "tar" if untar else archive_format
        if not os.path.exists(extraction_dir) or force_download or download:
            shutil.rmtree(extraction_dir, ignore_errors=True)
            kinds = ["tar", "zip"] if fmt == "auto" else ([fmt] if isinstance(fmt, str) else list(fmt or []))
            done = False
            for kind in kinds:
                try:
                    shutil.unpack_archive(target, extraction_dir, "gztar" if kind == "tar" and
                                          target.endswith((".gz", ".tgz")) else kind, filter="data")
                    done = True
                    break
                except Exception:  # noqa: BLE001 - try the next format, as Keras
                    shutil.rmtree(extraction_dir, ignore_errors=True)
            if not done:
                import warnings

                warnings.warn("Could not extract archive.", stacklevel=2)
        return extraction_dir
    return target


def _pydot() -> Any:
    for name in ("pydot", "pydot_ng", "pydotplus"):  # as Keras: pydot, then its older forks
        try:
            return __import__(name)
        except ImportError:
            continue
    return None


def _history_refs(obj: Any, out: List[str]) -> List[str]:
    """The layer names of every ``keras_history`` in a Keras 3 ``inbound_nodes`` config."""
    if isinstance(obj, dict):
        if "keras_history" in obj.get("config", {}):
            out.append(obj["config"]["keras_history"][0])
        for v in obj.values():
            _history_refs(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _history_refs(v, out)
    return out


def plot_model(model: Any, to_file: Any = "model.png", show_shapes: bool = False, show_dtype: bool = False,
               show_layer_names: bool = False, rankdir: str = "TB", expand_nested: bool = False, dpi: int = 200,
               show_layer_activations: bool = False, show_trainable: bool = False, splines: str = "ortho",
               **kwargs: Any) -> Any:
    """Keras's ``keras.utils.plot_model``: the layer graph drawn with pydot + graphviz into ``to_file`` (format from
    its extension, png by default); the same ImportError as Keras when pydot or graphviz is missing. One node per
    layer (its class, with ``show_layer_names`` its name, with ``show_layer_activations`` its activation, with
    ``show_trainable`` ``Trainable``), edges from each layer's inputs (nested models are not expanded)."""
    import os
    import sys

    if not getattr(model, "built", True):
        raise ValueError("This model has not yet been built. Build the model first by calling `build()` or by "
                         "calling the model on a batch of data.")
    pydot = _pydot()
    message = None
    if pydot is None:
        message = "You must install pydot (`pip install pydot`) for `plot_model` to work."
    else:
        try:
            pydot.Dot.create(pydot.Dot())
        except (OSError, getattr(pydot, "PydotException", OSError)):
            message = ("You must install graphviz (see instructions at https://graphviz.gitlab.io/download/) for "
                       "`plot_model` to work.")
    if message is not None:
        if "IPython.core.magics.namespace" in sys.modules:
            print(message)
            return None
        raise ImportError(message)
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    dot = pydot.Dot(graph_type="digraph", rankdir=rankdir, concentrate=True, dpi=dpi, splines=splines)
    dot.set_node_defaults(shape="record")
    layers = list(model.layers)
    for layer in layers:
        label = type(layer).__name__
        if show_layer_names:
            label = f"{layer.name} ({label})"
        activation = getattr(layer, "activation", None)
        if show_layer_activations and isinstance(activation, str):
            label += f"\\n{activation}"
        if show_trainable:
            label += f"\\nTrainable: {'Y' if getattr(layer, 'trainable', True) else 'N'}"
        dot.add_node(pydot.Node(layer.name, label=label))
    config = model.get_config() if hasattr(model, "get_config") else {}
    entries = config.get("layers", []) if isinstance(config, dict) else []
    if type(model).__name__ == "Sequential" or not any("inbound_nodes" in e for e in entries):
        for a, b in zip(layers, layers[1:]):
            dot.add_edge(pydot.Edge(a.name, b.name))
    else:
        for e in entries:
            for src in _history_refs(e.get("inbound_nodes", []), []):
                dot.add_edge(pydot.Edge(src, e["config"]["name"]))
    to_file = str(to_file)
    _, extension = os.path.splitext(to_file)
    dot.write(to_file, format=extension[1:] if extension else "png")
    return None

"""Keras utilities: one-hot labels, padding sequences, normalisation, the global random seed, and a gradient
check."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core


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

"""The boundary where user arrays become the engine's contiguous float32 arrays (converted once per call)."""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Any

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def as_float32(name: str, value: Any) -> np.ndarray:
    """Return ``value`` as a C-contiguous float32 array with a batch axis, or raise a clear error."""
    if value is None:
        raise ValueError(f"`{name}` is required, received None")
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # NumPy's "inhomogeneous shape": lists of different lengths
        raise ValueError(f"`{name}` holds sequences of different lengths (a ragged list), which cannot be one "
                         "array; pad them to one length first, e.g. with keras.utils.pad_sequences") from exc
    if arr.dtype == object and _ragged(arr):
        raise ValueError(f"`{name}` holds sequences of different lengths (a ragged list), which cannot be one "
                         "array; pad them to one length first, e.g. with keras.utils.pad_sequences")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(
            f"`{name}` must be a numeric array (int, float or bool); received an array of dtype {arr.dtype}"
        )
    if np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must be real-valued; received complex dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"`{name}` must have a batch axis; received a scalar")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _ragged(arr: np.ndarray) -> bool:
    """An object array of sequences (what NumPy makes of a ragged list with dtype=object)."""
    return arr.ndim == 1 and arr.size > 0 and all(isinstance(v, (list, tuple, np.ndarray)) for v in arr.flat)


def as_sample_weight(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    w = as_float32("sample_weight", value).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"`sample_weight` must have one value per sample: expected {n}, received {w.shape[0]}")
    return w


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the kerust package (the user's call)."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn_non_finite(name: str, arr: np.ndarray, where: str) -> None:
    """Report NaN/inf in a float32 input with a ``UserWarning`` (Keras trains on them silently; the losses and
    weights then become NaN). Costs one min and one max over the array when everything is finite."""
    if arr.size == 0:
        return
    if np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    warnings.warn(
        f"{where}: `{name}` contains {n_nan + n_inf} non-finite value(s) ({n_nan} NaN, {n_inf} inf) out of "
        f"{arr.size}; the loss and the weights will likely become NaN",
        UserWarning,
        stacklevel=_caller_stacklevel(),
    )

"""The boundary where user arrays become the engine's contiguous float32 arrays (converted once per call)."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_float32(name: str, value: Any) -> np.ndarray:
    """Return ``value`` as a C-contiguous float32 array with a batch axis, or raise a clear error."""
    if value is None:
        raise ValueError(f"`{name}` is required, received None")
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(
            f"`{name}` must be a numeric array (int, float or bool); received an array of dtype {arr.dtype}"
        )
    if np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must be real-valued; received complex dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"`{name}` must have a batch axis; received a scalar")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_sample_weight(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    w = as_float32("sample_weight", value).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"`sample_weight` must have one value per sample: expected {n}, received {w.shape[0]}")
    return w

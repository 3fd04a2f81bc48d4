"""``keras.random``: random tensors. Eagerly they are NumPy arrays drawn from `seed` (an int, or a
`SeedGenerator` that advances with each draw; None: from NumPy's global generator, which
`keras.utils.set_random_seed` seeds). Inside a traced `call` they are graph nodes drawing from the model's own
random stream at every step (so they follow the model's seed, as dropout does)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import ops
from ._variable import tracing


class SeedGenerator:
    """A seed that changes with each use: pass it as `seed=` to draw a new, reproducible sample each time."""

    def __init__(self, seed: Optional[int] = None, name: Optional[str] = None, **kwargs: Any) -> None:
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"SeedGenerator: `seed` must be an int, received {seed!r}")
        self.name = name or "seed_generator"
        self._initial = int(seed)
        self._count = 0

    def next(self) -> int:
        self._count += 1
        return (self._initial * 1_000_003 + self._count) % (1 << 62)

    def get_config(self) -> dict:
        return {"seed": self._initial}


def _seed(seed: Any) -> int:
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if seed is None:
        return int(np.random.randint(0, 2**62))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    raise ValueError(f"keras.random: `seed` must be an int, a SeedGenerator or None, received {seed!r}")


def _draw(name: str, shape: Any, a: float, b: float, dtype: Any, seed: Any) -> Any:
    dims = ops._shape_arg(shape)
    out = ops.standardize_dtype(dtype)
    attrs = {"shape": dims, "a": float(a), "b": float(b)}
    if tracing() or None in dims:
        return ops._record(name, attrs, [], out)
    return ops._run(name, [], attrs, dtype=out, seed=_seed(seed))


def normal(shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None, seed: Any = None) -> Any:
    """Values from a normal distribution."""
    return _draw("random_normal", shape, mean, stddev, dtype, seed)


def uniform(shape: Any, minval: float = 0.0, maxval: float = 1.0, dtype: Any = None, seed: Any = None) -> Any:
    """Values from a uniform distribution on [minval, maxval)."""
    return _draw("random_uniform", shape, minval, maxval, dtype, seed)


def truncated_normal(shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None, seed: Any = None
                     ) -> Any:
    """Normal values, redrawn beyond two standard deviations."""
    return _draw("truncated_normal", shape, mean, stddev, dtype, seed)


def dropout(inputs: Any, rate: float, noise_shape: Any = None, seed: Any = None) -> Any:
    """`inputs` with each value zeroed with probability `rate` and the rest scaled by 1 / (1 - rate)."""
    if noise_shape is not None:
        raise ValueError("keras.random.dropout: `noise_shape` is not supported by kerust yet")
    return ops._run("dropout", [inputs], {"rate": float(rate)}, seed=None if ops._any_symbolic([inputs])
                    else _seed(seed))

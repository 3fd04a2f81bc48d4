"""Engine settings: how many threads kerust computes on, and what this build of the engine is."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict

from . import _core


_requested = 0  # what set_num_threads was last given (0: the default)


def set_num_threads(n: int) -> None:
    """Compute on ``n`` worker threads from now on (``0``: back to the default).

    The default is ``RAYON_NUM_THREADS`` if set, else one thread per CPU. Results are bit-identical whatever
    the thread count: the engine splits work into fixed chunks, not into one chunk per thread. A ``fit`` running
    in another thread moves to the new count at its next engine call (the next epoch, or the next batch when
    callbacks watch batches).
    """
    global _requested
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, received {type(n).__name__} {n!r}")
    _core.set_num_threads(n)
    _requested = n


def requested_num_threads() -> int:
    """What `set_num_threads` was last given in this process (``0``: the default)."""
    return _requested


def get_num_threads() -> int:
    """The number of worker threads kerust computes on in this process."""
    return int(_core.get_num_threads())


def build_info() -> Dict[str, Any]:
    """What `show_config` prints, as a dict."""
    import platform  # here, not at import: it costs `import kerust` several milliseconds

    return {
        "kerust": _core.__version__,
        "simd": _core.simd_level,
        "threads": get_num_threads(),
        "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": _numpy_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def show_config(print_fn: Callable[[str], Any] = print) -> None:
    """Print kerust's version, the SIMD level the engine detected on this CPU, and its thread count."""
    for key, value in build_info().items():
        print_fn(f"{key + ':':19s} {value if value is not None else '(not set)'}")


def _numpy_version() -> str:
    import numpy

    return str(numpy.__version__)


_UNSAFE = [False]


def enable_unsafe_deserialization() -> None:
    """Allow loading marshalled Python code (a Lambda layer's lambda) from files, as Keras's switch does."""
    _UNSAFE[0] = True


def _unsafe_deserialization() -> bool:
    return _UNSAFE[0]

"""Issue 20's overlap check: a Python generator that costs less than a training step costs (almost) no time,
because kerust fetches the next batch on a background thread while the engine trains the current one with the
GIL released.

The generator makes each batch with work calibrated to `--cost` times the measured step time: by default
pure-Python work that holds the GIL (a busy loop), so nothing overlaps unless the engine really lets the GIL go;
`--kind numpy` (NumPy calls) or `--kind sleep` (waiting, as for I/O; needs no free core). A CPU-bound generator
needs a core of its own: keep `--threads` below the core count. Printed: the CPU,
the step time, the generator's own cost per batch, the epoch times with a free generator (pre-made batches) and
with the costly one, and the ratio of the extra time to the generator's total cost (0: fully hidden, 1: not
overlapped at all).

    python benches/generator_overlap.py [--kind python|numpy|sleep] [--steps 200] [--cost 0.5] [--threads 1]
        [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def busy(seconds: float) -> None:
    """Pure-Python work (holds the GIL) for about `seconds`."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1


_SCRATCH = np.random.default_rng(1).normal(size=(1 << 16,))


def numpy_work(seconds: float) -> None:
    """NumPy work on 64k-element arrays (an augmentation's kind: it releases the GIL inside each call)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        np.tanh(np.sin(_SCRATCH) * 1.5)


KINDS = {"python": busy, "numpy": numpy_work, "sleep": time.sleep}
WHAT = {"python": "pure Python holding the GIL", "numpy": "NumPy calls", "sleep": "time.sleep (I/O-like waiting)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--cost", type=float, default=0.5, help="the generator's cost per batch, in steps")
    ap.add_argument("--threads", type=int, default=1, help="engine threads (leave a core for the generator)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kind", choices=sorted(KINDS), default="python", help="what the generator's cost is")
    ap.add_argument("--quick", action="store_true", help="a few steps (a smoke test of the script)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 20, 1

    import kerust
    from kerust import layers

    kerust.config.set_num_threads(args.threads)
    kerust.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 512)).astype(np.float32)
    y = rng.integers(0, 10, size=(args.batch,)).astype(np.float32)
    model = kerust.Sequential([kerust.Input((512,)), layers.Dense(512, activation="relu"),
                               layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")

    def free():
        for _ in range(args.steps):
            yield x, y

    work = KINDS[args.kind]

    def costly(per_batch: float):
        for _ in range(args.steps):
            work(per_batch)
            yield x, y

    def timed(gen) -> float:
        t = time.perf_counter()
        model.fit(gen, epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - t

    timed(free())  # warm up (first build, allocations)
    free_times = [timed(free()) for _ in range(args.repeats)]
    step = statistics.median(free_times) / args.steps
    per_batch = args.cost * step
    t = time.perf_counter()
    for _ in costly(per_batch):
        pass
    gen_cost = time.perf_counter() - t
    costly_times, free_again = [], []
    for _ in range(args.repeats):  # interleaved, medians compared
        costly_times.append(timed(costly(per_batch)))
        free_again.append(timed(free()))
    t_free = statistics.median(free_times + free_again)
    t_costly = statistics.median(costly_times)
    ratio = max(t_costly - t_free, 0.0) / gen_cost
    print(f"CPU: {cpu_model()} ({kerust.config.get_num_threads()} engine thread(s))")
    print(f"step: {step * 1e3:.2f} ms (batch {args.batch}, MLP 512-512-512-10, Adam); generator cost per batch: "
          f"{gen_cost / args.steps * 1e3:.2f} ms ({args.cost:g} of a step, {WHAT[args.kind]})")
    print(f"{args.steps} steps: free generator {t_free:.3f} s, costly generator {t_costly:.3f} s, "
          f"the generator alone {gen_cost:.3f} s, without overlap {t_free + gen_cost:.3f} s")
    print(f"ratio (extra time / generator cost): {ratio:.3f}  (0 = fully hidden, 1 = not overlapped)")


if __name__ == "__main__":
    main()

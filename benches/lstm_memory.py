"""Backpropagation-through-time memory of kerust's LSTM: the bound src/layers/recurrent.rs implies, and one long
batch (by default LSTM(64) on (32, 1000, 32) inputs, one train_on_batch) measured against it. kerust only.

    python benches/lstm_memory.py [--batch 32] [--steps 1000] [--features 32] [--units 64]
                                  [--recurrent-activation sigmoid]

What a training forward keeps per step s for the backward (recurrent.rs's `Cache`, in floats, batch B, units U, gate
width 4U): the state it starts from, h_prev (B*U) and c_prev (B*U); the gates after their activations (B*4U) and,
where an activation's derivative needs its input (`Activation::needs_input`: gelu, softplus, softsign, swish/silu,
relu6, hard_sigmoid, leaky_relu; not LSTM's default tanh and sigmoid), before them (B*4U); the new cell state c
(B*U) and act(c) (B*U). Over T steps, with the input x itself (B*T*D, moved into the cache) and the mask (B*T) when
there is one:

    kept  = B*T*(D + 8U)          [+ B*T*4U pre-activations] [+ B*T mask]

Held beside it at the peaks: in the forward, the input projections of every step (B*T*4U, one GEMM before the loop);
in the backward, dL/d(pre-activations) of every step twice, in input order for the kernel and in processing order
for the recurrent kernel (2 * B*T*4U), and dL/dx (B*T*D) when the layer is not the model's first. So the layer's
training working set is at most

    peak  = B*T*(D + 16U)         [+ B*T*4U] [+ B*T] [+ B*T*D for dL/dx]

plus the output (B*U, or B*T*U with return_sequences) and per-step scratch of O(B*U): linear in T, nothing per step
beyond these.

One allocator term comes on top in the resident set: c_prev, c and act(c) are not reserved before the loop (h_prev,
the gates and the pre-activations are), so each grows by doubling, and kerust's allocator (src/alloc.rs) keeps the
freed smaller blocks of 64 KiB and up cached, resident, until the epoch ends (at most 64 MiB in all): about
3 * B*T*U floats more (`growth_held` models it exactly). The peak resident-set increase of one train_on_batch is
measured with Linux's VmHWM (reset through /proc/self/clear_refs), once on a fresh model (first call: optimizer slots
and thread pools included) and once after it, and compared with `peak` and with `peak` plus that term.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ops_vs_dense import cpu_model  # noqa: E402

# activations whose derivative kerust computes from the input (src/activations.rs, `needs_input`)
NEEDS_INPUT = {"gelu", "softplus", "softsign", "swish", "silu", "relu6", "hard_sigmoid", "leaky_relu"}
MIB = 1 << 20
# src/alloc.rs: blocks from LARGE bytes up are cached when freed, up to CACHE_CAP bytes in all
LARGE, CACHE_CAP = 64 << 10, 64 << 20


def lstm_floats(b: int, t: int, d: int, u: int, pre: bool = False, masked: bool = False,
                input_grad: bool = False) -> tuple:
    """(kept, peak): the floats an LSTM's training forward keeps for the backward, and its working set's bound."""
    kept = b * t * (d + 8 * u) + (b * t * 4 * u if pre else 0) + (b * t if masked else 0)
    peak = kept + b * t * 8 * u + (b * t * d if input_grad else 0)
    return kept, peak


def growth_held(per_step: int, steps: int, vectors: int = 3) -> int:
    """Floats in the blocks freed while `vectors` Vec<f32>s grow by `per_step` floats a step (Rust's amortized
    doubling: capacity max(2 * cap, needed, 4)) that kerust's allocator keeps cached (blocks of LARGE bytes up)."""
    cap, held = 0, 0
    for s in range(steps):
        need = (s + 1) * per_step
        if need > cap:
            held += cap if cap * 4 >= LARGE else 0
            cap = max(2 * cap, need, 4)
    return min(vectors * held, CACHE_CAP // 4)


def status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def reset_peak() -> None:
    """Set VmHWM back to the current resident set (Linux's clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--recurrent-activation", default="sigmoid")
    args = parser.parse_args()
    import numpy as np

    import kerust as keras
    from kerust import layers

    b, t, d, u = args.batch, args.steps, args.features, args.units
    print(f"CPU: {cpu_model()}; kerust SIMD: {keras._core.simd_level}; threads: {keras.config.get_num_threads()}")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(t, d)),
                              layers.LSTM(u, recurrent_activation=args.recurrent_activation)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, t, d), dtype=np.float32)
    y = rng.standard_normal((b, u), dtype=np.float32)
    pre = args.recurrent_activation in NEEDS_INPUT
    kept, peak = lstm_floats(b, t, d, u, pre=pre)
    print(f"LSTM({u}), recurrent_activation={args.recurrent_activation}, inputs ({b}, {t}, {d}): the forward keeps "
          f"B*T*(D + 8U){' + B*T*4U' if pre else ''} = {kept:,} floats ({kept * 4 / MIB:.1f} MiB); the working "
          f"set's bound B*T*(D + 16U){' + B*T*4U' if pre else ''} = {peak:,} floats ({peak * 4 / MIB:.1f} MiB)")
    held = growth_held(b * u, t)
    print(f"with the growth blocks of c_prev, c and act(c) that kerust's allocator keeps: + {held:,} floats "
          f"({held * 4 / MIB:.1f} MiB) = {(peak + held) * 4 / MIB:.1f} MiB")
    rows = []
    for call in ("first", "second"):
        before = status_mib("VmRSS")
        reset_peak()
        start = time.perf_counter()
        loss = model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
        grown = status_mib("VmHWM") - before
        rows.append(grown)
        print(f"{call} train_on_batch: loss {loss:.4f}, {seconds:.2f} s; peak RSS rose {grown:.1f} MiB = "
              f"{grown / (peak * 4 / MIB):.2f} x the bound ({grown / (kept * 4 / MIB):.2f} x what is kept)")
    # 2 MiB of slack for what is not per step: the output, the loss, small blocks from the system allocator
    limit = (peak + held) * 4 / MIB + 2.0
    within = rows[-1] <= limit
    print(f"{'within' if within else 'OVER'} the bound after the first call: {rows[-1]:.1f} MiB against "
          f"{limit:.1f} MiB (the formula, the allocator's growth blocks and 2 MiB for the output and small blocks); "
          f"the formula alone is {peak * 4 / MIB:.1f} MiB")
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()

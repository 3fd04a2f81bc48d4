"""Kernel-level benchmark: kerust's GEMM and Conv2D forward/backward against NumPy (OpenBLAS) and PyTorch on
the seed CNN's shapes, side by side in one run.

    python3 benches/kernels.py [--threads 2] [--rounds 5] [--out kernels.md]

kerust: `cargo bench --bench kernels` (benches/kernels.rs, the engine's own kernels, no Python in the loop).
NumPy: this checkout's .venv. PyTorch: bench-venv (see benches/bench.py for its set-up); skipped if missing.
GEMM is timed on one thread everywhere (kerust's GEMM is single-threaded by design: its layers run fixed
chunks of the batch in parallel); the convolutions run on --threads threads in all three. NumPy's convolution
is im2col (sliding_window_view) + BLAS for the forward pass and the kernel gradient, and one BLAS call per
kernel tap for the input gradient. Backward passes are timed apart from the forward pass they follow.
Each round runs every framework once, one after the other; the report gives the median over the rounds, so a
burst of noise on a shared machine hits one round of one framework, not the whole comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_PYTHON = ROOT / "bench-venv" / "bin" / "python"
# The shapes are benches/kernels.rs's (the one list): read from its output and handed to the other workers.
BATCH = 32


def median_secs(reps: int, fn) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def gemm_gflops(matmul, a, b, c, m: int, k: int, n: int) -> float:
    flops = 2.0 * m * k * n
    inner = max(1, int(2e8 / flops))

    def run() -> None:
        for _ in range(inner):
            matmul(a, b, out=c)

    return flops / (median_secs(15, run) / inner) / 1e9


def numpy_conv(np, rng, name: str, h: int, w: int, c: int, f: int) -> None:
    x = rng.random((BATCH, h, w, c), dtype=np.float32) - 0.5
    kernel = rng.random((3, 3, c, f), dtype=np.float32) - 0.5
    bias = np.zeros(f, np.float32)
    oh, ow = h - 2, w - 2
    g = rng.random((BATCH, oh, ow, f), dtype=np.float32) - 0.5
    k2 = kernel.reshape(9 * c, f)

    def forward() -> tuple:
        win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (B, oh, ow, c, 3, 3)
        cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(-1, 9 * c)
        return cols, (cols @ k2 + bias).reshape(BATCH, oh, ow, f)

    def backward(cols: object) -> None:
        g2 = g.reshape(-1, f)
        _dw = cols.T @ g2
        _db = g2.sum(0)
        if c > 1:
            dx = np.zeros_like(x)
            for ky in range(3):
                for kx in range(3):
                    dx[:, ky:ky + oh, kx:kx + ow, :] += (g2 @ kernel[ky, kx].T).reshape(BATCH, oh, ow, c)

    fwd = median_secs(21, forward)
    cols, _ = forward()
    bwd = median_secs(21, lambda: backward(cols))
    print(json.dumps({"kind": "conv_fwd", "name": name, "ms": fwd * 1e3}))
    print(json.dumps({"kind": "conv_bwd", "name": name, "ms": bwd * 1e3}))


def numpy_worker(part: str, shapes: list) -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    if part == "gemm":
        for name, m, k, n in shapes:
            a = rng.random((m, k), dtype=np.float32) - 0.5
            b = rng.random((k, n), dtype=np.float32) - 0.5
            gflops = gemm_gflops(np.matmul, a, b, np.empty((m, n), np.float32), m, k, n)
            print(json.dumps({"kind": "gemm", "name": name, "gflops": gflops}))
        return
    for conv in shapes:
        numpy_conv(np, rng, *conv)


def torch_conv(torch, gen, threads: int, name: str, h: int, w: int, c: int, f: int) -> None:
    conv = torch.nn.Conv2d(c, f, 3).to(memory_format=torch.channels_last)
    x = (torch.rand((BATCH, c, h, w), generator=gen) - 0.5).to(memory_format=torch.channels_last)
    x.requires_grad_(c > 1)
    g = (torch.rand((BATCH, f, h - 2, w - 2), generator=gen) - 0.5).to(memory_format=torch.channels_last)

    def forward() -> object:
        return conv(x)

    def backward() -> None:
        conv.zero_grad(set_to_none=True)
        x.grad = None
        y = conv(x)
        t = time.perf_counter()
        y.backward(g)
        times.append(time.perf_counter() - t)

    fwd = median_secs(21, forward)
    times: list = []
    for _ in range(22):
        backward()
    bwd = sorted(times[1:])[len(times[1:]) // 2]
    print(json.dumps({"kind": "conv_fwd", "name": name, "ms": fwd * 1e3}))
    print(json.dumps({"kind": "conv_bwd", "name": name, "ms": bwd * 1e3}))


def torch_worker(part: str, threads: int, shapes: list) -> None:
    import torch

    torch.set_num_threads(1 if part == "gemm" else threads)
    gen = torch.Generator().manual_seed(7)
    if part == "gemm":
        for name, m, k, n in shapes:
            a = torch.rand((m, k), generator=gen) - 0.5
            b = torch.rand((k, n), generator=gen) - 0.5
            gflops = gemm_gflops(torch.matmul, a, b, torch.empty((m, n)), m, k, n)
            print(json.dumps({"kind": "gemm", "name": name, "gflops": gflops}))
        return
    for conv in shapes:
        torch_conv(torch, gen, threads, *conv)


def collect(cmd: list, env_extra: dict) -> list:
    env = dict(os.environ, **env_extra)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", choices=["numpy", "torch"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["gemm", "conv"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shapes", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "numpy":
        return numpy_worker(args.part, json.loads(args.shapes))
    if args.worker == "torch":
        return torch_worker(args.part, args.threads, json.loads(args.shapes))

    me = [str(Path(__file__).resolve())]
    one = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    many = {k: str(args.threads) for k in one}
    results: dict = {"kerust": [], "numpy": [], "torch": []}
    shapes: dict = {}
    subprocess.run(["cargo", "bench", "--bench", "kernels", "--no-run", "--quiet"], check=True, cwd=ROOT)
    for _ in range(args.rounds):
        for part in ("gemm", "conv"):  # interleaved: each framework's gemm, then each framework's conv
            env = one if part == "gemm" else many
            kerust = collect(["cargo", "bench", "--quiet", "--bench", "kernels", "--", "--threads",
                              "1" if part == "gemm" else str(args.threads)], env)
            mine = [r for r in kerust if (r["kind"] == "gemm") == (part == "gemm")]
            results["kerust"] += mine
            if part == "gemm":
                shapes[part] = [(r["name"], r["m"], r["k"], r["n"]) for r in mine]
            else:
                shapes[part] = [(r["name"], r["h"], r["w"], r["c"], r["filters"]) for r in mine
                                if r["kind"] == "conv_fwd"]
            worker = ["--part", part, "--shapes", json.dumps(shapes[part])]
            results["numpy"] += collect([sys.executable, *me, "--worker", "numpy", *worker], env)
            if TORCH_PYTHON.exists():
                results["torch"] += collect([str(TORCH_PYTHON), *me, "--worker", "torch", *worker,
                                             "--threads", str(args.threads)], env)

    def find(fw: str, kind: str, name: str) -> "dict | None":
        """The median over the rounds, as one record."""
        rows = [r for r in results[fw] if r["kind"] == kind and r["name"] == name]
        if not rows:
            return None
        key = "gflops" if kind == "gemm" else "ms"
        return {key: statistics.median(r[key] for r in rows)}

    def cell(r: "dict | None", key: str, digits: int) -> str:
        return f"{r[key]:.{digits}f}" if r else "-"

    lines = [f"Medians of {args.rounds} rounds, the frameworks interleaved within each round.", "",
             "GEMM, one thread, GFLOP/s (higher is better):", "",
             "| shape (M x K x N) | kerust | NumPy/OpenBLAS | PyTorch | kerust / NumPy |",
             "| --- | --- | --- | --- | --- |"]
    for name, m, k, n in shapes["gemm"]:
        ke, nu, to = (find(fw, "gemm", name) for fw in ("kerust", "numpy", "torch"))
        lines.append(f"| {name} {m}x{k}x{n} | {cell(ke, 'gflops', 1)} | {cell(nu, 'gflops', 1)} | "
                     f"{cell(to, 'gflops', 1)} | {ke['gflops'] / nu['gflops']:.2f} |")
    lines += ["", f"Conv2D 3x3 on a batch of {BATCH}, {args.threads} threads, milliseconds (lower is better; "
              "backward = kernel, bias and input gradients, the first layer without an input gradient):", "",
              "| layer | pass | kerust | NumPy im2col+BLAS | PyTorch | kerust / faster other |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, h, w, c, f in shapes["conv"]:
        for kind, label in (("conv_fwd", "forward"), ("conv_bwd", "backward")):
            ke, nu, to = (find(fw, kind, name) for fw in ("kerust", "numpy", "torch"))
            best = min(r["ms"] for r in (nu, to) if r)
            lines.append(f"| {name} {h}x{w}x{c} -> {f} | {label} | {cell(ke, 'ms', 3)} | {cell(nu, 'ms', 3)} | "
                         f"{cell(to, 'ms', 3)} | {ke['ms'] / best:.2f} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()

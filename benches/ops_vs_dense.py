"""Issue 16's speed check: the MLP 784-128-10 written as custom layers of `keras.ops` (add_weight,
ops.matmul, + bias, ops.relu / ops.softmax) against the same MLP of `Dense` layers, in kerust, one epoch of
real MNIST. Runs are interleaved (dense, ops, dense, ops, ...) and the medians compared; the target is
ops / dense <= 1.3.

    python benches/ops_vs_dense.py [--repeats 3] [--threads 2] [--batch-sizes 32 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(style: str, batch: int, threads: int) -> float:
    out = subprocess.run([sys.executable, str(HERE / "workloads.py"), "--framework", "kerust", "--workload",
                          "mlp_fit", "--batch-size", str(batch), "--threads", str(threads), "--style", style],
                         check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    args = parser.parse_args()
    import kerust

    print(f"CPU: {cpu_model()}; kerust SIMD: {kerust._core.simd_level}; threads: {args.threads}")
    for batch in args.batch_sizes:
        times: dict = {"sequential": [], "ops": []}
        for _ in range(args.repeats):
            for style in times:
                times[style].append(run(style, batch, args.threads))
        dense, ops = (statistics.median(times[s]) for s in ("sequential", "ops"))
        spread = max((max(v) - min(v)) / statistics.median(v) for v in times.values())
        print(f"MLP epoch, batch {batch}: Dense {dense:.3f} s, keras.ops custom layers {ops:.3f} s, "
              f"ratio {ops / dense:.2f} (target <= 1.3; repeats spread {spread:.0%}"
              f"{', unreliable' if spread > 0.25 else ''})")


if __name__ == "__main__":
    main()

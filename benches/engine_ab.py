"""A/B benchmark of kerust's engine against an earlier build of it: the same workloads, interleaved in one run.

    python benches/engine_ab.py --baseline-python /path/to/old/venv/bin/python [--reps 3] [--threads 2]

The baseline is any Python with an older kerust installed (for example a wheel built from an earlier commit into
its own virtualenv). Each measurement is a fresh process running benches/workloads.py; within every repetition
the runs are interleaved so that machine noise hits both builds alike. Reported: medians, and the current
build's time divided by the baseline's (the graph engine's target: the seed CNN within 5%, Sequential and its
functional twin).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))

from bench import machine  # noqa: E402

CURRENT = ROOT / ".venv" / "bin" / "python"
RUNS = [
    # (label, build, workload, batch, style)
    ("seed CNN fit, Sequential, batch 32", "baseline", "cnn_fit", 32, "sequential"),
    ("seed CNN fit, Sequential, batch 32", "current", "cnn_fit", 32, "sequential"),
    ("seed CNN fit, functional, batch 32", "current", "cnn_fit", 32, "functional"),
    ("seed CNN predict 10,000, Sequential", "baseline", "cnn_predict", 1000, "sequential"),
    ("seed CNN predict 10,000, Sequential", "current", "cnn_predict", 1000, "sequential"),
    ("seed CNN predict 10,000, functional", "current", "cnn_predict", 1000, "functional"),
]


def run_one(python: Path, workload: str, batch: int, threads: int, style: str) -> float:
    cmd = [str(python), str(ROOT / "benches" / "workloads.py"), "--framework", "kerust", "--workload", workload,
           "--batch-size", str(batch), "--threads", str(threads)]
    if style != "sequential":
        cmd += ["--style", style]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-python", required=True, type=Path)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["fit", "predict"], default=None)
    args = parser.parse_args()
    import kerust

    print(f"CPU: {machine()}; kerust SIMD level: {kerust._core.simd_level}; threads: {args.threads}; "
          f"Python {platform.python_version()}")
    runs = [r for r in RUNS if args.only is None or args.only in r[2]]
    times: dict = {}
    for rep in range(args.reps):
        for label, build, workload, batch, style in runs:
            python = args.baseline_python if build == "baseline" else CURRENT
            seconds = run_one(python, workload, batch, args.threads, style)
            times.setdefault((label, build), []).append(seconds)
            print(f"  rep {rep + 1}: {label:<40} {build:<9} {seconds:7.3f} s", flush=True)
    print()
    print("| workload | baseline (s) | current (s) | current / baseline | spread of current |")
    print("| --- | --- | --- | --- | --- |")
    base_of = {"cnn_fit": "seed CNN fit, Sequential, batch 32", "cnn_predict": "seed CNN predict 10,000, Sequential"}
    for label, build, workload, _, _ in runs:
        if build != "current":
            continue
        cur = times[(label, "current")]
        base = times[(base_of[workload], "baseline")]
        med_c, med_b = statistics.median(cur), statistics.median(base)
        spread = (max(cur) - min(cur)) / med_c
        print(f"| {label} | {med_b:.3f} | {med_c:.3f} | {med_c / med_b:.3f} | {spread:.0%} |")


if __name__ == "__main__":
    main()

"""Side-by-side benchmark: kerust vs PyTorch vs Keras (TensorFlow) on the same machine, in one run.

    python benches/bench.py [--reps 3] [--threads 2] [--quick] [--out BENCHMARKS.md]
    python benches/bench.py --set sequences [--reps 3]     # issue 17's text models instead (benches/workloads.py)
    python benches/bench.py --set vision --peer-samples torch:mobilenetv2_fit:640   # issue 18's vision models

kerust runs from the project's .venv; PyTorch and Keras from a separate virtualenv (never kerust
dependencies), created once with:

    python3 -m venv bench-venv && bench-venv/bin/pip install torch tensorflow-cpu keras

Every measurement is a fresh process (benches/workloads.py), and the frameworks are interleaved within each
repetition so that machine noise hits all of them alike. Reported: the CPU model, the SIMD level kerust used and
the thread count; medians, and kerust's time divided by the faster of the other two (below 1 means kerust is
faster). A ratio is reported only when the run is reliable: a peer more than 1.5x slower than its usual figure on
this kind of CPU (USUAL below) measures the machine, not kerust, and kerust's repetitions spreading more than 25%
mean the machine was too noisy (fewer than 3 repetitions cannot show a spread); such rows say "unreliable" and why.
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
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
from vision_workloads import VISION_SAMPLES  # noqa: E402  (the vision epoch's size, in one place)

PYTHONS = {
    "kerust": ROOT / ".venv" / "bin" / "python",
    "torch": ROOT / "bench-venv" / "bin" / "python",
    "keras": ROOT / "bench-venv" / "bin" / "python",
}
WORKLOADS = [
    ("cnn_fit", 32, "seed CNN, one epoch of 60,000 images, batch 32, Adam"),
    ("cnn_fit", 128, "seed CNN, one epoch, batch 128"),
    ("mlp_fit", 32, "MLP 784-128-10, one epoch, batch 32"),
    ("mlp_fit", 128, "MLP 784-128-10, one epoch, batch 128"),
    ("cnn_predict", 1000, "seed CNN predict, 10,000 images, batch 1000"),
    ("import", 0, "import time (with NumPy)"),
]
# Issue 17 (sequences and text): each a reduced epoch of 2,048 random sequences of 200 word ids (64 batches of 32),
# binary cross-entropy, Adam; the peak-RSS table below gives kerust's memory for the Bidirectional-LSTM model.
SEQUENCE_WORKLOADS = [
    ("imdb_fit", 32, "IMDB Embedding-BiLSTM(64, seq)-BiLSTM(64)-Dense, 2,048 sequences of 200, batch 32"),
    ("conv1d_text_fit", 32, "text Embedding-Conv1D-MaxPool1D-Conv1D-GlobalMaxPool-Dense, 2,048 x 200, batch 32"),
    ("transformer_fit", 32, "Transformer block (Embedding 64, MHA 2 x 32, FFN 64), 2,048 x 200, batch 32"),
]
# Issue 18 (vision): one epoch of 10,000 images each (see benches/vision_workloads.py).
VISION_WORKLOADS = [
    ("mobilenetv2_fit", 32, "MobileNetV2 (alpha 1, 32x32x3, 10 classes), 10,000 random images, batch 32, Adam"),
    ("autoencoder_fit", 32, "denoising autoencoder (Conv2D + Conv2DTranspose), 10,000 noisy MNIST digits, batch 32"),
]
SETS = {"default": WORKLOADS, "sequences": SEQUENCE_WORKLOADS, "vision": VISION_WORKLOADS}


# The peers' usual medians (seconds) by CPU model, kerust's SIMD level there, workload, batch and threads, from runs
# where the machine was quiet. The Xeon figures: issue 19's run (PyTorch 2.15, Keras 3.15.1 / TensorFlow 2.21). Add
# a figure only from a run you trust; a workload without one is reported with its ratio and "no usual figure on file".
USUAL = {
    ("Intel(R) Xeon(R) Processor", "avx512", "cnn_fit", 32, 2): {"torch": 14.3, "keras": 12.4},
}
PEER_SLOWDOWN_LIMIT = 1.5

# Training arithmetic of the seed CNN per image (multiply-adds x 2), forward + backward: the three 3x3 convolutions'
# and two Dense layers' products (the first convolution needs no input gradient). About 1.0 TFLOP per epoch.
_CONV = [(26 * 26, 9, 32, False), (11 * 11, 288, 64, True), (3 * 3, 576, 64, True)]  # (pixels, K, filters, dX?)
_DENSE = [(576, 64), (64, 10)]
SEED_CNN_TRAIN_FLOPS_PER_IMAGE = sum(2 * p * k * f * (3 if dx else 2) for p, k, f, dx in _CONV) + sum(
    2 * i * o * 3 for i, o in _DENSE)
KERUST_SPREAD_LIMIT = 0.25


def cpu_model() -> str:
    try:
        line = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "")
    except OSError:
        line = ""
    return line.split(":", 1)[1].strip() if ":" in line else platform.processor()


def kerust_simd_level() -> str:
    out = subprocess.run([str(PYTHONS["kerust"]), "-c", "import kerust; print(kerust._core.simd_level)"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.strip()


def verdict(kind: tuple, workload: str, batch: int, threads: int, med: dict, kerust_runs: list) -> str:
    """The ratio, or why the run cannot give one."""
    reasons = []
    if len(kerust_runs) < 3:
        reasons.append(f"{len(kerust_runs)} run(s): a spread needs 3")
    spread = (max(kerust_runs) - min(kerust_runs)) / statistics.median(kerust_runs)
    if spread > KERUST_SPREAD_LIMIT:
        reasons.append(f"kerust's runs spread {spread:.0%}")
    usual = USUAL.get((*kind, workload, batch, threads), {})
    for fw, figure in usual.items():
        if med[fw] > PEER_SLOWDOWN_LIMIT * figure:
            reasons.append(f"{fw} {med[fw] / figure:.2f}x its usual {figure} s")
    ratio = med["kerust"] / min(med["torch"], med["keras"])
    return f"unreliable: {'; '.join(reasons)}" if reasons else f"{ratio:.2f}"


def peer_note(kind: tuple, workload: str, batch: int, threads: int, med: dict) -> str:
    usual = USUAL.get((*kind, workload, batch, threads))
    if not usual:
        return "no usual figure on file"
    return ", ".join(f"{fw} {med[fw] / figure:.2f}x its usual {figure} s" for fw, figure in usual.items())


def run_one(framework: str, workload: str, batch: int, threads: int, samples: Optional[int] = None) -> dict:
    cmd = [str(PYTHONS[framework]), str(ROOT / "benches" / "workloads.py"), "--framework", framework,
           "--workload", workload, "--batch-size", str(batch or 32), "--threads", str(threads)]
    if samples is not None:
        cmd += ["--samples", str(samples)]
    # as users run: bytecode caches allowed (some sandboxes set PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor()}, {os.cpu_count()} cores, Linux {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", choices=sorted(SETS), default="default",
                        help="which workloads: the MNIST ones and import time (default), or issue 17's text models")
    parser.add_argument("--quick", action="store_true", help="MLP and import only (the default set)")
    parser.add_argument("--only", default=None, help="comma-separated workload names")
    parser.add_argument("--out", default=None, help="write a Markdown report here")
    parser.add_argument("--peer-samples", action="append", default=[], metavar="FRAMEWORK:WORKLOAD:N",
                        help="time FRAMEWORK's WORKLOAD (a vision one) on N images instead of the full epoch and "
                             "scale its time to the epoch (for a peer too slow to run whole; the report says so)")
    parser.add_argument("--gemm-ceiling", type=float, default=None,
                        help="kerust's best one-thread GEMM GFLOP/s on this machine (benches/kernels.py): the seed CNN "
                             "epoch is then also reported as GFLOP/s and as a share of threads x this ceiling")
    args = parser.parse_args()
    missing = [f for f, p in PYTHONS.items() if not p.exists()]
    if missing:
        sys.exit(f"missing interpreters for {missing}; see this file's docstring for the set-up")
    quick = args.quick and args.set == "default"
    work = [w for w in SETS[args.set] if not quick or w[0] in ("mlp_fit", "import")]
    if args.only:
        work = [w for w in work if w[0] in args.only.split(",")]
    scaled = {}
    for spec in args.peer_samples:
        fw, workload, n = spec.split(":")
        if workload not in {w[0] for w in VISION_WORKLOADS}:
            sys.exit(f"--peer-samples: {workload} is not a vision workload")
        scaled[(fw, workload)] = int(n)
    results: dict = {}
    for fw in ("kerust", "torch", "keras"):  # warm-up: writes bytecode caches, loads shared libraries once
        run_one(fw, "import", 0, args.threads)
    for rep in range(args.reps):
        for workload, batch, _ in work:
            for fw in ("kerust", "torch", "keras"):
                n = scaled.get((fw, workload))
                r = run_one(fw, workload, batch, args.threads, n)
                if n is not None:  # the time of n images, scaled to the whole epoch
                    r["seconds"] *= VISION_SAMPLES / n
                key = (workload, batch, fw)
                results.setdefault(key, []).append(r)
                value = r["import_s"] if workload == "import" else r["seconds"]
                print(f"rep {rep + 1}: {fw:7s} {workload:15s} batch {batch:5d}: {value:8.3f} s, "
                      f"peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
    kind = (cpu_model(), kerust_simd_level())  # what the usual figures are keyed by
    lines = [f"Machine: {machine()}; kerust SIMD level: {kind[1]}; "
             f"{args.threads} threads; medians of {args.reps} runs, frameworks interleaved.",
             "", "| work | kerust | PyTorch | Keras/TF | kerust / faster other | peers against their usual figures |",
             "| --- | --- | --- | --- | --- | --- |"]
    for workload, batch, title in work:
        med = {}
        for fw in ("kerust", "torch", "keras"):
            rs = results[(workload, batch, fw)]
            med[fw] = statistics.median(r["import_s"] if workload == "import" else r["seconds"] for r in rs)
        kerust_runs = [r["import_s"] if workload == "import" else r["seconds"]
                       for r in results[(workload, batch, "kerust")]]
        lines.append(f"| {title} | {med['kerust']:.3f} s | {med['torch']:.3f} s | {med['keras']:.3f} s | "
                     f"{verdict(kind, workload, batch, args.threads, med, kerust_runs)} | "
                     f"{peer_note(kind, workload, batch, args.threads, med)} |")
    if args.gemm_ceiling and ("cnn_fit", 32) in {(w[0], w[1]) for w in work}:
        seconds = statistics.median(r["seconds"] for r in results[("cnn_fit", 32, "kerust")])
        achieved = SEED_CNN_TRAIN_FLOPS_PER_IMAGE * 60000 / seconds / 1e9
        ceiling = args.gemm_ceiling * args.threads
        lines += ["", f"Seed CNN epoch (batch 32): {SEED_CNN_TRAIN_FLOPS_PER_IMAGE * 60000 / 1e12:.2f} TFLOP of "
                  f"training arithmetic in {seconds:.2f} s = {achieved:.0f} GFLOP/s, {achieved / ceiling:.0%} of the "
                  f"GEMM ceiling ({args.threads} x {args.gemm_ceiling:.0f} GFLOP/s)."]
    if any(w[0] == "import" for w in work):
        numpy_alone = {fw: statistics.median(r["numpy_import_s"] for r in results[("import", 0, fw)])
                       for fw in ("kerust", "torch", "keras")}
        lines += ["", "Of the import times, NumPy's own import (the first step of each): "
                  + ", ".join(f"{fw} run {numpy_alone[fw]:.3f} s" for fw in ("kerust", "torch", "keras")) + "."]
    measured = [w for w in work if w[0] != "import"]
    if measured:
        lines += ["", "| peak RSS (MB) during | kerust | PyTorch | Keras/TF | kerust / PyTorch |",
                  "| --- | --- | --- | --- | --- |"]
    for workload, batch, title in measured:
        rss = {fw: statistics.median(r["peak_rss_mb"] for r in results[(workload, batch, fw)])
               for fw in ("kerust", "torch", "keras")}
        lines.append(f"| {title} | {rss['kerust']:.0f} | {rss['torch']:.0f} | {rss['keras']:.0f} | "
                     f"{rss['kerust'] / rss['torch']:.3f} |")  # 3 places: the target sits at 0.25
    for (fw, workload), n in sorted(scaled.items()):
        lines += ["", f"{fw}'s {workload} was timed on {n:,} images and its time scaled to {VISION_SAMPLES:,} "
                  f"(x {VISION_SAMPLES / n:g}); the others ran the whole epoch."]
    report = "\n".join(lines)
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()

"""Epoch times of the MNIST MLP (784-128-10, batch 32) over several epochs, per optimizer, in kerust.

An optimizer whose slots decay into subnormal floats slows down epoch after epoch (each update of such a slot
takes a microcode assist); kerust stores them as zero (`ftz` in src/optimizers.rs). With that, every epoch takes
about as long as the first. Optimizers run interleaved, one fresh model each, epochs timed one by one:

    python benches/optimizer_epochs.py [--epochs 4] [--optimizers adam sgd rmsprop nadam]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402
from ops_vs_dense import cpu_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd", "rmsprop", "nadam"])
    args = parser.parse_args()
    import kerust as keras

    x, y, _ = workloads.mnist(True, train=True, test=False)
    print(f"CPU: {cpu_model()}; "
          f"kerust SIMD: {keras._core.simd_level}; threads: {keras.config.get_num_threads()}")
    for opt in args.optimizers:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(128, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(opt, "sparse_categorical_crossentropy")
        times = []
        for _ in range(args.epochs):
            t = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            times.append(time.perf_counter() - t)
        print(f"{opt:8s} epochs: " + " ".join(f"{t:.2f}" for t in times) + f" s; last/first {times[-1] / times[0]:.2f}")


if __name__ == "__main__":
    main()

"""Training step time of issue 17's IMDB-sized model in kerust: Embedding(20000, 128) ->
Bidirectional(LSTM(64, return_sequences=True)) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid), maxlen 200,
batch 32, Adam (`examples/imdb_bilstm.py`'s `build`), on random ids after a warm-up epoch. kerust only: the
same model beside PyTorch and Keras is `benches/bench.py --set sequences` (workload imdb_fit).

    python benches/rnn_step.py [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

from ops_vs_dense import cpu_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import numpy as np

    import imdb_bilstm
    import kerust as keras

    print(f"CPU: {cpu_model()}; kerust SIMD: {keras._core.simd_level}; threads: {keras.config.get_num_threads()}")
    keras.utils.set_random_seed(0)
    model = imdb_bilstm.build(20000, 200, 64)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20000, size=(32 * args.steps, 200))
    y = rng.integers(0, 2, size=(32 * args.steps, 1)).astype(np.float32)
    model.fit(x[:320], y[:320], batch_size=32, epochs=1, verbose=0)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        times.append((time.perf_counter() - t) / args.steps * 1000)
    med = statistics.median(times)
    print(f"IMDB Bidirectional-LSTM step, batch 32: median {med:.1f} ms ({', '.join(f'{t:.1f}' for t in times)}); "
          f"a 25,000-review epoch (782 steps) ~{med * 782 / 1000:.0f} s")


if __name__ == "__main__":
    main()

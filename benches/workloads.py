"""One benchmark workload in one framework, in a fresh process; prints a JSON line with its measurements.

    python benches/workloads.py --framework kerust|torch|keras --workload cnn_fit|mlp_fit|cnn_predict|import
                                [--batch-size N] [--threads 2]
    python benches/workloads.py --framework ... --workload imdb_fit|conv1d_text_fit|transformer_fit [--samples 2048]

Run by benches/bench.py (kerust from the project's .venv, PyTorch and Keras from bench-venv). Data: the real
MNIST files in data/mnist, read here with a small IDX reader so no framework's loader is timed. The sequence
workloads (issue 17) train on random word ids (20,000 words, length 200) and random 0/1 labels from a fixed seed,
the same arrays in every framework, for a reduced epoch of `--samples` sequences (64 batches of 32 by default).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "mnist"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from vision_workloads import VISION_SAMPLES, VISION_WORKLOADS, keras_vision, torch_vision  # noqa: E402


def read_idx_float(name: str, channels_first: bool = False):
    """An IDX image file as float32 scaled to [0, 1], decoded in pieces straight into the result, so peak memory
    is the float32 array itself (what a user holds), not that plus the bytes and temporaries."""
    import numpy as np

    with gzip.open(DATA / name, "rb") as f:
        head = f.read(4)
        dims = [int.from_bytes(f.read(4), "big") for _ in range(head[3])]
        out = np.empty([dims[0], int(np.prod(dims[1:]))], dtype=np.float32)
        rows = max(1, (1 << 20) // out.shape[1])
        for start in range(0, dims[0], rows):
            piece = np.frombuffer(f.read(min(rows, dims[0] - start) * out.shape[1]), dtype=np.uint8)
            out[start:start + len(piece) // out.shape[1]] = piece.reshape(-1, out.shape[1])
    out *= np.float32(1 / 255.0)
    return out


def read_idx_labels(name: str):
    import numpy as np

    with gzip.open(DATA / name, "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def mnist(flat: bool, train: bool = True, test: bool = False):
    """(x, y, x_test) as each framework is fed: flat (n, 784) or NHWC (n, 28, 28, 1); only what is asked for."""
    shape = (-1, 784) if flat else (-1, 28, 28, 1)
    x = read_idx_float("train-images.idx3-ubyte.gz").reshape(shape) if train else None
    y = read_idx_labels("train-labels.idx1-ubyte.gz") if train else None
    xt = read_idx_float("t10k-images.idx3-ubyte.gz").reshape(shape) if test else None
    return x, y, xt


NUM_WORDS, MAXLEN = 20000, 200
SEQUENCE_WORKLOADS = ("imdb_fit", "conv1d_text_fit", "transformer_fit")
SEQUENCE_SAMPLES = 2048  # the reduced epoch: 64 batches of 32


def text_data(samples: int):
    """(ids, labels): `samples` sequences of MAXLEN word ids in [1, NUM_WORDS) (0 is padding) as int32, and 0/1
    labels (samples, 1) as float32, from one fixed seed, so every framework trains on the same arrays."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(1, NUM_WORDS, size=(samples, MAXLEN)).astype(np.int32)
    y = rng.integers(0, 2, size=(samples, 1)).astype(np.float32)
    return x, y


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- kerust and Keras share the Keras API --------------------------------------------------------------
def seed_cnn_layers(layers) -> list:
    return [
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ]


def ops_dense(keras):
    """A Dense layer written as a Keras user writes a custom layer: add_weight, ops.matmul, an activation."""

    class OpsDense(keras.layers.Layer):
        def __init__(self, units, activation, **kwargs):
            super().__init__(**kwargs)
            self.units, self.activation = units, activation

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros")

        def call(self, x):
            z = keras.ops.matmul(x, self.w) + self.b
            return keras.ops.relu(z) if self.activation == "relu" else keras.ops.softmax(z)

    return OpsDense


def sequence_model(keras, layers, workload: str):
    """Issue 17's text models through the Keras API: Keras's IMDB Bidirectional-LSTM and 1D-convolution examples,
    and a Transformer encoder block (without dropout and positional embedding, as the PyTorch copy in run_torch)."""
    if workload == "imdb_fit":
        return keras.Sequential([
            keras.Input(shape=(MAXLEN,)),
            layers.Embedding(NUM_WORDS, 128),
            layers.Bidirectional(layers.LSTM(64, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(64)),
            layers.Dense(1, activation="sigmoid"),
        ])
    if workload == "conv1d_text_fit":
        return keras.Sequential([
            keras.Input(shape=(MAXLEN,)),
            layers.Embedding(NUM_WORDS, 128),
            layers.Conv1D(128, 5, activation="relu"),
            layers.MaxPooling1D(5),
            layers.Conv1D(128, 5, activation="relu"),
            layers.GlobalMaxPooling1D(),
            layers.Dense(1, activation="sigmoid"),
        ])
    inputs = keras.Input(shape=(MAXLEN,))
    x = layers.Embedding(NUM_WORDS, 64)(inputs)
    attention = layers.MultiHeadAttention(num_heads=2, key_dim=32)(x, x)
    x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, attention]))
    ffn = layers.Dense(64)(layers.Dense(64, activation="relu")(x))
    x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, ffn]))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


def keras_like(keras, layers, workload: str, batch_size: int, style: str = "sequential",
               samples: int = SEQUENCE_SAMPLES) -> float:
    if workload in VISION_WORKLOADS:
        return keras_vision(keras, workload, batch_size, samples or VISION_SAMPLES, mnist)
    if workload in SEQUENCE_WORKLOADS:
        x, y = text_data(samples)
        keras.utils.set_random_seed(0)
        model = sequence_model(keras, layers, workload)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(x[: batch_size * 4], y[: batch_size * 4], batch_size=batch_size, epochs=1, verbose=0)  # warm-up
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        return time.perf_counter() - t
    flat = workload.startswith("mlp")
    predict = workload == "cnn_predict"
    x, y, xt = mnist(flat, train=not predict, test=predict)
    if flat and style == "ops":  # the MLP as two custom layers made of keras.ops
        dense = ops_dense(keras)
        model = keras.Sequential([keras.Input(shape=(784,)), dense(128, "relu"), dense(10, "softmax")])
    elif flat:
        model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
    elif style == "functional":  # the same network through the functional API: keras.Model(inputs, outputs)
        inputs = keras.Input(shape=(28, 28, 1))
        h = inputs
        for layer in seed_cnn_layers(layers):
            h = layer(h)
        model = keras.Model(inputs, h)
    else:
        model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *seed_cnn_layers(layers)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if workload == "cnn_predict":
        model.predict(xt[:batch_size], batch_size=batch_size, verbose=0)  # warm-up (graph tracing in Keras)
        t = time.perf_counter()
        model.predict(xt, batch_size=batch_size, verbose=0)
        return time.perf_counter() - t
    # warm-up: a few steps so one-time setup (tracing, allocation) is not timed
    model.fit(x[: batch_size * 4], y[: batch_size * 4], batch_size=batch_size, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return time.perf_counter() - t


def torch_sequence_model(workload: str):
    """sequence_model's networks by hand in PyTorch, returning logits (the loss is BCEWithLogits, Keras's sigmoid
    and binary cross-entropy in one). Differences in the weights, not the arithmetic: nn.LSTM has two biases per
    direction where Keras has one."""
    import torch
    from torch import nn

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(NUM_WORDS, 128)
            self.lstm1 = nn.LSTM(128, 64, batch_first=True, bidirectional=True)
            self.lstm2 = nn.LSTM(128, 64, batch_first=True, bidirectional=True)
            self.out = nn.Linear(128, 1)

        def forward(self, ids):
            h, _ = self.lstm1(self.embedding(ids))
            _, (last, _) = self.lstm2(h)  # (2, batch, 64): each direction's final output, as Keras concatenates
            return self.out(torch.cat([last[0], last[1]], dim=1))

    class TextConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(NUM_WORDS, 128)
            self.conv1, self.conv2 = nn.Conv1d(128, 128, 5), nn.Conv1d(128, 128, 5)
            self.pool = nn.MaxPool1d(5)
            self.out = nn.Linear(128, 1)

        def forward(self, ids):
            h = self.embedding(ids).transpose(1, 2)  # (batch, channels, length): PyTorch's Conv1d layout
            h = torch.relu(self.conv2(self.pool(torch.relu(self.conv1(h)))))
            return self.out(h.amax(dim=2))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(NUM_WORDS, 64)
            # two heads of 64 / 2 = 32: Keras's key_dim=32, and the same 16,640 weights
            self.attention = nn.MultiheadAttention(64, 2, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(64, eps=1e-6), nn.LayerNorm(64, eps=1e-6)
            self.ffn = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
            self.out = nn.Linear(64, 1)

        def forward(self, ids):
            x = self.embedding(ids)
            x = self.norm1(x + self.attention(x, x, x, need_weights=False)[0])
            x = self.norm2(x + self.ffn(x))
            return self.out(x.mean(dim=1))

    return {"imdb_fit": BiLSTM, "conv1d_text_fit": TextConv, "transformer_fit": Encoder}[workload]()


def run_torch_sequences(workload: str, batch_size: int, samples: int) -> float:
    import torch
    from torch import nn

    x, y = text_data(samples)
    xs, ys = torch.from_numpy(x).long(), torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch_sequence_model(workload)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()

    return torch_timed_epoch(model, opt, loss_fn, xs, ys, batch_size)


def torch_timed_epoch(model, opt, loss_fn, xs, ys, batch_size: int) -> float:
    """One shuffled PyTorch training epoch over `xs`, timed after a 4-batch warm-up (seconds)."""
    import torch

    def epoch(n: int) -> None:
        perm = torch.randperm(n)
        for i in range(0, n, batch_size):
            idx = perm[i: i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()

    epoch(batch_size * 4)
    t = time.perf_counter()
    epoch(len(xs))
    return time.perf_counter() - t


def run_torch(workload: str, batch_size: int, threads: int, samples: int = SEQUENCE_SAMPLES) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    if workload in VISION_WORKLOADS:
        return torch_vision(workload, batch_size, samples or VISION_SAMPLES, mnist, torch_timed_epoch)
    if workload in SEQUENCE_WORKLOADS:
        return run_torch_sequences(workload, batch_size, samples)
    flat = workload.startswith("mlp")
    predict = workload == "cnn_predict"
    x, y, xt = mnist(flat, train=not predict, test=predict)
    if flat:
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
        )
    # one grey channel: NHWC and NCHW hold the same bytes, so a reshape (no copy) makes PyTorch's layout
    to_nchw = (lambda a: a.reshape(-1, 1, 28, 28)) if not flat else (lambda a: a)
    if predict:
        xts = torch.from_numpy(to_nchw(xt))
        model.eval()
        with torch.no_grad():
            model(xts[:batch_size])
            t = time.perf_counter()
            for i in range(0, len(xts), batch_size):
                torch.softmax(model(xts[i: i + batch_size]), dim=1)
            return time.perf_counter() - t
    xs, ys = torch.from_numpy(to_nchw(x)), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    return torch_timed_epoch(model, opt, loss_fn, xs, ys, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", required=True, choices=["kerust", "torch", "keras"])
    parser.add_argument("--workload", required=True,
                        choices=["cnn_fit", "mlp_fit", "cnn_predict", "import", *SEQUENCE_WORKLOADS,
                                 *VISION_WORKLOADS])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--style", choices=["sequential", "functional", "ops"], default="sequential",
                        help="how the Keras-API frameworks build the network (ops: the MLP as custom layers of "
                             "keras.ops)")
    parser.add_argument("--samples", type=int, default=None,
                        help="sequences (or images) in the sequence (vision) workloads' timed epoch")
    args = parser.parse_args()
    if args.samples is None and args.workload in SEQUENCE_WORKLOADS:
        args.samples = SEQUENCE_SAMPLES
    n = str(args.threads)
    os.environ.update({"RAYON_NUM_THREADS": n, "OMP_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n,
                       "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    t0 = time.perf_counter()
    import numpy  # noqa: F401  (import time is measured with NumPy, as users import it)

    numpy_s = time.perf_counter() - t0

    if args.framework == "kerust":
        import kerust as keras
        from kerust import layers
    elif args.framework == "keras":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        from keras import layers
    else:
        import torch  # noqa: F401
    import_s = time.perf_counter() - t0
    if args.framework == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    seconds = 0.0
    if args.workload != "import":
        if args.framework == "torch":
            seconds = run_torch(args.workload, args.batch_size, args.threads, args.samples)
        else:
            seconds = keras_like(keras, layers, args.workload, args.batch_size, args.style, args.samples)
    print(json.dumps({"framework": args.framework, "workload": args.workload, "batch_size": args.batch_size,
                      "style": args.style, "samples": args.samples,
                      "seconds": seconds, "import_s": import_s, "numpy_import_s": numpy_s,
                      "peak_rss_mb": peak_rss_mb()}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

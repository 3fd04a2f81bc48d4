"""Write the Keras-saved model files that kerust's file and resume tests load (``tests/reference/keras/``).

Run with a Python that has real Keras 3 + TensorFlow (not kerust's environment), from the repository root:

    bench-venv/bin/python tests/reference/generate_keras_files.py [--out tests/reference/keras]
    bench-venv/bin/python tests/reference/generate.py --only resume     # the values computed from these files

Each model is compiled as below, trained one epoch on the first 2048 MNIST training images (pixels / 255, shape
(N, 28, 28, 1), batch 32, no shuffling) and saved with its optimizer state; ``expected.npz`` holds ``x`` (the
first 64 MNIST test images, same preprocessing) and Keras's ``predict(x)`` for each model under its file name.
``mlp_dropout_sgd.weights.h5`` is the MLP's ``save_weights``. The files committed were written by Keras 3.15.1
with TensorFlow 2.21.0 (see README.md here); ``generate.py --only resume`` must be run again after regenerating
them, since its values come from these exact files.
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def models() -> dict:
    seed_cnn = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax"),
    ])
    seed_cnn.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    mlp = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(128, activation="relu"),
                            layers.Dropout(0.2), layers.Dense(10, activation="softmax")])
    mlp.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    bn = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(16, 5, strides=2, padding="same", use_bias=False), layers.BatchNormalization(),
        layers.Activation("relu"), layers.AveragePooling2D(2, padding="same"),
        layers.Conv2D(24, 3, padding="same", activation="tanh"), layers.GlobalAveragePooling2D(),
        layers.Dense(10, activation="softmax"),
    ])
    bn.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return {"seed_cnn": seed_cnn, "mlp_dropout_sgd": mlp, "bn_cnn_rmsprop": bn}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "reference" / "keras")
    parser.add_argument("--mnist", type=Path, default=ROOT / "data" / "mnist")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    x = (idx(args.mnist / "train-images.idx3-ubyte.gz")[:2048, :, :, None] / 255.0).astype(np.float32)
    y = idx(args.mnist / "train-labels.idx1-ubyte.gz")[:2048].astype(np.int64)
    xt = (idx(args.mnist / "t10k-images.idx3-ubyte.gz")[:64, :, :, None] / 255.0).astype(np.float32)
    expected = {"x": xt}
    for name, model in models().items():
        labels = keras.utils.to_categorical(y, 10) if name == "seed_cnn" else y
        model.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
        model.save(args.out / f"{name}.keras")
        if name == "mlp_dropout_sgd":
            model.save_weights(args.out / f"{name}.weights.h5")
        expected[name] = model.predict(xt, verbose=0)
    np.savez_compressed(args.out / "expected.npz", **expected)
    for f in sorted(args.out.iterdir()):
        print(f"wrote {f}: {f.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()

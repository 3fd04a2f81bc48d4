"""CIFAR-10 with Keras's MobileNetV2 (`keras.applications.MobileNetV2`, alpha 1.0, trained from scratch at
32x32x3), with the usual augmentation (random flips and translations, active only in training).

Run: python examples/cifar10_mobilenetv2.py [--epochs N] [--limit N] [--seed S] [--synthetic N]

The data: Keras's own `cifar-10-python.tar.gz` (or its extracted folder), found by `keras.datasets.cifar10` at
`--path`, in `$KERUST_DATA` or in `~/.keras/datasets`; kerust never downloads it. `--synthetic N` trains on N random
images instead (a smoke run: its accuracy means nothing).
"""

import argparse
from typing import Optional, Sequence

import numpy as np

import kerust as keras
from kerust import layers


def build(classes: int = 10, augment: bool = True, seed: int = 0) -> keras.Model:
    """Augmentation, then MobileNetV2 (weights=None) at 32x32x3 with a `classes`-way softmax."""
    inputs = keras.Input(shape=(32, 32, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)  # MobileNetV2's preprocess_input: [0, 255] -> [-1, 1]
    if augment:
        x = layers.RandomFlip("horizontal", seed=seed)(x)
        x = layers.RandomTranslation(0.1, 0.1, seed=seed)(x)
    net = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=classes)
    return keras.Model(inputs, net(x))


def load(args: argparse.Namespace) -> tuple:
    if args.synthetic:
        rng = np.random.default_rng(args.seed)
        n = args.synthetic
        x = rng.integers(0, 256, size=(n, 32, 32, 3)).astype(np.uint8)
        y = rng.integers(0, 10, size=(n, 1)).astype(np.uint8)
        return (x, y), (x[: max(1, n // 4)], y[: max(1, n // 4)])
    return keras.datasets.cifar10.load_data(args.path)


def main(argv: Optional[Sequence[str]] = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", default=None, help="cifar-10-python.tar.gz or its extracted folder")
    parser.add_argument("--synthetic", type=int, default=0, help="train on N random images instead")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = load(args)
    # uint8 images stay uint8: fit converts each batch to float32 (no float copy of the whole set)
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]

    model = build(seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, validation_split=0.1)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {accuracy:.4f}")
    return float(accuracy)


if __name__ == "__main__":
    main()

"""A convolutional denoising autoencoder on MNIST (Keras's "image denoising" example): Conv2D and MaxPooling2D
down to 7x7, Conv2DTranspose back up to 28x28, trained to map noisy digits to clean ones.

Run: python examples/denoising_autoencoder.py [--epochs N] [--limit N] [--seed S]
"""

import argparse

import numpy as np

import kerust as keras
from kerust import layers


def noisy(images: np.ndarray, rng: np.random.Generator, factor: float = 0.4) -> np.ndarray:
    """The images with Gaussian noise, clipped back to [0, 1]."""
    return np.clip(images + factor * rng.normal(size=images.shape), 0.0, 1.0).astype(np.float32)


def build() -> keras.Model:
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    outputs = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    return keras.Model(inputs, outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    (x_train, _), (x_test, _) = keras.datasets.mnist.load_data()
    x_train = (x_train[: args.limit] / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    x_test = (x_test / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    noisy_train, noisy_test = noisy(x_train, rng), noisy(x_test, rng)

    model = build()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.summary()
    model.fit(noisy_train, x_train, epochs=args.epochs, batch_size=128, shuffle=True,
              validation_data=(noisy_test, x_test))
    denoised = model.predict(noisy_test, verbose=0)
    print(f"test MSE to the clean digits: noisy input {np.mean((noisy_test - x_test) ** 2):.4f}, "
          f"denoised {np.mean((denoised - x_test) ** 2):.4f}")


if __name__ == "__main__":
    main()

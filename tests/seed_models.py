"""The README's MNIST CNN, built in one place for the tests that train, export or compare it."""

from __future__ import annotations

import kerust
from kerust import layers


def seed_cnn() -> kerust.Sequential:
    """The tutorial's convolutional network (93,322 parameters), uncompiled."""
    return kerust.Sequential([
        kerust.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])

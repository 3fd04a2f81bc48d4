"""A fully annotated kerust script: ``mypy --strict examples/typed_usage.py`` checks it against kerust's types.

Trains an MLP on a slice of MNIST for one epoch, evaluates and predicts, uses callbacks, reads the history, and
saves/loads a ``.keras`` file in a temporary folder.

Run: python examples/typed_usage.py [--samples N]   (default 1000 training images; $KERUST_EXAMPLE_SAMPLES too)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

import kerust as keras
from kerust import callbacks, layers, optimizers

Images = NDArray[np.float32]
Labels = NDArray[np.int64]


class EpochRecorder(callbacks.Callback):
    """Remembers each epoch's loss and the learning rate it ran with (a typed ``Callback`` subclass)."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: List[float] = []
        self.learning_rates: List[float] = []

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        logs = logs or {}
        self.losses.append(float(logs["loss"]))
        self.learning_rates.append(float(self.model.optimizer.learning_rate))


def load_slice(n_train: int, n_test: int) -> Tuple[Tuple[Images, Labels], Tuple[Images, Labels]]:
    """The first ``n_train`` / ``n_test`` MNIST images, flattened and scaled to [0, 1]."""
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    xtr: Images = (x_train[:n_train].reshape(-1, 784) / 255.0).astype(np.float32)
    xte: Images = (x_test[:n_test].reshape(-1, 784) / 255.0).astype(np.float32)
    return (xtr, y_train[:n_train].astype(np.int64)), (xte, y_test[:n_test].astype(np.int64))


def build_model(seed: int) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.1),
            layers.Dense(10, activation="softmax"),
        ],
        name="typed_mlp",
    )
    model.compile(
        optimizer=optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run(n_train: int, seed: int = 0, verbose: int = 0) -> Dict[str, float]:
    """Train, evaluate, predict, save and reload; returns what a user would look at."""
    (x_train, y_train), (x_test, y_test) = load_slice(n_train, max(n_train // 5, 10))
    model = build_model(seed)
    recorder = EpochRecorder()
    cbs: Sequence[callbacks.Callback] = [recorder, callbacks.EarlyStopping(monitor="val_loss", patience=1)]
    history: callbacks.History = model.fit(
        x_train,
        y_train,
        batch_size=32,
        epochs=1,
        verbose=verbose,
        callbacks=list(cbs),
        validation_data=(x_test, y_test),
    )
    train_loss: List[float] = [float(v) for v in history.history["loss"]]
    val_accuracy: float = float(history.history["val_accuracy"][-1])

    results: Dict[str, float] = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    probabilities: NDArray[np.float32] = model.predict(x_test, verbose=0)
    predicted: NDArray[np.int64] = np.argmax(probabilities, axis=1).astype(np.int64)
    accuracy = float(np.mean(predicted == y_test))

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "typed_mlp.keras"
        model.save(path)
        restored: keras.Model = keras.models.load_model(path)
        again: NDArray[np.float32] = restored.predict(x_test, verbose=0)
    max_difference = float(np.max(np.abs(again - probabilities)))

    return {
        "train_loss": train_loss[-1],
        "recorded_loss": recorder.losses[-1],
        "learning_rate": recorder.learning_rates[-1],
        "val_accuracy": val_accuracy,
        "test_loss": results["loss"],
        "test_accuracy": results["accuracy"],
        "predict_accuracy": accuracy,
        "reload_max_difference": max_difference,
        "params": float(model.count_params()),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=int(os.environ.get("KERUST_EXAMPLE_SAMPLES", "1000")))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    samples: int = args.samples
    seed: int = args.seed
    for key, value in run(samples, seed, verbose=2).items():
        print(f"{key}: {value:.6g}")


if __name__ == "__main__":
    main()

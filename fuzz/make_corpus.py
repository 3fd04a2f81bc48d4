"""Write the seed corpus of fuzz_load.py: small `.keras` and `.weights.h5` files made by kerust (every layer
class, every optimizer whose state is saved, compiled and not), plus Keras's own `bn_cnn_rmsprop.keras` when
the shared fixtures are there. Run from the repository root: ``python fuzz/make_corpus.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

import kerust
from kerust import layers, saving

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
KERAS_FIXTURE = HERE.parents[1] / "shared" / "fixtures" / "keras" / "bn_cnn_rmsprop.keras"


def models() -> dict:
    kerust.utils.set_random_seed(0)
    out = {}
    mlp = kerust.Sequential([kerust.Input((8,)), layers.Dense(4, activation="relu"), layers.Dropout(0.5),
                             layers.Dense(3, activation="softmax")], name="mlp")
    mlp.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    out["mlp_adam"] = (mlp, np.zeros((2, 8)), kerust.utils.to_categorical([0, 1], 3))

    cnn = kerust.Sequential([kerust.Input((8, 8, 1)), layers.Conv2D(2, 3, strides=2, padding="same"),
                             layers.BatchNormalization(), layers.Activation("relu"), layers.MaxPooling2D(2),
                             layers.Flatten(), layers.Dense(2, activation="sigmoid")], name="cnn")
    cnn.compile(optimizer=kerust.optimizers.SGD(0.1, momentum=0.9, nesterov=True), loss="binary_crossentropy")
    out["cnn_sgd"] = (cnn, np.zeros((2, 8, 8, 1)), np.zeros((2, 2)))

    gap = kerust.Sequential([kerust.Input((6, 6, 2)), layers.Conv2D(3, 2, use_bias=False),
                             layers.AveragePooling2D(2, padding="same"), layers.GlobalAveragePooling2D(),
                             layers.Reshape((3, 1)), layers.Flatten(), layers.Dense(2)], name="gap")
    gap.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    out["gap_rmsprop"] = (gap, np.zeros((2, 6, 6, 2)), np.zeros((2, 2)))

    plain = kerust.Sequential([kerust.Input((4, 4, 1)), layers.GlobalMaxPooling2D(), layers.Dense(2)],
                              name="plain")
    out["plain_uncompiled"] = (plain, None, None)
    return out


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    specs = {}
    for name, (model, x, y) in models().items():
        if x is not None:
            model.train_on_batch(x, y)  # optimizer slots exist
        model.save(CORPUS / f"{name}.keras")
        model.save_weights(CORPUS / f"{name}.weights.h5")
        specs[f"{name}.weights.h5"] = saving.keras_config(model)
    if KERAS_FIXTURE.is_file():
        shutil.copy(KERAS_FIXTURE, CORPUS / "keras_bn_cnn_rmsprop.keras")
    (CORPUS / "weights_models.json").write_text(json.dumps(specs, indent=1) + "\n")
    print(sorted(p.name for p in CORPUS.iterdir()))


if __name__ == "__main__":
    main()

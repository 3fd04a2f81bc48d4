"""Smoke test of an installed kerust wheel, run by scripts/wheel-smoke.sh inside a fresh virtualenv (from a
directory outside the checkout, so `import kerust` can only find the installed wheel)."""

import os
import sys
import tempfile

import numpy as np

import kerust as keras
from kerust import layers

location = os.path.dirname(keras.__file__)
assert location.startswith(sys.prefix), f"kerust imported from {location}, not from the fresh venv {sys.prefix}"
assert keras.__version__, "kerust.__version__ is empty"
keras.show_config()
assert keras.config.build_info()["simd"] in ("avx512", "avx2+fma", "baseline")

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((64, 8, 8, 1), dtype=np.float32)
y = keras.utils.to_categorical((x.mean(axis=(1, 2, 3)) > 0.5).astype(int), 2)
model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                          layers.Flatten(), layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
losses = history.history["loss"]
assert len(losses) == 3 and losses[-1] < losses[0], f"training did not lower the loss: {losses}"
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "m.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
print(f"wheel smoke test passed: kerust {keras.__version__} from {location}, losses {[round(v, 4) for v in losses]}")

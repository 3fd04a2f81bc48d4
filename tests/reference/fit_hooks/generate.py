"""Writes hooks.json: the callback hooks real Keras calls during `fit` with validation, `evaluate` and `predict`,
with their logs (and, for evaluate and predict, the callbacks' params and the results), for the runs in
scenarios.py (tests/test_fit_validation_hooks.py compares kerust with it). Run from the repository root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/fit_hooks/generate.py

`--stdout` prints the JSON instead of writing the file (the test uses it to check the file is what Keras gives)."""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import scenarios  # noqa: E402


def main() -> None:
    out = {"meta": {"keras": keras.__version__, "backend": keras.backend.backend()},
           "runs": scenarios.run_all(keras)}
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if "--stdout" in sys.argv:
        sys.stdout.write(text)
        return
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hooks.json"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()

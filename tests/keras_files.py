"""Where the Keras-written model files live: committed under tests/reference/keras (see its README), or the folder
`$KERUST_FIXTURES` names (to test other files)."""

from __future__ import annotations

import os
from pathlib import Path

COMMITTED = Path(__file__).resolve().parent / "reference" / "keras"


def keras_files_dir() -> Path:
    override = os.environ.get("KERUST_FIXTURES")
    return Path(override) if override else COMMITTED


def run_in_keras(script: str) -> str:
    """Run `script` with real Keras (the interpreter `$KERUST_KERAS_PYTHON` names; test.sh sets it to the Keras
    venv) and return what it printed; skips the calling test where Keras is not installed."""
    import subprocess
    import textwrap

    import pytest

    python = os.environ.get("KERUST_KERAS_PYTHON")
    if not python:
        pytest.skip("Keras is not installed here (test.sh sets KERUST_KERAS_PYTHON to the Keras venv)")
    source = 'import os\nos.environ.setdefault("KERAS_BACKEND", "jax")\n' + textwrap.dedent(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", source], check=False, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout

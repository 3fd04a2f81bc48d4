"""Where the Keras-written model files live: committed under tests/reference/keras (see its README), or the folder
`$KERUST_FIXTURES` names (to test other files)."""

from __future__ import annotations

import os
from pathlib import Path

COMMITTED = Path(__file__).resolve().parent / "reference" / "keras"


def keras_files_dir() -> Path:
    override = os.environ.get("KERUST_FIXTURES")
    return Path(override) if override else COMMITTED

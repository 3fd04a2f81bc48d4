"""JSON for configs passed to the engine, with the `json` module loaded on first use, not at `import kerust`."""

from __future__ import annotations

from typing import Any


def dumps(obj: Any, **kwargs: Any) -> str:
    import json

    return json.dumps(obj, **kwargs)


def loads(text: str) -> Any:
    import json

    return json.loads(text)

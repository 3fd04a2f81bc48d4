"""Keras-style automatic names: ``dense``, ``dense_1``, ``dense_2`` ... per session."""

from __future__ import annotations

import re

_counts: dict[str, int] = {}


def to_snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    n = _counts.get(base, 0)
    _counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"

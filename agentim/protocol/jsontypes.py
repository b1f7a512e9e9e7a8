"""The JSON type names zod v3 prints in `Expected X, received Y` (shared by every validator)."""

from __future__ import annotations

import math


def type_name(value: object) -> str:
    """zod's `received` name for a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "nan" if isinstance(value, float) and math.isnan(value) else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"

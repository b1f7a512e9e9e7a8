"""The JSON type names zod v3 prints in `Expected X, received Y`, and its string rule (shared by
every validator)."""

from __future__ import annotations

import math

from agentim.protocol.textrules import utf16_len


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


def string_problem(value: object, *, min_len: int = 0, max_len: int | None = None) -> str | None:
    """zod's first issue with `value` as a string of `min_len`..`max_len` UTF-16 units, or None.

    Each validator raises it as its own exception type."""
    if not isinstance(value, str):
        return f"Expected string, received {type_name(value)}"
    if min_len and utf16_len(value) < min_len:
        return f"String must contain at least {min_len} character(s)"
    # len() is a lower bound of the UTF-16 length: most strings are decided without encoding
    if max_len is not None and len(value) > max_len // 2 and utf16_len(value) > max_len:
        return f"String must contain at most {max_len} character(s)"
    return None

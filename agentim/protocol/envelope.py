"""Response bodies `{"ok":…}` and the one compact JSON encoding used on the wire (api.md §0.1)."""

from __future__ import annotations

import enum
import json
from typing import Final


class _Missing(enum.Enum):
    MISSING = enum.auto()


_NO_DATA: Final = _Missing.MISSING


def dumps(obj: object) -> str:
    """Encode `obj` as compact JSON, non-ASCII kept as is (byte parity with `JSON.stringify`)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def dumpb(obj: object) -> bytes:
    """Encode `obj` as compact JSON in UTF-8 bytes."""
    return dumps(obj).encode("utf-8")


def ok(data: object = _NO_DATA) -> dict[str, object]:
    """Return `{"ok":true}`, or `{"ok":true,"data":data}` when data is given (even None)."""
    if data is _NO_DATA:
        return {"ok": True}
    return {"ok": True, "data": data}


def error(message: str, **extra: object) -> dict[str, object]:
    """Return `{"ok":false,"error":message}` followed by any extra top-level keys (`fields`, …)."""
    return {"ok": False, "error": message, **extra}

"""JSON frames in: parse text the way `JSON.parse` does, then the depth and collection limits.

Shared by both endpoints (realtime.md §1.3 steps 2-3b); the size check happens earlier, in the
transport. Pure: no I/O.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Final

from agentim.protocol.jsonlimits import check_json_limits
from agentim.protocol.storable import may_hold_unstorable, replace_unstorable, unstorable_path

CLIENT_MAX_DEPTH: Final = 10  # realtime.md §1.4
CLIENT_MAX_COLLECTION: Final = 1000
GATEWAY_MAX_DEPTH: Final = 15


class FrameError(Enum):
    """Why a text frame is not a usable JSON object (the steps of realtime.md §1.3)."""

    INVALID_JSON = "invalid_json"
    TOO_DEEP = "depth"
    TOO_MANY_ITEMS = "collection"
    NOT_AN_OBJECT = "not_an_object"  # valid JSON, but the schema step will reject it
    UNSTORABLE_TEXT = "unstorable_text"  # a string holds NUL or an unpaired surrogate


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: JSON.parse refuses them


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def parse_frame(
    text: str, *, max_depth: int, max_collection: int | None
) -> dict[str, Any] | FrameError:
    """Parse one text frame into a JSON object, or say which step rejects it.

    Python's parser may give up on hostile nesting before our depth walk sees it; that
    RecursionError is a nesting problem, so it reports TOO_DEEP. A string PostgreSQL cannot
    store (protocol/storable) fails the frame here, once for every message type, after the
    limits (so the walk only ever sees a bounded value).
    """
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        return FrameError.TOO_DEEP
    except ValueError:
        return FrameError.INVALID_JSON
    if not (isinstance(value, dict) and _is_flat(value, max_collection)):
        breach = check_json_limits(value, max_depth=max_depth, max_collection=max_collection)
        if breach == "depth":
            return FrameError.TOO_DEEP
        if breach == "collection":
            return FrameError.TOO_MANY_ITEMS
        if not isinstance(value, dict):
            return FrameError.NOT_AN_OBJECT
    if may_hold_unstorable(text) and unstorable_path(value) is not None:
        return FrameError.UNSTORABLE_TEXT
    return value


def parse_repairing(text: str, types: frozenset[str]) -> dict[str, Any] | None:
    """A frame parse_frame refused for unstorable text, with that text replaced by U+FFFD, when
    its type is one of `types`; else None. For an agent's reply, where losing a character beats
    losing the reply (DIFFERENCES D25). Only called after parse_frame passed every other check."""
    value = _DECODER.decode(text)
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in types:
        return None
    repaired: dict[str, Any] = replace_unstorable(value)
    return repaired


def _is_flat(value: dict[str, Any], max_collection: int | None) -> bool:
    if max_collection is not None and len(value) > max_collection:
        return False
    return not any(isinstance(item, dict | list) for item in value.values())

"""Text PostgreSQL cannot store: U+0000 (text and jsonb refuse NUL) and unpaired surrogates
(UTF-8 cannot encode them, yet JSON's `\\ud800` escape and JSON.parse let them in).

Every edge refuses such text where it decodes input (WebSocket frames, HTTP bodies and query
strings), so it never reaches a statement or an outgoing frame. Pure.
"""

from __future__ import annotations

import re
from typing import Any, Final

UNSTORABLE_TEXT: Final = "Text must not contain NUL or unpaired surrogate characters"
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
# In JSON source these characters can only come from \u escapes (a raw control character is
# invalid JSON, and decoded UTF-8 holds no surrogates); a valid pair also matches, so a match
# only means "look closer".
_SUSPECT_ESCAPE: Final = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF])")


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def may_hold_unstorable(json_text: str) -> bool:
    """Whether JSON source text could decode to an unstorable string (cheap pre-check)."""
    return _SUSPECT_ESCAPE.search(json_text) is not None


def unstorable_path(value: object) -> str | None:
    """Where the first unstorable string (object key or value) sits in decoded JSON, as a zod
    path (`a.0.b`, `(root)` for the value itself), or None when every string is storable.

    Iterative, so hostile nesting cannot exhaust the stack; a bad key is named with U+FFFD in
    place of its bad characters (the path is echoed in answers, which must stay encodable).
    """
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_storable(item):
                return path or "(root)"
            continue
        children: list[tuple[object, str]] = []
        if isinstance(item, dict):
            for key, child in item.items():
                if not is_storable(key):
                    return _join(path, _UNSTORABLE.sub("\ufffd", key))
                children.append((child, _join(path, key)))
        elif isinstance(item, list):
            children = [(child, _join(path, str(i))) for i, child in enumerate(item)]
        stack.extend(reversed(children))  # popped in document order: the first bad field wins
    return None


def replace_unstorable(value: Any) -> Any:
    """value with every unstorable character of its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {replace_unstorable(k): replace_unstorable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_unstorable(item) for item in value]
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name

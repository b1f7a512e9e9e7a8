"""The reference's two sanitisers (api.md §15.1-15.2, realtime.md §3.11), with the same output.

Tags are scanned by hand, not by one regex per tag, so hostile input costs linear time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Final

from agentim.protocol.textrules import JS_WHITESPACE, js_trim

# JS regex semantics: `\s` is JavaScript whitespace, `\w` ASCII, `i` folds ASCII letters only.
_WS: Final = f"[{JS_WHITESPACE}]"
_FLAGS: Final = re.ASCII | re.IGNORECASE

# sanitizeText step 1: each entity replaced globally, in this order (so `&amp;lt;` gives `&lt;`).
_TEXT_ENTITIES: Final = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&amp;", "&"),
    ("&quot;", '"'),
    ("&#x27;", "'"),
)
# Starts of `<…>` sequences; a tag runs from its start to the first `>` after it.
_ANY_TAG_START: Final = re.compile(r"<")
_EMBED_START: Final = re.compile(r"<embed\b", _FLAGS)
_OPENING_TAG_START: Final = re.compile(r"<[a-zA-Z]")
# sanitizeContent step 1: (opening tag start, closing tag), removed in this order.
_BLOCKS: Final = tuple(
    (re.compile(rf"<{name}\b", _FLAGS), re.compile(rf"</{name}{_WS}*>", _FLAGS))
    for name in ("script", "iframe", "object", "form")
)
# The reference's `\s+on\w+…`; the look-behind only skips starts inside a whitespace run, where
# the reference's match could not begin either, and keeps long runs from costing quadratic time.
_EVENT_HANDLER: Final = re.compile(
    rf"(?<!{_WS}){_WS}+on[A-Za-z0-9_]+{_WS}*={_WS}*"
    rf"(?:\"[^\"]*\"|'[^']*'|[^{JS_WHITESPACE}>]+)",
    _FLAGS,
)
_SCRIPT_URL: Final = re.compile(
    rf"({_WS}(?:href|src|action|formaction){_WS}*={_WS}*)"
    r"(?:\"(?:javascript|vbscript|data):[^\"]*\"|'(?:javascript|vbscript|data):[^']*')",
    _FLAGS,
)


def sanitize_text(s: str) -> str:
    """Sanitise a short label (room name, display name, task title); the result may be empty."""
    for entity, char in _TEXT_ENTITIES:
        s = s.replace(entity, char)
    return js_trim(_replace_tags(s, _ANY_TAG_START, _drop))


def sanitize_content(s: str) -> str:
    """Sanitise user message content or a task description; text outside tags is untouched."""
    for opener, closer in _BLOCKS:
        s = _remove_blocks(s, opener, closer)
    s = _replace_tags(s, _EMBED_START, _drop)
    return _replace_tags(s, _OPENING_TAG_START, _clean_tag)


def _remove_blocks(s: str, opener: re.Pattern[str], closer: re.Pattern[str]) -> str:
    """Cut each opening tag through the first closing tag after it; unclosed blocks stay."""
    parts: list[str] = []
    pos = 0
    while (start := opener.search(s, pos)) is not None:
        tag_end = s.find(">", start.end())
        close = closer.search(s, tag_end + 1) if tag_end >= 0 else None
        if close is None:
            break  # a later opening tag cannot be closed either
        parts.append(s[pos : start.start()])
        pos = close.end()
    parts.append(s[pos:])
    return "".join(parts)


def _replace_tags(s: str, start: re.Pattern[str], replace: Callable[[str], str]) -> str:
    parts: list[str] = []
    pos = 0
    for begin, end in _tag_spans(s, start):
        parts += (s[pos:begin], replace(s[begin:end]))
        pos = end
    parts.append(s[pos:])
    return "".join(parts)


def _tag_spans(s: str, start: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    """Yield the spans `re.finditer(start + "[^>]*>")` would find."""
    pos = 0
    while (match := start.search(s, pos)) is not None:
        end = s.find(">", match.end())
        if end < 0:
            return  # no `>` left, so no later tag can end either
        yield match.start(), end + 1
        pos = end + 1


def _drop(tag: str) -> str:
    return ""


def _clean_tag(tag: str) -> str:
    return _SCRIPT_URL.sub(r'\1""', _EVENT_HANDLER.sub("", tag))

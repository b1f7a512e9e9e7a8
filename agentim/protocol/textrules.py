"""JavaScript string semantics the wire depends on: `.length` in UTF-16 units and `trim()`."""

from __future__ import annotations

from typing import Final

# ECMAScript WhiteSpace + LineTerminator: TAB VT FF SP NBSP ZWNBSP, the Zs category, LF CR LS PS.
# Python's str.isspace() differs (it adds U+001C-U+001F and U+0085, and lacks U+FEFF).
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def utf16_len(s: str) -> int:
    """Return JavaScript's `s.length`: astral characters count 2, lone surrogates 1."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def js_trim(s: str) -> str:
    """Return `s.trim()` as JavaScript computes it."""
    return s.strip(JS_WHITESPACE)


def is_blank(s: str) -> bool:
    """Tell whether `s` is empty or only JavaScript whitespace."""
    return not js_trim(s)

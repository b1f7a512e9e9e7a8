"""Identifiers: nanoid-style ids minted by the hub and the path-id check (api.md §0.4, §2.8)."""

from __future__ import annotations

import re
import secrets
from typing import Final

# nanoid's URL alphabet: 64 symbols, so masking a random byte with 63 is unbiased.
ID_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
DEFAULT_ID_SIZE: Final = 21
REQUEST_ID_SIZE: Final = 12
MAX_PATH_ID_CHARS: Final = 30  # api.md §2.8

_PATH_ID: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_PATH_ID_CHARS}}}")


def new_id(size: int = DEFAULT_ID_SIZE) -> str:
    """Return a random id of `size` characters from `ID_ALPHABET` (nanoid)."""
    return "".join(ID_ALPHABET[byte & 63] for byte in secrets.token_bytes(size))


def new_request_id() -> str:
    """Return an id for the request log (nanoid of length 12)."""
    return new_id(REQUEST_ID_SIZE)


def is_valid_path_id(value: str) -> bool:
    """Tell whether a path parameter passes the id check: 1-30 chars of `[A-Za-z0-9_-]`."""
    return _PATH_ID.fullmatch(value) is not None

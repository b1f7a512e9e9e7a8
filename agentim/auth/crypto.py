"""Secrets at rest (api.md §10.6): AES-256-GCM as `enc:<ivHex>:<ciphertextHex>:<tagHex>`.

Pure: the key text comes from ENCRYPTION_KEY; rows written by the reference still open here.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENC_PREFIX: Final = "enc:"
MASK: Final = "\u2022" * 4  # "••••"
IV_BYTES: Final = 12
TAG_BYTES: Final = 16
KEY_BYTES: Final = 32  # AES-256
MASK_VISIBLE_CHARS: Final = 4
API_KEY_VISIBLE_CHARS: Final = 2  # router keys (A31): the last two characters are shown
API_KEY_HIDDEN_UP_TO: Final = 8  # ... unless the key has 8 characters or fewer

# Node's base64 alphabet accepts both the standard and the URL-safe symbols in one table.
_B64_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B64_VALUES: Final = {
    **{char: value for value, char in enumerate(_B64_ALPHABET)},
    "+": 62,
    "/": 63,
    "-": 62,
    "_": 63,
}


def node_base64_decode(text: str) -> bytes:
    """Decode like Node's `Buffer.from(text, 'base64')`.

    Invalid characters are skipped, decoding stops at the first `=`, and bits that do not
    fill a whole byte at the end are dropped.
    """
    out = bytearray()
    bits = 0
    nbits = 0
    for char in text:
        if char == "=":
            break
        value = _B64_VALUES.get(char)
        if value is None:
            continue
        bits = (bits << 6) | value
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
    return bytes(out)


def derive_key(key_text: str) -> bytes:
    """The AES key: the base64 value when it is exactly 32 bytes, else SHA-256 of the text."""
    decoded = node_base64_decode(key_text)
    if len(decoded) == KEY_BYTES:
        return decoded
    return hashlib.sha256(key_text.encode("utf-8")).digest()


def seal_with_iv(plaintext: str, key_text: str, iv: bytes) -> str:
    """Encrypt with a given IV; `seal` draws a fresh random one (tests pin it)."""
    sealed = AESGCM(derive_key(key_text)).encrypt(iv, plaintext.encode("utf-8"), None)
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return f"{ENC_PREFIX}{iv.hex()}:{ciphertext.hex()}:{tag.hex()}"


def seal(plaintext: str, key_text: str | None) -> str:
    """The stored form of a secret; without a key it is stored as is (the caller warns)."""
    if key_text is None:
        return plaintext
    return seal_with_iv(plaintext, key_text, os.urandom(IV_BYTES))


def open_secret(stored: str, key_text: str | None) -> str | None:
    """The secret in clear: legacy plaintext as is; None when an `enc:` value cannot open."""
    if not stored.startswith(ENC_PREFIX):
        return stored
    parts = stored.split(":")
    if key_text is None or len(parts) != 4:
        return None
    try:
        iv, ciphertext, tag = (bytes.fromhex(part) for part in parts[1:])
        if len(tag) != TAG_BYTES:
            return None
        plain = AESGCM(derive_key(key_text)).decrypt(iv, ciphertext + tag, None)
    except (ValueError, InvalidTag):
        return None
    return plain.decode("utf-8", errors="replace")  # Node decodes with U+FFFD replacement


def mask_api_key(plain: str | None) -> str:
    """A router's LLM key as AgentIM 631a1ad shows it (head-gap A31): `••••` + the last 2
    characters; just `••••` for keys of 8 characters or fewer, or unreadable ones."""
    if plain is None or len(plain) <= API_KEY_HIDDEN_UP_TO:
        return MASK
    return MASK + plain[-API_KEY_VISIBLE_CHARS:]


def mask_secret(plain: str | None) -> str:
    """`••••` + the last 4 characters; just `••••` for short or unreadable secrets."""
    if plain is None or len(plain) <= MASK_VISIBLE_CHARS:
        return MASK
    return MASK + plain[-MASK_VISIBLE_CHARS:]

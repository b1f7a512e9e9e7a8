"""Upload file types (api.md §11): the MIME → extension table, the magic-byte check, safe names.

Pure. A stored file's name is always one we minted (`<id><ext>` or `avatar_<userId><ext>`);
`is_upload_name` is the only gate between a request path and the upload directory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

# api.md §11.1: the whitelist's MIME types and the extension each is stored under.
MIME_EXTENSIONS: Final[Mapping[str, str]] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/zip": ".zip",
    "application/x-zip-compressed": ".zip",
    "application/gzip": ".gz",
}
AVATAR_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
AVATAR_EXTENSIONS: Final = tuple(sorted({MIME_EXTENSIONS[mime] for mime in AVATAR_TYPES}))
UNTYPED_PART: Final = "text/plain"  # a multipart file part without Content-Type (§11.1)

# api.md §11.3: text types must be NUL-free strict UTF-8; binary types start with a signature.
TEXT_TYPES: Final = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
SIGNATURES: Final[Mapping[str, bytes]] = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/gif": b"GIF8",
    "application/pdf": b"%PDF",
    "application/zip": b"PK\x03\x04",
    "application/x-zip-compressed": b"PK\x03\x04",
    "application/gzip": b"\x1f\x8b",
}
WEBP_CHUNKS: Final = (b"VP8 ", b"VP8L", b"VP8X")
WEBP_MIN_BYTES: Final = 16  # RIFF, size, WEBP, first chunk tag

# api.md §11.4: what GET /uploads/<file> answers with, by extension.
SERVED_TYPES: Final[Mapping[str, str]] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}
FALLBACK_TYPE: Final = "application/octet-stream"  # unknown extensions, `.md` included
INLINE_PREFIXES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")

# Names we mint: a nanoid or `avatar_<userId>` stem, then an optional short extension.
# No `/`, `\`, NUL, leading dot or `..` can pass, so a name never leaves the upload directory.
_UPLOAD_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9]{1,10})?")
_AVATAR_NAME: Final = re.compile(r"avatar_([A-Za-z0-9_-]{1,30})\.[A-Za-z0-9]{1,10}")
MAX_FILENAME_CHARS: Final = 255  # what common file systems allow; longer names are cut
DEFAULT_FILENAME: Final = "file"


def extension_for(mime: str) -> str:
    """The stored extension of an allowed type; "" for a type the operator added (no table row)."""
    return MIME_EXTENSIONS.get(mime, "")


def content_matches(mime: str, data: bytes) -> bool:
    """api.md §11.3: do the bytes fit the declared type? Types we have no rule for pass."""
    if mime in TEXT_TYPES:
        return _is_text(data)
    if mime == "image/webp":
        return _is_webp(data)
    signature = SIGNATURES.get(mime)
    return signature is None or data.startswith(signature)


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _is_webp(data: bytes) -> bool:
    return (
        len(data) >= WEBP_MIN_BYTES
        and data.startswith(b"RIFF")
        and data[8:12] == b"WEBP"
        and data[12:16] in WEBP_CHUNKS
    )


def served_type(name: str) -> str:
    """The Content-Type for a stored file, from its extension (api.md §11.4)."""
    _, dot, ext = name.rpartition(".")
    return SERVED_TYPES.get(f".{ext.lower()}", FALLBACK_TYPE) if dot else FALLBACK_TYPE


def is_inline(content_type: str) -> bool:
    """Images the browser may show in place; everything else is sent as an attachment."""
    return content_type.startswith(INLINE_PREFIXES)


def is_upload_name(name: str) -> bool:
    """A single, plain file name of the shape we mint (the path-traversal gate)."""
    return _UPLOAD_NAME.fullmatch(name) is not None


def avatar_owner(name: str) -> str | None:
    """The user id in `avatar_<userId>.<ext>`, or None for any other name."""
    match = _AVATAR_NAME.fullmatch(name)
    return match.group(1) if match else None


def avatar_name(user_id: str, ext: str) -> str:
    return f"avatar_{user_id}{ext}"


def attachment_name(attachment_id: str, mime: str) -> str:
    return f"{attachment_id}{extension_for(mime)}"


def clean_filename(raw: str) -> str:
    """The client's file name as shown to people: control characters removed, length capped.

    It is stored and displayed, never used as a path: the stored file is named by its id.
    PostgreSQL text cannot hold NUL, and control characters only confuse logs and clients.
    """
    kept = "".join(ch for ch in raw if unicodedata.category(ch) not in ("Cc", "Cs"))
    kept = kept.strip()[:MAX_FILENAME_CHARS]
    return kept or DEFAULT_FILENAME


def js_round_mib(size: int) -> int:
    """`Math.round(size / 1 MiB)`: halves round up, as JavaScript does (Python's round does not)."""
    return (2 * size + 1024 * 1024) // (2 * 1024 * 1024)

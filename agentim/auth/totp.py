"""TOTP second factor (RFC 6238, head-gap A4): secrets, otpauth URIs, codes, backup codes.

Pure given the clock: pyotp computes the codes; the reference's parameters are used (SHA-1,
6 digits, 30-second steps, one step of drift either way). A match names its time step so the
caller can refuse a second use of the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Final

import pyotp

DIGITS: Final = 6
STEP_S: Final = 30
DRIFT_STEPS: Final = 1  # the reference accepts the previous and the next code too
BACKUP_CODE_COUNT: Final = 10
BACKUP_CODE_BYTES: Final = 4  # shown as 8 hex digits, as the reference's
_BACKUP_SHAPE: Final = re.compile(r"[0-9a-f]{8}")


def new_secret() -> str:
    """A random base32 secret of 160 bits (32 characters), the size the reference draws."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app scans (the web client draws it as a QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=username, issuer_name=issuer
    )


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code is `code` (within the drift window), else None.

    Every candidate is compared in constant time and none is skipped, so the answer's timing
    does not depend on which step (if any) matched.
    """
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    step = totp.timecode(int(now))
    found: int | None = None
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        candidate = totp.at(int(now), counter_offset=offset)
        if hmac.compare_digest(candidate.encode(), code.encode()):
            found = step + offset
    return found


def new_backup_codes() -> list[str]:
    """Ten one-time codes of 8 lowercase hex digits."""
    return [secrets.token_hex(BACKUP_CODE_BYTES) for _ in range(BACKUP_CODE_COUNT)]


def backup_code_digest(secret: str, code: str) -> str | None:
    """How a backup code is stored: HMAC-SHA256 keyed with the user's TOTP secret, or None if
    `code` (trimmed, case-insensitive) cannot be a backup code.

    Keyed with the secret, a digest is as hard to reverse as the secret (sealed with
    ENCRYPTION_KEY) is to read, and whoever reads the secret can make codes anyway; unlike a
    password hash it costs microseconds, so ten codes at setup and a login attempt stay cheap.
    """
    cleaned = code.strip().lower()
    if not _BACKUP_SHAPE.fullmatch(cleaned):
        return None
    return hmac.new(secret.encode(), cleaned.encode(), hashlib.sha256).hexdigest()

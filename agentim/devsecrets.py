"""Development secrets (DIFFERENCES D3) and the Web Push VAPID keys: generated once, kept in the
data directory (mode 0600)."""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Final

import attrs
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agentim.settings import Settings

log = logging.getLogger("Server")

SECRETS_FILE: Final = "secrets.json"


def _load_or_create(path: Path) -> tuple[dict[str, str], bool]:
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8")), False
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "JWT_SECRET": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": secrets.token_urlsafe(48),
        "ADMIN_PASSWORD": "Ag" + secrets.token_urlsafe(12) + "7x",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(values, handle)
    return values, True


async def ensure_dev_secrets(settings: Settings) -> Settings:
    """Fill unset JWT_SECRET / ENCRYPTION_KEY / ADMIN_PASSWORD from the data directory."""
    if settings.is_production or (
        settings.jwt_secret and settings.encryption_key and settings.admin_password
    ):
        return settings
    path = settings.data_dir / SECRETS_FILE
    values, created = await trio.to_thread.run_sync(_load_or_create, path)
    filled = attrs.evolve(
        settings,
        jwt_secret=settings.jwt_secret or values["JWT_SECRET"],
        encryption_key=settings.encryption_key or values["ENCRYPTION_KEY"],
        admin_password=settings.admin_password or values["ADMIN_PASSWORD"],
    )
    if created and settings.admin_password is None:
        print(
            f"Generated admin login: {settings.admin_username} / {values['ADMIN_PASSWORD']} "
            f"(kept in {path}; shown only this once)",
            flush=True,
        )
    if created:
        log.info("Generated development secrets in %s", path)
    return filled


# --- Web Push (issue 21 item 7, head-gap A15 / config D4) ---
VAPID_PUBLIC: Final = "VAPID_PUBLIC_KEY"
VAPID_PRIVATE: Final = "VAPID_PRIVATE_KEY"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_keys() -> tuple[str, str]:
    """A P-256 key pair as web-push writes it: (public uncompressed point, private scalar),
    both unpadded base64url."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(public), _b64url(private.private_numbers().private_value.to_bytes(32, "big"))


def vapid_public_of(private_key: str) -> str | None:
    """The public key of a base64url private scalar, or None if it is not one."""
    try:
        raw = _unb64url(private_key)
        if len(raw) != 32:
            return None
        private = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        return None
    return _b64url(
        private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def _load_or_add_vapid(path: Path) -> tuple[str, str, bool]:
    """The key pair kept in the secrets file, added (under a lock, atomically) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several processes sharing a data directory
        values: dict[str, str] = (
            json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        )
        public, private = values.get(VAPID_PUBLIC), values.get(VAPID_PRIVATE)
        if public and private and vapid_public_of(private) == public:
            return public, private, False
        public, private = new_vapid_keys()
        values.update({VAPID_PUBLIC: public, VAPID_PRIVATE: private})
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle)
        os.replace(temporary, path)
        return public, private, True


async def ensure_vapid_keys(settings: Settings) -> Settings:
    """VAPID keys for Web Push: VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY when both are set (the
    environment wins), else the pair kept in the data directory's secrets file, generated on
    first start. Without usable keys Web Push is off (the routes answer 404)."""
    if settings.vapid_public_key or settings.vapid_private_key:
        private = settings.vapid_private_key or ""
        if settings.vapid_public_key and vapid_public_of(private) == settings.vapid_public_key:
            return settings
        log.error(
            "VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY must both be set and form one P-256 key "
            "pair (base64url); Web Push is disabled"
        )
        return attrs.evolve(settings, vapid_public_key=None, vapid_private_key=None)
    path = settings.data_dir / SECRETS_FILE
    try:
        public, private, created = await trio.to_thread.run_sync(_load_or_add_vapid, path)
    except (OSError, ValueError) as exc:
        log.warning("Web Push is disabled: cannot keep VAPID keys in %s: %s", path, exc)
        return settings
    if created:
        log.info("Generated VAPID keys for Web Push in %s", path)
    return attrs.evolve(settings, vapid_public_key=public, vapid_private_key=private)

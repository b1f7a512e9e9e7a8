"""Development secrets (DECISIONS D3): generated once, kept in the data directory (mode 0600)."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Final

import attrs
import trio

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

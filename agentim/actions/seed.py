"""Admin seeding at start-up (api.md §4.11): create or update ADMIN_USERNAME."""

from __future__ import annotations

import logging

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.settings import is_strong_password
from agentim.store import users
from agentim.store.db import UNIQUE_VIOLATION, DbError, Row, StartupError

log = logging.getLogger("Server")


async def seed_admin(services: Services) -> None:
    settings = services.settings
    password = settings.admin_password
    if not password:
        log.warning("ADMIN_PASSWORD is empty: no admin user is seeded")
        return
    if not is_strong_password(password):
        if settings.is_production:
            raise StartupError("Error: ADMIN_PASSWORD does not meet complexity requirements")
        log.warning("ADMIN_PASSWORD is weak (needs 8+ characters with lower, upper and digit)")
    existing = await users.get_user_by_username(services.db, settings.admin_username)
    if existing is None:
        await _create(services, settings.admin_username, password)
    else:
        await _refresh(services, existing, password)


async def _create(services: Services, username: str, password: str) -> None:
    digest = await services.passwords.hash(password)
    try:
        await users.insert_user(
            services.db,
            user_id=new_id(),
            username=username,
            password_hash=digest,
            display_name=username,
            role="admin",
            now=iso_now(),
        )
        log.info("Seeded admin user %s", username)
    except DbError as exc:
        if exc.sqlstate != UNIQUE_VIOLATION:  # another instance won the race
            raise


async def _refresh(services: Services, row: Row, password: str) -> None:
    stored = row["password_hash"]  # None for a user created by an OAuth sign-in
    same_password = stored is not None and await services.passwords.verify(password, stored)
    if same_password and row["role"] == "admin":
        return
    digest = row["password_hash"] if same_password else await services.passwords.hash(password)
    await users.update_admin_seed(
        services.db, row["id"], password_hash=digest, role="admin", now=iso_now()
    )
    log.info("Updated admin user %s", row["username"])

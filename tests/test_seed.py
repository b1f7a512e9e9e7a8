"""Admin seeding at start-up (api.md §4.11)."""

from __future__ import annotations

import attrs
import trio

from agentim.settings import Settings
from tests.conftest import ADMIN_PASSWORD, start_hub
from tests.helpers import RunningHub


async def _admin(hub: RunningHub) -> dict:  # type: ignore[type-arg]
    row = await hub.services.db.fetchrow("SELECT * FROM users WHERE username = 'admin'")
    assert row is not None
    return dict(row)


async def test_admin_is_seeded_with_a_bcrypt_hash(hub: RunningHub) -> None:
    admin = await _admin(hub)
    assert admin["role"] == "admin"
    assert admin["password_hash"].startswith("$2b$")
    assert await hub.services.passwords.verify(ADMIN_PASSWORD, admin["password_hash"])


async def test_a_changed_password_and_a_lost_role_are_restored_on_start(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    first = await start_hub(nursery, settings, redis_prefix)
    await first.services.db.execute("UPDATE users SET role = 'user' WHERE username = 'admin'")
    first.shutdown.set()
    second = await start_hub(
        nursery, attrs.evolve(settings, admin_password="N3wAdminPass"), redis_prefix
    )
    admin = await _admin(second)
    assert admin["role"] == "admin"
    assert await second.services.passwords.verify("N3wAdminPass", admin["password_hash"])
    second.shutdown.set()
    third = await start_hub(nursery, settings, redis_prefix)  # restore for the rest of the run
    assert await third.services.passwords.verify(
        ADMIN_PASSWORD, (await _admin(third))["password_hash"]
    )

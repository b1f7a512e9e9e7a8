"""The offline-gateway sweeper of jobs.py (head-gap config row D5) on real PostgreSQL, Redis and
sockets: one pass at a time and as the hub's scheduled task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import trio

from agentim.jobs import cleanup_gateways_once
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import to_iso
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import signed_in

TIMEOUT_S = 20


def days_ago(days: float) -> str:
    return to_iso(datetime.now(UTC) - timedelta(days=days))


async def insert_gateway(hub: RunningHub, owner: User, *, disconnected_at: str | None) -> str:
    """A gateway row with one agent; returns the gateway id."""
    gateway_id, now = f"gw-{new_id(8)}", days_ago(60)
    db = hub.services.db
    await db.execute(
        "INSERT INTO gateways (id, user_id, name, connected_at, disconnected_at, created_at) "
        "VALUES ($1, $2, 'box', $3, $4, $3)",
        gateway_id, owner.id, now, disconnected_at,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO agents (id, name, type, gateway_id, created_at, updated_at) "
        "VALUES ($1, $2, 'generic', $3, $4, $4)",
        f"agent-of-{gateway_id}", agent_name(), gateway_id, now,
    )  # fmt: skip
    return gateway_id


async def gateway_ids(hub: RunningHub, owner: User) -> set[str]:
    rows = await hub.services.db.fetch("SELECT id FROM gateways WHERE user_id = $1", owner.id)
    return {row["id"] for row in rows}


async def test_a_pass_deletes_gateways_offline_too_long(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    old = await insert_gateway(hub, owner, disconnected_at=days_ago(31))
    recent = await insert_gateway(hub, owner, disconnected_at=days_ago(29))
    never = await insert_gateway(hub, owner, disconnected_at=None)
    await add_agent_to_room(hub, room_id, f"agent-of-{old}")
    async with signed_in_gateway(hub, owner) as live, signed_in(hub, owner) as watcher:
        # a stale row of a gateway that is connected right now (an old socket's late close)
        await hub.services.db.execute(
            "UPDATE gateways SET disconnected_at = $2 WHERE id = $1", live.gateway_id, days_ago(40)
        )
        await watcher.join(room_id)
        with trio.fail_after(TIMEOUT_S):
            assert await cleanup_gateways_once(hub.services) == 1
            update = await watcher.receive_type("server:room_update")
        assert [m["memberId"] for m in update["members"]] == [owner.id]
    assert await gateway_ids(hub, owner) == {recent, never, live.gateway_id}
    db = hub.services.db
    assert await db.fetchval("SELECT count(*) FROM agents WHERE gateway_id = $1", old) == 0
    assert await db.fetchval(
        "SELECT count(*) FROM room_members WHERE member_id = $1", f"agent-of-{old}"
    ) == 0  # fmt: skip
    tombstoned = "SELECT count(*) FROM deleted_agents WHERE agent_id = $1"
    assert await db.fetchval(tombstoned, f"agent-of-{old}") == 0  # it may come back


async def test_the_scheduled_gateway_cleanup_uses_the_configured_age(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(
        nursery,
        attrs.evolve(settings, gateway_cleanup_interval_s=0.2, gateway_max_offline_days=2),
        redis_prefix,
    )
    owner = await signed_in_user(hub)
    kept = await insert_gateway(hub, owner, disconnected_at=days_ago(1))
    await insert_gateway(hub, owner, disconnected_at=days_ago(3))
    with trio.fail_after(TIMEOUT_S):
        while await gateway_ids(hub, owner) != {kept}:  # noqa: ASYNC110 (the sweeper's effect)
            await trio.sleep(0.05)

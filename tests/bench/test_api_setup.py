"""bench --api-admin: the run's users, room and agent members are made through the public REST
API (so any AgentIM-compatible server can be measured) and removed after the run."""

from __future__ import annotations

from bench.api_setup import add_agents_via_api, api_cast
from tests.conftest import ADMIN_PASSWORD
from tests.gateway_helpers import agent_name, signed_in_gateway
from tests.helpers import RunningHub, User
from tests.ws.wsclient import signed_in


async def test_the_cast_is_made_and_removed_through_the_api(hub: RunningHub) -> None:
    admin = ("admin", ADMIN_PASSWORD)
    async with api_cast(hub.url, admin, users=3) as cast:
        rows = await hub.services.db.fetch(
            "SELECT member_id, role FROM room_members WHERE room_id = $1 ORDER BY role",
            cast.room_id,
        )
        assert sorted(r["member_id"] for r in rows) == sorted(cast.user_ids)
        assert [r["role"] for r in rows].count("owner") == 1
        owner = User(cast.user_ids[0], "", "", token=cast.tokens[0])
        async with signed_in(hub, owner) as client:  # the minted token is a working session
            await client.join(cast.room_id)
        agent_id = f"agent-{agent_name()}"
        async with signed_in_gateway(hub, owner) as gateway:
            await gateway.register(agent_id, agent_name())
            await add_agents_via_api(hub.url, cast, [agent_id])
        assert await hub.services.db.fetchval(
            "SELECT member_type FROM room_members WHERE room_id = $1 AND member_id = $2",
            cast.room_id, agent_id,
        ) == "agent"  # fmt: skip
    left = await hub.services.db.fetchval(
        "SELECT count(*) FROM users WHERE id = ANY($1::text[])", cast.user_ids
    )
    assert left == 0
    assert await hub.services.db.fetchval(
        "SELECT count(*) FROM rooms WHERE id = $1", cast.room_id
    ) == 0  # fmt: skip

"""The agent rate limit saved on the admin settings page holds at once (A1, config row D12)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from agentim.protocol.ids import new_id
from tests.gateway.test_routing import complete, deliveries, routing_scene, wait_logged
from tests.helpers import RunningHub, signed_in_user


@pytest.fixture
async def hub(hub: RunningHub) -> AsyncIterator[RunningHub]:
    """The test database is shared by the run: no saved setting outlives its test."""
    await hub.services.db.execute("DELETE FROM settings")
    yield hub
    await hub.services.db.execute("DELETE FROM settings")


async def test_a_saved_agent_rate_limit_trips_without_a_restart(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="Routing")
    admin = await signed_in_user(hub, role="admin")
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
            saved = await http.put("/api/admin/settings", headers=admin.headers,
                                   json={"changes": {"rateLimit.agent.max": "2"}})  # fmt: skip
        assert saved.status_code == 200, saved.text
        cid = new_id()  # one chain: its hops are handled in order, so the third one trips
        replies = [
            await complete(s, a, f"@{b.name} part {i}", conversationId=cid) for i in range(3)
        ]
        routed = await deliveries(s.gateway, 2)
        assert [d["messageId"] for d in routed] == [r["id"] for r in replies[:2]]
        await wait_logged(caplog, f"Agent {a.id} rate limited, message saved but not routed")
        await s.gateway.nothing(0.3)

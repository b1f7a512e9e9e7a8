"""D16 for routing: with Redis unreachable, agent chains go on within the process, with loop
detection and the agent rate limit kept in process memory (realtime.md §3.8)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import attrs
import pytest
import trio

from agentim.protocol.ids import new_id
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.e2e.test_redis_outage import CuttableProxy
from tests.gateway.test_routing import (
    complete,
    deliveries,
    routing_scene,
    set_room_router,
    wait_logged,
)


async def test_chains_are_checked_in_process_memory_while_redis_is_down(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_url: str, redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="GatewayHandler")
    parts = urlsplit(redis_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    await nursery.start(proxy.run)
    proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    hub = await start_hub(nursery, attrs.evolve(settings, redis_url=proxied), redis_prefix)
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        await set_room_router(s, rateLimitMax=2)
        proxy.cut()
        with trio.fail_after(60):
            cid = new_id()
            await complete(s, a, f"@{b.name} go", conversationId=cid)
            [to_b] = await deliveries(s.gateway, 1)
            assert (to_b["agentId"], to_b["depth"]) == (b.id, 1)
            await complete(s, b, f"@{a.name} back", conversationId=cid, depth=1)
            await wait_logged(
                caplog, f"Agent {a.id} already visited in conversation {cid}, skipping"
            )
            other = new_id()
            await complete(s, a, f"@{b.name} once more", conversationId=other)  # A's 2nd reply
            [again] = await deliveries(s.gateway, 1)
            assert again["conversationId"] == other
            await complete(s, a, f"@{b.name} and again", conversationId=other)  # A's 3rd
            await wait_logged(caplog, f"Agent {a.id} rate limited, message saved but not routed")
            await s.gateway.nothing(0.3)
    assert "Redis unavailable for loop detection, using per-process visited sets" in caplog.text
    assert "Redis unavailable for agent rate limiting, counting per process" in caplog.text
    assert caplog.text.count("Redis unavailable for loop detection") == 1  # once per outage
    proxy.down = False

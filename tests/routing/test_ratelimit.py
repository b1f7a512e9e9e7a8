"""routing/ratelimit: the one windowed limiter behind the HTTP, WebSocket and agent limits."""

from __future__ import annotations

import logging

import pytest
import trio

from agentim.routing.ratelimit import RateLimiter, WindowCounters
from agentim.store.kv import Kv, client_for
from tests.helpers import RunningHub


def test_outage_counters_keep_their_bound() -> None:
    counters = WindowCounters(max_keys=3)
    for n in range(10):
        assert counters.hit(f"k{n}", 60) == 1
        assert len(counters) <= 3
    assert counters.hit("k9", 60, hits=2) == 3  # the newest window survived the evictions


async def test_outage_counts_per_key_and_warns_once_per_limit(
    bridge: None, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Kv(client_for("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    limiter = RateLimiter(dead, enabled=False)
    with trio.fail_after(20), caplog.at_level(logging.WARNING, logger="RateLimit"):
        users = [await limiter.count("ws:rate:u1", 60, hits=2, what="WS rate") for _ in range(3)]
        agent = await limiter.count("ws:agent_rate:a1", 60, what="agent rate")
    assert [(c.count, c.from_redis) for c in users] == [(2, False), (4, False), (6, False)]
    assert (agent.count, agent.ttl_s) == (1, None)
    warnings = [r.getMessage() for r in caplog.records if r.name == "RateLimit"]
    assert [w.split(",")[0] for w in warnings] == [
        "Redis unavailable for WS rate",
        "Redis unavailable for agent rate",
    ]


async def test_counts_in_redis_with_the_window_ttl(hub: RunningHub) -> None:
    limiter = hub.services.limiter
    with trio.fail_after(20):
        first = await limiter.count("ws:rate:t1", 30, what="test")
        second = await limiter.count("ws:rate:t1", 30, hits=3, what="test")
    assert (first.count, second.count) == (1, 4)
    assert second.from_redis and 0 < (second.ttl_s or 0) <= 30
    assert 0 < await hub.services.kv.ttl("ws:rate:t1") <= 30

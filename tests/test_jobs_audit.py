"""Audit retention (head-gap config row D6): rows older than AUDIT_LOG_RETENTION_DAYS are
purged by a pass, one pass at a time and as the hub's scheduled task."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import attrs
import pytest
import trio

from agentim.jobs import cleanup_audit_once
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import to_iso
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub


def ago(**delta: float) -> str:
    return to_iso(datetime.now(UTC) - timedelta(**delta))


async def insert_audit(hub: RunningHub, created_at: str) -> str:
    audit_id = new_id()
    await hub.services.db.execute(
        "INSERT INTO audit_log (id, action, created_at) VALUES ($1, 'login', $2)",
        audit_id, created_at,
    )  # fmt: skip
    return audit_id


async def remaining(hub: RunningHub, ids: list[str]) -> list[str]:
    rows = await hub.services.db.fetch("SELECT id FROM audit_log WHERE id = ANY($1)", ids)
    return sorted(row["id"] for row in rows)


async def test_a_pass_purges_only_rows_past_retention(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    old = [await insert_audit(hub, ago(days=91)), await insert_audit(hub, ago(days=400))]
    young = [await insert_audit(hub, ago(days=89)), await insert_audit(hub, ago(seconds=1))]
    with caplog.at_level(logging.INFO, logger="Jobs"):
        assert await cleanup_audit_once(hub.services) >= 2
    assert await remaining(hub, old + young) == sorted(young)
    assert "Purged" in caplog.text and "audit log entries older than 90 days" in caplog.text


async def test_the_retention_is_configurable(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, audit_log_retention_days=2), redis_prefix)
    three_days = await insert_audit(hub, ago(days=3))
    one_day = await insert_audit(hub, ago(days=1))
    await cleanup_audit_once(hub.services)
    assert await remaining(hub, [three_days, one_day]) == [one_day]


async def test_the_sweeper_runs_on_its_interval(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    quick = attrs.evolve(settings, audit_log_cleanup_interval_s=0.2)
    hub = await start_hub(nursery, quick, redis_prefix)
    old = await insert_audit(hub, ago(days=100))
    with trio.fail_after(10):
        while await remaining(hub, [old]):  # noqa: ASYNC110
            await trio.sleep(0.05)  # a database row: polling is the only way to watch it

"""Sweepers started in the hub's nursery: orphan uploads (api.md §11.5), expired refresh tokens
and revocations, gateways offline for too long (head-gap config row D5), dead hub processes
(actions/reclaim.py), audit rows past their retention (config row D6).

Error policy (all): a failed pass is logged and the next one runs on schedule; only
cancellation ends a sweeper. Several hub processes may sweep at once: rows are claimed with
`FOR UPDATE SKIP LOCKED`, so each orphan is handled by one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import trio

from agentim.actions.agents import remove_offline_gateways
from agentim.actions.reclaim import reclaim_dead_processes
from agentim.actions.uploads import remove_upload_file
from agentim.protocol.timefmt import iso_now, to_iso
from agentim.services import Services
from agentim.store import audit, refresh_tokens, revocations, uploads
from agentim.store.kv import KvUnavailable

log = logging.getLogger("Jobs")
gateway_log = logging.getLogger("GatewayCleanup")

ORPHAN_AGE: Final = timedelta(hours=1)  # api.md §16.1: fixed, not configurable
ORPHAN_FIRST_RUN_S: Final = 10.0  # api.md §11.5: first pass 10 s after start-up
ORPHAN_BATCH: Final = 1000  # rows per pass; the rest wait for the next pass
GATEWAY_FIRST_RUN_S: Final = 30.0  # AgentIM's first offline-gateway pass: 30 s after start-up
GATEWAY_BATCH: Final = 500  # gateways per pass (one transaction); the rest wait for the next
AUDIT_BATCH: Final = 5000  # audit rows per statement; a pass runs statements until none is left
AUDIT_FIRST_RUN_S: Final = 60.0  # the first retention pass a minute after start-up


async def cleanup_orphans_once(services: Services) -> int:
    """Remove unlinked uploads older than an hour: the file first, then its row.

    Returns:
        How many orphans were removed. A file that cannot be deleted (other than already
        missing) keeps its row for the next pass.
    """
    older_than = to_iso(datetime.now(UTC) - ORPHAN_AGE)
    removed = 0
    for row in await uploads.list_orphans(services.db, older_than=older_than, limit=ORPHAN_BATCH):
        removed += await _remove_orphan(services, row["id"])
    if removed:
        log.info("Removed %d orphan upload(s)", removed)
    return removed


async def _remove_orphan(services: Services, attachment_id: str) -> bool:
    async with services.db.transaction() as tx:
        url = await uploads.lock_orphan(tx, attachment_id)
        if url is None:  # linked meanwhile, or another process has it
            return False
        if not await remove_upload_file(services.blobs, url):
            return False
        await uploads.delete_attachment(tx, attachment_id)
    return True


async def cleanup_tokens_once(services: Services) -> int:
    """Delete refresh tokens past `expires_at`, and revocations every token of which has
    expired; how many rows were deleted."""
    deleted = await refresh_tokens.delete_expired_refresh_tokens(services.db, iso_now())
    if deleted:
        log.info("Removed %d expired refresh token(s)", deleted)
    revoked = await revocations.delete_expired(services.db)
    if revoked:
        log.info("Removed %d expired token revocation(s)", revoked)
    return deleted + revoked


async def cleanup_gateways_once(services: Services) -> int:
    """Delete gateways offline for more than GATEWAY_MAX_OFFLINE_DAYS; how many were deleted."""
    days = services.live.current.gateway_max_offline_days
    cutoff = to_iso(datetime.now(UTC) - timedelta(days=days))
    removed, agents = await remove_offline_gateways(services, cutoff=cutoff, limit=GATEWAY_BATCH)
    if removed:
        gateway_log.info("Cleaned up %d zombie gateway(s) and %d agent(s)", removed, agents)
    return removed


async def cleanup_audit_once(services: Services) -> int:
    """Delete audit rows older than AUDIT_LOG_RETENTION_DAYS (config D6); how many."""
    days = services.live.current.audit_log_retention_days
    cutoff = to_iso(datetime.now(UTC) - timedelta(days=days))
    removed = 0
    while (batch := await audit.delete_older_than(services.db, cutoff, limit=AUDIT_BATCH)) > 0:
        removed += batch
        if batch < AUDIT_BATCH:
            break
    if removed:
        log.info("Purged %d audit log entries older than %d days", removed, days)
    return removed


async def run_audit_cleanup(
    services: Services, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """First pass a minute after start (sooner if the interval is shorter), then every
    AUDIT_LOG_CLEANUP_INTERVAL."""
    interval = services.live.current.audit_log_cleanup_interval_s
    task_status.started()
    await trio.sleep(min(AUDIT_FIRST_RUN_S, interval))
    while True:
        await _run_pass("audit log cleanup", cleanup_audit_once, services)
        await trio.sleep(interval)


async def run_orphan_cleanup(
    services: Services, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """First pass 10 s after start (sooner if the interval is shorter), then every interval."""
    live = services.live  # the interval is read for each wait: an admin change applies next
    task_status.started()
    await trio.sleep(min(ORPHAN_FIRST_RUN_S, live.current.orphan_file_check_interval_s))
    while True:
        await _run_pass("orphan file cleanup", cleanup_orphans_once, services)
        await trio.sleep(live.current.orphan_file_check_interval_s)


async def run_token_cleanup(
    services: Services, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """A pass every TOKEN_CLEANUP_INTERVAL, the first one interval after start (setInterval)."""
    live = services.live
    task_status.started()
    while True:
        await trio.sleep(live.current.token_cleanup_interval_s)
        await _run_pass("refresh token cleanup", cleanup_tokens_once, services)


async def run_reclaimer(
    services: Services, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """A sweep for dead hub processes at start and every HUB_RECLAIM_INTERVAL_MS (reclaim.py)."""
    interval = services.settings.hub_reclaim_interval_s
    task_status.started()
    while True:
        await _run_pass("reclaim of dead hub processes", reclaim_dead_processes, services)
        await trio.sleep(interval)


async def run_gateway_cleanup(
    services: Services, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """First pass 30 s after start (sooner if the interval is shorter), then every
    GATEWAY_CLEANUP_INTERVAL."""
    live = services.live
    task_status.started()
    await trio.sleep(min(GATEWAY_FIRST_RUN_S, live.current.gateway_cleanup_interval_s))
    while True:
        await _run_pass("offline gateway cleanup", cleanup_gateways_once, services)
        await trio.sleep(live.current.gateway_cleanup_interval_s)


async def _run_pass(
    name: str, sweep: Callable[[Services], Awaitable[int]], services: Services
) -> None:
    try:
        await sweep(services)
    except KvUnavailable as exc:  # an outage is not a bug: no traceback (D16)
        log.warning("Scheduled %s skipped, Redis unavailable: %s", name, exc)
    except Exception:  # the policy above: log, keep the schedule
        log.exception("Scheduled %s failed", name)

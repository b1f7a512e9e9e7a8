"""What a dead hub process owned is reclaimed by a live one (issue 15, DIFFERENCES D14, D15).

Each process renews its liveness key every third of `hub_liveness_ttl_s` and, every
`hub_reclaim_interval_s`, looks for registered processes whose key has lapsed. One survivor per
dead process (a Redis lease, store/processes.py) sets its agents offline, its gateway rows
disconnected and its users offline where no live process has them, with the usual
`server:agent_status` and `server:presence` events. So a crash is cleaned up at most
`hub_liveness_ttl_s + hub_reclaim_interval_s` (40 s by default) after the last heartbeat.

A process that was only stalled (or whose Redis lost its data) notices at its next beat and
puts its bindings and presence back.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from agentim.actions import presence
from agentim.actions.agents import agents_changed, mark_offline, set_agent_status
from agentim.actions.gateways import rebind_gateways
from agentim.protocol.timefmt import iso_now
from agentim.routing.hub import CLIENT
from agentim.services import Services
from agentim.store import agents as agent_rows, gateways
from agentim.store.kv import KvUnavailable, PresenceKv
from agentim.store.processes import Beat, Claimed, ProcessKv

log = logging.getLogger("Reclaim")

# A survivor's claim on one dead process; past it (the survivor died or its database calls
# failed) the next sweep anywhere claims again.
LEASE_MS: Final = 30_000
BEATS_PER_TTL: Final = 3  # a process survives two lost heartbeats in a row


# the heartbeat ------------------------------------------------------------------------------
async def run_heartbeat(
    services: Services, *, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED
) -> None:
    """Beat once, report a scope that stops the beating, then beat every third of the TTL.

    Error policy: a beat Redis cannot take is skipped (the next one retries); a failed reassert
    is logged and tried again at the next beat that needs it.
    """
    settings = services.settings
    interval = settings.hub_liveness_ttl_s / BEATS_PER_TTL
    with trio.CancelScope() as scope:
        await _beat(services, first=True)
        task_status.started(scope)
        while True:
            await trio.sleep(interval)
            await _beat(services, first=False)


async def _beat(services: Services, *, first: bool) -> None:
    ttl_ms = int(services.settings.hub_liveness_ttl_s * 1000)
    try:
        beat = await ProcessKv(services.kv).beat(services.hub.process_id, ttl_ms)
    except KvUnavailable:
        return  # the outage is logged by whoever needs Redis for real work
    if beat is Beat.REGISTERED or (first and beat is Beat.NEW):
        return
    if beat is Beat.RECLAIMED:
        log.warning("This hub process was taken for dead (no heartbeat for %.0f s) and "
                    "reclaimed; putting back its agents and presence",
                    services.settings.hub_liveness_ttl_s)  # fmt: skip
    else:
        log.info("Hub process registration lost (Redis restarted?); putting back its bindings")
    try:
        await _reassert(services, announce=beat is Beat.RECLAIMED)
    except Exception:  # the policy above
        log.exception("Failed to put back this process's bindings and presence")


async def _reassert(services: Services, *, announce: bool) -> None:
    """Bindings and presence of this process's sockets, again; with `announce`, the agents and
    users a survivor set offline come back online (events included)."""
    hub = services.hub
    agent_ids = sorted(hub.agents)
    bindings = gateways.GatewayKv(services.kv)
    for agent_id in agent_ids:
        await bindings.bind(agent_id, hub.process_id)
    await rebind_gateways(services)
    users = {s.user_id: s.username for s in hub.sessions.values() if s.kind == CLIENT}
    joins = PresenceKv(services.kv)
    for user_id, username in sorted(users.items()):
        others = await joins.join(user_id, username, hub.process_id)
        if announce and others == 0:
            await presence.announce(services, user_id, username, online=True)
    if announce:
        for agent_id in await agent_rows.offline_among(services.db, agent_ids):
            await set_agent_status(services, agent_id, "online")


async def stop_beating(services: Services) -> None:
    """At a clean exit (after the heartbeat stopped): dead at once, so a survivor reclaims what
    is left (presence, gateway rows) at its next sweep instead of after the TTL."""
    with trio.move_on_after(2.0):
        try:
            await ProcessKv(services.kv).stop_beating(services.hub.process_id)
        except KvUnavailable as exc:
            log.warning("Redis unavailable at shutdown, this process's liveness lapses by "
                        "itself: %s", exc)  # fmt: skip


# the sweep ----------------------------------------------------------------------------------
async def reclaim_dead_processes(services: Services) -> int:
    """One sweep: reclaim every registered process whose liveness lapsed and that no other
    survivor is reclaiming; returns how many this process reclaimed.

    Raises:
        KvUnavailable, DbError: the sweep stops; a claimed process is retried once its lease
            expires.
    """
    processes = ProcessKv(services.kv)
    me = services.hub.process_id
    reclaimed = 0
    for process_id in sorted(await processes.registered() - {me}):
        claimed = await processes.claim(process_id, me, LEASE_MS)
        if claimed is None:
            continue  # alive, or another survivor has it
        offline_users = await _release(services, claimed)
        await processes.finish(process_id, me)
        log.warning("Reclaimed dead hub process %s: %d agent(s) offline, %d gateway(s) "
                    "disconnected, %d user(s) offline", process_id, len(claimed.agent_ids),
                    len(claimed.gateway_ids), offline_users)  # fmt: skip
        reclaimed += 1
    return reclaimed


async def _release(services: Services, claimed: Claimed) -> int:
    """Agents offline, gateway rows disconnected (their owners' clients get
    `server:agents_changed`), users offline where nobody else has them; returns how many users
    went offline."""
    await mark_offline(services, claimed.agent_ids)
    now = iso_now()
    owners = set()
    for gateway_id in claimed.gateway_ids:
        await gateways.mark_disconnected(services.db, gateway_id, now)
        row = await gateways.get_gateway(services.db, gateway_id)
        if row is not None:
            owners.add(row["user_id"])
    for owner_id in sorted(owners):  # their gateway lists changed (B9)
        await agents_changed(services, owner_id)
    leaves = PresenceKv(services.kv)
    offline = 0
    for user_id, username in sorted(claimed.users.items()):
        if await leaves.leave(user_id, claimed.process_id) == 0:
            await presence.announce(services, user_id, username, online=False)
            offline += 1
    return offline

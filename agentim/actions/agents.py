"""Agent and gateway writes: gateway sign-in, agent lifecycle, streamed replies, REST changes.

realtime.md §1.2.3, §4, §5, §7.6; api.md §9; DIFFERENCES D5, D12-D14. Each writes, commits, then
publishes; deliveries to a gateway are AGENT events, so they reach it on whichever process
holds it (D15).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import trio

from agentim.actions import gateways as live_gateways
from agentim.actions.push import notify_message
from agentim.actions.room_context import room_change_events, room_context_events
from agentim.errors import forbidden, not_found
from agentim.protocol import gateway as proto
from agentim.protocol.envelope import dumps
from agentim.protocol.events import Event, Target, control_event, frame_event
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.routing.hub import LiveSession
from agentim.routing.streams import Stream
from agentim.services import Services
from agentim.store import agents as store, gateways
from agentim.store.db import FOREIGN_KEY_VIOLATION, Conn, DbError, Row
from agentim.store.kv import KvUnavailable
from agentim.store.processes import ProcessKv

log = logging.getLogger("GatewayHandler")

MAX_CHUNKS_JSON_CHARS: Final = 20_971_520  # realtime.md §1.4: larger chunk lists are not stored
UNKNOWN_AGENT: Final = "Unknown Agent"
INTERRUPTED: Final = "Stream interrupted: gateway disconnected"
SHUTDOWN_INTERRUPTED: Final = "Stream interrupted: server shutting down"
IDLE_ENDED: Final = "Stream interrupted: no chunk for too long"
SHUTDOWN_STEP_S: Final = 5.0  # marking this process's agents offline at shutdown
AGENT_BOUND: Final = "agent_bound"  # hub control actions (see ws/gateway_session.py)
AGENT_REMOVED: Final = "agent_removed"


class Registration(enum.Enum):
    REGISTERED = "registered"
    DELETED = "deleted"  # a tombstone exists (D13)
    FOREIGN = "foreign"  # the id belongs to another user's agent
    NO_GATEWAY = "no_gateway"  # the socket's gateway was deleted (DELETE or the sweep) meanwhile


# gateways ------------------------------------------------------------------------------------
async def connect_gateway(
    services: Services, *, user_id: str, gateway_id: str, device: proto.DeviceInfo,
    ephemeral: bool = False,
) -> bool:  # fmt: skip
    """Upsert the gateway row on authentication; False when the id is another user's."""
    problem = await gateways.upsert_gateway(
        services.db, gateway_id=gateway_id, user_id=user_id, hostname=device.hostname,
        platform=device.platform, arch=device.arch, node_version=device.node_version,
        agentim_version=device.agentim_version, ephemeral=ephemeral, now=iso_now(),
    )  # fmt: skip
    return problem is None


async def gateway_authenticated(
    services: Services, *, user_id: str, gateway_id: str, session: LiveSession
) -> None:
    """The socket is now this gateway: record it as connected (here and in Redis, for the
    gateway list and relays of any process) and tell the owner's clients (B9)."""
    await live_gateways.gateway_connected(services, session, gateway_id)
    await agents_changed(services, user_id)


async def agents_changed(services: Services, user_id: str) -> None:
    """`server:agents_changed` to every client socket of the user, on every process (B9)."""
    await services.events.publish(frame_event(Target.USER, user_id, proto.agents_changed()))


async def gateway_closed(
    services: Services, *, user_id: str, gateway_id: str, session: LiveSession,
    agent_ids: Sequence[str], streams: Sequence[Stream], names: dict[str, str],
    reason: str = INTERRUPTED,
) -> None:  # fmt: skip
    """A gateway socket closed (realtime.md §5.4, §4.3 as we fix it).

    First it stops being the gateway (unless a newer socket holds the id), so relays to it fail
    at once. Its open streams are persisted as far as they got and completed for clients with
    an error marker (`reason`); then its agents go offline; then the gateway row records the
    disconnect, and the owner's clients hear that their agents changed.
    """
    await live_gateways.gateway_disconnected(services, session, gateway_id)
    for stream in streams:
        await interrupt_stream(services, stream, names.get(stream.agent_id, UNKNOWN_AGENT),
                               reason=reason)  # fmt: skip
    await agents_offline(services, agent_ids)
    try:
        await gateways.mark_disconnected(services.db, gateway_id, iso_now())
    except Exception as exc:
        log.error("Failed to mark gateway %s disconnected: %s", gateway_id, exc)
    await agents_changed(services, user_id)


# agent lifecycle -----------------------------------------------------------------------------
async def register_agent(
    services: Services, *, user_id: str, gateway_id: str, session_id: str,
    agent: proto.AgentInfo, bind: Callable[[], None],
) -> Registration:  # fmt: skip
    """realtime.md §5.1 with D13: tombstone → ownership → upsert → bind → status → contexts.

    Args:
        bind: binds the agent to the calling socket in this process (after commit, before
            anything is published, so the room contexts find it).
    """
    if await store.is_deleted(services.db, agent.id):
        log.info("Rejecting re-registration of deleted agent %s, notifying gateway", agent.id)
        return Registration.DELETED
    try:
        async with services.db.transaction() as tx:
            owner = await store.get_owner(tx, agent.id)
            if owner is not None and owner != user_id:
                log.warning("Gateway %s attempted to register agent %s owned by another user",
                            gateway_id, agent.id)  # fmt: skip
                return Registration.FOREIGN
            row = await _upsert(tx, gateway_id, agent)
            room_ids = await store.list_agent_room_ids(tx, agent.id)
            contexts = [await _context_for(tx, room_id, agent.id) for room_id in room_ids]
    except DbError as exc:
        if exc.sqlstate != FOREIGN_KEY_VIOLATION:
            raise
        log.warning("Gateway %s was deleted; agent %s not registered until it reconnects",
                    gateway_id, agent.id)  # fmt: skip
        return Registration.NO_GATEWAY
    bind()
    await _bind_in_redis(services, agent.id)
    bound = control_event(AGENT_BOUND, agent.id, sessionId=session_id)
    await services.events.publish(bound)  # another socket that held the agent lets go
    await services.events.publish_all(_status_events(row, room_ids))
    await agents_changed(services, user_id)
    await services.events.publish_all([e for e in contexts if e is not None])
    return Registration.REGISTERED


async def _upsert(tx: Conn, gateway_id: str, agent: proto.AgentInfo) -> Row:
    await store.offline_same_name(tx, gateway_id=gateway_id, name=agent.name, agent_id=agent.id)
    return await store.upsert_agent(
        tx, agent_id=agent.id, name=agent.name, agent_type=agent.type, gateway_id=gateway_id,
        working_directory=agent.working_directory, capabilities=agent.capabilities,
        slash_commands=agent.slash_commands, mcp_servers=agent.mcp_servers, model=agent.model,
        now=iso_now(),
    )  # fmt: skip


async def _context_for(conn: Conn, room_id: str, agent_id: str) -> Event | None:
    events = await room_context_events(conn, room_id)
    return next((e for e in events if e.target_id == agent_id), None)


async def _bind_in_redis(services: Services, agent_id: str) -> None:
    try:
        await gateways.GatewayKv(services.kv).bind(agent_id, services.hub.process_id)
        await ProcessKv(services.kv).keep_alive(services.hub.process_id, liveness_ms(services))
    except KvUnavailable as exc:
        log.warning("Redis unavailable to record agent %s's gateway: %s", agent_id, exc)


def liveness_ms(services: Services) -> int:
    return int(services.settings.hub_liveness_ttl_s * 1000)


def _status_events(row: Row, room_ids: Sequence[str]) -> list[Event]:
    message = proto.agent_status(row)
    return [frame_event(Target.ROOM, room_id, message) for room_id in room_ids]


async def set_agent_status(services: Services, agent_id: str, status: str) -> None:
    """gateway:agent_status (realtime.md §5.3): any status, the binding stays."""
    await _set_status(services, [agent_id], status, seen=True)


async def agents_offline(services: Services, agent_ids: Sequence[str]) -> None:
    """Unregister or disconnect: offline in the DB, bindings dropped, status to their rooms."""
    if not agent_ids:
        return
    try:
        await gateways.GatewayKv(services.kv).unbind(agent_ids, services.hub.process_id)
    except KvUnavailable as exc:
        log.warning("Redis unavailable to drop agent bindings: %s", exc)
    try:
        await _set_status(services, agent_ids, "offline", seen=False)
    except Exception as exc:
        log.error("Failed to mark agent %s offline: %s", ",".join(agent_ids), exc)


async def mark_offline(services: Services, agent_ids: Sequence[str]) -> None:
    """Offline in the DB and to their rooms, bindings untouched; errors propagate (the
    reclaim of a dead process, actions/reclaim.py, retries on failure)."""
    if agent_ids:
        await _set_status(services, agent_ids, "offline", seen=False)


async def _set_status(
    services: Services, agent_ids: Sequence[str], status: str, *, seen: bool
) -> None:
    rows = await store.set_status_in_rooms(services.db, agent_ids, status, iso_now(), seen=seen)
    events = [
        frame_event(Target.ROOM, row["room_id"], proto.agent_status(row))
        for row in rows
        if row["room_id"] is not None
    ]
    await services.events.publish_all(events)


# streamed replies ----------------------------------------------------------------------------
def chunk_event(
    *, room_id: str, agent_id: str, agent_name: str, message_id: str, chunk: proto.Chunk
) -> Event:
    """gateway:message_chunk → server:message_chunk to the room (realtime.md §4.1)."""
    message = proto.message_chunk(room_id=room_id, agent_id=agent_id, agent_name=agent_name,
                                  message_id=message_id, chunk=chunk)  # fmt: skip
    return frame_event(Target.ROOM, room_id, message)


async def complete_agent_message(
    services: Services, *, room_id: str, agent_id: str, agent_name: str, message_id: str,
    content: str, chunks: list[proto.Chunk] | None, started: float | None = None,
    mark_online: bool = True, metadata: dict[str, Any] | None = None,
    attachments: Sequence[dict[str, Any]] = (),
) -> dict[str, Any] | None:  # fmt: skip
    """Persist an agent reply and announce it (realtime.md §4.2 steps 3 and 5-9, D5).

    The reply gets a fresh id when the gateway's `message_id` is taken (the reference gateway
    reuses the user message id), so no reply is dropped. Then `server:message_complete` goes to
    the room and, with `mark_online`, the agent is set online and its status announced.
    `metadata` (`{targetAgentName}`) is stored with the message and carried by the broadcast.
    `attachments` (`attachment_json` of stored, unlinked uploads: a service agent's media) are
    linked to the stored message and carried by the broadcast.

    Returns:
        The message as broadcast, or None when the agent is not a member of the room (logged).
    """
    now = iso_now()
    saved = await _insert_reply(
        services, message_id=message_id, room_id=room_id, agent_id=agent_id,
        agent_name=agent_name, content=content, chunks_json=_chunks_json(agent_id, chunks),
        now=now, set_online=mark_online, metadata_json=dumps(metadata) if metadata else None,
    )  # fmt: skip
    if saved is None:
        log.warning("Agent %s is not a member of room %s, dropping message", agent_id, room_id)
        return None
    message = proto.agent_message(message_id=saved["inserted"], room_id=room_id,
                                  agent_id=agent_id, agent_name=agent_name, content=content,
                                  chunks=chunks, created_at=now, metadata=metadata)  # fmt: skip
    if attachments:
        await store.link_attachments(services.db, saved["inserted"], [a["id"] for a in attachments])
        message["attachments"] = [{**a, "messageId": saved["inserted"]} for a in attachments]
    _count_reply(services, started)
    await services.events.publish(
        frame_event(Target.ROOM, room_id, proto.message_complete(message))
    )
    notify_message(services, message, sender_id=None)  # Web Push (A15): queued, never awaited
    if saved["status"] is not None:
        summary = {**dict(saved), "id": agent_id}
        await services.events.publish_all(_status_events(summary, saved["room_ids"]))
    return message


def _chunks_json(agent_id: str, chunks: list[proto.Chunk] | None) -> str | None:
    if chunks is None:
        return None
    text = dumps(chunks)
    if len(text) > MAX_CHUNKS_JSON_CHARS:
        log.warning("Agent %s chunks JSON exceeds size limit (%d bytes), persisting without "
                    "chunks", agent_id, len(text))  # fmt: skip
        return None
    return text


async def _insert_reply(services: Services, *, message_id: str, **row: Any) -> Row | None:
    """Insert under the gateway's id, else under a fresh one (D5).

    Returns:
        The insert's outcome (`inserted` is the id used), or None when the agent is not a
        member of the room.
    """
    for candidate in (message_id, new_id(), new_id()):
        saved = await store.insert_agent_message(services.db, message_id=candidate, **row)
        if not saved["member"]:
            return None
        if saved["inserted"] is not None:
            return saved
    raise RuntimeError("could not mint a free message id")  # three collisions: a bug, not luck


def _count_reply(services: Services, started: float | None) -> None:
    services.metrics.messages_total.inc(type="agent_response")
    if started is not None:
        services.metrics.agent_response_duration.observe(trio.current_time() - started)


async def interrupt_stream(
    services: Services, stream: Stream, agent_name: str, *, reason: str
) -> dict[str, Any] | None:
    """Persist an unfinished stream as far as it got, with an error chunk marking the end, and
    complete it for clients (they stop waiting); the agent's status is left alone."""
    chunks = [*stream.chunks, {"type": "error", "content": reason}]
    try:
        return await complete_agent_message(
            services, room_id=stream.room_id, agent_id=stream.agent_id, agent_name=agent_name,
            message_id=stream.message_id, content=stream.text(), chunks=chunks,
            started=stream.started, mark_online=False,
        )  # fmt: skip
    except Exception as exc:
        log.error("Failed to persist interrupted stream %s of agent %s: %s",
                  stream.message_id, stream.agent_id, exc)  # fmt: skip
        return None


async def relay_terminal_data(
    services: Services, *, agent_id: str, agent_name: str, data: str
) -> None:
    """gateway:terminal_data → one server:terminal_data per room of the agent (§7.6)."""
    room_ids = await store.list_agent_room_ids(services.db, agent_id)
    await services.events.publish_all([
        frame_event(Target.ROOM, room_id, proto.terminal_data(
            agent_id=agent_id, agent_name=agent_name, room_id=room_id, data=data))
        for room_id in room_ids
    ])  # fmt: skip


# REST (api.md §9.5-9.6) ----------------------------------------------------------------------
async def update_agent(
    services: Services, *, user_id: str, agent_id: str, changes: Mapping[str, Any]
) -> Row:
    """Rename and/or change who may see the agent (owner only; A16).

    Args:
        changes: validated `name`, `visibility` (`shared`, the old name of `all`, already
            mapped), `visibilityList`; only the keys present change.

    Returns:
        The enriched row. Its rooms get `server:agent_status` (a rename shows at once).
    """
    await _owned_agent(services, user_id, agent_id)
    columns = {column: changes[key] for key, column in _UPDATABLE if key in changes}
    await store.update_agent(services.db, agent_id, columns, iso_now())
    row = await store.get_agent(services.db, agent_id)
    if row is None:
        raise not_found("Agent not found")
    room_ids = await store.list_agent_room_ids(services.db, agent_id)
    await services.events.publish_all(_status_events(row, room_ids))
    return row


_UPDATABLE: Final = (("name", "name"), ("visibility", "visibility"),
                     ("visibilityList", "visibility_list"))  # fmt: skip


async def delete_agent(services: Services, *, user_id: str, agent_id: str) -> None:
    """Delete the agent (owner only), tombstoned for good (D13), and tell everyone concerned.

    The gateway holding it gets `server:remove_agent` wherever it is; each process drops the
    binding; each former room gets `server:room_update` and its agents their room contexts.
    """
    await _owned_agent(services, user_id, agent_id)
    async with services.db.transaction() as tx:
        room_ids = await store.delete_agent(tx, agent_id, user_id=user_id, now=iso_now())
        events = [e for room_id in room_ids for e in await room_change_events(tx, room_id)]
    await _agents_removed(services, user_id, [agent_id])
    await services.events.publish_all(events)


async def delete_gateway(services: Services, *, user_id: str, gateway_id: str) -> None:
    """Delete the gateway and its agents (owner only; A14).

    The agents leave their rooms and are tombstoned (D13); the gateway, if connected, gets
    `server:remove_agent` for each; each former room gets `server:room_update` and its
    remaining agents their room contexts.
    """
    async with services.db.transaction() as tx:
        row = await gateways.get_gateway(tx, gateway_id, for_update=True)
        if row is None:
            raise not_found("Gateway not found")
        if row["user_id"] != user_id:
            raise forbidden("You do not own this gateway")
        agent_ids, room_ids = await gateways.delete_gateway(
            tx, gateway_id, tombstone_for=user_id, now=iso_now()
        )
        events = [e for room_id in room_ids for e in await room_change_events(tx, room_id)]
    await _agents_removed(services, user_id, agent_ids)
    await services.events.publish_all(events)


async def remove_offline_gateways(
    services: Services, *, cutoff: str, limit: int
) -> tuple[int, int]:
    """Delete gateways disconnected before `cutoff`, with their agents (config row D5).

    No tombstones: a gateway coming back later registers its agents anew. A gateway with a
    socket right now is kept whatever its row says. Former rooms get `server:room_update`.

    Returns:
        How many gateways (at most `limit`; the rest wait for the next pass) and agents were
        deleted.
    """
    async with services.db.transaction() as tx:
        rows = await gateways.list_offline_since(tx, cutoff, limit=limit)
        ids = [row["id"] for row in rows]
        live = await live_gateways.connected_gateways(services, ids)
        if live is None:  # Redis down: only this process's sockets are known
            live = {g for g in ids if g in services.hub.gateways}
        swept, agent_count, room_ids = [g for g in ids if g not in live], 0, set()
        for gateway_id in swept:
            agent_ids, rooms = await gateways.delete_gateway(
                tx, gateway_id, tombstone_for=None, now=iso_now()
            )
            agent_count += len(agent_ids)
            room_ids.update(rooms)
        events = [e for room_id in sorted(room_ids) for e in await room_change_events(tx, room_id)]
    await services.events.publish_all(events)
    return len(swept), agent_count


async def _agents_removed(services: Services, user_id: str, agent_ids: Sequence[str]) -> None:
    """Deleted agents: their gateway is told, wherever it is, and every process lets go."""
    for agent_id in agent_ids:
        await services.events.publish(
            frame_event(Target.AGENT, agent_id, proto.remove_agent(agent_id))
        )
        await services.events.publish(control_event(AGENT_REMOVED, agent_id, userId=user_id))
        await _forget_binding(services, agent_id)


async def _owned_agent(services: Services, user_id: str, agent_id: str) -> Row:
    row = await store.get_agent(services.db, agent_id)
    if row is None:
        raise not_found("Agent not found")
    if row["owner_id"] != user_id:
        raise forbidden("You do not own this agent")
    return row


async def _forget_binding(services: Services, agent_id: str) -> None:
    try:
        await services.kv.delete(f"agent:gw:{agent_id}")
    except KvUnavailable as exc:
        log.warning("Redis unavailable to drop agent %s's binding: %s", agent_id, exc)


# start-up and shutdown (D14) -----------------------------------------------------------------
async def reset_stale_agents(services: Services) -> list[str]:
    """At start-up: agents left online by a crashed process go offline.

    An agent whose binding names a live hub process (another one, still serving it) is kept;
    with Redis down nothing is known about other processes, so every agent is reset.

    Returns:
        The ids set offline.
    """
    candidates = await store.list_not_offline(services.db)
    try:
        live = await gateways.GatewayKv(services.kv).live_agents(candidates)
    except KvUnavailable as exc:
        log.warning("Redis unavailable at start-up, resetting every online agent: %s", exc)
        live = set()
    stale = [agent_id for agent_id in candidates if agent_id not in live]
    if stale:
        await _set_status(services, stale, "offline", seen=False)
        log.info("Reset %d agent(s) left online by a previous run", len(stale))
    return stale


async def mark_process_agents_offline(services: Services) -> None:
    """At shutdown, after every socket closed: this process's agents that a closing gateway
    could not mark offline in time (bounded; errors are logged)."""
    process_id = services.hub.process_id
    bindings = gateways.GatewayKv(services.kv)
    with trio.move_on_after(SHUTDOWN_STEP_S):
        try:
            agent_ids = sorted(await bindings.process_agents(process_id))
            await agents_offline(services, agent_ids)
            await bindings.forget_process(process_id)
        except KvUnavailable as exc:
            log.warning("Redis unavailable at shutdown, agents may stay online: %s", exc)

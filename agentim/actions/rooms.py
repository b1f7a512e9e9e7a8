"""Room writes (api.md §6): create, update, delete, members, pin/archive, notification preference.

Events after commit (api.md Appendix A.3). `server:room_removed` is published only as the hub
control event `room_removed` addressed to the user, with data `roomId` and `frame` (the compact
JSON of `{"type":"server:room_removed","roomId":…}`): each process's handler sends that frame to
the user's client sockets and drops their subscription to the room.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from agentim.actions.audit import audit
from agentim.actions.messages import remove_upload_files
from agentim.actions.room_context import room_change_events, room_context_events
from agentim.actions.serialize import room_json
from agentim.errors import AgentImError, bad_request, conflict, forbidden, not_found
from agentim.protocol.envelope import dumps
from agentim.protocol.events import Event, Target, control_event, frame_event
from agentim.protocol.ids import new_id
from agentim.protocol.sanitize import sanitize_text
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import rooms as store
from agentim.store.agents import is_agent_visible
from agentim.store.ai_routers import access_router_for_room
from agentim.store.db import FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, Conn, DbError
from agentim.store.kv import KvUnavailable
from agentim.store.membership import is_member, is_room_admin

log = logging.getLogger("Rooms")

NOT_A_MEMBER: Final = "Not a member of this room"
_ROUTER_ERROR_STATUS: Final = {"Router not found": 404, "User not found": 404,
                               "Router not accessible": 403}  # fmt: skip


async def _check_router(conn: Conn, router_id: str, user_id: str) -> None:
    problem = await access_router_for_room(conn, router_id, user_id)
    if problem is not None:
        raise AgentImError(_ROUTER_ERROR_STATUS[problem], problem)


def _router_gone(exc: DbError) -> bool:
    """The router was deleted after the access check (or routerId was "")."""
    return exc.sqlstate == FOREIGN_KEY_VIOLATION and "router_id" in str(exc)


async def create_room(
    services: Services, *, user_id: str, ip: str | None, name: str, room_type: str,
    broadcast_mode: bool, system_prompt: str | None, router_id: str | None,
    member_ids: list[str], agent_command_role: str = "member",
) -> dict[str, Any]:  # fmt: skip
    """Create a room with the caller as owner and `member_ids` as members (api.md §6.2).

    No event: added members find the room when they reload.
    """
    if router_id:
        await _check_router(services.db, router_id, user_id)
    others = [m for m in dict.fromkeys(member_ids) if m != user_id]
    room_id, now = new_id(), iso_now()
    try:
        async with services.db.transaction() as tx:
            row = await store.insert_room(
                tx, room_id=room_id, name=sanitize_text(name), room_type=room_type,
                broadcast_mode=broadcast_mode, system_prompt=system_prompt, router_id=router_id,
                created_by_id=user_id, now=now, agent_command_role=agent_command_role,
            )  # fmt: skip
            if len(await store.existing_user_ids(tx, others)) != len(others):
                raise bad_request("One or more users not found")
            members = [(user_id, "user", "owner", None)]
            members += [(m, "user", "member", None) for m in others]
            await store.insert_members(tx, room_id, members, now)
    except DbError as exc:
        if _router_gone(exc):
            raise conflict("Router no longer exists") from exc
        raise
    await audit(
        services.db, "room_create", user_id=user_id, ip=ip, target_id=room_id,
        target_type="room", metadata={"name": name, "type": room_type},
    )  # fmt: skip
    return room_json(row)


async def update_room(
    services: Services, *, user_id: str, ip: str | None, room_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change name, broadcastMode, systemPrompt, routerId and/or agentCommandRole (api.md §6.4)."""
    if not await is_room_admin(services.db, user_id, room_id):
        raise forbidden("Only room owner or admin can update settings")
    if isinstance(changes.get("routerId"), str):
        await _check_router(services.db, changes["routerId"], user_id)
    if "name" in changes:
        changes = {**changes, "name": sanitize_text(changes["name"])}
    try:
        async with services.db.transaction() as tx:
            row = await store.update_room(tx, room_id, changes, iso_now())
            if row is None:
                raise not_found("Room not found")
            events = await room_change_events(tx, room_id)
    except DbError as exc:
        if _router_gone(exc):
            raise conflict("Router no longer exists") from exc
        raise
    await audit(
        services.db, "room_update", user_id=user_id, ip=ip, target_id=room_id, target_type="room"
    )
    await services.events.publish_all(events)
    return room_json(row)


def room_removed_event(user_id: str, room_id: str) -> Event:
    """Tell every process to send `server:room_removed` to the user and unsubscribe them."""
    frame = dumps({"type": "server:room_removed", "roomId": room_id})
    return control_event("room_removed", user_id, roomId=room_id, frame=frame)


async def delete_room(services: Services, *, user_id: str, ip: str | None, room_id: str) -> None:
    """Delete a room (creator only) with everything in it, then its files (api.md §6.5)."""
    async with services.db.transaction() as tx:
        room = await store.get_room(tx, room_id)
        if room is None:
            raise not_found("Room not found")
        if room["created_by_id"] != user_id:
            raise forbidden("Only room creator can delete")
        urls = await store.list_room_attachment_urls(tx, room_id)
        user_ids = await store.list_user_member_ids(tx, room_id)
        await store.delete_room(tx, room_id)
    await remove_upload_files(services.blobs, urls)
    await services.events.publish_all([room_removed_event(uid, room_id) for uid in user_ids])
    await audit(
        services.db, "room_delete", user_id=user_id, ip=ip, target_id=room_id,
        target_type="room", metadata={"name": room["name"]},
    )  # fmt: skip


async def _forget_membership_cache(services: Services, member_id: str, room_id: str) -> None:
    """DEL the WebSocket join cache `rm:<memberId>:<roomId>` (api.md §14.15)."""
    try:
        await services.kv.delete(f"rm:{member_id}:{room_id}")
    except KvUnavailable as exc:
        log.warning("Failed to clear membership cache for %s in %s: %s", member_id, room_id, exc)


async def _check_addable(conn: Conn, user_id: str, member_id: str, member_type: str) -> None:
    if member_type == "user":
        if not await store.user_exists(conn, member_id):
            raise not_found("User not found")
        return
    agent = await store.get_agent_owner(conn, member_id)
    if agent is None:
        raise not_found("Agent not found")
    if agent["owner_id"] != user_id and not is_agent_visible(agent, user_id):
        raise forbidden("You do not own this agent and it is not shared")


async def add_member(
    services: Services, *, user_id: str, ip: str | None, room_id: str, member_id: str,
    member_type: str, role: str, role_description: str | None,
) -> None:  # fmt: skip
    """Add a user or agent to the room (api.md §6.7); the caller must be a room owner/admin."""
    try:
        async with services.db.transaction() as tx:
            if not await is_room_admin(tx, user_id, room_id):
                raise forbidden("Only room owner or admin can add members")
            await _check_addable(tx, user_id, member_id, member_type)
            member = (member_id, member_type, role, role_description)
            await store.insert_members(tx, room_id, [member], iso_now())
            events = await room_change_events(tx, room_id)
    except DbError as exc:
        if exc.sqlstate == UNIQUE_VIOLATION:
            raise conflict("Member already in room") from exc
        raise
    await audit(
        services.db, "member_add", user_id=user_id, ip=ip, target_id=member_id,
        target_type="member",
        metadata={"roomId": room_id, "memberType": member_type, "role": role},
    )  # fmt: skip
    if member_type == "user":
        await _forget_membership_cache(services, member_id, room_id)
    await services.events.publish_all(events)


async def remove_member(
    services: Services, *, user_id: str, ip: str | None, room_id: str, member_id: str
) -> None:
    """Remove a member, or leave (api.md §6.8); the creator can never be removed."""
    self_leave = member_id == user_id
    async with services.db.transaction() as tx:
        if self_leave and not await is_member(tx, user_id, room_id):
            raise forbidden(NOT_A_MEMBER)
        if not self_leave and not await is_room_admin(tx, user_id, room_id):
            raise forbidden("Only room owner or admin can remove members")
        room = await store.get_room(tx, room_id)
        if room is not None and room["created_by_id"] == member_id:
            raise bad_request("Cannot remove the room creator")
        await store.delete_member(tx, room_id, member_id)
        events = await room_change_events(tx, room_id)
    # Eviction first, so the removed user does not get the room_update (realtime.md §7.5).
    await services.events.publish(room_removed_event(member_id, room_id))
    await _forget_membership_cache(services, member_id, room_id)
    await audit(
        services.db, "member_remove", user_id=user_id, ip=ip, target_id=member_id,
        target_type="member", metadata={"roomId": room_id, "selfLeave": self_leave},
    )  # fmt: skip
    await services.events.publish_all(events)


async def toggle_flag(services: Services, *, user_id: str, room_id: str, flag: str) -> bool:
    """Pin/unpin (`pinned`) or archive/unarchive (`archived`) the room for the caller (§6.9).

    Returns:
        The new state.
    """
    state = await store.toggle_member_flag(
        services.db, room_id, user_id, column=f"{flag}_at", now=iso_now()
    )
    if state is None:
        raise not_found("Not a member")
    return state


async def clear_history(services: Services, *, user_id: str, room_id: str) -> str:
    """Hide the room's messages so far from the caller (A12): their history, search, recent
    and unread figures, and the context their agents in the room are given.

    Publishes `server:room_cleared` to every socket of the caller (their other devices clear
    too) and the room's agents' new `server:room_context`.

    Returns:
        The clearing point (`clearedAt`).
    """
    now = iso_now()
    async with services.db.transaction() as tx:
        if not await store.set_cleared_at(tx, room_id, user_id, now):
            raise not_found("Not a member")
        events = await room_context_events(tx, room_id)
    cleared = {"type": "server:room_cleared", "roomId": room_id, "clearedAt": now}
    await services.events.publish_all([frame_event(Target.USER, user_id, cleared), *events])
    return now


async def set_notification_pref(
    services: Services, *, user_id: str, room_id: str, pref: str
) -> None:
    """Store the caller's notification preference (api.md §6.10; never used by the server)."""
    if not await store.set_notification_pref(services.db, room_id, user_id, pref):
        raise forbidden(NOT_A_MEMBER)

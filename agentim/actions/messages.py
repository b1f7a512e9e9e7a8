"""Message writes: send (WebSocket), edit, delete, batch delete, reactions and read marks (REST).

Each writes in one transaction, then publishes its events (api.md Appendix A.3) after commit.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from typing import Any, Final

import attrs

from agentim.actions.audit import audit
from agentim.actions.push import notify_message
from agentim.actions.serialize import message_json, new_message_json, omit_nulls, reactions_json
from agentim.errors import AgentImError, ErrorCode, bad_request, forbidden, not_found
from agentim.protocol.events import Event, Target, frame_event
from agentim.protocol.ids import new_id
from agentim.protocol.mentions import parse_mentions
from agentim.protocol.sanitize import sanitize_content
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import messages as store
from agentim.store.blobs import BlobStore
from agentim.store.db import FOREIGN_KEY_VIOLATION, DbError, Row
from agentim.store.membership import is_member, is_room_admin

log = logging.getLogger("ClientHandler")
ROOM_FOREIGN_KEY: Final = "messages_room_id_rooms_id_fk"  # sql/migrations/0001_initial.sql

MAX_REACTIONS_PER_USER: Final = 20  # per message (api.md §7.6)
NOT_A_MEMBER: Final = "Not a member of this room"


@attrs.frozen
class Draft:
    """A user's message as the socket sent it (realtime.md §2.2 client:send_message)."""

    room_id: str
    content: str
    reply_to_id: str | None = None
    attachment_ids: list[str] = attrs.field(factory=list)


@attrs.frozen
class Sent:
    """A stored and broadcast user message, with what routing needs of its room."""

    message: dict[str, Any]  # as broadcast (sanitized content, parsed mentions)
    agents: list[dict[str, Any]]  # the room's agent members when it was stored
    may_command: bool = True  # the sender meets the room's agentCommandRole (B8)


async def send_message(
    services: Services, *, user_id: str, username: str, room_id: str, content: str,
    reply_to_id: str | None, attachment_ids: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Store a user's message and broadcast `server:new_message` (realtime.md §3.1 steps 2-5).

    Returns:
        The message as broadcast (its `mentions` are the parsed names), for agent routing.

    Raises:
        AgentImError: 404 ROOM_NOT_FOUND, 403 NOT_A_MEMBER, or 500 INTERNAL_ERROR on a DB error.
    """
    draft = Draft(room_id, content, reply_to_id, attachment_ids)
    return (await send_one(services, user_id=user_id, username=username, draft=draft)).message


async def send_one(services: Services, *, user_id: str, username: str, draft: Draft) -> Sent:
    """send_message, returning the room's agent members too (one round trip for both)."""
    sent = await _store_one(services, user_id, username, draft)
    await announce(services, [sent])
    return sent


async def store_many(
    services: Services, *, user_id: str, username: str, drafts: list[Draft]
) -> list[Sent | AgentImError]:
    """Store several messages of one sender (a burst off one socket) in one statement; each
    keeps its own outcome, in order. Nothing is published yet: `announce` does that.

    Drafts with attachments go through `send_one` (the caller keeps them out of bursts).
    """
    if len(drafts) <= 1:
        return [await _store_alone(services, user_id, username, d) for d in drafts]
    items = [_new_message(draft) for draft in drafts]
    try:
        outcomes = await store.insert_user_messages(
            services.db, user_id=user_id, username=username, messages=items
        )
    except DbError:
        # one bad row (a reply to a missing message) fails the statement: each alone, then
        return [await _store_alone(services, user_id, username, draft) for draft in drafts]
    results: list[Sent | AgentImError] = []
    for item, outcome in zip(items, outcomes, strict=True):
        try:
            results.append(_accepted(item, outcome, user_id, username))
        except AgentImError as exc:
            results.append(exc)
    return results


async def announce(services: Services, sent: list[Sent]) -> None:
    """Count and broadcast stored messages (`server:new_message`, in order, one pipeline)."""
    if sent:
        services.metrics.messages_total.inc(len(sent), type="text")
        await services.events.publish_all([_new_message_event(s) for s in sent])
        for item in sent:  # Web Push to offline members (A15): queued, never awaited
            notify_message(services, item.message, sender_id=item.message["senderId"])


async def client_allowance(services: Services, user_id: str, hits: int) -> int:
    """How many of `hits` client frames the per-user limit lets through (CLIENT_RATE_LIMIT_MAX
    per window, counted in Redis for all processes; per process while Redis is down, D16)."""
    settings = services.live.current
    counted = await services.limiter.count(
        f"ws:rate:{user_id}", settings.client_rate_limit_window, hits=hits,
        what="WS rate limiting",
    )  # fmt: skip
    return max(0, min(hits, settings.client_rate_limit_max - (counted.count - hits)))


async def send_burst(
    services: Services, *, user_id: str, username: str, drafts: list[Draft]
) -> tuple[list[Sent | AgentImError], int]:
    """One socket's run of messages: the rate limit is counted first, and only the drafts it
    allows are stored and announced, so no reader ever sees a message that is refused.

    Returns:
        The allowed drafts' outcomes, in order, and how many drafts the limit refused.
    """
    allowed = await client_allowance(services, user_id, len(drafts))
    results = await store_many(services, user_id=user_id, username=username,
                               drafts=drafts[:allowed]) if allowed else []  # fmt: skip
    await announce(services, [r for r in results if isinstance(r, Sent)])
    return results, len(drafts) - allowed


async def _store_one(services: Services, user_id: str, username: str, draft: Draft) -> Sent:
    item = _new_message(draft)
    try:
        outcome = await store.insert_user_message(
            services.db, message_id=item.message_id, room_id=item.room_id, user_id=user_id,
            username=username, content=item.content, reply_to_id=item.reply_to_id,
            mentions=item.mentions, attachment_ids=draft.attachment_ids, now=item.now,
        )  # fmt: skip
    except DbError as exc:
        raise _send_failed(exc) from exc
    return _accepted(item, outcome, user_id, username)


async def _store_alone(
    services: Services, user_id: str, username: str, draft: Draft
) -> Sent | AgentImError:
    try:
        return await _store_one(services, user_id, username, draft)
    except AgentImError as exc:
        return exc


def _new_message(draft: Draft) -> store.NewMessage:
    content = sanitize_content(draft.content)
    return store.NewMessage(
        new_id(), draft.room_id, content, draft.reply_to_id, parse_mentions(content), iso_now()
    )


def _send_failed(exc: DbError) -> AgentImError:
    """The sender's answer; PostgreSQL being away is logged once by store/db, not per send."""
    if exc.sqlstate == FOREIGN_KEY_VIOLATION and ROOM_FOREIGN_KEY in str(exc):
        # The room was deleted between the statement's room check and its insert: the sender
        # sees what it would have seen a moment later, and nothing is an error of ours.
        log.info("Room deleted while a message was sent to it: %s", exc)
        return AgentImError(404, "Room not found", code=ErrorCode.ROOM_NOT_FOUND)
    level = logging.DEBUG if exc.unavailable else logging.ERROR
    log.log(level, "Transaction error in handleSendMessage: %s", exc)
    return AgentImError(500, "Failed to send message", code=ErrorCode.INTERNAL_ERROR)


def _accepted(item: store.NewMessage, outcome: store.SendOutcome, user_id: str,
              username: str) -> Sent:  # fmt: skip
    """The broadcast message, or the refusal (404 ROOM_NOT_FOUND, 403 NOT_A_MEMBER) raised."""
    if not outcome.room_found:
        raise AgentImError(404, "Room not found", code=ErrorCode.ROOM_NOT_FOUND)
    if not outcome.inserted:
        raise AgentImError(403, "You are not a member of this room", code=ErrorCode.NOT_A_MEMBER)
    message = new_message_json(
        message_id=item.message_id, room_id=item.room_id, sender_id=user_id,
        sender_name=username, content=item.content, reply_to_id=item.reply_to_id,
        mentions=item.mentions, attachments=outcome.attachments, created_at=item.now,
    )  # fmt: skip
    return Sent(message, outcome.agents, outcome.may_command)


def _new_message_event(sent: Sent) -> Event:
    message = sent.message
    return frame_event(
        Target.ROOM, message["roomId"], {"type": "server:new_message", "message": message}
    )


def _require_member(row: Row | None) -> Row:
    if row is None:
        raise not_found("Message not found")
    if not row["is_member"]:
        raise forbidden(NOT_A_MEMBER)
    return row


def _is_own_user_message(row: Row, user_id: str) -> bool:
    return bool(row["sender_id"] == user_id and row["sender_type"] == "user")


async def edit_message(
    services: Services, *, user_id: str, message_id: str, content: str
) -> dict[str, Any]:
    """Replace the sender's own message content, keeping the old text as an edit (api.md §7.8).

    Mentions are not recomputed. Publishes `server:message_edited` to the room.
    """
    async with services.db.transaction() as tx:
        row = _require_member(await store.lock_message_for_member(tx, message_id, user_id))
        if not _is_own_user_message(row, user_id):
            raise forbidden("Only the sender can edit this message")
        updated = await store.update_content(
            tx, message_id=message_id, edit_id=new_id(), previous=row["content"],
            content=sanitize_content(content), now=iso_now(),
        )  # fmt: skip
    message = message_json(updated)
    await services.events.publish(
        frame_event(Target.ROOM, row["room_id"], {"type": "server:message_edited",
                                                  "message": omit_nulls(message)})
    )  # fmt: skip
    return message


async def delete_message(
    services: Services, *, user_id: str, message_id: str, ip: str | None
) -> None:
    """Delete the sender's own message and its files (api.md §7.9)."""
    async with services.db.transaction() as tx:
        row = _require_member(await store.lock_message_for_member(tx, message_id, user_id))
        if not _is_own_user_message(row, user_id):
            raise forbidden("Only the sender can delete this message")
        urls = await store.list_attachment_urls(tx, [message_id])
        await store.delete_messages(tx, [message_id])
    await remove_upload_files(services.blobs, urls)
    await audit(
        services.db, "file_delete", user_id=user_id, ip=ip, target_id=message_id,
        target_type="file", metadata={"roomId": row["room_id"], "attachmentCount": len(urls)},
    )  # fmt: skip
    await services.events.publish(_deleted_event(row["room_id"], message_id))


def _deleted_event(room_id: str, message_id: str) -> Event:
    return frame_event(
        Target.ROOM, room_id,
        {"type": "server:message_deleted", "roomId": room_id, "messageId": message_id},
    )  # fmt: skip


async def batch_delete(
    services: Services, *, user_id: str, message_ids: list[str], ip: str | None
) -> int:
    """Delete several messages of one room (api.md §7.10); returns how many were deleted.

    Room admins may delete any of them; others only their own user messages (the rest are
    skipped silently).
    """
    async with services.db.transaction() as tx:
        found = await store.get_messages(tx, message_ids)
        if not found:
            return 0
        room_id = _single_room(found)
        if not await is_member(tx, user_id, room_id):
            raise forbidden(NOT_A_MEMBER)
        admin = await is_room_admin(tx, user_id, room_id)
        allowed = [r["id"] for r in found if admin or _is_own_user_message(r, user_id)]
        if not allowed:
            raise forbidden("No permission to delete these messages")
        urls = await store.list_attachment_urls(tx, allowed)
        deleted = await store.delete_messages(tx, allowed)
    await remove_upload_files(services.blobs, urls)
    await audit(
        services.db, "file_delete", user_id=user_id, ip=ip, target_id=",".join(deleted),
        target_type="file",
        metadata={"roomId": room_id, "count": len(deleted), "attachmentCount": len(urls)},
    )  # fmt: skip
    await services.events.publish_all([_deleted_event(room_id, mid) for mid in deleted])
    return len(deleted)


def _single_room(rows: list[Row]) -> str:
    rooms = {row["room_id"] for row in rows}
    if len(rooms) > 1:
        raise bad_request("All messages must belong to the same room")
    return rooms.pop()


async def toggle_reaction(
    services: Services, *, user_id: str, message_id: str, emoji: str
) -> list[dict[str, Any]]:
    """Add or remove the caller's reaction (api.md §7.6); returns the message's reactions."""
    async with services.db.transaction() as tx:
        row = _require_member(await store.get_message_for_member(tx, message_id, user_id))
        if not await store.delete_reaction(tx, message_id, user_id, emoji):
            if await store.count_user_reactions(tx, message_id, user_id) >= MAX_REACTIONS_PER_USER:
                raise bad_request("Maximum reactions per message reached")
            await store.insert_reaction(tx, message_id, user_id, emoji, iso_now())
        reactions = reactions_json(await store.list_reactions(tx, [message_id]))
    await services.events.publish(
        frame_event(Target.ROOM, row["room_id"], {
            "type": "server:reaction_update", "roomId": row["room_id"], "messageId": message_id,
            "reactions": reactions,
        })
    )  # fmt: skip
    return reactions


def _read_receipt(room_id: str, user_id: str, username: str, now: str) -> Event:
    return frame_event(Target.ROOM, room_id, {
        "type": "server:read_receipt", "roomId": room_id, "userId": user_id,
        "username": username, "lastReadAt": now,
    })  # fmt: skip


async def mark_room_read(services: Services, *, user_id: str, username: str, room_id: str) -> None:
    """Set the caller's last_read_at in one room and announce it (api.md §7.3)."""
    now = iso_now()
    async with services.db.transaction() as tx:
        if not await is_member(tx, user_id, room_id):
            raise forbidden(NOT_A_MEMBER)
        await store.mark_room_read(tx, user_id, room_id, now)
    await services.events.publish(_read_receipt(room_id, user_id, username, now))


async def mark_all_read(services: Services, *, user_id: str, username: str) -> None:
    """Set last_read_at in every member room; one read receipt per room (api.md §7.2)."""
    now = iso_now()
    room_ids = await store.mark_all_read(services.db, user_id, now)
    await services.events.publish_all(
        [_read_receipt(room_id, user_id, username, now) for room_id in room_ids]
    )


async def remove_upload_files(blobs: BlobStore, urls: Iterable[str]) -> None:
    """Delete each URL's object, after commit; failures are only logged (by the store)."""
    names = {posixpath.basename(url) for url in urls} - {"", ".", ".."}
    for name in sorted(names):
        await blobs.delete(name)

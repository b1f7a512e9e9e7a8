"""Typing indicators (realtime.md §7.2): debounced per user and room in Redis, then one
droppable `server:typing` to the room, never back to the sending socket."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from agentim.protocol.events import Event, Target, frame_event
from agentim.services import Services
from agentim.store.kv import KvUnavailable

log = logging.getLogger("ClientHandler")

DEBOUNCE_S: Final = 1  # realtime.md §1.4


def _typing_event(session_id: str, user_id: str, username: str, room_id: str) -> Event:
    message = {"type": "server:typing", "roomId": room_id, "userId": user_id, "username": username}
    return frame_event(Target.ROOM, room_id, message, droppable=True, exclude=session_id)


async def user_typing(
    services: Services, *, session_id: str, user_id: str, username: str, room_id: str
) -> None:
    """Announce unless the user typed in this room within the last second (fail-open)."""
    try:
        fresh = await services.kv.set(f"ws:typing:{user_id}:{room_id}", "1", ex=DEBOUNCE_S,
                                      nx=True)  # fmt: skip
    except KvUnavailable:
        fresh = True
    if fresh:
        await services.events.publish(_typing_event(session_id, user_id, username, room_id))


async def socket_left(
    services: Services, *, session_id: str, user_id: str, username: str, room_ids: Iterable[str]
) -> None:
    """A closing client socket sends `server:typing` to each room it had joined (§7.1)."""
    await services.events.publish_all(
        [_typing_event(session_id, user_id, username, room_id) for room_id in room_ids]
    )

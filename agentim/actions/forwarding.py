"""Forwarding a message into another room (head-gap A11): a new user message of the caller's,
stored, broadcast and routed to agents exactly as one sent over the socket."""

from __future__ import annotations

from typing import Any, Final

from agentim.actions.messages import Draft, send_one
from agentim.actions.routing import route_user_message
from agentim.errors import AgentImError, bad_request, forbidden, not_found
from agentim.services import Services
from agentim.store.membership import is_member
from agentim.store.messages import get_message_for_member

NOT_IN_TARGET: Final = "Not a member of the target room"


def forwarded_content(sender_name: str, content: str) -> str:
    """The copy's text: who wrote the original, a blank line, then the original."""
    return f"[Forwarded from {sender_name}]\n\n{content}"


async def forward_message(
    services: Services, *, user_id: str, username: str, message_id: str, target_room_id: str
) -> dict[str, Any]:
    """Post a copy of a message the caller can read into another room they belong to.

    Returns:
        The new message as broadcast (`server:new_message` to the target room).

    Raises:
        AgentImError: 404 no such message; 403 not a member of the source or the target room;
            400 the target is the message's own room.
    """
    source = await get_message_for_member(services.db, message_id, user_id)
    if source is None:
        raise not_found("Message not found")
    if not source["is_member"]:
        raise forbidden("Not a member of the source room")
    if not await is_member(services.db, user_id, target_room_id):
        raise forbidden(NOT_IN_TARGET)
    if source["room_id"] == target_room_id:
        raise bad_request("Cannot forward to the same room")
    draft = Draft(target_room_id, forwarded_content(source["sender_name"], source["content"]))
    try:
        sent = await send_one(services, user_id=user_id, username=username, draft=draft)
    except AgentImError as exc:
        if exc.status in (403, 404):  # left or deleted since the check above
            raise forbidden(NOT_IN_TARGET) from exc
        raise
    if sent.may_command:  # else stored and shown, not routed (the room's agentCommandRole)
        await route_user_message(services, sent)
    return sent.message

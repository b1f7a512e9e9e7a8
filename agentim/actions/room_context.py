"""`server:room_context` (realtime.md §3.9): what each agent member of a room is told about it.

Built from the committed (or in-transaction) rows; the caller publishes the events after commit.
"""

from __future__ import annotations

import json
from typing import Any, Final

from agentim.actions.serialize import room_frame_json
from agentim.protocol.events import Event, Target, frame_event
from agentim.store import messages, rooms
from agentim.store.db import Conn, Row

RECENT_MESSAGES: Final = 20  # 631a1ad: the context's recentMessages
RECENT_MESSAGE_CHARS: Final = 500  # each one's content, cut


async def room_context_events(
    conn: Conn, room_id: str, *, agent_id: str | None = None
) -> list[Event]:
    """One AGENT-targeted `server:room_context` per agent member that has an agent row.

    Args:
        agent_id: only this agent's event (gateway:register_agent), if it is a member.

    Returns:
        [] when the room is missing or has no members.
    """
    room = await rooms.get_room(conn, room_id)
    if room is None:
        return []
    rows = await rooms.list_context_members(conn, room_id)
    agents = [row for row in rows if row["agent_id"] is not None]
    if agent_id is not None:
        agents = [row for row in agents if row["agent_id"] == agent_id]
    if not agents:
        return []  # nobody to tell: spare the messages query
    # An agent is not told what its owner cleared in the room (PUT /api/rooms/:id/clear).
    recent: dict[str | None, list[Row]] = {}
    for since in dict.fromkeys(row["owner_cleared_at"] for row in agents):
        recent[since] = await messages.list_context_messages(
            conn, room_id, limit=RECENT_MESSAGES, chars=RECENT_MESSAGE_CHARS, since=since
        )
    return [
        _context_event(row["agent_id"], room_context(room, rows, recent[row["owner_cleared_at"]]))
        for row in agents
    ]


def _context_event(agent_id: str, context: dict[str, Any]) -> Event:
    message = {"type": "server:room_context", "agentId": agent_id, "context": context}
    return frame_event(Target.AGENT, agent_id, message)


def room_context(room: Row, rows: list[Row], recent: list[Row] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"roomId": room["id"], "roomName": room["name"]}
    if room["system_prompt"] is not None:
        context["systemPrompt"] = room["system_prompt"]
    members = (_member(row) for row in rows)
    context["members"] = [m for m in members if m is not None]
    context["recentMessages"] = [_recent(row) for row in recent or ()]
    return context


def _recent(row: Row) -> dict[str, Any]:
    """A RoomContextMessage: who said what (cut to 500 characters) and when."""
    return {"senderName": row["sender_name"], "senderType": row["sender_type"],
            "content": row["content"], "createdAt": row["created_at"]}  # fmt: skip


def _member(row: Row) -> dict[str, Any] | None:
    """A RoomContextMember; None for a member whose agent or user row is gone."""
    if row["agent_id"] is not None:
        member: dict[str, Any] = {"id": row["agent_id"], "name": row["agent_name"],
                                  "type": "agent", "agentType": row["agent_type"]}  # fmt: skip
        capabilities = _capabilities(row["capabilities"])
        if capabilities is not None:
            member["capabilities"] = capabilities
        _add_role_description(member, row)
        member["status"] = row["status"]
        return member
    if row["user_id"] is not None:
        member = {"id": row["user_id"], "name": row["display_name"], "type": "user"}
        _add_role_description(member, row)
        return member
    return None


def _add_role_description(member: dict[str, Any], row: Row) -> None:
    if row["role_description"] is not None:
        member["roleDescription"] = row["role_description"]


def _capabilities(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


async def room_change_events(conn: Conn, room_id: str) -> list[Event]:
    """`server:room_update` to the room, then `server:room_context` to each agent member."""
    room = await rooms.get_room(conn, room_id)
    if room is None:
        return []
    members = await rooms.list_members(conn, room_id)
    update = frame_event(Target.ROOM, room_id, room_frame_json(room, members))
    return [update, *await room_context_events(conn, room_id)]

"""Rows → wire objects for rooms, members, messages, agents (api.md §15.3-15.6, realtime.md §2.1).

Shared by http/ (reads) and actions/ (event payloads), so REST and WebSocket shapes never drift.
Key order follows the reference's column order; absent computed keys stay absent (api.md §0.2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentim.protocol.gateway import json_value
from agentim.store.agents import json_list

Row = Mapping[str, Any]


def omit_nulls(obj: Mapping[str, Any], *, keep: Iterable[str] = ()) -> dict[str, Any]:
    """The object for a server frame: top-level null values left out, except for `keep`.

    REST answers carry the database's nulls, as AgentIM's do; but today's web client validates
    every frame and drops one with a null where its schema has an optional field (head-gap E15),
    so frames leave such fields out instead. `keep` names the fields that schema allows null.
    """
    kept = set(keep)
    return {key: value for key, value in obj.items() if value is not None or key in kept}


ROOM_NULLABLE = ("routerId", "pinnedAt", "archivedAt")  # null is valid there in a room frame


def room_frame_json(room: Row, members: Iterable[Row]) -> dict[str, Any]:
    """`server:room_update`: the room and its members, absent optional fields left out."""
    return {
        "type": "server:room_update",
        "room": omit_nulls(room_json(room), keep=ROOM_NULLABLE),
        "members": [omit_nulls(member_json(m)) for m in members],
    }


def room_json(row: Row) -> dict[str, Any]:
    """The bare room object (15.3), as REST returns it and `server:room_update` carries it."""
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "broadcastMode": row["broadcast_mode"],
        "systemPrompt": row["system_prompt"],
        "routerId": row["router_id"],
        "agentCommandRole": row["agent_command_role"],
        "createdById": row["created_by_id"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def room_list_json(row: Row) -> dict[str, Any]:
    """A GET /api/rooms entry: the room plus the caller's pin and archive state."""
    return {**room_json(row), "pinnedAt": row["pinned_at"], "archivedAt": row["archived_at"]}


def member_json(row: Row) -> dict[str, Any]:
    """A room member row (15.4) plus `displayName` (A20) when the row carries a name.

    The name is the user's display name or the agent's name (store.rooms.list_members joins
    it); a member whose user or agent row is gone has none, and the key is left out.
    """
    member = {
        "roomId": row["room_id"],
        "memberId": row["member_id"],
        "memberType": row["member_type"],
        "role": row["role"],
        "roleDescription": row["role_description"],
        "notificationPref": row["notification_pref"],
        "pinnedAt": row["pinned_at"],
        "archivedAt": row["archived_at"],
        "lastReadAt": row["last_read_at"],
        "joinedAt": row["joined_at"],
    }
    name = row.get("display_name")
    if name is not None:
        member["displayName"] = name
    return member


def parse_mentions_text(text: str | None) -> list[Any]:
    """The stored mentions JSON; invalid or non-array text gives []."""
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _parse_chunks(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def message_json(
    row: Row,
    *,
    attachments: Sequence[Row] = (),
    reactions: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The REST message object (15.5); also `server:message_edited`'s message.

    `chunks` is left out when NULL or unparsable; `attachments` and `reactions` only when given
    and non-empty (list and search results).
    """
    message: dict[str, Any] = {
        "id": row["id"],
        "roomId": row["room_id"],
        "senderId": row["sender_id"],
        "senderType": row["sender_type"],
        "senderName": row["sender_name"],
        "type": row["type"],
        "content": row["content"],
        "replyToId": row["reply_to_id"],
        "mentions": parse_mentions_text(row["mentions"]),
    }
    chunks = _parse_chunks(row["chunks"])
    if chunks is not None:
        message["chunks"] = chunks
    metadata = _parse_chunks(row.get("metadata"))  # {targetAgentName} of an agent's reply
    if isinstance(metadata, dict) and metadata:
        message["metadata"] = metadata
    message["createdAt"] = row["created_at"]
    message["updatedAt"] = row["updated_at"]
    if attachments:
        message["attachments"] = [attachment_json(a) for a in attachments]
    if reactions:
        message["reactions"] = list(reactions)
    return message


def new_message_json(
    *, message_id: str, room_id: str, sender_id: str, sender_name: str, content: str,
    reply_to_id: str | None, mentions: list[str], attachments: Sequence[Row], created_at: str,
) -> dict[str, Any]:  # fmt: skip
    """`server:new_message`'s user message (realtime.md §2.3): replyToId omitted when absent,
    attachments only when at least one was linked, no reactions/updatedAt/chunks."""
    message: dict[str, Any] = {
        "id": message_id,
        "roomId": room_id,
        "senderId": sender_id,
        "senderType": "user",
        "senderName": sender_name,
        "type": "text",
        "content": content,
    }
    if reply_to_id is not None:
        message["replyToId"] = reply_to_id
    message["mentions"] = mentions
    if attachments:
        message["attachments"] = [attachment_json(a) for a in attachments]
    message["createdAt"] = created_at
    return message


def attachment_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "messageId": row["message_id"],
        "filename": row["filename"],
        "mimeType": row["mime_type"],
        "size": row["size"],
        "url": row["url"],
    }


def reactions_json(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Group reaction rows (emoji, user_id, username) by emoji, in row order."""
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = grouped.setdefault(row["emoji"], {"emoji": row["emoji"], "userIds": [],
                                                  "usernames": []})  # fmt: skip
        entry["userIds"].append(row["user_id"])
        entry["usernames"].append(row["username"])
    return list(grouped.values())


def edit_json(row: Row) -> dict[str, Any]:
    """One GET /api/messages/:id/history record."""
    return {
        "id": row["id"],
        "messageId": row["message_id"],
        "previousContent": row["previous_content"],
        "editedAt": row["edited_at"],
    }


def agent_json(row: Row) -> dict[str, Any]:
    """The enriched agent (api.md §9, §15.6); absent computed keys stay absent."""
    agent: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "type": row["type"], "status": row["status"],
        "visibility": row["visibility"], "visibilityList": json_list(row["visibility_list"]),
        "gatewayId": row["gateway_id"], "workingDirectory": row["working_directory"],
    }  # fmt: skip
    capabilities = _parsed(row["capabilities"])
    if capabilities is not None:
        agent["capabilities"] = capabilities
    agent["connectionType"] = row["connection_type"]
    for key, value in (
        ("slashCommands", json_value(row["slash_commands"])),
        ("mcpServers", json_value(row["mcp_servers"])),
        ("model", row["model"]),
    ):
        if value is not None:
            agent[key] = value
    agent.update(
        lastSeenAt=row["last_seen_at"], createdAt=row["created_at"], updatedAt=row["updated_at"],
    )  # fmt: skip
    if row["gw_id"] is not None:
        agent["deviceInfo"] = {
            "hostname": row["hostname"] or "", "platform": row["platform"] or "",
            "arch": row["arch"] or "", "nodeVersion": row["node_version"] or "",
        }  # fmt: skip
    return agent


def _parsed(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None

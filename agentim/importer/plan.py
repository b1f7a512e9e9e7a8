"""What is copied, in which order, and how one AgentIM row becomes one hub row. Pure.

Column kinds say how the source stores a value, whatever schema version it has:
  * `ts`: text ISO-8601 (728c8f5) or timestamptz (631a1ad); the hub stores the ISO text
    `YYYY-MM-DDTHH:MM:SS.mmmZ` (protocol/timefmt.py), so source.py formats timestamptz that way;
  * `json`: JSON in text (728c8f5) or jsonb (631a1ad); read as JSON text, written as it comes
    (the hub's column is text or jsonb, PostgreSQL parses the text for jsonb);
  * `text`, `int`, `bool`: the same type in both versions.
A column the source does not have (an older schema) takes `default`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

Kind = Literal["text", "int", "bool", "ts", "json"]
# How a column refers to users: `id` holds one user id (or, for polymorphic columns, perhaps an
# agent id, which no user id equals), `ids` a JSON array of user ids.
UserRef = Literal["id", "ids"] | None
Value = Any
Row = tuple[Value, ...]

AGENT_TYPES: Final = frozenset({"claude-code", "codex", "gemini", "generic"})
NO_PASSWORD: Final = "!"  # not a bcrypt or argon2 hash: no password ever verifies against it


@attrs.frozen
class Column:
    name: str
    kind: Kind = "text"
    default: Value = None
    users: UserRef = None


@attrs.frozen
class Table:
    hub: str  # table name in the hub
    source: str  # table name in AgentIM
    columns: tuple[Column, ...]
    # column names the source must have (else the table is not AgentIM's, or too old)
    required: frozenset[str] = frozenset({"id"})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _c(name: str, kind: Kind = "text", default: Value = None, users: UserRef = None) -> Column:
    return Column(name, kind, default, users)


# Parents before children, so every foreign key finds its row.
TABLES: Final = (
    Table("users", "users", (
        _c("id"), _c("username"), _c("password_hash"), _c("display_name"), _c("avatar_url"),
        _c("role", default="user"), _c("failed_login_attempts", "int", 0),
        _c("locked_until", "ts"), _c("max_ws_connections", "int"), _c("max_gateways", "int"),
        _c("created_at", "ts"), _c("updated_at", "ts"),
    ), frozenset({"id", "username", "password_hash"})),
    Table("gateways", "gateways", (
        _c("id"), _c("user_id", users="id"), _c("name"), _c("hostname"), _c("platform"),
        _c("arch"), _c("node_version"), _c("connected_at", "ts"), _c("disconnected_at", "ts"),
        _c("ephemeral", "bool", False), _c("created_at", "ts"),
    )),
    Table("routers", "routers", (
        _c("id"), _c("name"), _c("description"), _c("scope", default="personal"),
        _c("created_by_id", users="id"), _c("llm_base_url"), _c("llm_api_key"), _c("llm_model"),
        _c("max_chain_depth", "int", 5), _c("rate_limit_window", "int", 60),
        _c("rate_limit_max", "int", 20), _c("visibility", default="all"),
        _c("visibility_list", "json", "[]", users="ids"),
        _c("created_at", "ts"), _c("updated_at", "ts"),
    )),
    Table("agents", "agents", (
        _c("id"), _c("name"), _c("type"), _c("status", default="offline"),
        _c("visibility", default="private"), _c("visibility_list", "json", "[]", users="ids"),
        _c("gateway_id"), _c("working_directory"), _c("capabilities", "json"),
        _c("connection_type", default="cli"), _c("slash_commands", "json"),
        _c("mcp_servers", "json"), _c("model"), _c("last_seen_at", "ts"),
        _c("created_at", "ts"), _c("updated_at", "ts"),
    )),
    Table("rooms", "rooms", (
        _c("id"), _c("name"), _c("type", default="group"),
        _c("broadcast_mode", "bool", False), _c("system_prompt"), _c("router_id"),
        _c("agent_command_role", default="member"), _c("created_by_id", users="id"),
        _c("created_at", "ts"), _c("updated_at", "ts"),
    )),
    Table("room_members", "room_members", (
        _c("room_id"), _c("member_id", users="id"), _c("member_type"),
        _c("role", default="member"), _c("role_description"),
        _c("notification_pref", default="all"), _c("pinned_at", "ts"),
        _c("archived_at", "ts"), _c("last_read_at", "ts"), _c("joined_at", "ts"),
    ), frozenset({"room_id", "member_id"})),
    Table("messages", "messages", (
        _c("id"), _c("room_id"), _c("sender_id", users="id"), _c("sender_type"),
        _c("sender_name"), _c("type", default="text"), _c("content"), _c("reply_to_id"),
        _c("mentions", "json", "[]"), _c("chunks", "json"),
        _c("created_at", "ts"), _c("updated_at", "ts"),
    )),
    Table("message_attachments", "message_attachments", (
        _c("id"), _c("message_id"), _c("filename"), _c("mime_type"), _c("size", "int"),
        _c("url"), _c("uploaded_by", users="id"), _c("created_at", "ts"),
    )),
    Table("message_reactions", "message_reactions", (
        _c("message_id"), _c("user_id", users="id"), _c("emoji"), _c("created_at", "ts"),
    ), frozenset({"message_id", "user_id", "emoji"})),
    Table("message_edits", "message_edits", (
        _c("id"), _c("message_id"), _c("previous_content"), _c("edited_at", "ts"),
    )),
    Table("tasks", "tasks", (
        _c("id"), _c("room_id"), _c("title"), _c("description", default=""),
        _c("status", default="pending"), _c("result"), _c("due_date", "ts"),
        _c("assignee_id", users="id"), _c("assignee_type"), _c("created_by_id", users="id"),
        _c("created_at", "ts"), _c("updated_at", "ts"),
    )),
    Table("audit_log", "audit_logs", (
        _c("id"), _c("user_id", users="id"), _c("action"), _c("target_id"),
        _c("target_type"), _c("metadata", "json"), _c("ip_address"), _c("created_at", "ts"),
    )),
)  # fmt: skip

TABLE_NAMES: Final = tuple(table.hub for table in TABLES)


def by_hub_name(name: str) -> Table:
    return next(table for table in TABLES if table.hub == name)


@attrs.frozen
class Fixups:
    """What changes between an AgentIM row and the hub row, decided once per import.

    `user_ids` maps an AgentIM user id to the hub's id of the account with the same username
    (an account the hub already has: its own seeded admin, say); `seal_secret` turns a router's
    stored API key into the form this hub stores (identity when nothing needs re-encrypting).
    """

    user_ids: Mapping[str, str] = attrs.field(factory=dict)
    seal_secret: Callable[[str], str] = attrs.field(default=lambda stored: stored)


def _remap_ids(text: str | None, user_ids: Mapping[str, str]) -> str | None:
    if text is None or not user_ids:
        return text
    try:
        ids = json.loads(text)
    except ValueError:
        return text
    if not isinstance(ids, list):
        return text
    return json.dumps([user_ids.get(item, item) if isinstance(item, str) else item for item in ids])


def _value(column: Column, value: Value, fixups: Fixups) -> Value:
    if column.users == "id" and isinstance(value, str):
        return fixups.user_ids.get(value, value)
    if column.users == "ids":
        return _remap_ids(value, fixups.user_ids)
    return value


def convert(table: Table, row: Sequence[Value], fixups: Fixups) -> Row:
    """The hub row for one AgentIM row (values in `table.columns` order)."""
    values = {c.name: _value(c, v, fixups) for c, v in zip(table.columns, row, strict=True)}
    _FIXES.get(table.hub, _keep)(values, fixups)
    return tuple(values[name] for name in table.names)


def _keep(values: dict[str, Value], fixups: Fixups) -> None:
    pass


def _fix_user(values: dict[str, Value], fixups: Fixups) -> None:
    if not values["password_hash"]:  # 631a1ad: OAuth-only accounts have none
        values["password_hash"] = NO_PASSWORD


def _fix_agent(values: dict[str, Value], fixups: Fixups) -> None:
    # As migration 0005 does for rows already in a hub database.
    if values["visibility"] == "shared":
        values["visibility"] = "all"
    if values["type"] not in AGENT_TYPES:
        values["type"] = "generic"
    values["status"] = "offline"  # no gateway of the hub has announced it yet


def _fix_router(values: dict[str, Value], fixups: Fixups) -> None:
    values["llm_api_key"] = fixups.seal_secret(values["llm_api_key"])


_FIXES: Final[dict[str, Callable[[dict[str, Value], Fixups], None]]] = {
    "users": _fix_user,
    "agents": _fix_agent,
    "routers": _fix_router,
}


def upload_name(url: str | None) -> str | None:
    """The file name behind an `/uploads/<name>` URL, when it is a plain name in that folder."""
    prefix = "/uploads/"
    if not url or not url.startswith(prefix):
        return None
    name = url[len(prefix) :].split("?", 1)[0]
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        return None
    return name

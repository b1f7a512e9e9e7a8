"""SQL for the AI-router configs (`routers` table, api.md §10): visibility and room assignment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentim.store.db import Conn
from agentim.store.updates import update_columns


def is_router_visible(router: Mapping[str, Any], user_id: str) -> bool:
    """api.md §10.2 `isRouterVisibleToUser` (admins bypass it; callers check that first)."""
    if router["scope"] == "personal":
        return bool(router["created_by_id"] == user_id)
    if router["scope"] != "global":
        return False
    visibility = router["visibility"]
    if visibility == "all":
        return True
    listed = user_id in _visibility_list(router["visibility_list"])
    if visibility == "whitelist":
        return listed
    return visibility == "blacklist" and not listed


def _visibility_list(text: str | None) -> list[Any]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


async def access_router_for_room(conn: Conn, router_id: str, user_id: str) -> str | None:
    """api.md §6.11: may this user attach this router to a room?

    Returns:
        None when allowed, else the error text: `Router not found` (404), `User not found`
        (404) or `Router not accessible` (403).
    """
    row = await conn.fetchrow(
        "SELECT r.id AS router_id, r.scope, r.created_by_id, r.visibility, r.visibility_list, "
        "(SELECT role FROM users WHERE id = $2) AS role FROM (SELECT 1) one "
        "LEFT JOIN routers r ON r.id = $1",
        router_id, user_id,
    )  # fmt: skip
    if row is None or row["router_id"] is None:
        return "Router not found"
    if row["role"] is None:
        return "User not found"
    if row["role"] == "admin" or is_router_visible(row, user_id):
        return None
    return "Router not accessible"


# Columns an update may set; the names are interpolated into SQL, so only these are allowed.
UPDATABLE_COLUMNS = frozenset(
    {"name", "description", "llm_base_url", "llm_api_key", "llm_model", "max_chain_depth",
     "rate_limit_window", "rate_limit_max", "visibility", "visibility_list"}
)  # fmt: skip
LIST_CAP = 500  # api.md §2.12: hard cap per query


def parse_visibility_list(text: str | None) -> list[Any]:
    """`visibility_list` as the wire shows it: the JSON array, or [] when unreadable."""
    return _visibility_list(text)


async def get_router(conn: Conn, router_id: str) -> Mapping[str, Any] | None:
    return await conn.fetchrow("SELECT * FROM routers WHERE id = $1", router_id)


async def list_routers(conn: Conn) -> list[Mapping[str, Any]]:
    """Every router (the admin list), oldest first."""
    return await conn.fetch("SELECT * FROM routers ORDER BY created_at, id LIMIT $1", LIST_CAP)


async def list_scope_routers(
    conn: Conn, scope: str, *, created_by_id: str | None = None
) -> list[Mapping[str, Any]]:
    """Routers of one scope, optionally of one creator, oldest first."""
    return await conn.fetch(
        "SELECT * FROM routers WHERE scope = $1 AND ($2::text IS NULL OR created_by_id = $2) "
        "ORDER BY created_at, id LIMIT $3",
        scope, created_by_id, LIST_CAP,
    )  # fmt: skip


async def insert_router(
    conn: Conn, *, router_id: str, name: str, description: str | None, scope: str,
    created_by_id: str, llm_base_url: str, llm_api_key: str, llm_model: str,
    max_chain_depth: int, rate_limit_window: int, rate_limit_max: int, visibility: str,
    visibility_list: str, now: str,
) -> Mapping[str, Any]:  # fmt: skip
    row = await conn.fetchrow(
        "INSERT INTO routers (id, name, description, scope, created_by_id, llm_base_url, "
        "llm_api_key, llm_model, max_chain_depth, rate_limit_window, rate_limit_max, "
        "visibility, visibility_list, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING *",
        router_id, name, description, scope, created_by_id, llm_base_url, llm_api_key, llm_model,
        max_chain_depth, rate_limit_window, rate_limit_max, visibility, visibility_list, now,
    )  # fmt: skip
    assert row is not None  # INSERT … RETURNING always yields the row
    return row


async def update_router(
    conn: Conn, router_id: str, changes: Mapping[str, Any], now: str
) -> Mapping[str, Any] | None:
    """Set `changes` (column → value, from UPDATABLE_COLUMNS) and `updated_at`.

    Returns:
        The updated row, or None when the router no longer exists.
    """
    return await update_columns(
        conn, "routers", router_id, changes, updatable=UPDATABLE_COLUMNS, now=now
    )


async def delete_router(conn: Conn, router_id: str) -> bool:
    """Delete one router; the FK sets `rooms.router_id` to NULL. False if it was gone."""
    status = await conn.execute("DELETE FROM routers WHERE id = $1", router_id)
    return status.endswith(" 1")


async def get_room_router(conn: Conn, room_id: str) -> Mapping[str, Any] | None:
    """The router a room routes with (realtime.md §3.4 lookup), or None.

    A personal router counts only in rooms created by its own creator.
    """
    return await conn.fetchrow(
        "SELECT r.* FROM rooms m JOIN routers r ON r.id = m.router_id WHERE m.id = $1 "
        "AND (r.scope <> 'personal' OR r.created_by_id = m.created_by_id)",
        room_id,
    )


async def lock_creator_names(conn: Conn, created_by_id: str) -> None:
    """Serialise name checks of one creator's routers until the transaction ends (A31)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"routers:{created_by_id}")


async def router_name_taken(
    conn: Conn, *, created_by_id: str, name: str, except_id: str | None = None
) -> bool:
    """Does this creator already have a router of that name (another one than `except_id`)?"""
    found = await conn.fetchval(
        "SELECT 1 FROM routers WHERE created_by_id = $1 AND name = $2 "
        "AND id IS DISTINCT FROM $3 LIMIT 1",
        created_by_id, name, except_id,
    )  # fmt: skip
    return found is not None

"""Bench fixtures written straight to PostgreSQL: users, one room with all of them, tokens; and
their removal after the run (with the room go its messages, with the users their agents), so
repeated runs do not grow the database under the next one."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from agentim.auth.tokens import TokenService
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.store.bridge import open_bridge
from agentim.store.db import open_database
from agentim.store.schema import apply_migrations

TOKEN_TTL_S = 3600
REMOVE_TIMEOUT_S = 60  # deleting a run's rows (a full-speed run leaves ~75,000 messages)


@attrs.frozen
class Cast:
    room_id: str
    user_ids: list[str]
    tokens: list[str]


async def create_cast(database_url: str, jwt_secret: str, *, users: int) -> Cast:
    """`users` fresh users (bench_<run>_<n>) in one new room; an access token for each."""
    run, now = secrets.token_hex(3), iso_now()
    ids = [new_id() for _ in range(users)]
    names = [f"bench_{run}_{n}" for n in range(users)]
    room_id = new_id()
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        await apply_migrations(db)  # a fresh bench database works too
        async with db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO users (id, username, password_hash, display_name, role, created_at, "
                "updated_at) VALUES ($1, $2, '!', $2, 'user', $3, $3)",
                [(uid, name, now) for uid, name in zip(ids, names, strict=True)],
            )
            await tx.execute(
                "INSERT INTO rooms (id, name, type, broadcast_mode, created_by_id, created_at, "
                "updated_at) VALUES ($1, $2, 'group', false, $3, $4, $4)",
                room_id, f"bench {run}", ids[0], now,
            )  # fmt: skip
            await tx.executemany(
                "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
                "VALUES ($1, $2, 'user', $3, $4)",
                [(room_id, uid, "owner" if n == 0 else "member", now) for n, uid in enumerate(ids)],
            )
    tokens = TokenService(jwt_secret, None, TOKEN_TTL_S, TOKEN_TTL_S)
    return Cast(
        room_id,
        ids,
        [tokens.issue(uid, name, "access") for uid, name in zip(ids, names, strict=True)],
    )


@asynccontextmanager
async def cast_for(args: Any, *, users: int) -> AsyncIterator[Cast]:
    """The run's users and room: through the REST API with --api-admin, else in PostgreSQL."""
    if args.api_admin:
        from bench.api_setup import admin_credentials, api_cast  # httpx only when asked

        async with api_cast(args.url[0], admin_credentials(args.api_admin), users=users) as cast:
            yield cast
    else:
        async with bench_cast(args.database_url, args.jwt_secret, users=users) as cast:
            yield cast


@asynccontextmanager
async def bench_cast(database_url: str, jwt_secret: str, *, users: int) -> AsyncIterator[Cast]:
    """`create_cast` for the run, `remove_cast` after it (also when it fails)."""
    cast = await create_cast(database_url, jwt_secret, users=users)
    try:
        yield cast
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(REMOVE_TIMEOUT_S):
            await remove_cast(database_url, cast)


async def remove_cast(database_url: str, cast: Cast) -> None:
    """Delete the run's users; the room, its members and messages and the users' agents follow
    by cascade."""
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        await db.execute("DELETE FROM users WHERE id = ANY($1::text[])", cast.user_ids)

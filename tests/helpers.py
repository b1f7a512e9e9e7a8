"""Test helpers: a handle on the running hub, users, logins, auth headers."""

from __future__ import annotations

import secrets
from typing import Any

import attrs
import httpx
import trio

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import users

DEFAULT_PASSWORD = "Passw0rdX"


@attrs.frozen
class RunningHub:
    url: str
    services: Services
    shutdown: trio.Event

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@attrs.frozen
class User:
    id: str
    username: str
    password: str
    token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


async def create_user(
    hub: RunningHub,
    username: str | None = None,
    *,
    password: str = DEFAULT_PASSWORD,
    role: str = "user",
    display_name: str | None = None,
) -> User:
    """Insert a user row directly (no login)."""
    username = username or unique_name()
    digest = await hub.services.passwords.hash(password)
    user_id = new_id()
    await users.insert_user(
        hub.services.db,
        user_id=user_id,
        username=username,
        password_hash=digest,
        display_name=display_name or username,
        role=role,
        now=iso_now(),
    )
    return User(user_id, username, password)


def issue_token(hub: RunningHub, user: User) -> User:
    """An access token minted by the hub's own TokenService (for tests that skip login)."""
    token = hub.services.tokens.issue(user.id, user.username, "access")
    return attrs.evolve(user, token=token)


async def signed_in_user(hub: RunningHub, **kwargs: Any) -> User:
    return issue_token(hub, await create_user(hub, **kwargs))


async def login(client: httpx.AsyncClient, user: User) -> User:
    response = await client.post(
        "/api/auth/login", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return attrs.evolve(user, token=data["accessToken"], refresh_token=data["refreshToken"])


async def create_room(
    hub: RunningHub,
    owner: User,
    *,
    members: tuple[User, ...] = (),
    name: str = "room",
    broadcast: bool = False,
) -> str:
    """Insert a room with its owner and members directly (tests that do not test rooms)."""
    room_id, now = new_id(), iso_now()
    async with hub.services.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO rooms (id, name, type, broadcast_mode, created_by_id, created_at, "
            "updated_at) VALUES ($1, $2, 'group', $3, $4, $5, $5)",
            room_id,
            name,
            broadcast,
            owner.id,
            now,
        )
        for user, role in ((owner, "owner"), *((m, "member") for m in members)):
            await tx.execute(
                "INSERT INTO room_members (room_id, member_id, member_type, role, last_read_at, "
                "joined_at) VALUES ($1, $2, 'user', $3, $4, $4)",
                room_id,
                user.id,
                role,
                now,
            )
    return room_id

"""Bench fixtures made through the public REST API, so one command measures any
AgentIM-compatible server (ours, AgentIM's Node server, another implementation).

An administrator account (`--api-admin USER:PASSWORD`) creates the run's users, each user signs
in once for its access token, the first user creates the room with the others as members, and
after the run the administrator deletes the users (their room, messages and agents follow).

Signing in is limited per client address (20 a minute on AgentIM). Each bench user signs in
with its own `X-Forwarded-For` address: start the server with `TRUST_PROXY=true` and the
logins are not limited; without it, logins past the limit wait for the next minute.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import httpx
import trio

from bench.setup import Cast

PASSWORD: Final = "Bench-Pass-1"  # meets AgentIM's password policy
ROOM_MEMBER_BATCH: Final = 100  # memberIds per room creation (the API's bound)
CALL_TIMEOUT_S: Final = 30.0
LIMITED_WAIT_S: Final = 61.0  # a 429 on login: the per-minute window has turned by then
PARALLEL: Final = 8  # API calls in flight while setting up


class ApiError(RuntimeError):
    pass


def _data(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise ApiError(f"{response.request.method} {response.request.url.path}: "
                       f"{response.status_code} {response.text[:200]}")  # fmt: skip
    return response.json().get("data") if response.content else None


async def _login(http: httpx.AsyncClient, username: str, password: str, n: int) -> Any:
    forwarded = {"X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}
    while True:
        response = await http.post(
            "/api/auth/login", json={"username": username, "password": password},
            headers=forwarded,
        )  # fmt: skip
        if response.status_code != 429:
            return _data(response)
        await trio.sleep(LIMITED_WAIT_S)


def admin_credentials(value: str) -> tuple[str, str]:
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise ValueError("--api-admin takes USER:PASSWORD")
    return username, password


async def create_api_cast(url: str, admin: tuple[str, str], *, users: int) -> Cast:
    """`users` new users (bench_<run>_<n>) in one new room, through the REST API."""
    run = secrets.token_hex(3)
    names = [f"bench_{run}_{n}" for n in range(users)]
    async with httpx.AsyncClient(base_url=url, timeout=CALL_TIMEOUT_S) as http:
        admin_token = (await _login(http, *admin, n=0))["accessToken"]
        as_admin = {"Authorization": f"Bearer {admin_token}"}
        ids: list[str] = [""] * users
        tokens: list[str] = [""] * users
        limiter = trio.CapacityLimiter(PARALLEL)

        async def make(n: int) -> None:
            async with limiter:
                body = {"username": names[n], "password": PASSWORD, "role": "user"}
                created = _data(await http.post("/api/users", json=body, headers=as_admin))
                ids[n] = created["id"]
                tokens[n] = (await _login(http, names[n], PASSWORD, n + 1))["accessToken"]

        async with trio.open_nursery() as nursery:
            for n in range(users):
                nursery.start_soon(make, n)
        room_id = await _create_room(http, run, ids, tokens[0])
    return Cast(room_id, ids, tokens)


async def _create_room(http: httpx.AsyncClient, run: str, ids: list[str], token: str) -> str:
    owner = {"Authorization": f"Bearer {token}"}
    first, rest = ids[1 : 1 + ROOM_MEMBER_BATCH], ids[1 + ROOM_MEMBER_BATCH :]
    body = {"name": f"bench {run}", "type": "group", "memberIds": first}
    room_id: str = _data(await http.post("/api/rooms", json=body, headers=owner))["id"]
    for member_id in rest:
        await add_members(http, room_id, token, [member_id], member_type="user")
    return room_id


async def add_members(
    http: httpx.AsyncClient, room_id: str, token: str, member_ids: Sequence[str], *,
    member_type: str,
) -> None:  # fmt: skip
    owner = {"Authorization": f"Bearer {token}"}
    for member_id in member_ids:
        body = {"memberId": member_id, "memberType": member_type}
        _data(await http.post(f"/api/rooms/{room_id}/members", json=body, headers=owner))


async def add_agents_via_api(url: str, cast: Cast, agent_ids: Sequence[str]) -> None:
    """The room owner (the cast's first user, who also owns the bench gateway) adds them."""
    async with httpx.AsyncClient(base_url=url, timeout=CALL_TIMEOUT_S) as http:
        await add_members(http, cast.room_id, cast.tokens[0], agent_ids, member_type="agent")


async def remove_api_cast(url: str, admin: tuple[str, str], cast: Cast) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=CALL_TIMEOUT_S) as http:
        admin_token = (await _login(http, *admin, n=0))["accessToken"]
        as_admin = {"Authorization": f"Bearer {admin_token}"}
        for user_id in cast.user_ids:
            response = await http.delete(f"/api/users/{user_id}", headers=as_admin)
            if response.status_code not in (200, 404):
                _data(response)


@asynccontextmanager
async def api_cast(url: str, admin: tuple[str, str], *, users: int) -> AsyncIterator[Cast]:
    cast = await create_api_cast(url, admin, users=users)
    try:
        yield cast
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(CALL_TIMEOUT_S * 4):
            await remove_api_cast(url, admin, cast)

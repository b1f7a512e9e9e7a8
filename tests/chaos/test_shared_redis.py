"""Issue 15 (9): separate hubs on one Redis server, on other databases or key prefixes, never
see each other's events (here they even share one PostgreSQL, so a stray event would reach a
socket of the other hub)."""

from __future__ import annotations

import secrets
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.chaos.conftest import RedisServer
from tests.e2e.conftest import SpawnHub, start_hub_process
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import Client, connect

MESSAGES = 5
QUIET_S = 1.0  # how long the other hub's socket is watched for a stray frame


@pytest.fixture
def on_own_redis(nursery: trio.Nursery, database_url: str, tmp_path: Path) -> SpawnHub:
    """Hub children on the run's PostgreSQL database; REDIS_URL (and prefix) given per child."""
    return partial(start_hub_process, nursery, tmp_path, {"DATABASE_URL": database_url})


async def _crosses(hub: RunningHub, here: str, there: str) -> list[str]:
    """A message sent on `here`: what a member joined on `there` receives of it."""
    sender, watcher = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, sender, members=(watcher,))
    async with connect(here) as s, connect(there) as w:
        for client, user in ((s, sender), (w, watcher)):
            assert (await client.auth(user))["ok"] is True
            await client.join(room_id)
        for n in range(MESSAGES):
            await s.send({"type": "client:send_message", "roomId": room_id, "content": f"{n}"})
        for n in range(MESSAGES):  # the sender's own hub delivers them
            assert (await s.receive_type("server:new_message"))["message"]["content"] == f"{n}"
        return await _stray(w)


async def _stray(client: Client) -> list[str]:
    found: list[str] = []
    with trio.move_on_after(QUIET_S):
        while True:
            frame = await client.receive()
            if frame["type"] == "server:new_message":
                found.append(frame["message"]["content"])
    return found


async def test_hubs_on_two_databases_of_one_redis_server_do_not_cross_talk(
    hub: RunningHub, on_own_redis: SpawnHub, own_redis: RedisServer
) -> None:
    base = own_redis.url.rsplit("/", 1)[0]
    with trio.fail_after(60):
        one = await on_own_redis(REDIS_URL=f"{base}/1")
        two = await on_own_redis(REDIS_URL=f"{base}/2")
        assert await _crosses(hub, one.ws_url, two.ws_url) == []
        assert await _crosses(hub, two.ws_url, one.ws_url) == []


async def test_hubs_with_two_key_prefixes_on_one_database_do_not_cross_talk(
    hub: RunningHub, on_own_redis: SpawnHub, own_redis: RedisServer
) -> None:
    with trio.fail_after(60):
        one = await on_own_redis(
            REDIS_URL=own_redis.url, REDIS_KEY_PREFIX=f"a{secrets.token_hex(3)}:"
        )
        two = await on_own_redis(
            REDIS_URL=own_redis.url, REDIS_KEY_PREFIX=f"b{secrets.token_hex(3)}:"
        )
        assert await _crosses(hub, one.ws_url, two.ws_url) == []
        assert await _crosses(hub, two.ws_url, one.ws_url) == []


async def test_two_processes_of_one_hub_on_database_1_do_talk(
    hub: RunningHub, on_own_redis: SpawnHub, own_redis: RedisServer
) -> None:
    """The control: the same check sees events cross between processes of one hub."""
    base = own_redis.url.rsplit("/", 1)[0]
    with trio.fail_after(60):
        one = await on_own_redis(REDIS_URL=f"{base}/1")
        two = await on_own_redis(REDIS_URL=f"{base}/1")
        assert await _crosses(hub, one.ws_url, two.ws_url) == [f"{n}" for n in range(MESSAGES)]

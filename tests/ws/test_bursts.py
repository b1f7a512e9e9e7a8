"""Frames that arrive together: a run of client:send_message frames is stored as one burst.

The burst goes out in one TCP write, so the hub reads every frame at once; each message must
still be stored, answered and broadcast on its own and in order.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from bench.wsclient import Socket, client_frame
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import signed_in

RECEIVE_TIMEOUT_S = 10.0


async def _raw_client(hub: RunningHub, user: User, room_id: str) -> Socket:
    sock = await Socket.connect(hub.url)
    await sock.send({"type": "client:auth", "token": user.token})
    while (await sock.next_json())["type"] != "server:auth_result":
        pass
    await sock.send({"type": "client:join_room", "roomId": room_id})
    await sock.send({"type": "client:ping", "ts": 1})
    while (await sock.next_json())["type"] != "server:pong":
        pass
    return sock


def _burst(*frames: dict[str, Any]) -> bytes:
    return b"".join(client_frame(json.dumps(f)) for f in frames)


def _send(room_id: str, content: str) -> dict[str, Any]:
    return {"type": "client:send_message", "roomId": room_id, "content": content}


async def _frames(sock: Socket, count: int, *types: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with trio.fail_after(RECEIVE_TIMEOUT_S):
        while len(found) < count:
            frame = await sock.next_json()
            if frame["type"] in types:
                found.append(frame)
    return found


async def _room_contents(hub: RunningHub, room_id: str) -> list[str]:
    rows = await hub.services.db.fetch(
        "SELECT content FROM messages WHERE room_id = $1 ORDER BY created_at, content", room_id
    )
    return [row["content"] for row in rows]


async def test_a_burst_is_stored_and_broadcast_in_order_once(hub: RunningHub) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    contents = [f"m{n:02d}" for n in range(12)]
    async with signed_in(hub, bob) as b:
        await b.join(room_id)
        sender = await _raw_client(hub, alice, room_id)
        await sender.send_raw(_burst(*(_send(room_id, c) for c in contents)))
        echoes = await _frames(sender, len(contents), "server:new_message", "server:error")
        seen = [(await b.receive_type("server:new_message"))["message"] for _ in contents]
        await b.nothing()
        await sender.aclose()
    assert [f["message"]["content"] for f in echoes] == contents
    assert [m["content"] for m in seen] == contents
    assert len({m["id"] for m in seen}) == len(contents)
    assert all(m["senderId"] == alice.id and m["mentions"] == [] for m in seen)
    assert sorted(await _room_contents(hub, room_id)) == contents


async def test_each_message_of_a_burst_gets_its_own_answer(hub: RunningHub) -> None:
    alice, bob, carol = [await signed_in_user(hub) for _ in range(3)]
    room_id = await create_room(hub, alice, members=(bob,))
    foreign = await create_room(hub, carol)
    async with signed_in(hub, bob) as b:
        await b.join(room_id)
        sender = await _raw_client(hub, alice, room_id)
        await sender.send_raw(_burst(
            _send(room_id, "first"), _send(foreign, "not mine"), _send("no-such-room", "lost"),
            {"type": "client:send_message", "roomId": room_id},  # no content
            _send(room_id, "last"),
        ))  # fmt: skip
        answers = await _frames(sender, 5, "server:new_message", "server:error")
        assert [(await b.receive_type("server:new_message"))["message"]["content"]
                for _ in range(2)] == ["first", "last"]  # fmt: skip
        await sender.aclose()
    # echoes come through the hub's pub/sub, errors straight back: each kind keeps its order
    assert [a["message"]["content"] for a in answers if a["type"] == "server:new_message"] == [
        "first",
        "last",
    ]
    assert [a["code"] for a in answers if a["type"] == "server:error"] == [
        "NOT_A_MEMBER", "ROOM_NOT_FOUND", "INVALID_MESSAGE",
    ]  # fmt: skip
    assert await _room_contents(hub, room_id) == ["first", "last"]
    assert await _room_contents(hub, foreign) == []


async def test_the_rate_limit_counts_every_message_of_a_burst(hub: RunningHub) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    limit = hub.services.settings.client_rate_limit_max
    sender = await _raw_client(hub, alice, room_id)
    await sender.send_raw(_burst(*(_send(room_id, f"n{n:03d}") for n in range(limit + 5))))
    answers = await _frames(sender, limit + 5, "server:new_message", "server:error")
    await sender.aclose()
    allowed = limit - 1  # the join counted too (pings do not: realtime.md §1.5)
    stored = [a["message"]["content"] for a in answers if a["type"] == "server:new_message"]
    assert stored == [f"n{n:03d}" for n in range(allowed)]  # the first ones, in order
    errors = [a["code"] for a in answers if a["type"] == "server:error"]
    assert errors == ["RATE_LIMITED"] * (limit + 5 - allowed)
    assert len(await _room_contents(hub, room_id)) == allowed
    assert await hub.services.kv.get(f"ws:rate:{alice.id}") == str(1 + limit + 5)


async def test_messages_over_the_rate_limit_are_never_stored_not_even_briefly(
    hub: RunningHub,
) -> None:
    """The limit is counted before the insert: a reader polling the room's history while a
    burst far over the limit is handled never sees more rows than the limit allowed."""
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    limit = hub.services.settings.client_rate_limit_max
    allowed = limit - 1  # the join counted too
    seen: list[int] = []
    done = trio.Event()

    async def poll() -> None:
        while not done.is_set():
            seen.append(len(await _room_contents(hub, room_id)))  # each query yields

    sender = await _raw_client(hub, alice, room_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await sender.send_raw(_burst(*(_send(room_id, f"m{n:03d}") for n in range(limit + 200))))
        await _frames(sender, limit + 200, "server:new_message", "server:error")
        done.set()
    await sender.aclose()
    assert seen and max(seen) <= allowed, max(seen)
    assert len(await _room_contents(hub, room_id)) == allowed

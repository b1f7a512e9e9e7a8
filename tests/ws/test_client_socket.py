"""/ws/client end to end against a running hub: auth, the frame pipeline, rooms, messages."""

from __future__ import annotations

import json
import time

import attrs
import httpx
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect, signed_in


def _error(code: str, message: str) -> dict[str, str]:
    return {"type": "server:error", "code": code, "message": message}


# authentication ------------------------------------------------------------------------------
async def test_auth_success_answers_user_id_and_announces_presence(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    async with connect(hub) as client:
        assert await client.auth(user) == {
            "type": "server:auth_result", "ok": True, "userId": user.id,
        }  # fmt: skip
        presence = await client.receive()
    assert presence == {
        "type": "server:presence", "userId": user.id, "username": user.username, "online": True,
    }  # fmt: skip


async def test_bad_tokens_are_refused_and_the_socket_stays(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    refresh = hub.services.tokens.issue(user.id, user.username, "refresh")
    async with connect(hub) as client:
        for token, error in (("junk", "Invalid token"), (refresh, "Invalid token type")):
            await client.send({"type": "client:auth", "token": token})
            assert await client.receive() == {
                "type": "server:auth_result", "ok": False, "error": error,
            }  # fmt: skip
        await client.send({"type": "client:join_room", "roomId": "r"})
        assert await client.receive() == _error("NOT_AUTHENTICATED", "Please authenticate first")


async def test_revoked_token_is_refused(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    await trio.sleep(0.002)  # the cut-off is exact to the millisecond (D7)
    await hub.services.kv.set(f"revoked:{user.id}", str(int(time.time() * 1000)))
    async with connect(hub) as ws:
        assert await ws.auth(user) == {
            "type": "server:auth_result", "ok": False, "error": "Token revoked",
        }  # fmt: skip


async def test_ping_before_auth_gets_pong_with_the_same_ts(hub: RunningHub) -> None:
    async with connect(hub) as client:
        await client.send('{"type":"client:ping","ts":1712345678901}')
        assert await client.receive() == {"type": "server:pong", "ts": 1712345678901}
        await client.send('{"type":"client:ping","ts":1.5}')
        assert await client.receive() == {"type": "server:pong", "ts": 1.5}


async def test_sixth_auth_attempt_closes_1008(hub: RunningHub) -> None:
    async with connect(hub) as client:
        for _ in range(5):
            await client.send({"type": "client:auth", "token": "junk"})
            assert (await client.receive())["error"] == "Invalid token"
        await client.send({"type": "client:auth", "token": "junk"})
        assert await client.receive() == {
            "type": "server:auth_result", "ok": False, "error": "Too many authentication attempts",
        }  # fmt: skip
        reason = await client.closed()
    assert (reason.code, reason.reason) == (1008, "Too many authentication attempts")


async def test_no_auth_within_the_timeout_closes_4001(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, ws_auth_timeout_s=0.3), redis_prefix)
    async with connect(hub) as client:
        await client.send({"type": "client:ping", "ts": 1})  # pings do not stop the timer
        assert await client.receive() == {"type": "server:pong", "ts": 1}
        with trio.fail_after(5):
            reason = await client.closed()
    assert (reason.code, reason.reason) == (4001, "Authentication timeout")


async def test_per_user_connection_limit(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, max_ws_connections_per_user=2),
                          redis_prefix)  # fmt: skip
    user = await signed_in_user(hub)
    async with signed_in(hub, user), signed_in(hub, user), connect(hub) as third:
        assert await third.auth(user) == {
            "type": "server:auth_result", "ok": False, "error": "Too many connections",
        }  # fmt: skip


# the frame pipeline --------------------------------------------------------------------------
BAD_FRAMES = (
    ("not json", _error("INVALID_JSON", "Invalid JSON")),
    ('{"type":"client:ping","ts":NaN}', _error("INVALID_JSON", "Invalid JSON")),
    ("[1,2]", _error("INVALID_MESSAGE", "Invalid message format")),
    ('{"type":"client:nope"}', _error("INVALID_MESSAGE", "Invalid message format")),
    ('{"type":"client:join_room"}', _error("INVALID_MESSAGE", "Invalid message format")),
    ('{"type":"client:join_room","roomId":""}', _error("INVALID_MESSAGE",
                                                       "Invalid message format")),
    ('{"type":"client:ping","ts":"1"}', _error("INVALID_MESSAGE", "Invalid message format")),
    ("[" * 12 + "]" * 12, _error("JSON_TOO_DEEP", "JSON nesting depth exceeded")),
    ("[" * 60000 + "]" * 60000, _error("JSON_TOO_DEEP", "JSON nesting depth exceeded")),
    (json.dumps({"type": "client:ping", "ts": 1, "x": list(range(1001))}),
     _error("JSON_TOO_DEEP", "JSON collection size exceeded")),
    ("x" * (128 * 1024 + 1), _error("MESSAGE_TOO_LARGE", "Message exceeds maximum size")),
)  # fmt: skip


async def test_bad_frames_get_their_error_and_the_socket_goes_on(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    async with signed_in(hub, user) as client, signed_in(hub, user) as other:
        await client.receive_type("server:presence")
        for frame, expected in BAD_FRAMES:
            await client.send(frame)
            assert await client.receive() == expected, frame[:80]
        await client.ws.send_message(b"\x00binary")
        assert await client.receive() == _error("INVALID_JSON", "Invalid JSON")
        await client.send({"type": "client:ping", "ts": 7})
        assert await client.receive() == {"type": "server:pong", "ts": 7}
        await other.send({"type": "client:ping", "ts": 8})
        assert await other.receive_type("server:pong") == {"type": "server:pong", "ts": 8}


async def test_send_message_content_rules(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    async with signed_in(hub, user) as client:
        await client.join(room_id)
        for content in ("", "x" * 100_001):
            await client.send({"type": "client:send_message", "roomId": room_id,
                               "content": content})  # fmt: skip
            assert await client.receive_type("server:error") == _error(
                "INVALID_MESSAGE", "Invalid message format"
            )
        await client.send({"type": "client:send_message", "roomId": room_id, "content": "ok",
                           "mentions": None})  # fmt: skip
        assert (await client.receive_type("server:error"))["code"] == "INVALID_MESSAGE"


# rooms and messages --------------------------------------------------------------------------
async def test_two_clients_get_each_message_once_in_send_order(hub: RunningHub) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with signed_in(hub, alice) as a, signed_in(hub, bob) as b:
        await a.join(room_id)
        await b.join(room_id)
        for i in range(10):
            await a.send({"type": "client:send_message", "roomId": room_id, "content": f"a{i}"})
            await b.send({"type": "client:send_message", "roomId": room_id, "content": f"b{i}"})
        seen_a = [await a.receive_type("server:new_message") for _ in range(20)]
        seen_b = [await b.receive_type("server:new_message") for _ in range(20)]
        await a.nothing()
    assert [m["message"]["id"] for m in seen_a] == [m["message"]["id"] for m in seen_b]
    contents = [m["message"]["content"] for m in seen_a]
    assert [c for c in contents if c[0] == "a"] == [f"a{i}" for i in range(10)]
    assert [c for c in contents if c[0] == "b"] == [f"b{i}" for i in range(10)]
    first = seen_a[contents.index("a0")]["message"]
    assert list(first) == ["id", "roomId", "senderId", "senderType", "senderName", "type",
                           "content", "mentions", "createdAt"]  # fmt: skip
    assert first["senderId"] == alice.id and first["senderName"] == alice.username


async def test_send_message_sanitises_and_parses_mentions(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    async with signed_in(hub, user) as client:
        await client.join(room_id)
        await client.send({
            "type": "client:send_message", "roomId": room_id, "replyToId": "m1",
            "content": "hi @bot-1's <img src=x onerror=alert(1)> @bob", "mentions": ["spoof"],
        })  # fmt: skip
        message = (await client.receive_type("server:new_message"))["message"]
    assert message["content"] == "hi @bot-1's <img src=x> @bob"
    assert message["mentions"] == ["bot-1", "bob"]
    assert message["replyToId"] == "m1"


async def test_join_checks_membership(hub: RunningHub) -> None:
    owner, stranger = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    async with signed_in(hub, stranger) as client:
        for _ in range(2):  # the second answer comes from the rm: cache
            await client.send({"type": "client:join_room", "roomId": room_id})
            assert await client.receive_type("server:error") == _error(
                "NOT_A_MEMBER", "You are not a member of this room"
            )
        await client.send({"type": "client:join_room", "roomId": "no-such-room"})
        assert await client.receive_type("server:error") == _error(
            "ROOM_NOT_FOUND", "Room not found"
        )
        await client.send({"type": "client:send_message", "roomId": room_id, "content": "x"})
        assert await client.receive_type("server:error") == _error(
            "NOT_A_MEMBER", "You are not a member of this room"
        )
    assert await hub.services.kv.get(f"rm:{stranger.id}:{room_id}") == "none"
    assert await hub.services.kv.get(f"rm:{stranger.id}:no-such-room") is None


async def test_leave_room_stops_delivery(hub: RunningHub) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with signed_in(hub, alice) as a, signed_in(hub, bob) as b:
        await a.join(room_id)
        await b.join(room_id)
        await b.send({"type": "client:leave_room", "roomId": room_id})
        await b.send({"type": "client:ping", "ts": 2})
        await b.receive_type("server:pong")
        await a.send({"type": "client:send_message", "roomId": room_id, "content": "x"})
        await a.receive_type("server:new_message")
        await b.send({"type": "client:ping", "ts": 3})
        frame = await b.receive_type("server:pong")  # no new_message before it... or after
        assert frame["ts"] == 3
        await b.nothing()


async def test_31st_frame_in_the_window_is_rate_limited(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    async with signed_in(hub, user) as client:
        for _ in range(30):
            await client.send({"type": "client:leave_room", "roomId": "r"})
        await client.send({"type": "client:leave_room", "roomId": "r"})
        assert await client.receive_type("server:error") == _error(
            "RATE_LIMITED", "Too many messages, please slow down"
        )
        await client.send({"type": "client:ping", "ts": 1})  # pings are never limited
        assert await client.receive_type("server:pong") == {"type": "server:pong", "ts": 1}
    ttl = await hub.services.kv.ttl(f"ws:rate:{user.id}")
    assert 0 < ttl <= 10


async def test_typing_reaches_the_others_once_per_second(hub: RunningHub) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with signed_in(hub, alice) as a, signed_in(hub, bob) as b:
        await a.join(room_id)
        await b.join(room_id)
        await a.send({"type": "client:typing", "roomId": room_id})
        await a.send({"type": "client:typing", "roomId": room_id})  # debounced
        assert await b.receive_type("server:typing") == {
            "type": "server:typing", "roomId": room_id, "userId": alice.id,
            "username": alice.username,
        }  # fmt: skip
        await a.send({"type": "client:send_message", "roomId": room_id, "content": "x"})
        await b.receive_type("server:new_message")  # published after the typing event
        await a.receive_type("server:new_message")
        await a.nothing()
        await b.nothing()


async def test_closing_a_joined_socket_sends_typing_to_its_rooms(hub: RunningHub) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with signed_in(hub, bob) as b:
        await b.join(room_id)
        async with signed_in(hub, alice) as a:
            await a.join(room_id)
        assert await b.receive_type("server:typing") == {
            "type": "server:typing", "roomId": room_id, "userId": alice.id,
            "username": alice.username,
        }  # fmt: skip


async def test_stop_generation_and_permission_response_are_accepted(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    hub.services.events.captured = []
    async with signed_in(hub, user) as client:
        await client.join(room_id)
        await client.send({"type": "client:stop_generation", "roomId": room_id, "agentId": user.id})
        await client.send({"type": "client:stop_generation", "roomId": room_id, "agentId": "x"})
        await client.send({"type": "client:permission_response", "requestId": "p1",
                           "decision": "allow"})  # fmt: skip
        await client.send({"type": "client:permission_response", "requestId": "p1",
                           "decision": "maybe"})  # fmt: skip
        assert await client.receive_type("server:error") == _error(
            "INVALID_MESSAGE", "Invalid message format"
        )
    stops = [e.message for e in hub.services.events.captured if e.target.value == "agent"]
    assert stops == [{"type": "server:stop_agent", "agentId": user.id}]  # a member row: sent


async def test_room_removed_reaches_every_socket_of_the_user_and_unsubscribes(
    hub: RunningHub,
) -> None:
    from agentim.protocol.envelope import dumps
    from agentim.protocol.events import control_event

    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with (
        signed_in(hub, alice) as a,
        signed_in(hub, bob) as joined,
        signed_in(hub, bob) as idle,
    ):
        await a.join(room_id)
        await joined.join(room_id)
        frame = dumps({"type": "server:room_removed", "roomId": room_id})
        await hub.services.events.publish(
            control_event("room_removed", bob.id, roomId=room_id, frame=frame)
        )
        for client in (joined, idle):
            assert await client.receive_type("server:room_removed") == {
                "type": "server:room_removed", "roomId": room_id,
            }  # fmt: skip
        await a.send({"type": "client:send_message", "roomId": room_id, "content": "x"})
        await a.receive_type("server:new_message")
        await joined.send({"type": "client:ping", "ts": 1})
        await joined.receive_type("server:pong")
        await joined.nothing()


# revocation, presence, shutdown ----------------------------------------------------------------
async def test_logout_closes_the_users_sockets_with_1008(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    from tests.helpers import create_user, login

    user = await login(client, await create_user(hub))
    other = await signed_in_user(hub)
    async with signed_in(hub, user) as mine, signed_in(hub, other) as theirs:
        response = await client.post("/api/auth/logout", headers=user.headers)
        assert response.status_code == 200, response.text
        assert await mine.receive_type("server:error") == _error(
            "SESSION_REVOKED", "Session revoked"
        )
        reason = await mine.closed()
        assert (reason.code, reason.reason) == (1008, "Session revoked")
        await theirs.send({"type": "client:ping", "ts": 1})
        assert await theirs.receive_type("server:pong") == {"type": "server:pong", "ts": 1}


async def test_presence_goes_offline_after_the_grace_period(hub: RunningHub) -> None:
    watcher, user = await signed_in_user(hub), await signed_in_user(hub)
    async with signed_in(hub, watcher) as w:
        await w.receive_type("server:presence")
        async with signed_in(hub, user):
            online = await w.receive_type("server:presence")
        assert online["userId"] == user.id and online["online"] is True
        async with signed_in(hub, user):  # a quick reconnect announces nothing
            await w.nothing(0.5)
        with trio.fail_after(5):
            offline = await w.receive_type("server:presence")
    assert offline == {
        "type": "server:presence", "userId": user.id, "username": user.username, "online": False,
    }  # fmt: skip
    assert await hub.services.kv.scan_keys(f"presence:{user.id}") == []


async def test_shutdown_sends_server_shutdown_then_1001(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    async with signed_in(hub, user) as client, connect(hub) as anonymous:
        await client.receive_type("server:presence")
        hub.shutdown.set()
        assert await client.receive() == _error("SERVER_SHUTDOWN", "Server is shutting down")
        reason = await client.closed()
        assert reason.code == 1001
        assert (await anonymous.closed()).code == 1001


async def test_upgrade_rate_limit_answers_429(hub: RunningHub) -> None:
    hub.services.limiter.enabled = True
    for _ in range(30):
        async with connect(hub):
            pass
    stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
    async with stream:
        await stream.send_all(
            b"GET /ws/client HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with trio.fail_after(10):
            data = await stream.receive_some(65536)
    assert data.startswith(b"HTTP/1.1 429 ")

"""Two hub processes behind one PostgreSQL and one Redis behave as one hub (DIFFERENCES D15)."""

from __future__ import annotations

import httpx
import trio

from tests.e2e.conftest import SpawnHub
from tests.gateway_helpers import signed_in_gateway
from tests.helpers import RunningHub, create_room, create_user, login, signed_in_user
from tests.ws.wsclient import connect


async def test_messages_and_revocations_cross_processes(
    hub: RunningHub, spawn_hub: SpawnHub
) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as http_a:
        alice = await login(http_a, await create_user(hub))
        bob = await signed_in_user(hub)
        room_id = await create_room(hub, alice, members=(bob,))
        async with connect(a.ws_url) as on_a, connect(b.ws_url) as on_b:
            assert (await on_a.auth(alice))["ok"] is True
            assert (await on_b.auth(bob))["ok"] is True
            presence = await on_a.receive_type("server:presence")  # bob, announced from B
            assert (presence["userId"], presence["online"]) in ((alice.id, True), (bob.id, True))
            await on_a.join(room_id)
            await on_b.join(room_id)
            for i in range(5):
                await on_a.send({"type": "client:send_message", "roomId": room_id,
                                 "content": f"from A {i}"})  # fmt: skip
                await on_b.send({"type": "client:send_message", "roomId": room_id,
                                 "content": f"from B {i}"})  # fmt: skip
            seen_a = [await on_a.receive_type("server:new_message") for _ in range(10)]
            seen_b = [await on_b.receive_type("server:new_message") for _ in range(10)]
            order = [m["message"]["id"] for m in seen_a]
            assert order == [m["message"]["id"] for m in seen_b]  # one order everywhere
            assert len(set(order)) == 10

            async with connect(b.ws_url) as alice_on_b:
                assert (await alice_on_b.auth(alice))["ok"] is True
                response = await http_a.post("/api/auth/logout", headers=alice.headers)
                assert response.status_code == 200, response.text
                error = await alice_on_b.receive_type("server:error")
                assert error == {"type": "server:error", "code": "SESSION_REVOKED",
                                 "message": "Session revoked"}  # fmt: skip
                reason = await alice_on_b.closed()
                assert (reason.code, reason.reason) == (1008, "Session revoked")
            assert (await on_a.closed()).code == 1008
            await on_b.send({"type": "client:ping", "ts": 1})
            assert await on_b.receive_type("server:pong") == {"type": "server:pong", "ts": 1}


async def test_presence_is_shared_between_processes(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    watcher, user = await signed_in_user(hub), await signed_in_user(hub)
    async with connect(a.ws_url) as w:
        await w.auth(watcher)
        await w.receive_type("server:presence")
        async with connect(b.ws_url) as first:
            await first.auth(user)
            online = await w.receive_type("server:presence")
            assert (online["userId"], online["online"]) == (user.id, True)
            async with connect(a.ws_url) as second:  # already online on B: no event
                await second.auth(user)
                await w.nothing(0.5)
            await w.nothing(2.5)  # still online on B after A's grace period
        with trio.fail_after(6):
            offline = await w.receive_type("server:presence")
        assert (offline["userId"], offline["online"]) == (user.id, False)


async def test_a_logout_closes_only_that_tokens_sockets_on_every_process(
    hub: RunningHub, spawn_hub: SpawnHub
) -> None:
    """D23 across processes: the logout is made on A; on B only the socket of that token
    closes, the user's other browser and gateway stay until log out everywhere."""
    a, b = await spawn_hub(), await spawn_hub()
    user = await create_user(hub)
    revoked = {"type": "server:error", "code": "SESSION_REVOKED", "message": "Session revoked"}
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=a.url, timeout=30) as http_a:
            first, second, machine = [await login(http_a, user) for _ in range(3)]
            async with (
                connect(b.ws_url) as first_on_b,
                connect(b.ws_url) as second_on_b,
                connect(a.ws_url) as second_on_a,
                signed_in_gateway(b.ws_url, machine) as gateway,
            ):
                for socket, session in (
                    (first_on_b, first), (second_on_b, second), (second_on_a, second)
                ):  # fmt: skip
                    assert (await socket.auth(session))["ok"] is True
                out = await http_a.post("/api/auth/logout", headers=first.headers)
                assert out.status_code == 200, out.text
                assert await first_on_b.receive_type("server:error") == revoked
                assert (await first_on_b.closed()).code == 1008
                for n, socket in enumerate((second_on_b, second_on_a)):
                    await socket.send({"type": "client:ping", "ts": n})
                    assert await socket.receive_type("server:pong") == {
                        "type": "server:pong", "ts": n,
                    }  # fmt: skip
                await gateway.sync()

                out = await http_a.post("/api/auth/logout-all", headers=second.headers)
                assert out.status_code == 200, out.text
                for socket in (second_on_b, second_on_a):
                    assert await socket.receive_type("server:error") == revoked
                    assert (await socket.closed()).code == 1008
                assert (await gateway.closed()).code == 1008

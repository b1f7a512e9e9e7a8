"""PUT /api/rooms/:id/clear over real HTTP, WebSocket, PostgreSQL and Redis (head-gap A12,
A24, B13, C11): what one member cleared is gone from every list that member reads, and from
the context their agents get, while the other members still see it."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from agentim.actions.messages import send_message
from agentim.actions.room_context import room_context_events
from agentim.protocol.ids import new_id
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.http.test_messages import at, insert_message
from tests.http.test_threads_forward import insert_reply
from tests.ws.wsclient import signed_in

TIMEOUT_S = 20


async def _clear(client: httpx.AsyncClient, user: User, room_id: str) -> httpx.Response:
    return await client.put(f"/api/rooms/{room_id}/clear", headers=user.headers)


async def _send(hub: RunningHub, user: User, room_id: str, content: str) -> str:
    sent = await send_message(
        hub.services, user_id=user.id, username=user.username, room_id=room_id,
        content=content, reply_to_id=None, attachment_ids=[],
    )  # fmt: skip
    return str(sent["id"])


async def test_clear_sets_the_point_and_tells_the_users_sockets_on_every_process(
    hub: RunningHub, client: httpx.AsyncClient, nursery: trio.Nursery, settings: Settings,
    redis_prefix: str,
) -> None:  # fmt: skip
    other = await start_hub(nursery, settings, redis_prefix)
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))

    with trio.fail_after(TIMEOUT_S):
        async with (
            signed_in(hub, alice) as here, signed_in(other, alice) as there,
            signed_in(other, bob) as bobs,
        ):  # fmt: skip
            await bobs.join(room_id)
            response = await _clear(client, alice, room_id)
            frames = [await here.receive_type("server:room_cleared"),
                      await there.receive_type("server:room_cleared")]  # fmt: skip
            await bobs.nothing()

    assert response.status_code == 200, response.text
    cleared_at = response.json()["data"]["clearedAt"]
    assert response.json() == {"ok": True, "data": {"clearedAt": cleared_at}}
    expected = {"type": "server:room_cleared", "roomId": room_id, "clearedAt": cleared_at}
    assert frames == [expected, expected]
    rows = await hub.services.db.fetch(
        "SELECT member_id, cleared_at FROM room_members WHERE room_id = $1", room_id
    )
    assert {r["member_id"]: r["cleared_at"] for r in rows} == {alice.id: cleared_at, bob.id: None}


async def test_cleared_messages_leave_every_list_of_that_member_only(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    tag = new_id(6)
    old = await insert_message(hub, room_id, bob, f"{tag} old", created_at=at(0))
    old_reply = await insert_reply(hub, room_id, bob, old, 1)
    await hub.services.db.execute(  # nothing read yet: both count as unread
        "UPDATE room_members SET last_read_at = NULL WHERE room_id = $1", room_id
    )

    async def views(user: User) -> dict[str, Any]:
        h = user.headers
        history = await client.get(f"/api/messages/rooms/{room_id}", headers=h)
        search = await client.get("/api/messages/search", params={"q": tag}, headers=h)
        recent = await client.get("/api/messages/recent", headers=h)
        thread = await client.get(f"/api/messages/{old}/thread", headers=h)
        count = await client.get(f"/api/messages/{old}/replies/count", headers=h)
        return {
            "history": [m["id"] for m in history.json()["data"]["items"]],
            "search": [m["id"] for m in search.json()["data"]],
            "recent": recent.json()["data"].get(room_id),
            "thread": [m["id"] for m in thread.json()["data"]],
            "count": count.json()["data"]["count"],
        }

    before = await views(alice)
    assert before["history"] == [old_reply, old] and before["count"] == 1
    assert before["recent"]["unread"] == 2

    assert (await _clear(client, alice, room_id)).status_code == 200
    assert await views(alice) == {"history": [], "search": [], "recent": None, "thread": [],
                                  "count": 0}  # fmt: skip
    assert await views(bob) == {**before, "recent": (await views(bob))["recent"]}
    assert (await views(bob))["recent"]["unread"] == 2

    with trio.fail_after(TIMEOUT_S):
        new = await _send(hub, bob, room_id, f"{tag} new")
    after = await views(alice)
    assert (after["history"], after["search"]) == ([new], [new])
    assert after["recent"]["content"] == f"{tag} new" and after["recent"]["unread"] == 1
    reloaded = await client.get(f"/api/messages/rooms/{room_id}", params={"after": at(0)},
                                headers=alice.headers)  # fmt: skip
    assert [m["id"] for m in reloaded.json()["data"]["items"]] == [new]


async def test_agents_are_not_told_what_their_owner_cleared(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    alices_agent, bobs_agent = f"agent-{new_id(8)}", f"agent-{new_id(8)}"
    await insert_message(hub, room_id, bob, "before", created_at=at(0))

    def recent(events: list[Any]) -> dict[str, list[str]]:
        return {e.message["agentId"]: [m["content"] for m in e.message["context"]
                                       ["recentMessages"]] for e in events}  # fmt: skip

    with trio.fail_after(TIMEOUT_S):
        async with (
            signed_in_gateway(hub, alice) as gateway, signed_in_gateway(hub, bob) as bobs,
        ):  # fmt: skip
            await gateway.register(alices_agent, agent_name())
            await bobs.register(bobs_agent, agent_name())
            for agent_id in (alices_agent, bobs_agent):
                await add_agent_to_room(hub, room_id, agent_id)
            response = await _clear(client, alice, room_id)
            told = await gateway.receive_type("server:room_context")
            await _send(hub, bob, room_id, "after")
            events = await room_context_events(hub.services.db, room_id)

    assert response.status_code == 200
    assert told["agentId"] == alices_agent and told["context"]["recentMessages"] == []
    assert recent(events) == {alices_agent: ["after"], bobs_agent: ["before", "after"]}


async def test_clear_refuses_non_members_and_bad_input(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    await hub.services.db.execute(  # the creator without a member row is not a member here
        "DELETE FROM room_members WHERE room_id = $1", room_id
    )
    other_room = await create_room(hub, alice)
    not_a_member = (404, {"ok": False, "error": "Not a member"})

    for user, room in ((mallory, other_room), (alice, room_id), (alice, new_id())):
        response = await _clear(client, user, room)
        assert (response.status_code, response.json()) == not_a_member
    bad_id = await client.put("/api/rooms/a.b/clear", headers=alice.headers)
    bad_id_body = {"ok": False, "error": "Invalid parameter: id"}
    assert (bad_id.status_code, bad_id.json()) == (400, bad_id_body)
    anonymous = await client.put(f"/api/rooms/{other_room}/clear")
    assert anonymous.status_code == 401 and anonymous.json()["ok"] is False
    cleared = await hub.services.db.fetchval(
        "SELECT count(*) FROM room_members WHERE cleared_at IS NOT NULL AND room_id = $1",
        other_room,
    )
    assert cleared == 0

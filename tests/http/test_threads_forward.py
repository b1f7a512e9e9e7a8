"""Threads, reply counts and forwarding over real HTTP, WebSocket, PostgreSQL and Redis
(head-gap A9, A10, A11)."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from agentim.protocol.ids import new_id
from tests.gateway_helpers import agent_with_watcher
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.http.test_messages import at, insert_attachment, insert_message
from tests.ws.wsclient import signed_in

TIMEOUT_S = 20


async def insert_reply(hub: RunningHub, room_id: str, sender: User, parent: str, t: int) -> str:
    message_id = await insert_message(hub, room_id, sender, f"reply {t}", created_at=at(t))
    await hub.services.db.execute(
        "UPDATE messages SET reply_to_id = $2 WHERE id = $1", message_id, parent
    )
    return message_id


# GET /api/messages/:id/thread and /replies/count ---------------------------------------------
async def test_thread_pages_forward_with_attachments(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    parent = await insert_message(hub, room_id, alice, "question", created_at=at(0))
    replies = [await insert_reply(hub, room_id, bob, parent, t) for t in (3, 1, 2)]
    await insert_message(hub, room_id, bob, "not a reply", created_at=at(4))
    attachment = await insert_attachment(hub, bob, replies[1])
    path = f"/api/messages/{parent}/thread"

    with trio.fail_after(TIMEOUT_S):
        first = await client.get(path, params={"limit": "2"}, headers=alice.headers)
        cursor = first.json()["nextCursor"]
        rest = await client.get(path, params={"limit": "2", "cursor": cursor},
                                headers=alice.headers)  # fmt: skip
        count = await client.get(f"/api/messages/{parent}/replies/count", headers=bob.headers)

    assert first.status_code == 200
    body = first.json()
    assert list(body) == ["ok", "data", "nextCursor"] and cursor == at(2)
    oldest, second = body["data"]
    assert (oldest["id"], second["id"]) == (replies[1], replies[2])
    assert oldest["replyToId"] == parent and oldest["content"] == "reply 1"
    assert oldest["attachments"] == [{
        "id": attachment, "messageId": replies[1], "filename": "notes.txt",
        "mimeType": "text/plain", "size": 5, "url": f"/uploads/{attachment}.txt",
    }]  # fmt: skip
    assert second["attachments"] == []
    assert rest.json() == {"ok": True, "data": [rest.json()["data"][0]]}  # no nextCursor
    assert rest.json()["data"][0]["id"] == replies[0]
    assert count.json() == {"ok": True, "data": {"count": 3}}


async def test_thread_limit_is_capped_and_bad_limits_are_refused(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    parent = await insert_message(hub, room_id, alice, "q", created_at=at(0))
    for t in range(1, 4):
        await insert_reply(hub, room_id, alice, parent, t)
    path = f"/api/messages/{parent}/thread"

    big = await client.get(path, params={"limit": "1000"}, headers=alice.headers)
    assert big.status_code == 200 and len(big.json()["data"]) == 3
    for junk, message in (("0", "Number must be greater than or equal to 1"),
                          ("-3", "Number must be greater than or equal to 1"),
                          ("abc", "Expected number, received nan"),
                          ("1.5", "Expected integer, received float")):  # fmt: skip
        response = await client.get(path, params={"limit": junk}, headers=alice.headers)
        assert (response.status_code, response.json()) == (400, {
            "ok": False, "error": "Validation failed",
            "fields": [{"field": "limit", "message": message}],
        }), junk  # fmt: skip


async def test_thread_and_count_refuse_strangers_and_unknown_messages(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    parent = await insert_message(hub, room_id, alice, "secret", created_at=at(0))
    await insert_reply(hub, room_id, alice, parent, 1)

    for suffix in ("thread", "replies/count"):
        stranger = await client.get(f"/api/messages/{parent}/{suffix}", headers=mallory.headers)
        missing = await client.get(f"/api/messages/{new_id()}/{suffix}", headers=alice.headers)
        bad_id = await client.get(f"/api/messages/a.b/{suffix}", headers=alice.headers)
        anonymous = await client.get(f"/api/messages/{parent}/{suffix}")
        assert (stranger.status_code, stranger.json()) == (
            403, {"ok": False, "error": "Not a member of this room"})  # fmt: skip
        assert (missing.status_code, missing.json()) == (
            404, {"ok": False, "error": "Message not found"})  # fmt: skip
        assert (bad_id.status_code, bad_id.json()) == (
            400, {"ok": False, "error": "Invalid parameter: id"})  # fmt: skip
        assert anonymous.status_code == 401


# POST /api/messages/:id/forward ---------------------------------------------------------------
async def test_forward_posts_a_copy_broadcast_to_the_target_room(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    source = await create_room(hub, bob, members=(alice,))
    target = await create_room(hub, alice, members=(bob,))
    original = await insert_message(hub, source, bob, "look <b>here</b>", created_at=at(0))

    with trio.fail_after(TIMEOUT_S):
        async with signed_in(hub, bob) as watcher:
            await watcher.join(target)
            response = await client.post(f"/api/messages/{original}/forward",
                                         json={"targetRoomId": target},
                                         headers=alice.headers)  # fmt: skip
            frame = await watcher.receive_type("server:new_message")

    assert response.status_code == 201, response.text
    message = response.json()["data"]
    assert message["roomId"] == target and message["id"] != original
    assert (message["senderId"], message["senderType"], message["senderName"]) == (
        alice.id, "user", alice.username)  # fmt: skip
    assert message["content"] == f"[Forwarded from {bob.username}]\n\nlook <b>here</b>"
    assert frame == {"type": "server:new_message", "message": message}
    row = await hub.services.db.fetchrow(
        "SELECT room_id, sender_id, content FROM messages WHERE id = $1", message["id"]
    )
    assert row is not None and dict(row) == {"room_id": target, "sender_id": alice.id,
                                             "content": message["content"]}  # fmt: skip


async def test_forward_is_routed_to_a_mentioned_agent(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    async with agent_with_watcher(hub) as scene:
        agent_name = await hub.services.db.fetchval(
            "SELECT name FROM agents WHERE id = $1", scene.agent_id
        )
        source = await create_room(hub, scene.owner)
        original = await insert_message(
            hub, source, scene.owner, f"@{agent_name} please summarise", created_at=at(0)
        )
        with trio.fail_after(TIMEOUT_S):
            response = await client.post(f"/api/messages/{original}/forward",
                                         json={"targetRoomId": scene.room_id},
                                         headers=scene.owner.headers)  # fmt: skip
            delivered = await scene.gateway.receive_type("server:send_to_agent")

    assert response.status_code == 201, response.text
    assert delivered["agentId"] == scene.agent_id
    assert delivered["messageId"] == response.json()["data"]["id"]
    assert delivered["content"].startswith("[Forwarded from ")


async def _forward(client: httpx.AsyncClient, user: User, message_id: str, body: Any) -> Any:
    response = await client.post(f"/api/messages/{message_id}/forward", json=body,
                                 headers=user.headers)  # fmt: skip
    return response.status_code, response.json()


async def test_forward_checks_both_rooms_and_its_input(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    mine = await create_room(hub, alice)
    theirs = await create_room(hub, bob)
    in_mine = await insert_message(hub, mine, alice, "mine", created_at=at(0))
    in_theirs = await insert_message(hub, theirs, bob, "theirs", created_at=at(0))
    count_before = await hub.services.db.fetchval("SELECT count(*) FROM messages")

    def refused(status: int, error: str) -> tuple[int, dict[str, Any]]:
        return status, {"ok": False, "error": error}

    assert await _forward(client, alice, in_theirs, {"targetRoomId": mine}) == refused(
        403, "Not a member of the source room")  # fmt: skip
    assert await _forward(client, alice, in_mine, {"targetRoomId": theirs}) == refused(
        403, "Not a member of the target room")  # fmt: skip
    assert await _forward(client, alice, in_mine, {"targetRoomId": new_id()}) == refused(
        403, "Not a member of the target room")  # fmt: skip
    assert await _forward(client, alice, in_mine, {"targetRoomId": mine}) == refused(
        400, "Cannot forward to the same room")  # fmt: skip
    assert await _forward(client, alice, new_id(), {"targetRoomId": mine}) == refused(
        404, "Message not found")  # fmt: skip
    assert await _forward(client, alice, in_mine, {}) == (400, {
        "ok": False, "error": "Validation failed",
        "fields": [{"field": "targetRoomId", "message": "Required"}]})  # fmt: skip
    wrong_type = {"field": "targetRoomId", "message": "Expected string, received number"}
    assert await _forward(client, alice, in_mine, {"targetRoomId": 5}) == (400, {
        "ok": False, "error": "Validation failed", "fields": [wrong_type]})  # fmt: skip
    bad_json = await client.post(f"/api/messages/{in_mine}/forward", content=b"{nope",
                                 headers=alice.headers)  # fmt: skip
    assert (bad_json.status_code, bad_json.json()) == refused(400, "Invalid JSON body")
    assert await hub.services.db.fetchval("SELECT count(*) FROM messages") == count_before

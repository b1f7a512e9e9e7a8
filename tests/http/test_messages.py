"""/api/messages over real HTTP, PostgreSQL and Redis (api.md §7, §15.2, Appendix A.3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import trio

from agentim.actions.messages import send_message
from agentim.protocol.events import Target
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now, to_iso
from tests.helpers import RunningHub, User, create_room, create_user, signed_in_user

TIMEOUT_S = 20
BASE = datetime(2025, 2, 14, 9, 0, tzinfo=UTC)


def at(seconds: int) -> str:
    return to_iso(BASE + timedelta(seconds=seconds))


async def insert_message(
    hub: RunningHub, room_id: str, sender: User | str, content: str = "hello", *,
    created_at: str | None = None, sender_type: str = "user", chunks: str | None = None,
) -> str:  # fmt: skip
    """A message row written directly, with a chosen timestamp (sender: a user or agent id)."""
    message_id = new_id()
    sender_id = sender.id if isinstance(sender, User) else sender
    name = sender.username if isinstance(sender, User) else "agent"
    await hub.services.db.execute(
        "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, type, content, "
        "mentions, chunks, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '[\"bob\"]', $8, $9)",
        message_id, room_id, sender_id, sender_type, name,
        "text" if sender_type == "user" else "agent_response", content, chunks,
        created_at or iso_now(),
    )  # fmt: skip
    return message_id


async def insert_attachment(hub: RunningHub, owner: User, message_id: str) -> str:
    attachment_id = new_id()
    await hub.services.db.execute(
        "INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url, "
        "uploaded_by, created_at) VALUES ($1, $2, 'notes.txt', 'text/plain', 5, $3, $4, $5)",
        attachment_id, message_id, f"/uploads/{attachment_id}.txt", owner.id, iso_now(),
    )  # fmt: skip
    return attachment_id


def capture(hub: RunningHub) -> list[Any]:
    captured: list[Any] = []
    hub.services.events.captured = captured
    return captured


async def message_exists(hub: RunningHub, message_id: str) -> bool:
    found = await hub.services.db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)", message_id
    )
    return bool(found)


# ---------------------------------------------------------------------------------------------
# GET /api/messages/rooms/:roomId


async def test_history_pages_backwards_with_cursor(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    ids = [await insert_message(hub, room_id, alice, f"m{i}", created_at=at(i)) for i in range(5)]
    path = f"/api/messages/rooms/{room_id}"

    with trio.fail_after(TIMEOUT_S):
        first = (await client.get(path, params={"limit": 2}, headers=alice.headers)).json()
        cursor = first["data"]["nextCursor"]
        second = (await client.get(path, params={"limit": 2, "cursor": cursor},
                                   headers=alice.headers)).json()  # fmt: skip
        third = (await client.get(path, params={"limit": 2,
                                                "cursor": second["data"]["nextCursor"]},
                                  headers=alice.headers)).json()  # fmt: skip

    assert [m["id"] for m in first["data"]["items"]] == [ids[4], ids[3]]
    assert list(first["data"]) == ["items", "nextCursor", "hasMore"]
    assert (cursor, first["data"]["hasMore"]) == (at(3), True)
    assert [m["id"] for m in second["data"]["items"]] == [ids[2], ids[1]]
    assert second["data"]["nextCursor"] == at(1)
    assert [m["id"] for m in third["data"]["items"]] == [ids[0]]
    assert third["data"]["hasMore"] is False and "nextCursor" not in third["data"]


async def test_history_after_returns_the_newest_messages_after_a_timestamp(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    ids = [await insert_message(hub, room_id, alice, f"m{i}", created_at=at(i)) for i in range(6)]
    path = f"/api/messages/rooms/{room_id}"

    page = (await client.get(path, params={"after": at(1), "limit": 3, "cursor": at(5)},
                             headers=alice.headers)).json()["data"]  # fmt: skip
    assert [m["id"] for m in page["items"]] == [ids[5], ids[4], ids[3]]
    assert (page["hasMore"], page["nextCursor"]) == (True, at(3))
    rest = (await client.get(path, params={"after": at(1), "cursor": page["nextCursor"]},
                             headers=alice.headers)).json()["data"]  # fmt: skip
    assert [m["id"] for m in rest["items"]] == [ids[5], ids[4], ids[3], ids[2]]  # after wins
    older = (await client.get(path, params={"cursor": page["nextCursor"], "limit": 3},
                              headers=alice.headers)).json()["data"]  # fmt: skip
    assert [m["id"] for m in older["items"]] == [ids[2], ids[1], ids[0]]
    assert older["hasMore"] is False


async def test_history_items_carry_serialised_fields_attachments_and_reactions(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    plain = await insert_message(hub, room_id, alice, "plain", created_at=at(0))
    chunks = '[{"type":"text","content":"done"}]'
    rich = await insert_message(
        hub, room_id, "agent-1", "done", created_at=at(1), sender_type="agent", chunks=chunks
    )
    attachment_id = await insert_attachment(hub, alice, rich)
    for user, emoji in ((alice, "👍"), (bob, "👍"), (bob, "🎉")):
        await client.post(f"/api/messages/{rich}/reactions", headers=user.headers,
                          json={"emoji": emoji})  # fmt: skip

    response = await client.get(f"/api/messages/rooms/{room_id}", headers=bob.headers)

    newest, oldest = response.json()["data"]["items"]
    assert oldest == {
        "id": plain, "roomId": room_id, "senderId": alice.id, "senderType": "user",
        "senderName": alice.username, "type": "text", "content": "plain", "replyToId": None,
        "mentions": ["bob"], "createdAt": at(0), "updatedAt": None,
    }  # fmt: skip
    assert list(newest) == ["id", "roomId", "senderId", "senderType", "senderName", "type",
                            "content", "replyToId", "mentions", "chunks", "createdAt",
                            "updatedAt", "attachments", "reactions"]  # fmt: skip
    assert newest["chunks"] == [{"type": "text", "content": "done"}]
    assert newest["attachments"] == [{
        "id": attachment_id, "messageId": rich, "filename": "notes.txt",
        "mimeType": "text/plain", "size": 5, "url": f"/uploads/{attachment_id}.txt",
    }]  # fmt: skip
    assert newest["reactions"] == [
        {"emoji": "👍", "userIds": [alice.id, bob.id], "usernames": [alice.username,
                                                                   bob.username]},
        {"emoji": "🎉", "userIds": [bob.id], "usernames": [bob.username]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("", "Number must be greater than or equal to 1"),
        ("abc", "Expected number, received nan"),
        ("0", "Number must be greater than or equal to 1"),
        ("101", "Number must be less than or equal to 100"),
        ("1.5", "Expected integer, received float"),
    ],
)
async def test_history_limit_is_validated(
    hub: RunningHub, client: httpx.AsyncClient, limit: str, message: str
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    response = await client.get(f"/api/messages/rooms/{room_id}?limit={limit}",
                                headers=alice.headers)  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Validation failed",
                               "fields": [{"field": "limit", "message": message}]}  # fmt: skip


async def test_history_membership_is_checked_before_the_query(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    await insert_message(hub, room_id, alice, "secret")
    for path in (f"/api/messages/rooms/{room_id}?limit=abc", f"/api/messages/rooms/{new_id()}"):
        response = await client.get(path, headers=mallory.headers)
        assert (response.status_code, response.text) == (
            403, '{"ok":false,"error":"Not a member of this room"}'
        )  # fmt: skip
    bad = await client.get("/api/messages/rooms/bad!id", headers=mallory.headers)
    assert bad.json()["error"] == "Invalid parameter: roomId"
    ok = await client.get(f"/api/messages/rooms/{room_id}?limit=10", headers=alice.headers)
    assert ok.json()["data"]["items"][0]["content"] == "secret"


# ---------------------------------------------------------------------------------------------
# recent, read marks


async def test_unread_counts_before_and_after_mark_read(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    first = await create_room(hub, alice, members=(bob,))
    second = await create_room(hub, bob, members=(alice,))
    quiet = await create_room(hub, alice, name="quiet")  # no messages: left out
    past = to_iso(datetime.now(UTC) - timedelta(minutes=5))
    await hub.services.db.execute(
        "UPDATE room_members SET last_read_at = $2 WHERE member_id = ANY($1::text[])",
        [alice.id, bob.id], past,
    )  # fmt: skip
    later = [to_iso(datetime.now(UTC) - timedelta(minutes=m)) for m in (3, 2, 1)]
    await insert_message(hub, first, bob, "one", created_at=later[0])
    await insert_message(hub, first, alice, "own counts too", created_at=later[1])
    await insert_message(hub, second, bob, "<b>two</b>", created_at=later[2])

    before = (await client.get("/api/messages/recent", headers=alice.headers)).json()["data"]
    assert before == {
        first: {"content": "own counts too", "senderName": alice.username,
                "createdAt": later[1], "unread": 2},
        second: {"content": "<b>two</b>", "senderName": bob.username, "createdAt": later[2],
                 "unread": 1},
    }  # fmt: skip
    events = capture(hub)
    marked = await client.post(f"/api/messages/rooms/{first}/read", headers=alice.headers)
    assert marked.text == '{"ok":true}'
    middle = (await client.get("/api/messages/recent", headers=alice.headers)).json()["data"]
    assert (middle[first]["unread"], middle[second]["unread"]) == (0, 1)
    [receipt] = events
    assert (receipt.target, receipt.target_id) == (Target.ROOM, first)
    last_read = await hub.services.db.fetchval(
        "SELECT last_read_at FROM room_members WHERE room_id = $1 AND member_id = $2",
        first, alice.id,
    )  # fmt: skip
    assert receipt.message == {"type": "server:read_receipt", "roomId": first,
                               "userId": alice.id, "username": alice.username,
                               "lastReadAt": last_read}  # fmt: skip

    events.clear()
    everything = await client.post("/api/messages/mark-all-read", headers=alice.headers)
    assert everything.text == '{"ok":true}'
    after = (await client.get("/api/messages/recent", headers=alice.headers)).json()["data"]
    assert {room: entry["unread"] for room, entry in after.items()} == {first: 0, second: 0}
    assert sorted(e.target_id for e in events) == sorted([first, second, quiet])
    assert all(e.message["type"] == "server:read_receipt" for e in events)
    bobs = (await client.get("/api/messages/recent", headers=bob.headers)).json()["data"]
    assert bobs[first]["unread"] == 2  # bob's own read state is untouched


async def test_read_marks_for_non_members_and_users_without_rooms(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await create_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    events = capture(hub)
    refused = await client.post(f"/api/messages/rooms/{room_id}/read", headers=mallory.headers)
    assert (refused.status_code, refused.json()["error"]) == (403, "Not a member of this room")
    alone = await client.post("/api/messages/mark-all-read", headers=mallory.headers)
    assert alone.text == '{"ok":true}'
    assert events == []
    assert (await client.get("/api/messages/recent", headers=mallory.headers)).json() == {
        "ok": True,
        "data": {},
    }


# ---------------------------------------------------------------------------------------------
# GET /api/messages/search


async def test_search_finds_own_room_messages_only(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    mine = await create_room(hub, alice)
    foreign = await create_room(hub, bob)
    word = f"zebra{new_id(6)}"
    found = await insert_message(hub, mine, alice, f"a {word.upper()} here", created_at=at(1))
    await insert_message(hub, foreign, bob, f"secret {word}", created_at=at(2))
    await insert_message(hub, mine, alice, "unrelated", created_at=at(3))

    response = await client.get("/api/messages/search", params={"q": f"  {word} "},
                                headers=alice.headers)  # fmt: skip

    assert response.status_code == 200
    [message] = response.json()["data"]
    assert message["id"] == found and message["roomId"] == mine
    bobs = await client.get("/api/messages/search", params={"q": word}, headers=bob.headers)
    assert [m["roomId"] for m in bobs.json()["data"]] == [foreign]
    scoped = await client.get("/api/messages/search", params={"q": word, "roomId": foreign},
                              headers=alice.headers)  # fmt: skip
    assert (scoped.status_code, scoped.json()["error"]) == (404, "Room not found")


async def test_search_filters_escape_and_limits(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    tag = new_id(6)
    percent = await insert_message(hub, room_id, alice, f"{tag} 100% sure", created_at=at(1))
    await insert_message(hub, room_id, alice, f"{tag} 1000 sure", created_at=at(2))
    by_bob = await insert_message(hub, room_id, bob, f"{tag} a_b", created_at=at(3))
    await insert_message(hub, room_id, alice, f"{tag} axb", created_at=at(4))
    many = [await insert_message(hub, room_id, alice, f"{tag} n{i}", created_at=at(10 + i))
            for i in range(3)]  # fmt: skip

    async def search(**params: Any) -> list[str]:
        response = await client.get("/api/messages/search", params=params, headers=alice.headers)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["data"]]

    assert await search(q="0% s") == [percent]
    assert await search(q=f"{tag} a_b") == [by_bob]
    assert await search(q=tag, sender=bob.username.upper()) == [by_bob]
    assert await search(q=tag, limit="2") == [many[2], many[1]]
    assert await search(q=tag, **{"from": at(3), "to": at(10)}) == [many[0], await _id_at(
        hub, room_id, at(4)), by_bob]  # fmt: skip
    assert len(await search(q=tag, limit="100")) == 7


async def _id_at(hub: RunningHub, room_id: str, created_at: str) -> str:
    found = await hub.services.db.fetchval(
        "SELECT id FROM messages WHERE room_id = $1 AND created_at = $2", room_id, created_at
    )
    return str(found)


def _invalid(field: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": "Validation failed",
            "fields": [{"field": field, "message": message}]}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({}, _invalid("q", "Required")),
        ({"q": "a"}, _invalid("q", "String must contain at least 2 character(s)")),
        ({"q": "x" * 501}, _invalid("q", "String must contain at most 500 character(s)")),
        ({"q": "ok", "limit": "junk"}, _invalid("limit", "Expected number, received nan")),
        ({"q": "ok", "from": "yesterday"}, {"ok": False, "error": 'Invalid "from" date format'}),
        ({"q": "ok", "to": "2025-13-01"}, {"ok": False, "error": 'Invalid "to" date format'}),
    ],
)
async def test_search_rejects_bad_queries(
    hub: RunningHub, client: httpx.AsyncClient, params: dict[str, str], body: dict[str, Any]
) -> None:
    alice = await signed_in_user(hub)
    response = await client.get("/api/messages/search", params=params, headers=alice.headers)
    assert (response.status_code, response.json()) == (400, body)


# ---------------------------------------------------------------------------------------------
# PUT /api/messages/:id and GET /api/messages/:id/history


async def test_edit_keeps_history_and_announces_the_new_message(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    with trio.fail_after(TIMEOUT_S):
        sent = await send_message(
            hub.services, user_id=alice.id, username=alice.username, room_id=room_id,
            content="first @bob", reply_to_id=None, attachment_ids=[],
        )  # fmt: skip
    events = capture(hub)
    edited_content = '**second** a < b <script>x()</script><a href="javascript:x" onclick=y>l</a>'

    first = await client.put(f"/api/messages/{sent['id']}", headers=alice.headers,
                             json={"content": edited_content})  # fmt: skip
    second = await client.put(f"/api/messages/{sent['id']}", headers=alice.headers,
                              json={"content": "third @carol"})  # fmt: skip

    assert first.status_code == 200
    message = first.json()["data"]
    assert message["content"] == '**second** a < b <a href="">l</a>'
    assert message["mentions"] == ["bob"]  # not recomputed
    assert list(message) == ["id", "roomId", "senderId", "senderType", "senderName", "type",
                             "content", "replyToId", "mentions", "createdAt",
                             "updatedAt"]  # fmt: skip
    assert message["updatedAt"] is not None and message["replyToId"] is None
    assert second.json()["data"]["content"] == "third @carol"
    edited_first, edited_second = events
    assert (edited_first.target, edited_first.target_id) == (Target.ROOM, room_id)
    no_reply = {k: v for k, v in message.items() if k != "replyToId"}  # never null (E15)
    assert edited_first.message == {"type": "server:message_edited", "message": no_reply}
    second_data = second.json()["data"]
    assert edited_second.message["message"] == {k: v for k, v in second_data.items()
                                                if v is not None}  # fmt: skip

    history = await client.get(f"/api/messages/{sent['id']}/history", headers=bob.headers)
    records = history.json()["data"]
    assert [r["previousContent"] for r in records] == [message["content"], "first @bob"]
    assert list(records[0]) == ["id", "messageId", "previousContent", "editedAt"]
    assert records[0]["messageId"] == sent["id"]
    assert records[0]["editedAt"] >= records[1]["editedAt"]


async def test_edit_refusals_change_nothing(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob, mallory = (await signed_in_user(hub), await signed_in_user(hub),
                           await signed_in_user(hub))  # fmt: skip
    room_id = await create_room(hub, alice, members=(bob,))
    await hub.services.db.execute(
        "UPDATE room_members SET role = 'admin' WHERE member_id = $1", bob.id
    )
    own = await insert_message(hub, room_id, alice, "original")
    agents = await insert_message(hub, room_id, alice.id, "agent text", sender_type="agent")
    events = capture(hub)
    cases = [
        (bob, own, {"content": "x"}, 403, "Only the sender can edit this message"),
        (alice, agents, {"content": "x"}, 403, "Only the sender can edit this message"),
        (mallory, own, {"content": "x"}, 403, "Not a member of this room"),
        (alice, new_id(), {"content": "x"}, 404, "Message not found"),
        (alice, own, {"content": ""}, 400, "Validation failed"),
        (alice, own, {"content": 5}, 400, "Validation failed"),
    ]
    for user, message_id, body, status, error in cases:
        response = await client.put(f"/api/messages/{message_id}", headers=user.headers,
                                    json=body)  # fmt: skip
        assert (response.status_code, response.json()["error"]) == (status, error)
    too_long = await client.put(f"/api/messages/{own}", headers=alice.headers,
                                json={"content": "😀" * 50_001})  # fmt: skip
    assert too_long.json()["fields"] == [
        {"field": "content", "message": "String must contain at most 100000 character(s)"}
    ]
    assert events == []
    content = await hub.services.db.fetchval("SELECT content FROM messages WHERE id = $1", own)
    assert content == "original"
    edits = await hub.services.db.fetchval(
        "SELECT count(*) FROM message_edits WHERE message_id = ANY($1::text[])", [own, agents]
    )
    assert edits == 0
    outsider = await client.get(f"/api/messages/{own}/history", headers=mallory.headers)
    assert (outsider.status_code, outsider.json()["error"]) == (403, "Not a member of this room")
    missing = await client.get(f"/api/messages/{new_id()}/history", headers=alice.headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "Message not found")


# ---------------------------------------------------------------------------------------------
# DELETE /api/messages/:id and POST /api/messages/batch-delete


async def test_delete_own_message_removes_files_and_announces(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    message_id = await insert_message(hub, room_id, alice, "with file")
    attachment_id = await insert_attachment(hub, alice, message_id)
    upload_dir = hub.services.settings.upload_dir
    upload_dir.mkdir(parents=True, exist_ok=True)
    (upload_dir / f"{attachment_id}.txt").write_text("notes")
    await client.post(f"/api/messages/{message_id}/reactions", headers=bob.headers,
                      json={"emoji": "👍"})  # fmt: skip
    events = capture(hub)

    refused = await client.delete(f"/api/messages/{message_id}", headers=bob.headers)
    assert (refused.status_code, refused.json()["error"]) == (
        403, "Only the sender can delete this message"
    )  # fmt: skip
    response = await client.delete(f"/api/messages/{message_id}", headers=alice.headers)

    assert response.text == '{"ok":true}'
    assert not await message_exists(hub, message_id)
    assert not (upload_dir / f"{attachment_id}.txt").exists()
    for table in ("message_attachments", "message_reactions"):
        count = await hub.services.db.fetchval(
            f"SELECT count(*) FROM {table} WHERE message_id = $1", message_id
        )
        assert count == 0
    [event] = events
    assert (event.target, event.target_id) == (Target.ROOM, room_id)
    assert event.message == {"type": "server:message_deleted", "roomId": room_id,
                             "messageId": message_id}  # fmt: skip
    audit = await hub.services.db.fetchrow(
        "SELECT user_id, target_type, metadata FROM audit_log WHERE action = 'file_delete' "
        "AND target_id = $1", message_id,
    )  # fmt: skip
    assert audit is not None and audit["target_type"] == "file"
    assert json.loads(audit["metadata"]) == {"roomId": room_id, "attachmentCount": 1}
    again = await client.delete(f"/api/messages/{message_id}", headers=alice.headers)
    assert (again.status_code, again.json()["error"]) == (404, "Message not found")


async def test_batch_delete_by_admin_and_by_member(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    alices = await insert_message(hub, room_id, alice, "a", created_at=at(1))
    bobs = await insert_message(hub, room_id, bob, "b", created_at=at(2))
    agents = await insert_message(hub, room_id, "agent-1", "c", created_at=at(3),
                                  sender_type="agent")  # fmt: skip
    events = capture(hub)
    path = "/api/messages/batch-delete"

    by_bob = await client.post(path, headers=bob.headers,
                               json={"messageIds": [alices, bobs, agents, new_id()]})  # fmt: skip
    assert by_bob.text == '{"ok":true,"data":{"deleted":1}}'  # the others are skipped silently
    assert [e.message for e in events] == [
        {"type": "server:message_deleted", "roomId": room_id, "messageId": bobs}
    ]
    events.clear()
    nothing = await client.post(path, headers=bob.headers, json={"messageIds": [alices]})
    assert (nothing.status_code, nothing.json()["error"]) == (
        403, "No permission to delete these messages"
    )  # fmt: skip
    by_alice = await client.post(path, headers=alice.headers,
                                 json={"messageIds": [agents, alices]})  # fmt: skip
    assert by_alice.json() == {"ok": True, "data": {"deleted": 2}}
    assert sorted(e.message["messageId"] for e in events) == sorted([alices, agents])
    assert all(e.target_id == room_id for e in events)
    audit = await hub.services.db.fetchrow(
        "SELECT target_id, metadata FROM audit_log WHERE action = 'file_delete' AND user_id = $1",
        alice.id,
    )  # fmt: skip
    assert audit is not None
    assert sorted(audit["target_id"].split(",")) == sorted([alices, agents])
    assert json.loads(audit["metadata"]) == {"roomId": room_id, "count": 2, "attachmentCount": 0}
    none_found = await client.post(path, headers=alice.headers, json={"messageIds": [new_id()]})
    assert none_found.text == '{"ok":true,"data":{"deleted":0}}'


async def test_batch_delete_refusals_change_nothing(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    first = await create_room(hub, alice)
    second = await create_room(hub, alice)
    one = await insert_message(hub, first, alice)
    two = await insert_message(hub, second, alice)
    events = capture(hub)
    path = "/api/messages/batch-delete"
    mixed = await client.post(path, headers=alice.headers, json={"messageIds": [one, two]})
    assert (mixed.status_code, mixed.json()["error"]) == (
        400, "All messages must belong to the same room"
    )  # fmt: skip
    outsider = await client.post(path, headers=mallory.headers, json={"messageIds": [one]})
    assert (outsider.status_code, outsider.json()["error"]) == (403, "Not a member of this room")
    empty = await client.post(path, headers=alice.headers, json={"messageIds": []})
    assert empty.json()["fields"] == [
        {"field": "messageIds", "message": "Array must contain at least 1 element(s)"}
    ]
    assert events == []
    assert await message_exists(hub, one) and await message_exists(hub, two)


# ---------------------------------------------------------------------------------------------
# POST /api/messages/:id/reactions


async def test_reaction_toggles_on_and_off(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    message_id = await insert_message(hub, room_id, alice)
    events = capture(hub)
    path = f"/api/messages/{message_id}/reactions"

    on = await client.post(path, headers=bob.headers, json={"emoji": "👍"})
    assert on.status_code == 200
    reactions = [{"emoji": "👍", "userIds": [bob.id], "usernames": [bob.username]}]
    assert on.json() == {"ok": True, "data": reactions}
    off = await client.post(path, headers=bob.headers, json={"emoji": "👍"})
    assert off.text == '{"ok":true,"data":[]}'
    assert [(e.target, e.target_id) for e in events] == [(Target.ROOM, room_id)] * 2
    assert [e.message for e in events] == [
        {"type": "server:reaction_update", "roomId": room_id, "messageId": message_id,
         "reactions": reactions},
        {"type": "server:reaction_update", "roomId": room_id, "messageId": message_id,
         "reactions": []},
    ]  # fmt: skip
    count = await hub.services.db.fetchval(
        "SELECT count(*) FROM message_reactions WHERE message_id = $1", message_id
    )
    assert count == 0


async def test_reaction_limits_and_refusals(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    message_id = await insert_message(hub, room_id, alice)
    path = f"/api/messages/{message_id}/reactions"
    for i in range(20):
        response = await client.post(path, headers=alice.headers, json={"emoji": f"e{i}"})
        assert response.status_code == 200
    events = capture(hub)
    full = await client.post(path, headers=alice.headers, json={"emoji": "one-more"})
    assert (full.status_code, full.json()["error"]) == (
        400,
        "Maximum reactions per message reached",
    )
    invalid = '{"ok":false,"error":"Invalid emoji"}'
    family = "👨‍👩‍👧‍👦"  # 11 UTF-16 units
    for body in ({"emoji": ""}, {"emoji": family}, {"emoji": 1}, {}, [], "x", None):
        response = await client.post(path, headers=alice.headers, content=json.dumps(body))
        assert (response.status_code, response.text) == (400, invalid)
    outsider = await client.post(path, headers=mallory.headers, json={"emoji": "👍"})
    assert (outsider.status_code, outsider.json()["error"]) == (403, "Not a member of this room")
    missing = await client.post(f"/api/messages/{new_id()}/reactions", headers=alice.headers,
                                json={"emoji": "👍"})  # fmt: skip
    assert (missing.status_code, missing.json()["error"]) == (404, "Message not found")
    assert events == []
    removed = await client.post(path, headers=alice.headers, json={"emoji": "e0"})
    assert removed.status_code == 200 and len(removed.json()["data"]) == 19


# ---------------------------------------------------------------------------------------------
# routing, ids and tokens


async def test_message_paths_check_token_then_ids(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    assert (await client.get("/api/messages/recent")).status_code == 401
    assert (await client.get("/api/messages/x/y/z")).status_code == 401
    bad = await client.put("/api/messages/bad!id", headers=alice.headers, json={"content": "x"})
    assert (bad.status_code, bad.json()["error"]) == (400, "Invalid parameter: id")
    unknown = await client.get(f"/api/messages/{new_id()}", headers=alice.headers)
    assert (unknown.status_code, unknown.text) == (404, "404 Not Found")
    nested = await client.post("/api/messages/rooms/bad!id/nothing", headers=alice.headers)
    assert nested.json()["error"] == "Invalid parameter: roomId"

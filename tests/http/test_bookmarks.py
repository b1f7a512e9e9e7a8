"""/api/bookmarks over real HTTP, PostgreSQL and Redis (head-gap A8, C3)."""

from __future__ import annotations

from typing import Any

import httpx

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.http.test_messages import at, insert_message


async def _add(client: httpx.AsyncClient, user: User, body: Any) -> tuple[int, Any]:
    response = await client.post("/api/bookmarks", json=body, headers=user.headers)
    return response.status_code, response.json()


def _refused(status: int, error: str) -> tuple[int, dict[str, Any]]:
    return status, {"ok": False, "error": error}


async def test_add_list_page_and_delete(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    ids = [await insert_message(hub, room_id, bob, f"m{i}", created_at=at(i)) for i in range(3)]

    status, first = await _add(client, alice, {"messageId": ids[0], "note": "read later"})
    assert status == 201
    bookmark = first["data"]
    assert bookmark == {"id": bookmark["id"], "userId": alice.id, "messageId": ids[0],
                        "note": "read later", "createdAt": bookmark["createdAt"]}  # fmt: skip
    added = [bookmark] + [(await _add(client, alice, {"messageId": m}))[1]["data"]
                          for m in ids[1:]]  # fmt: skip
    assert added[1]["note"] == ""

    page = await client.get("/api/bookmarks", params={"limit": "2"}, headers=alice.headers)
    data = page.json()["data"]
    assert [b["messageId"] for b in data["items"]] == [ids[2], ids[1]]
    assert data["hasMore"] is True and data["nextCursor"] == data["items"][-1]["createdAt"]
    assert data["items"][0] == {**added[2], "message": {
        "roomId": room_id, "senderName": bob.username, "content": "m2", "createdAt": at(2),
    }}  # fmt: skip
    rest = await client.get("/api/bookmarks", params={"limit": "2", "cursor": data["nextCursor"]},
                            headers=alice.headers)  # fmt: skip
    assert [b["messageId"] for b in rest.json()["data"]["items"]] == [ids[0]]
    assert rest.json()["data"] == {"items": rest.json()["data"]["items"], "hasMore": False}
    bobs = await client.get("/api/bookmarks", headers=bob.headers)
    assert bobs.json() == {"ok": True, "data": {"items": [], "hasMore": False}}

    others = await client.delete(f"/api/bookmarks/{bookmark['id']}", headers=bob.headers)
    assert (others.status_code, others.json()) == _refused(404, "Bookmark not found")
    deleted = await client.delete(f"/api/bookmarks/{bookmark['id']}", headers=alice.headers)
    assert deleted.json() == {"ok": True, "data": {"id": bookmark["id"]}}
    again = await client.delete(f"/api/bookmarks/{bookmark['id']}", headers=alice.headers)
    assert again.status_code == 404
    left = await hub.services.db.fetchval(
        "SELECT count(*) FROM bookmarks WHERE user_id = $1", alice.id
    )
    assert left == 2


async def test_only_readable_messages_and_one_bookmark_each(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(mallory,))
    secret_room = await create_room(hub, alice)
    shared = await insert_message(hub, room_id, alice, "shared", created_at=at(0))
    secret = await insert_message(hub, secret_room, alice, "secret", created_at=at(0))

    assert await _add(client, mallory, {"messageId": secret}) == _refused(
        403, "Not a member of this room")  # fmt: skip
    assert await _add(client, mallory, {"messageId": new_id()}) == _refused(
        404, "Message not found")  # fmt: skip
    assert (await _add(client, mallory, {"messageId": shared}))[0] == 201
    assert await _add(client, mallory, {"messageId": shared}) == _refused(
        409, "Bookmark already exists")  # fmt: skip

    # after leaving the room, its bookmarks are no longer listed
    await hub.services.db.execute(
        "DELETE FROM room_members WHERE room_id = $1 AND member_id = $2", room_id, mallory.id
    )
    listed = await client.get("/api/bookmarks", headers=mallory.headers)
    assert listed.json()["data"]["items"] == []

    # what a member cleared from their history can neither be listed nor bookmarked
    assert (await _add(client, alice, {"messageId": shared}))[0] == 201
    cleared = await client.put(f"/api/rooms/{room_id}/clear", headers=alice.headers)
    assert cleared.status_code == 200
    assert (await client.get("/api/bookmarks", headers=alice.headers)).json()["data"][
        "items"] == []  # fmt: skip
    other = await insert_message(hub, room_id, alice, "old", created_at=at(1))
    assert await _add(client, alice, {"messageId": other}) == _refused(404, "Message not found")


async def test_at_most_500_per_user(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    now = iso_now()
    await hub.services.db.execute(
        "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content, "
        "created_at) SELECT $1 || n, $2, $3, 'user', 'a', 'x', $4 "
        "FROM generate_series(1, 501) n",
        new_id(8), room_id, alice.id, now,
    )  # fmt: skip
    message_ids = [r["id"] for r in await hub.services.db.fetch(
        "SELECT id FROM messages WHERE room_id = $1 ORDER BY id", room_id)]  # fmt: skip
    await hub.services.db.execute(
        "INSERT INTO bookmarks (id, user_id, message_id, created_at) "
        "SELECT 'b' || m, $1, m, $2 FROM unnest($3::text[]) m",
        alice.id, now, message_ids[:500],
    )  # fmt: skip

    assert await _add(client, alice, {"messageId": message_ids[500]}) == _refused(
        400, "Maximum bookmarks reached")  # fmt: skip
    await client.delete(f"/api/bookmarks/b{message_ids[0]}", headers=alice.headers)
    assert (await _add(client, alice, {"messageId": message_ids[500]}))[0] == 201
    assert await hub.services.db.fetchval(
        "SELECT count(*) FROM bookmarks WHERE user_id = $1", alice.id) == 500  # fmt: skip


async def test_bad_input_is_refused(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice = await signed_in_user(hub)

    def invalid(*fields: tuple[str, str]) -> tuple[int, dict[str, Any]]:
        return 400, {"ok": False, "error": "Validation failed",
                     "fields": [{"field": f, "message": m} for f, m in fields]}  # fmt: skip

    assert await _add(client, alice, {}) == invalid(("messageId", "Required"))
    assert await _add(client, alice, {"messageId": "", "note": "x" * 501}) == invalid(
        ("messageId", "String must contain at least 1 character(s)"),
        ("note", "String must contain at most 500 character(s)"),
    )  # fmt: skip
    assert await _add(client, alice, {"messageId": "m", "note": None}) == invalid(
        ("note", "Expected string, received null"))  # fmt: skip
    assert await _add(client, alice, []) == invalid(("(root)", "Expected object, received array"))
    bad_json = await client.post("/api/bookmarks", content=b"{", headers=alice.headers)
    assert (bad_json.status_code, bad_json.json()) == _refused(400, "Invalid JSON body")
    bad_id = await client.delete("/api/bookmarks/a.b", headers=alice.headers)
    assert (bad_id.status_code, bad_id.json()) == _refused(400, "Invalid parameter: id")
    for junk in ("0", "abc", "-4", "1000"):
        listed = await client.get("/api/bookmarks", params={"limit": junk}, headers=alice.headers)
        assert listed.status_code == 200, junk
    anonymous = await client.get("/api/bookmarks")
    assert anonymous.status_code == 401
    assert await hub.services.db.fetchval(
        "SELECT count(*) FROM bookmarks WHERE user_id = $1", alice.id) == 0  # fmt: skip

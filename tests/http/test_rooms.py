"""/api/rooms over real HTTP, PostgreSQL and Redis (api.md §6, Appendix A.3).

Each state change is checked with the events published after commit, and bad input with
the unchanged database.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from agentim.protocol.events import Target
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, create_user, signed_in_user

TIMEOUT_S = 20


async def insert_agent(
    hub: RunningHub, owner: User, *, visibility: str = "private", name: str = "coder",
    capabilities: str | None = None,
) -> str:  # fmt: skip
    gateway_id, agent_id, now = new_id(), new_id(), iso_now()
    await hub.services.db.execute(
        "INSERT INTO gateways (id, user_id, name, created_at) VALUES ($1, $2, 'gw', $3)",
        gateway_id, owner.id, now,
    )  # fmt: skip
    await hub.services.db.execute(
        "INSERT INTO agents (id, name, type, status, visibility, gateway_id, capabilities, "
        "created_at, updated_at) VALUES ($1, $2, 'claude-code', 'online', $3, $4, $5, $6, $6)",
        agent_id, name, visibility, gateway_id, capabilities, now,
    )  # fmt: skip
    return agent_id


async def insert_router(
    hub: RunningHub, owner: User, *, scope: str = "personal", visibility: str = "all",
    visibility_list: list[str] | None = None,
) -> str:  # fmt: skip
    router_id, now = new_id(), iso_now()
    await hub.services.db.execute(
        "INSERT INTO routers (id, name, scope, created_by_id, llm_base_url, llm_api_key, "
        "llm_model, visibility, visibility_list, created_at, updated_at) VALUES ($1, $1, $2, "
        "$3, 'https://llm.example', 'key', 'm', $4, $5, $6, $6)",
        router_id, scope, owner.id, visibility, json.dumps(visibility_list or []), now,
    )  # fmt: skip
    return router_id


async def add_agent_member(
    hub: RunningHub, room_id: str, agent_id: str, role_desc: str | None
) -> None:
    await hub.services.db.execute(
        "INSERT INTO room_members (room_id, member_id, member_type, role, role_description, "
        "joined_at) VALUES ($1, $2, 'agent', 'member', $3, $4)",
        room_id, agent_id, role_desc, iso_now(),
    )  # fmt: skip


def capture(hub: RunningHub) -> list[Any]:
    captured: list[Any] = []
    hub.services.events.captured = captured
    return captured


async def audit_rows(hub: RunningHub, action: str, target_id: str) -> list[dict[str, Any]]:
    rows = await hub.services.db.fetch(
        "SELECT user_id, target_type, metadata FROM audit_log WHERE action = $1 AND target_id = $2",
        action, target_id,
    )  # fmt: skip
    return [dict(row) for row in rows]


async def room_count(hub: RunningHub, creator: User) -> int:
    return int(
        await hub.services.db.fetchval(
            "SELECT count(*) FROM rooms WHERE created_by_id = $1", creator.id
        )
    )


# ---------------------------------------------------------------------------------------------
# POST /api/rooms


async def test_create_room_returns_201_and_stores_owner_and_members(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    events = capture(hub)
    with trio.fail_after(TIMEOUT_S):
        response = await client.post(
            "/api/rooms", headers=alice.headers,
            json={"name": " <b>Team</b> chat ", "memberIds": [bob.id, bob.id, alice.id],
                  "systemPrompt": "<i>raw</i>", "extra": 1},
        )  # fmt: skip
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    data = response.json()["data"]
    assert list(data) == ["id", "name", "type", "broadcastMode", "systemPrompt", "routerId",
                          "agentCommandRole", "createdById", "createdAt", "updatedAt"]  # fmt: skip
    assert data["name"] == "Team chat"
    assert (data["type"], data["broadcastMode"], data["routerId"]) == ("group", False, None)
    assert data["systemPrompt"] == "<i>raw</i>"
    assert data["createdById"] == alice.id
    assert data["createdAt"] == data["updatedAt"]
    members = await hub.services.db.fetch(
        "SELECT member_id, role, last_read_at, joined_at FROM room_members WHERE room_id = $1",
        data["id"],
    )
    assert {m["member_id"]: m["role"] for m in members} == {alice.id: "owner", bob.id: "member"}
    assert all(m["last_read_at"] == m["joined_at"] == data["createdAt"] for m in members)
    [row] = await audit_rows(hub, "room_create", data["id"])
    assert row["user_id"] == alice.id and row["target_type"] == "room"
    assert json.loads(row["metadata"]) == {"name": " <b>Team</b> chat ", "type": "group"}
    assert events == []  # room creation announces nothing


async def test_create_room_name_that_sanitises_to_nothing_is_stored_empty(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    response = await client.post("/api/rooms", headers=alice.headers, json={"name": "<i></i>"})
    assert response.status_code == 201
    assert response.json()["data"]["name"] == ""


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, [{"field": "name", "message": "Required"}]),
        ({"name": "   "}, [{"field": "name", "message": "Name cannot be only whitespace"}]),
        ({"name": "x" * 101, "type": "secret"}, [
            {"field": "name", "message": "String must contain at most 100 character(s)"},
            {"field": "type", "message":
             "Invalid enum value. Expected 'private' | 'group', received 'secret'"},
        ]),
        ({"name": "ok", "memberIds": "u1"},
         [{"field": "memberIds", "message": "Expected array, received string"}]),
        ([], [{"field": "(root)", "message": "Expected object, received array"}]),
    ],
)  # fmt: skip
async def test_create_room_validation_errors_change_nothing(
    hub: RunningHub, client: httpx.AsyncClient, body: Any, fields: list[dict[str, str]]
) -> None:
    alice = await signed_in_user(hub)
    response = await client.post("/api/rooms", headers=alice.headers, json=body)
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Validation failed", "fields": fields}
    assert await room_count(hub, alice) == 0


async def test_create_room_rejects_bad_json_and_unknown_members(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    bad = await client.post("/api/rooms", headers=alice.headers, content=b"{nope")
    assert (bad.status_code, bad.json()) == (400, {"ok": False, "error": "Invalid JSON body"})
    unknown = await client.post(
        "/api/rooms", headers=alice.headers, json={"name": "r", "memberIds": [new_id()]}
    )
    assert unknown.status_code == 400
    assert unknown.text == '{"ok":false,"error":"One or more users not found"}'
    assert await room_count(hub, alice) == 0


async def test_create_room_checks_router_access(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    admin = await signed_in_user(hub, role="admin")
    bobs = await insert_router(hub, bob)
    own = await insert_router(hub, alice)
    listed = await insert_router(hub, bob, scope="global", visibility="whitelist",
                                 visibility_list=[alice.id])  # fmt: skip
    barred = await insert_router(hub, bob, scope="global", visibility="blacklist",
                                 visibility_list=[alice.id])  # fmt: skip

    async def create(user: User, router_id: str) -> httpx.Response:
        return await client.post(
            "/api/rooms", headers=user.headers, json={"name": "r", "routerId": router_id}
        )

    missing = await create(alice, new_id())
    assert (missing.status_code, missing.json()["error"]) == (404, "Router not found")
    for router_id in (bobs, barred):
        refused = await create(alice, router_id)
        assert (refused.status_code, refused.json()["error"]) == (403, "Router not accessible")
    assert await room_count(hub, alice) == 0
    for router_id in (own, listed):
        created = await create(alice, router_id)
        assert created.status_code == 201
        assert created.json()["data"]["routerId"] == router_id
    by_admin = await create(admin, bobs)
    assert by_admin.status_code == 201
    empty = await create(alice, "")
    assert (empty.status_code, empty.json()["error"]) == (409, "Router no longer exists")


# ---------------------------------------------------------------------------------------------
# GET /api/rooms, GET /api/rooms/:id, members list


async def test_list_rooms_holds_member_rooms_with_pin_and_archive_state(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    mine = await create_room(hub, alice, name="mine")
    joined = await create_room(hub, bob, members=(alice,), name="joined")
    await create_room(hub, bob, name="foreign")
    creator_only = await create_room(hub, alice, name="creator only")
    await hub.services.db.execute("DELETE FROM room_members WHERE room_id = $1", creator_only)
    await client.put(f"/api/rooms/{joined}/pin", headers=alice.headers)

    response = await client.get("/api/rooms", headers=alice.headers)

    assert response.status_code == 200
    rooms = {room["id"]: room for room in response.json()["data"]}
    assert set(rooms) == {mine, joined}
    assert list(rooms[mine])[-2:] == ["pinnedAt", "archivedAt"]
    assert rooms[mine]["pinnedAt"] is None and rooms[joined]["pinnedAt"] is not None
    assert rooms[joined]["archivedAt"] is None
    nobody = await signed_in_user(hub)
    empty = await client.get("/api/rooms", headers=nobody.headers)
    assert empty.text == '{"ok":true,"data":[]}'


async def test_get_room_returns_room_and_every_member_row(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    agent_id = await insert_agent(hub, alice)
    await add_agent_member(hub, room_id, agent_id, "reviews code")

    response = await client.get(f"/api/rooms/{room_id}", headers=alice.headers)

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == room_id and list(data)[-2:] == ["members", "totalMembers"]
    assert data["totalMembers"] == 3
    members = {m["memberId"]: m for m in data["members"]}
    assert set(members) == {alice.id, bob.id, agent_id}
    assert list(members[agent_id]) == ["roomId", "memberId", "memberType", "role",
                                       "roleDescription", "notificationPref", "pinnedAt",
                                       "archivedAt", "lastReadAt", "joinedAt",
                                       "displayName"]  # fmt: skip
    assert members[agent_id]["memberType"] == "agent"
    assert members[agent_id]["roleDescription"] == "reviews code"
    assert members[alice.id]["role"] == "owner"
    listed = await client.get(f"/api/rooms/{room_id}/members", headers=alice.headers)
    assert listed.status_code == 200
    assert sorted(m["memberId"] for m in listed.json()["data"]) == sorted(members)


async def test_room_reads_are_refused_to_non_members(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, mallory = await create_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    missing = await client.get(f"/api/rooms/{new_id()}", headers=mallory.headers)
    assert missing.text == '{"ok":false,"error":"Room not found"}' and missing.status_code == 404
    for path in (f"/api/rooms/{room_id}", f"/api/rooms/{room_id}/members",
                 f"/api/rooms/{new_id()}/members"):  # fmt: skip
        response = await client.get(path, headers=mallory.headers)
        assert response.status_code == 403
        assert response.text == '{"ok":false,"error":"Not a member of this room"}'


async def test_creator_without_member_row_may_read_the_room(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    await hub.services.db.execute("DELETE FROM room_members WHERE room_id = $1", room_id)
    response = await client.get(f"/api/rooms/{room_id}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["data"]["members"] == []


async def test_ids_and_tokens_are_checked_before_anything_else(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    assert (await client.get("/api/rooms")).status_code == 401
    assert (await client.get("/api/rooms/x/y")).status_code == 401
    assert (await client.delete("/api/rooms/bad!id")).status_code == 401
    bad = await client.get("/api/rooms/bad!id", headers=alice.headers)
    assert (bad.status_code, bad.text) == (400, '{"ok":false,"error":"Invalid parameter: id"}')
    too_long = await client.put(f"/api/rooms/{'a' * 31}/pin", headers=alice.headers)
    assert too_long.json()["error"] == "Invalid parameter: id"
    unknown = await client.get("/api/rooms/abc/nothing", headers=alice.headers)
    assert (unknown.status_code, unknown.text) == (404, "404 Not Found")
    assert unknown.headers["content-type"].startswith("text/plain")
    slash = await client.get("/api/rooms/", headers=alice.headers)
    assert (slash.status_code, slash.text) == (404, "404 Not Found")
    wrong_method = await client.patch("/api/rooms/abc", headers=alice.headers)
    assert wrong_method.status_code == 404
    bad_nested = await client.get("/api/rooms/bad!id/anything", headers=alice.headers)
    assert bad_nested.json()["error"] == "Invalid parameter: id"


# ---------------------------------------------------------------------------------------------
# PUT /api/rooms/:id


async def test_update_room_publishes_room_update_then_room_context(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub, display_name="Bob B")
    room_id = await create_room(hub, alice, members=(bob,))
    agent_id = await insert_agent(hub, alice, name="helper", capabilities='["code"]')
    await add_agent_member(hub, room_id, agent_id, "writes tests")
    router_id = await insert_router(hub, alice)
    events = capture(hub)

    response = await client.put(
        f"/api/rooms/{room_id}", headers=alice.headers,
        json={"name": "<b>New</b>", "broadcastMode": True, "systemPrompt": "be brief",
              "routerId": router_id},
    )  # fmt: skip

    assert response.status_code == 200
    room = response.json()["data"]
    assert (room["name"], room["broadcastMode"], room["systemPrompt"]) == ("New", True, "be brief")
    assert room["routerId"] == router_id and room["updatedAt"] >= room["createdAt"]
    stored = await hub.services.db.fetchrow("SELECT * FROM rooms WHERE id = $1", room_id)
    assert stored is not None and stored["name"] == "New" and stored["broadcast_mode"] is True
    update, context = events
    assert (update.target, update.target_id) == (Target.ROOM, room_id)
    assert update.message["type"] == "server:room_update"
    assert update.message["room"] == room
    assert {m["memberId"] for m in update.message["members"]} == {alice.id, bob.id, agent_id}
    assert (context.target, context.target_id) == (Target.AGENT, agent_id)
    message = context.message
    assert message["type"] == "server:room_context" and message["agentId"] == agent_id
    assert message["context"]["roomId"] == room_id
    assert message["context"]["roomName"] == "New"
    assert message["context"]["systemPrompt"] == "be brief"
    members = {m["id"]: m for m in message["context"]["members"]}
    assert members[bob.id] == {"id": bob.id, "name": "Bob B", "type": "user"}
    assert members[agent_id] == {
        "id": agent_id, "name": "helper", "type": "agent", "agentType": "claude-code",
        "capabilities": ["code"], "roleDescription": "writes tests", "status": "online",
    }  # fmt: skip
    assert await audit_rows(hub, "room_update", room_id) == [
        {"user_id": alice.id, "target_type": "room", "metadata": None}
    ]


async def test_update_room_can_clear_prompt_and_router(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    router_id = await insert_router(hub, alice)
    created = await client.post(
        "/api/rooms", headers=alice.headers,
        json={"name": "r", "routerId": router_id, "systemPrompt": "p"},
    )  # fmt: skip
    room_id = created.json()["data"]["id"]
    events = capture(hub)
    response = await client.put(
        f"/api/rooms/{room_id}", headers=alice.headers,
        json={"routerId": None, "systemPrompt": None},
    )  # fmt: skip
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["routerId"], data["systemPrompt"], data["name"]) == (None, None, "r")
    [update] = events  # no agent members: no room_context
    # the frame leaves out the prompt (optional, never null); routerId may be null (E15)
    assert update.message["room"] == {k: v for k, v in data.items() if k != "systemPrompt"}


async def test_update_room_refusals_change_nothing_and_publish_nothing(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,), name="before")
    events = capture(hub)
    cases = [
        (bob, {"name": "x"}, 403, "Only room owner or admin can update settings"),
        (alice, {"name": ""}, 400, "Validation failed"),
        (alice, {"broadcastMode": "yes"}, 400, "Validation failed"),
        (alice, {"routerId": ""}, 404, "Router not found"),
        (alice, {"routerId": new_id()}, 404, "Router not found"),
    ]
    for user, body, status, error in cases:
        response = await client.put(f"/api/rooms/{room_id}", headers=user.headers, json=body)
        assert (response.status_code, response.json()["error"]) == (status, error)
    unknown = await client.put(f"/api/rooms/{new_id()}", headers=alice.headers, json={})
    assert unknown.status_code == 403
    row = await hub.services.db.fetchrow("SELECT name, updated_at, created_at FROM rooms "
                                         "WHERE id = $1", room_id)  # fmt: skip
    assert row is not None and row["name"] == "before" and row["updated_at"] == row["created_at"]
    assert events == []


# ---------------------------------------------------------------------------------------------
# DELETE /api/rooms/:id


async def test_delete_room_cascades_unlinks_files_and_evicts_every_member(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob, carol = await signed_in_user(hub), await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob, carol), name="doomed")
    message_id, attachment_id, now = new_id(), new_id(), iso_now()
    db = hub.services.db
    await db.execute(
        "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, type, content, "
        "created_at) VALUES ($1, $2, $3, 'user', 'a', 'text', 'hi', $4)",
        message_id, room_id, alice.id, now,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url, "
        "uploaded_by, created_at) VALUES ($1, $2, 'f.txt', 'text/plain', 2, $3, $4, $5)",
        attachment_id, message_id, f"/uploads/{attachment_id}.txt", alice.id, now,
    )  # fmt: skip
    upload_dir = hub.services.settings.upload_dir
    upload_dir.mkdir(parents=True, exist_ok=True)
    stored_file = upload_dir / f"{attachment_id}.txt"
    stored_file.write_text("hi")
    events = capture(hub)

    refused = await client.delete(f"/api/rooms/{room_id}", headers=bob.headers)
    assert (refused.status_code, refused.json()["error"]) == (403, "Only room creator can delete")
    assert events == []
    response = await client.delete(f"/api/rooms/{room_id}", headers=alice.headers)

    assert (response.status_code, response.text) == (200, '{"ok":true}')
    for table, column in (("rooms", "id"), ("room_members", "room_id"),
                          ("messages", "room_id")):  # fmt: skip
        count = await db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", room_id)
        assert count == 0
    assert (
        await db.fetchval("SELECT count(*) FROM message_attachments WHERE id = $1", attachment_id)
        == 0
    )
    assert not stored_file.exists()
    assert {e.target_id for e in events} == {alice.id, bob.id, carol.id}
    for event in events:
        assert event.target is Target.CONTROL
        assert event.control == {
            "action": "room_removed", "roomId": room_id,
            "frame": f'{{"type":"server:room_removed","roomId":"{room_id}"}}',
        }  # fmt: skip
    [row] = await audit_rows(hub, "room_delete", room_id)
    assert json.loads(row["metadata"]) == {"name": "doomed"}
    gone = await client.delete(f"/api/rooms/{room_id}", headers=alice.headers)
    assert (gone.status_code, gone.json()["error"]) == (404, "Room not found")


# ---------------------------------------------------------------------------------------------
# POST /api/rooms/:id/members


async def test_add_user_member_clears_cache_and_announces(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice)
    agent_id = await insert_agent(hub, alice)
    await add_agent_member(hub, room_id, agent_id, "helps")
    kv = hub.services.kv
    await kv.set(f"rm:{bob.id}:{room_id}", "none", ex=60)
    events = capture(hub)

    response = await client.post(
        f"/api/rooms/{room_id}/members", headers=alice.headers,
        json={"memberId": bob.id, "memberType": "user", "role": "owner",
              "roleDescription": "<b>lead</b>"},
    )  # fmt: skip

    assert (response.status_code, response.text) == (201, '{"ok":true}')
    row = await hub.services.db.fetchrow(
        "SELECT * FROM room_members WHERE room_id = $1 AND member_id = $2", room_id, bob.id
    )
    assert row is not None
    assert (row["member_type"], row["role"], row["role_description"]) == (
        "user",
        "owner",
        "<b>lead</b>",
    )
    assert row["last_read_at"] == row["joined_at"]
    assert await kv.get(f"rm:{bob.id}:{room_id}") is None
    update, context = events
    assert update.target is Target.ROOM and update.message["type"] == "server:room_update"
    assert bob.id in {m["memberId"] for m in update.message["members"]}
    assert (context.target, context.target_id) == (Target.AGENT, agent_id)
    assert bob.id in {m["id"] for m in context.message["context"]["members"]}
    [audit] = await audit_rows(hub, "member_add", bob.id)
    assert audit["target_type"] == "member"
    assert json.loads(audit["metadata"]) == {"roomId": room_id, "memberType": "user",
                                             "role": "owner"}  # fmt: skip


async def test_add_agent_member_follows_the_shared_agent_rule(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice)
    own = await insert_agent(hub, alice, name="own")
    bobs_private = await insert_agent(hub, bob, name="secret")
    bobs_shared = await insert_agent(hub, bob, visibility="all", name="shared")
    events = capture(hub)

    async def add(agent_id: str) -> httpx.Response:
        return await client.post(f"/api/rooms/{room_id}/members", headers=alice.headers,
                                 json={"memberId": agent_id, "memberType": "agent"})  # fmt: skip

    refused = await add(bobs_private)
    assert (refused.status_code, refused.json()["error"]) == (
        403, "You do not own this agent and it is not shared"
    )  # fmt: skip
    missing = await add(new_id())
    assert (missing.status_code, missing.json()["error"]) == (404, "Agent not found")
    assert events == []
    assert (await add(own)).status_code == 201
    assert (await add(bobs_shared)).status_code == 201
    role = await hub.services.db.fetchval(
        "SELECT role FROM room_members WHERE room_id = $1 AND member_id = $2", room_id, own
    )
    assert role == "member"
    # second add: room_update, then room_context to both agents
    assert [(e.target, e.target_id) for e in events[2:]] == [
        (Target.ROOM, room_id), (Target.AGENT, own), (Target.AGENT, bobs_shared)
    ]  # fmt: skip


async def test_add_member_refusals_publish_nothing(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob, carol = await signed_in_user(hub), await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    events = capture(hub)
    path = f"/api/rooms/{room_id}/members"
    cases = [
        (bob, {"memberId": carol.id, "memberType": "user"}, 403,
         "Only room owner or admin can add members"),
        (alice, {"memberId": new_id(), "memberType": "user"}, 404, "User not found"),
        (alice, {"memberId": bob.id, "memberType": "user"}, 409, "Member already in room"),
        (alice, {"memberId": carol.id, "memberType": "robot"}, 400, "Validation failed"),
    ]  # fmt: skip
    for user, body, status, error in cases:
        response = await client.post(path, headers=user.headers, json=body)
        assert (response.status_code, response.json()["error"]) == (status, error)
    assert events == []
    count = await hub.services.db.fetchval(
        "SELECT count(*) FROM room_members WHERE room_id = $1", room_id
    )
    assert count == 2


# ---------------------------------------------------------------------------------------------
# DELETE /api/rooms/:id/members/:memberId


async def test_remove_member_evicts_then_announces(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    agent_id = await insert_agent(hub, alice)
    await add_agent_member(hub, room_id, agent_id, "helps")
    await hub.services.kv.set(f"rm:{bob.id}:{room_id}", "member", ex=60)
    events = capture(hub)

    response = await client.delete(f"/api/rooms/{room_id}/members/{bob.id}", headers=alice.headers)

    assert (response.status_code, response.text) == (200, '{"ok":true}')
    removed, update, context = events
    assert (removed.target, removed.target_id) == (Target.CONTROL, bob.id)
    assert removed.control is not None and removed.control["roomId"] == room_id
    assert json.loads(removed.control["frame"]) == {"type": "server:room_removed",
                                                    "roomId": room_id}  # fmt: skip
    assert update.message["type"] == "server:room_update"
    assert {m["memberId"] for m in update.message["members"]} == {alice.id, agent_id}
    assert (context.target, context.target_id) == (Target.AGENT, agent_id)
    assert await hub.services.kv.get(f"rm:{bob.id}:{room_id}") is None
    [audit] = await audit_rows(hub, "member_remove", bob.id)
    assert json.loads(audit["metadata"]) == {"roomId": room_id, "selfLeave": False}


async def test_member_may_leave_and_removed_agent_gets_no_context(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    agent_id = await insert_agent(hub, alice)
    await add_agent_member(hub, room_id, agent_id, "helps")
    events = capture(hub)

    left = await client.delete(f"/api/rooms/{room_id}/members/{bob.id}", headers=bob.headers)
    assert left.status_code == 200
    [audit] = await audit_rows(hub, "member_remove", bob.id)
    assert json.loads(audit["metadata"]) == {"roomId": room_id, "selfLeave": True}
    events.clear()
    kicked = await client.delete(f"/api/rooms/{room_id}/members/{agent_id}", headers=alice.headers)
    assert kicked.status_code == 200
    assert [(e.target, e.target_id) for e in events] == [
        (Target.CONTROL, agent_id), (Target.ROOM, room_id)
    ]  # fmt: skip
    again = await client.delete(f"/api/rooms/{room_id}/members/{agent_id}", headers=alice.headers)
    assert again.text == '{"ok":true}'  # removing a non-member still succeeds


async def test_remove_member_refusals(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob, carol = (
        await signed_in_user(hub),
        await signed_in_user(hub),
        await signed_in_user(hub),
    )
    room_id = await create_room(hub, alice, members=(bob,))
    await hub.services.db.execute(
        "UPDATE room_members SET role = 'admin' WHERE member_id = $1", bob.id
    )
    events = capture(hub)
    cases = [
        (carol, carol.id, 403, "Not a member of this room"),
        (carol, bob.id, 403, "Only room owner or admin can remove members"),
        (bob, alice.id, 400, "Cannot remove the room creator"),
        (alice, alice.id, 400, "Cannot remove the room creator"),
    ]
    for user, member_id, status, error in cases:
        response = await client.delete(f"/api/rooms/{room_id}/members/{member_id}",
                                       headers=user.headers)  # fmt: skip
        assert (response.status_code, response.json()["error"]) == (status, error)
    assert events == []
    assert (
        await hub.services.db.fetchval(
            "SELECT count(*) FROM room_members WHERE room_id = $1", room_id
        )
        == 2
    )


# ---------------------------------------------------------------------------------------------
# pin, archive, notification preference


async def test_pin_and_archive_toggle_per_user(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    events = capture(hub)
    for flag, path in (("pinned", "pin"), ("archived", "archive")):
        first = await client.put(f"/api/rooms/{room_id}/{path}", headers=alice.headers)
        assert first.text == f'{{"ok":true,"data":{{"{flag}":true}}}}'
        value = await hub.services.db.fetchval(
            f"SELECT {flag}_at FROM room_members WHERE member_id = $1", alice.id
        )
        assert value is not None
        second = await client.put(f"/api/rooms/{room_id}/{path}", headers=alice.headers)
        assert second.json()["data"] == {flag: False}
    untouched = await hub.services.db.fetchrow(
        "SELECT pinned_at, archived_at FROM room_members WHERE member_id = $1", bob.id
    )
    assert untouched is not None and dict(untouched) == {"pinned_at": None, "archived_at": None}
    stranger = await signed_in_user(hub)
    refused = await client.put(f"/api/rooms/{room_id}/pin", headers=stranger.headers)
    assert (refused.status_code, refused.text) == (404, '{"ok":false,"error":"Not a member"}')
    assert events == []


async def test_notification_pref(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, stranger = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    path = f"/api/rooms/{room_id}/notification-pref"
    invalid = '{"ok":false,"error":"Invalid preference. Must be one of: all, mentions, none"}'
    for body in ({"pref": "loud"}, {"pref": 1}, {}, None, ["all"]):
        response = await client.put(path, headers=alice.headers, content=json.dumps(body))
        assert (response.status_code, response.text) == (400, invalid)
    bad_json = await client.put(path, headers=alice.headers, content=b"")
    assert bad_json.json()["error"] == "Invalid JSON body"
    refused = await client.put(path, headers=stranger.headers, json={"pref": "none"})
    assert (refused.status_code, refused.json()["error"]) == (403, "Not a member of this room")
    response = await client.put(path, headers=alice.headers, json={"pref": "mentions"})
    assert response.text == '{"ok":true}'
    pref = await hub.services.db.fetchval(
        "SELECT notification_pref FROM room_members WHERE member_id = $1", alice.id
    )
    assert pref == "mentions"

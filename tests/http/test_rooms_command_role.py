"""A room's agentCommandRole over REST (head-gap A22): set at creation, changed by an admin,
returned in room bodies and in `server:room_update`, checked against its three values."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentim.protocol.events import Target
from tests.helpers import RunningHub, create_room, create_user, signed_in_user

ENUM_ISSUE = "Invalid enum value. Expected 'member' | 'admin' | 'owner', received 'boss'"


async def test_created_with_member_by_default_or_the_role_given(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    plain = await client.post("/api/rooms", headers=alice.headers, json={"name": "a"})
    strict = await client.post("/api/rooms", headers=alice.headers,
                               json={"name": "b", "agentCommandRole": "owner"})  # fmt: skip
    assert (plain.status_code, strict.status_code) == (201, 201)
    assert plain.json()["data"]["agentCommandRole"] == "member"
    assert strict.json()["data"]["agentCommandRole"] == "owner"
    room_id = strict.json()["data"]["id"]
    stored = await hub.services.db.fetchval(
        "SELECT agent_command_role FROM rooms WHERE id = $1", room_id
    )
    assert stored == "owner"
    read = await client.get(f"/api/rooms/{room_id}", headers=alice.headers)
    assert read.json()["data"]["agentCommandRole"] == "owner"
    listed = await client.get("/api/rooms", headers=alice.headers)
    assert {r["id"]: r["agentCommandRole"] for r in listed.json()["data"]}[room_id] == "owner"


@pytest.mark.parametrize("method", ["post", "put"])
async def test_an_unknown_role_is_a_validation_error(
    hub: RunningHub, client: httpx.AsyncClient, method: str
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    path = "/api/rooms" if method == "post" else f"/api/rooms/{room_id}"
    body: dict[str, Any] = {"agentCommandRole": "boss"}
    if method == "post":
        body["name"] = "r"
    response = await client.request(method, path, headers=alice.headers, json=body)
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Validation failed",
                               "fields": [{"field": "agentCommandRole",
                                           "message": ENUM_ISSUE}]}  # fmt: skip


async def test_an_admin_changes_it_and_the_room_hears_of_it(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    captured: list[Any] = []
    hub.services.events.captured = captured
    response = await client.put(f"/api/rooms/{room_id}", headers=alice.headers,
                                json={"agentCommandRole": "admin"})  # fmt: skip
    assert response.status_code == 200
    assert response.json()["data"]["agentCommandRole"] == "admin"
    update = captured[0]
    assert (update.target, update.message["type"]) == (Target.ROOM, "server:room_update")
    assert update.message["room"]["agentCommandRole"] == "admin"
    assert (
        await hub.services.db.fetchval(
            "SELECT agent_command_role FROM rooms WHERE id = $1", room_id
        )
        == "admin"
    )

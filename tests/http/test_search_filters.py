"""GET /api/messages/search: 631a1ad's filters and checks (head-gap A19, E10) next to the
hub's older `sender` / `from` / `to`, over real HTTP and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentim.protocol.ids import new_id
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.http.test_messages import at, insert_message


async def test_sender_and_date_filters(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    tag = new_id(6)

    async def put(sender: Any, created_at: str, sender_type: str = "user") -> str:
        return await insert_message(hub, room_id, sender, f"{tag} x", created_at=created_at,
                                    sender_type=sender_type)  # fmt: skip

    late_13th = await put(alice, "2025-02-13T23:59:59.999Z")
    start_14th = await put(bob, "2025-02-14T00:00:00.000Z")
    agent_14th = await put("agent-1", at(0), sender_type="agent")  # 09:00 on the 14th
    end_14th = await put(alice, "2025-02-14T23:59:59.999Z")
    start_15th = await put(bob, "2025-02-15T00:00:00.000Z")

    async def search(**params: str) -> list[str]:
        response = await client.get("/api/messages/search", params={"q": tag, **params},
                                    headers=alice.headers)  # fmt: skip
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["data"]]

    assert await search(senderId=bob.id) == [start_15th, start_14th]
    assert await search(senderType="agent") == [agent_14th]
    assert await search(senderType="user", senderId=alice.id) == [end_14th, late_13th]
    # the web client's date pickers send whole days: dateTo includes all of its day
    assert await search(dateFrom="2025-02-14", dateTo="2025-02-14") == [
        end_14th, agent_14th, start_14th]  # fmt: skip
    assert await search(dateFrom="2025-02-14T09:00:00Z") == [start_15th, end_14th, agent_14th]
    assert await search(dateTo="2025-02-14T10:00:00+01:00") == [
        agent_14th, start_14th, late_13th]  # fmt: skip
    assert await search(dateFrom="2025-02-14T00:00:00.001Z", dateTo="2025-02-14T23:59Z") == [
        agent_14th]  # fmt: skip
    # the hub's older filters still apply, and narrow together with the new ones
    assert await search(sender=bob.username, dateFrom="2025-02-14") == [start_15th, start_14th]
    assert await search(**{"from": "2025-02-14T00:00:00Z", "to": "2025-02-14T12:00:00Z"},
                        senderType="user") == [start_14th]  # fmt: skip
    assert await search(dateFrom="2025-02-14", **{"from": "2025-02-15"}) == [start_15th]
    assert await search(limit="2") == [start_15th, end_14th]
    assert len(await search(limit="100", cursor="ignored")) == 5
    assert len(await search(dateFrom="2000-02-29", dateTo="9999-12-31")) == 5


def _invalid(*fields: tuple[str, str]) -> dict[str, Any]:
    return {"ok": False, "error": "Validation failed",
            "fields": [{"field": f, "message": m} for f, m in fields]}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"limit": "101"}, _invalid(("limit", "Number must be less than or equal to 100"))),
        ({"limit": "0"}, _invalid(("limit", "Number must be greater than or equal to 1"))),
        ({"limit": ""}, _invalid(("limit", "Number must be greater than or equal to 1"))),
        ({"limit": "2.5"}, _invalid(("limit", "Expected integer, received float"))),
        ({"senderType": "bot"}, _invalid(("senderType", "Invalid enum value. Expected 'user' | "
                                          "'agent' | 'system', received 'bot'"))),
        ({"dateFrom": "yesterday"}, _invalid(("dateFrom", "Invalid datetime"))),
        ({"dateTo": "2025-02-30"}, _invalid(("dateTo", "Invalid datetime"))),
        ({"dateTo": "2025-02-14T10:00:00"}, _invalid(("dateTo", "Invalid datetime"))),
        ({"dateFrom": "2025-02-29"}, _invalid(("dateFrom", "Invalid datetime"))),
        ({"dateFrom": "2025-02-14T10:00Z", "dateTo": "2025-02-14T10:00:00.000Z"},
         _invalid(("dateFrom", "validation.dateFromBeforeDateTo"))),
        ({"dateFrom": "2025-02-15", "dateTo": "2025-02-14"},
         _invalid(("dateFrom", "validation.dateFromBeforeDateTo"))),
        ({"roomId": "r" * 101, "senderId": "s" * 101},
         _invalid(("roomId", "String must contain at most 100 character(s)"),
                  ("senderId", "String must contain at most 100 character(s)"))),
        ({"q": "a", "limit": "500", "senderType": ""},
         _invalid(("q", "String must contain at least 2 character(s)"),
                  ("limit", "Number must be less than or equal to 100"),
                  ("senderType", "Invalid enum value. Expected 'user' | 'agent' | 'system', "
                                 "received ''"))),
    ],
)  # fmt: skip
async def test_bad_filters_are_refused(
    hub: RunningHub, client: httpx.AsyncClient, params: dict[str, str], body: dict[str, Any]
) -> None:
    alice = await signed_in_user(hub)
    response = await client.get("/api/messages/search", params={"q": "ok", **params},
                                headers=alice.headers)  # fmt: skip
    assert (response.status_code, response.json()) == (400, body)


async def test_search_bounds_and_rooms(hub: RunningHub, client: httpx.AsyncClient) -> None:
    alice, mallory = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    tag = new_id(6)
    found = await insert_message(hub, room_id, alice, f"{tag} {'y' * 480}", created_at=at(0))

    long_query = await client.get("/api/messages/search", params={"q": f"{tag} {'y' * 480}"},
                                  headers=alice.headers)  # fmt: skip
    assert [m["id"] for m in long_query.json()["data"]] == [found]
    for user in (alice, mallory):
        outsider = await client.get("/api/messages/search", params={"q": tag, "roomId": room_id},
                                    headers=user.headers)  # fmt: skip
        if user is mallory:
            assert (outsider.status_code, outsider.json()) == (
                404, {"ok": False, "error": "Room not found"})  # fmt: skip
        else:
            assert [m["id"] for m in outsider.json()["data"]] == [found]
    everywhere = await client.get("/api/messages/search", params={"q": tag},
                                  headers=mallory.headers)  # fmt: skip
    assert everywhere.json() == {"ok": True, "data": []}

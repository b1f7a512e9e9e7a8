"""Room member names, paging and the capped room view over real HTTP and sockets (A20, A21).

A member's `displayName` is the user's display name or the agent's name; the member list pages
with the reference's clamping; GET /api/rooms/:id carries at most 100 members and the total.
"""

from __future__ import annotations

from typing import Any

import httpx

from agentim.protocol.ids import new_id
from tests.helpers import RunningHub, User, create_room, create_user, signed_in_user
from tests.http.test_rooms import add_agent_member, insert_agent
from tests.protocol.server_frame_rules import check_frame
from tests.ws.wsclient import signed_in


async def add_unnamed_members(hub: RunningHub, room_id: str, count: int) -> list[str]:
    """`count` agent member rows pointing at no agent, each joined a second after the last."""
    ids = [new_id() for _ in range(count)]
    await hub.services.db.executemany(
        "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
        "VALUES ($1, $2, 'agent', 'member', $3)",
        [(room_id, member_id, f"2030-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z")
         for i, member_id in enumerate(ids)],
    )  # fmt: skip
    return ids


async def named_room(hub: RunningHub) -> tuple[User, str, dict[str, str | None]]:
    """A room of Alice (owner), Bob, agent `helper` and a member whose agent row is gone."""
    alice = await signed_in_user(hub, display_name="Alice A")
    bob = await create_user(hub, display_name="Bob B")
    room_id = await create_room(hub, alice, members=(bob,))
    agent_id = await insert_agent(hub, alice, name="helper")
    await add_agent_member(hub, room_id, agent_id, None)
    [ghost] = await add_unnamed_members(hub, room_id, 1)
    names = {alice.id: "Alice A", bob.id: "Bob B", agent_id: "helper", ghost: None}
    return alice, room_id, names


def names_of(members: list[dict[str, Any]]) -> dict[str, str | None]:
    return {m["memberId"]: m.get("displayName") for m in members}


async def test_member_list_and_room_view_name_users_and_agents(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, room_id, names = await named_room(hub)

    listed = await client.get(f"/api/rooms/{room_id}/members", headers=alice.headers)
    view = await client.get(f"/api/rooms/{room_id}", headers=alice.headers)

    assert listed.status_code == 200 and view.status_code == 200
    body = listed.json()
    assert names_of(body["data"]) == names
    assert body["pagination"] == {"limit": 100, "offset": 0, "total": 4}
    assert list(body) == ["ok", "data", "pagination"]
    assert names_of(view.json()["data"]["members"]) == names
    ghost_id = next(member_id for member_id, name in names.items() if name is None)
    ghost = next(m for m in body["data"] if m["memberId"] == ghost_id)
    assert "displayName" not in ghost  # no agent row: the key is left out, never null


async def test_room_update_frames_carry_member_names(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, room_id, names = await named_room(hub)
    async with signed_in(hub, alice) as socket:
        await socket.join(room_id)
        changed = await client.put(
            f"/api/rooms/{room_id}", headers=alice.headers, json={"name": "renamed"}
        )
        assert changed.status_code == 200
        frame = await socket.receive_type("server:room_update")

    assert names_of(frame["members"]) == names
    assert all(None not in m.values() for m in frame["members"])
    assert check_frame(frame) == []


async def test_member_pages_cover_the_room_once_in_join_order(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    later = await add_unnamed_members(hub, room_id, 6)
    seen: list[str] = []
    for offset in (0, 3, 6):
        response = await client.get(
            f"/api/rooms/{room_id}/members?limit=3&offset={offset}", headers=alice.headers
        )
        assert response.status_code == 200
        assert response.json()["pagination"] == {"limit": 3, "offset": offset, "total": 7}
        seen += [m["memberId"] for m in response.json()["data"]]
    assert seen == [alice.id, *later]
    past_end = await client.get(f"/api/rooms/{room_id}/members?offset=50", headers=alice.headers)
    assert past_end.json()["data"] == []
    assert past_end.json()["pagination"] == {"limit": 100, "offset": 50, "total": 7}


async def test_member_paging_arguments_are_clamped_like_parse_int(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    await add_unnamed_members(hub, room_id, 2)
    cases = {
        "limit=0": (1, 0), "limit=-5": (1, 0), "limit=9999": (500, 0), "limit=abc": (100, 0),
        "limit=2x": (2, 0), "limit=%202": (2, 0), "limit=1.9": (1, 0), "limit=": (100, 0),
        "offset=-1": (100, 0), "offset=junk": (100, 0), "offset=1e3": (100, 1),
        "offset=99999999999999999999999": (100, 2**31 - 1),
    }  # fmt: skip
    for query, (limit, offset) in cases.items():
        response = await client.get(f"/api/rooms/{room_id}/members?{query}", headers=alice.headers)
        assert response.status_code == 200, query
        page = response.json()["pagination"]
        assert (page["limit"], page["offset"], page["total"]) == (limit, offset, 3), query
        assert len(response.json()["data"]) == max(0, min(limit, 3 - offset)), query


async def test_room_view_caps_members_at_100_and_reports_the_total(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    room_id = await create_room(hub, alice)
    await add_unnamed_members(hub, room_id, 120)

    view = await client.get(f"/api/rooms/{room_id}", headers=alice.headers)
    first_page = await client.get(f"/api/rooms/{room_id}/members", headers=alice.headers)

    assert view.status_code == 200
    data = view.json()["data"]
    assert data["totalMembers"] == 121 and len(data["members"]) == 100
    assert list(data)[-2:] == ["members", "totalMembers"]
    assert data["members"] == first_page.json()["data"]
    everyone = await client.get(f"/api/rooms/{room_id}/members?limit=500", headers=alice.headers)
    assert len(everyone.json()["data"]) == 121

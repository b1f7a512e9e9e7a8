"""/api/tasks over real HTTP and PostgreSQL (api.md §8), with the `server:task_update` each
change sends to the room, and the gateway's update path (realtime.md §7.7 step 4)."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from agentim.actions.tasks import apply_gateway_task_update
from agentim.protocol.events import Target
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, signed_in_user

TIMEOUT_S = 20
TASK_KEYS = ["id", "roomId", "title", "description", "status", "result", "dueDate",
             "assigneeId", "assigneeType", "createdById", "createdAt", "updatedAt"]  # fmt: skip


def in_frame(task: dict[str, Any]) -> dict[str, Any]:
    """The task as `server:task_update` carries it: REST's nulls left out (head-gap E15)."""
    return {key: value for key, value in task.items() if value is not None}


async def call(
    client: httpx.AsyncClient, method: str, url: str, user: User, body: Any = None
) -> httpx.Response:
    with trio.fail_after(TIMEOUT_S):
        return await client.request(method, url, json=body, headers=user.headers)


async def create(
    client: httpx.AsyncClient, user: User, room_id: str, **body: Any
) -> dict[str, Any]:
    response = await call(client, "POST", f"/api/tasks/rooms/{room_id}", user,
                          {"title": "Write docs", **body})  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def add_agent(hub: RunningHub, owner: User, room_id: str) -> str:
    gateway_id, agent_id, now = new_id(), new_id(), iso_now()
    db = hub.services.db
    await db.execute(
        "INSERT INTO gateways (id, user_id, name, created_at) VALUES ($1, $2, 'gw', $3)",
        gateway_id, owner.id, now,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO agents (id, name, type, gateway_id, created_at, updated_at) "
        "VALUES ($1, 'bot', 'generic', $2, $3, $3)",
        agent_id, gateway_id, now,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO room_members (room_id, member_id, member_type, joined_at) "
        "VALUES ($1, $2, 'agent', $3)",
        room_id, agent_id, now,
    )  # fmt: skip
    return agent_id


def task_events(hub: RunningHub) -> list[dict[str, Any]]:
    captured = hub.services.events.captured or []
    assert all(
        (e.target, e.message["type"]) == (Target.ROOM, "server:task_update") for e in captured
    )
    return [event.message for event in captured]


async def test_a_member_creates_a_task_and_the_room_hears_of_it(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    hub.services.events.captured = []

    task = await create(client, member, room_id, title="  <b>Ship</b> it ",
                        description="<script>x()</script>plan", assigneeId=owner.id)  # fmt: skip

    assert list(task) == TASK_KEYS
    assert (task["title"], task["description"]) == ("Ship it", "plan")
    assert (task["status"], task["roomId"], task["createdById"]) == ("pending", room_id, member.id)
    assert (task["assigneeId"], task["assigneeType"]) == (owner.id, "user")
    assert task["createdAt"] == task["updatedAt"]
    [event] = hub.services.events.captured or []
    assert (event.target, event.target_id) == (Target.ROOM, room_id)
    assert event.message == {"type": "server:task_update", "task": in_frame(task)}


async def test_create_checks_membership_before_the_body(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, outsider = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    hub.services.events.captured = []
    response = await call(client, "POST", f"/api/tasks/rooms/{room_id}", outsider, {"bad": 1})
    assert response.json() == {"ok": False, "error": "Not a member of this room"}
    assert response.status_code == 403
    bad_id = await call(client, "POST", "/api/tasks/rooms/bad.id", owner, {"title": "x"})
    assert (bad_id.status_code, bad_id.json()["error"]) == (400, "Invalid parameter: roomId")
    assert hub.services.events.captured == []


async def test_create_validates_the_body_and_the_assignee(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, outsider = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    url = f"/api/tasks/rooms/{room_id}"

    blank = await call(client, "POST", url, owner, {"title": "   "})
    assert blank.status_code == 400
    assert blank.json() == {"ok": False, "error": "Validation failed", "fields": [
        {"field": "title", "message": "Title cannot be only whitespace"}]}  # fmt: skip
    foreign = await call(client, "POST", url, owner, {"title": "t", "assigneeId": outsider.id})
    assert foreign.json()["error"] == "Assignee is not a member of this room"
    no_json = await client.post(url, content=b"{", headers=owner.headers)
    assert (no_json.status_code, no_json.json()["error"]) == (400, "Invalid JSON body")
    agent_id = await add_agent(hub, owner, room_id)
    as_user = await call(client, "POST", url, owner, {"title": "t", "assigneeId": agent_id})
    assert as_user.json()["error"] == "Assignee is not a member of this room"
    task = await create(client, owner, room_id, assigneeId=agent_id, assigneeType="agent")
    assert (task["assigneeId"], task["assigneeType"]) == (agent_id, "agent")
    assert (
        await hub.services.db.fetchval("SELECT count(*) FROM tasks WHERE room_id = $1", room_id)
        == 1
    )


async def test_lists_show_tasks_of_member_rooms_newest_first_with_paging(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, member, outsider = [await signed_in_user(hub) for _ in range(3)]
    room_id = await create_room(hub, owner, members=(member,))
    other_room = await create_room(hub, outsider)
    made = [await create(client, owner, room_id, title=f"t{i}") for i in range(3)]
    for second, task in enumerate(made):  # distinct times: requests may share a millisecond
        await hub.services.db.execute(
            "UPDATE tasks SET created_at = $2 WHERE id = $1", task["id"],
            f"2030-01-01T00:00:0{second}.000Z",
        )  # fmt: skip
    await create(client, outsider, other_room)

    mine = await call(client, "GET", "/api/tasks", member)
    assert [t["id"] for t in mine.json()["data"]] == [t["id"] for t in reversed(made)]
    page = await call(client, "GET", f"/api/tasks/rooms/{room_id}?limit=1&offset=1", member)
    assert [t["id"] for t in page.json()["data"]] == [made[1]["id"]]
    fallback = await call(client, "GET", f"/api/tasks/rooms/{room_id}?limit=abc&offset=-4", member)
    assert len(fallback.json()["data"]) == 3
    refused = await call(client, "GET", f"/api/tasks/rooms/{room_id}", outsider)
    assert (refused.status_code, refused.json()["error"]) == (403, "Not a member of this room")
    assert (await call(client, "GET", "/api/tasks", outsider)).json()["data"] == [
        (await call(client, "GET", f"/api/tasks/rooms/{other_room}", outsider)).json()["data"][0]
    ]


async def test_any_member_may_change_status_but_details_need_more(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, creator, member = [await signed_in_user(hub) for _ in range(3)]
    room_id = await create_room(hub, owner, members=(creator, member))
    task = await create(client, creator, room_id)
    hub.services.events.captured = []
    url = f"/api/tasks/{task['id']}"

    moved = await call(client, "PUT", url, member, {"status": "in_progress"})
    refused = await call(client, "PUT", url, member, {"status": "completed", "title": "mine"})
    renamed = await call(client, "PUT", url, creator, {"title": "Better title"})
    by_admin = await call(client, "PUT", url, owner, {"description": "owner is room owner"})

    assert moved.status_code == 200
    assert moved.json()["data"]["status"] == "in_progress"
    assert refused.status_code == 403
    assert refused.json()["error"] == (
        "Only task creator, assignee, or room admin can modify task details"
    )
    assert renamed.json()["data"]["title"] == "Better title"
    assert by_admin.json()["data"]["description"] == "owner is room owner"
    final = by_admin.json()["data"]
    assert final["status"] == "in_progress"
    assert [m["task"] for m in task_events(hub)] == [
        in_frame(moved.json()["data"]),
        in_frame(renamed.json()["data"]),
        in_frame(final),
    ]


async def test_a_finished_task_cannot_go_back_to_in_progress(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    task = await create(client, owner, room_id)
    url = f"/api/tasks/{task['id']}"

    for old in ("completed", "cancelled"):
        assert (await call(client, "PUT", url, owner, {"status": old})).status_code == 200
        hub.services.events.captured = []
        refused = await call(client, "PUT", url, owner, {"status": "in_progress"})
        assert refused.status_code == 400
        assert refused.json()["error"] == f'Cannot transition from "{old}" to "in_progress"'
        assert hub.services.events.captured == []
    reopened = await call(client, "PUT", url, owner, {"status": "pending"})
    assert reopened.json()["data"]["status"] == "pending"
    await call(client, "PUT", url, owner, {"status": "failed"})
    retried = await call(client, "PUT", url, owner, {"status": "in_progress"})
    assert retried.json()["data"]["status"] == "in_progress"


async def test_assignee_pairing_rules(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    agent_id = await add_agent(hub, owner, room_id)
    task = await create(client, owner, room_id, assigneeId=member.id)
    url = f"/api/tasks/{task['id']}"

    as_agent = await call(client, "PUT", url, owner, {"assigneeType": "agent"})
    assert as_agent.json()["error"] == (
        "Current assignee is not valid for the new assigneeType; provide a new assigneeId"
    )
    to_agent = await call(
        client, "PUT", url, owner, {"assigneeId": agent_id, "assigneeType": "agent"}
    )
    assert (to_agent.json()["data"]["assigneeId"], to_agent.json()["data"]["assigneeType"]) == (
        agent_id, "agent"
    )  # fmt: skip
    cleared = await call(client, "PUT", url, owner, {"assigneeType": None})
    assert (cleared.json()["data"]["assigneeId"], cleared.json()["data"]["assigneeType"]) == (
        None, None
    )  # fmt: skip
    typed = await call(client, "PUT", url, owner, {"assigneeType": "user"})
    assert typed.json()["error"] == "assigneeId is required when assigneeType is set"
    stranger = await call(client, "PUT", url, owner, {"assigneeId": new_id()})
    assert stranger.json()["error"] == "Assignee is not a member of this room"
    assigned = await call(client, "PUT", url, owner, {"assigneeId": member.id})
    assert assigned.json()["data"]["assigneeType"] == "user"
    by_assignee = await call(client, "PUT", url, member, {"title": "assignee may edit"})
    assert by_assignee.json()["data"]["title"] == "assignee may edit"


async def test_update_order_is_task_then_membership_then_body(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, outsider = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    task = await create(client, owner, room_id)

    missing = await call(client, "PUT", f"/api/tasks/{new_id()}", outsider, {"status": 3})
    foreign = await call(client, "PUT", f"/api/tasks/{task['id']}", outsider, {"status": 3})
    invalid = await call(client, "PUT", f"/api/tasks/{task['id']}", owner, {"status": "done"})

    assert (missing.status_code, missing.json()["error"]) == (404, "Task not found")
    assert (foreign.status_code, foreign.json()["error"]) == (403, "Not a member of this room")
    assert invalid.status_code == 400
    assert invalid.json()["fields"] == [{"field": "status", "message": (
        "Invalid enum value. Expected 'pending' | 'in_progress' | 'completed' | 'failed' | "
        "'cancelled', received 'done'")}]  # fmt: skip


async def test_delete_is_for_the_creator_or_a_room_admin(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, creator, member = [await signed_in_user(hub) for _ in range(3)]
    room_id = await create_room(hub, owner, members=(creator, member))
    first, second = await create(client, creator, room_id), await create(client, creator, room_id)
    hub.services.events.captured = []

    refused = await call(client, "DELETE", f"/api/tasks/{first['id']}", member)
    by_creator = await call(client, "DELETE", f"/api/tasks/{first['id']}", creator)
    by_admin = await call(client, "DELETE", f"/api/tasks/{second['id']}", owner)
    again = await call(client, "DELETE", f"/api/tasks/{second['id']}", owner)

    assert (refused.status_code, refused.json()["error"]) == (
        403, "Only task creator or room admin can delete"
    )  # fmt: skip
    assert by_creator.json() == {"ok": True}
    assert by_admin.json() == {"ok": True}
    assert (again.status_code, again.json()["error"]) == (404, "Task not found")
    assert (
        await hub.services.db.fetchval("SELECT count(*) FROM tasks WHERE room_id = $1", room_id)
        == 0
    )
    assert task_events(hub) == [
        {"type": "server:task_update", "task": in_frame(first), "deleted": True},
        {"type": "server:task_update", "task": in_frame(second), "deleted": True},
    ]


async def test_unknown_task_paths_need_auth_then_404(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    assert (await client.get("/api/tasks/x/y")).status_code == 401
    response = await call(client, "GET", "/api/tasks/x/y", user)
    assert (response.status_code, response.text) == (404, "404 Not Found")
    response = await call(client, "GET", f"/api/tasks/{new_id()}", user)
    assert (response.status_code, response.text) == (404, "404 Not Found")


async def test_a_gateway_update_sets_status_and_result_and_is_broadcast(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    task = await create(client, owner, room_id, description="before")
    hub.services.events.captured = []

    with trio.fail_after(TIMEOUT_S):
        done = await apply_gateway_task_update(
            hub.services, task_id=task["id"], status="completed", result="All tests pass"
        )
        kept = await apply_gateway_task_update(
            hub.services, task_id=task["id"], status="failed", result=""
        )
        missing = await apply_gateway_task_update(
            hub.services, task_id=new_id(), status="failed", result=None
        )
        invalid = await apply_gateway_task_update(
            hub.services, task_id=task["id"], status="done", result=None
        )

    assert done is not None and kept is not None
    assert (done["status"], done["description"]) == ("completed", "All tests pass")
    assert (kept["status"], kept["description"]) == ("failed", "All tests pass")
    assert (done["result"], kept["result"]) == ("All tests pass", "All tests pass")
    assert (missing, invalid) == (None, None)
    assert task_events(hub) == [
        {"type": "server:task_update", "task": in_frame(done)},
        {"type": "server:task_update", "task": in_frame(kept)},
    ]
    listed = await call(client, "GET", f"/api/tasks/rooms/{room_id}", owner)
    assert listed.json()["data"] == [kept]


async def test_result_and_due_date(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    due = "2027-03-01T09:30:00.000Z"
    task = await create(client, owner, room_id, dueDate=due)
    assert (task["dueDate"], task["result"]) == (due, None)
    url = f"/api/tasks/{task['id']}"
    hub.services.events.captured = []
    updated = await call(client, "PUT", url, owner, {"result": "Shipped", "dueDate": None})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["data"]["result"], updated.json()["data"]["dueDate"]) == (
        "Shipped",
        None,
    )
    row = await hub.services.db.fetchrow("SELECT result, due_date FROM tasks WHERE id = $1",
                                         task["id"])  # fmt: skip
    assert row is not None and (row["result"], row["due_date"]) == ("Shipped", None)
    [frame] = task_events(hub)
    assert frame["task"]["result"] == "Shipped" and "dueDate" not in frame["task"]
    # result and dueDate are details: a plain member may not change them
    refused = await call(client, "PUT", url, member, {"result": "mine"})
    assert refused.status_code == 403
    for body, field, message in (
        ({"dueDate": "2027-03-01"}, "dueDate", "Invalid datetime"),
        ({"dueDate": "2027-02-30T00:00:00Z"}, "dueDate", "Invalid datetime"),
        ({"dueDate": "2027-03-01T09:30:00+02:00"}, "dueDate", "Invalid datetime"),
        ({"dueDate": 5}, "dueDate", "Expected string, received number"),
        ({"result": "r" * 100_001}, "result", "String must contain at most 100000 character(s)"),
    ):
        answer = await call(client, "PUT", url, owner, body)
        assert answer.status_code == 400, body
        assert answer.json()["fields"] == [{"field": field, "message": message}]
    created = await call(client, "POST", f"/api/tasks/rooms/{room_id}", owner,
                         {"title": "t", "dueDate": None})  # fmt: skip
    assert created.json()["fields"] == [{"field": "dueDate",
                                         "message": "Expected string, received null"}]  # fmt: skip

"""Stop generation, terminal data and task updates via a gateway (realtime.md §5.6, §7.6-7.7)."""

from __future__ import annotations

import logging

import pytest

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.store.tasks import insert_task
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import signed_in


async def test_stop_generation_reaches_the_gateway(hub: RunningHub) -> None:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, member) as client:
        await gateway.register(agent_id, agent_name())
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)
        await client.send({"type": "client:stop_generation", "roomId": room_id,
                           "agentId": agent_id})  # fmt: skip
        stop = await gateway.receive_type("server:stop_agent")
        assert stop == {"type": "server:stop_agent", "agentId": agent_id}


async def test_terminal_data_goes_to_each_room_of_the_agent(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    rooms = [await create_room(hub, owner), await create_room(hub, owner)]
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as client:
        await gateway.register(agent_id, name)
        for room_id in rooms:
            await add_agent_to_room(hub, room_id, agent_id)
            await client.join(room_id)
        await gateway.send({"type": "gateway:terminal_data", "agentId": agent_id,
                            "data": "$ ls\n"})  # fmt: skip
        frames = [await client.receive_type("server:terminal_data") for _ in rooms]
        assert sorted(f["roomId"] for f in frames) == sorted(rooms)
        assert frames[0] == {
            "type": "server:terminal_data",
            "agentId": agent_id,
            "agentName": name,
            "roomId": frames[0]["roomId"],
            "data": "$ ls\n",
        }


async def test_task_update_from_a_gateway(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await signed_in_user(hub)
    room_id, other_room = await create_room(hub, owner), await create_room(hub, owner)
    agent_id = f"agent-{new_id(8)}"
    tasks = [
        await insert_task(
            hub.services.db,
            task_id=new_id(),
            room_id=room,
            title="t",
            description="d",
            assignee_id=None,
            assignee_type=None,
            created_by_id=owner.id,
            now=iso_now(),
        )
        for room in (room_id, other_room)
    ]
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as client:
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.send({"type": "gateway:task_update", "taskId": tasks[0]["id"],
                                "status": "completed"})  # fmt: skip
            await gateway.register(agent_id, agent_name())
            await add_agent_to_room(hub, room_id, agent_id)
            await client.join(room_id)
            await gateway.send({"type": "gateway:task_update", "taskId": tasks[1]["id"],
                                "status": "completed"})  # fmt: skip
            await gateway.send({"type": "gateway:task_update", "taskId": tasks[0]["id"],
                                "status": "completed", "result": "all done"})  # fmt: skip
            update = await client.receive_type("server:task_update")
        assert "Gateway with no registered agents attempted to update task" in caplog.text
        assert (f"Gateway {gateway.gateway_id} has no agents in room {other_room}, rejecting "
                "task update") in caplog.text  # fmt: skip
        task = update["task"]
        assert (task["id"], task["status"], task["description"], task["result"]) == (
            tasks[0]["id"],
            "completed",
            "all done",
            "all done",
        )
        assert "assigneeId" not in task and "dueDate" not in task  # no nulls in frames (E15)
    stored = await hub.services.db.fetchval("SELECT result FROM tasks WHERE id = $1",
                                            tasks[0]["id"])  # fmt: skip
    assert stored == "all done"
    row = await hub.services.db.fetchrow("SELECT * FROM tasks WHERE id = $1", tasks[1]["id"])
    assert row is not None and row["status"] == "pending"

"""head-gap B18/B25/E11: 631a1ad's notices when a user's message meets an agent that is offline
(the room is told) or backlogged (the sender is told to wait 15 s per queued message, at most
120 s); neither notice is stored. DIFFERENCES D12's log line and metric stay."""

from __future__ import annotations

import re

import pytest

from agentim.actions.busy import busy_text, cooldown_ms
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.e2e.conftest import SpawnHub
from tests.gateway.test_routing import (
    Agent,
    Scene,
    deliveries,
    routing_scene,
    send_user_message,
    wait_logged,
)
from tests.gateway_helpers import (
    add_agent_to_room,
    agent_name,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect, signed_in

BUSY = re.compile(r"Agent @(\S+) is busy \((\d+) messages? pending\)\. Please wait (\d+)s before "
                  r"sending another message\.")  # fmt: skip


def test_cooldown_is_15_s_per_queued_message_up_to_2_minutes() -> None:
    assert [cooldown_ms(n) for n in (0, 1, 2, 8, 9, 50)] == [
        0, 15_000, 30_000, 120_000, 120_000, 120_000]  # fmt: skip
    assert busy_text("x", 1, 15) == (
        "Agent @x is busy (1 message pending). Please wait 15s before sending another message."
    )


async def system_rows(hub: RunningHub, room_id: str) -> int:
    query = "SELECT count(*) FROM messages WHERE room_id = $1 AND sender_type = 'system'"
    return int(await hub.services.db.fetchval(query, room_id))


async def report_queue(s: Scene, agent: Agent, status: str, depth: int) -> None:
    await s.gateway.send({"type": "gateway:agent_status", "agentId": agent.id, "status": status,
                          "queueDepth": depth})  # fmt: skip
    await s.gateway.sync()


async def test_offline_agent_notice_goes_to_the_room_and_is_not_stored(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 1) as s:
        gone = Agent(f"agent-{new_id(8)}", agent_name())
        async with signed_in_gateway(hub, s.owner) as other:
            await other.register(gone.id, gone.name)
        await wait_disconnected(hub, other.gateway_id)
        await add_agent_to_room(hub, s.room_id, gone.id)
        before = sum(hub.services.metrics.undeliverable_total.values.values())
        sent = await send_user_message(s, f"@{gone.name} are you there?")
        notice = (await s.client.receive_type("server:new_message"))["message"]
        assert notice == {
            "id": notice["id"], "roomId": s.room_id, "senderId": "system",
            "senderType": "system", "senderName": "System", "type": "system",
            "content": f"Agent @{gone.name} is currently offline and cannot receive messages.",
            "mentions": [], "createdAt": notice["createdAt"],
        }  # fmt: skip
        await wait_logged(caplog, f"Agent {gone.id} is offline; message {sent['id']} not delivered")
        assert sum(hub.services.metrics.undeliverable_total.values.values()) == before + 1
        assert await system_rows(hub, s.room_id) == 0


async def test_a_backlogged_agent_makes_its_sender_wait(hub: RunningHub) -> None:
    async with routing_scene(hub, 1) as s:
        [a] = s.agents
        other = await signed_in_user(hub)
        await hub.services.db.execute(
            "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
            "VALUES ($1, $2, 'user', 'member', $3)",
            s.room_id, other.id, iso_now(),
        )  # fmt: skip
        async with signed_in(hub, other) as bystander:
            await bystander.join(s.room_id)
            await report_queue(s, a, "busy", 2)
            first = await send_user_message(s, f"@{a.name} one")
            [delivery] = await deliveries(s.gateway, 1)  # no earlier send: goes through
            assert delivery["messageId"] == first["id"]
            await send_user_message(s, f"@{a.name} two")
            notice = (await s.client.receive_type("server:new_message"))["message"]
            match = BUSY.fullmatch(notice["content"])
            assert match is not None, notice
            assert (match[1], match[2]) == (a.name, "2") and 28 <= int(match[3]) <= 30
            assert (notice["senderType"], notice["roomId"]) == ("system", s.room_id)
            await s.gateway.nothing(0.3, ignore=("server:agent_status",))
            # only the sender is told; the room sees the two messages, nothing else
            seen = [(await bystander.receive_type("server:new_message"))["message"]
                    for _ in range(2)]  # fmt: skip
            assert [m["senderType"] for m in seen] == ["user", "user"]
            await bystander.nothing(0.3)
            await report_queue(s, a, "online", 0)  # backlog gone: no cooldown
            third = await send_user_message(s, f"@{a.name} three")
            [delivery] = await deliveries(s.gateway, 1)
            assert delivery["messageId"] == third["id"]
        assert await system_rows(hub, s.room_id) == 0


async def test_the_cooldown_holds_across_processes(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    """D15: the gateway reports its backlog on one process, the user sends on another."""
    one, two = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent = Agent(f"agent-{new_id(8)}", agent_name())
    async with signed_in_gateway(one.ws_url, owner) as gateway, connect(two.ws_url) as client:
        assert (await client.auth(owner))["ok"] is True
        await gateway.register(agent.id, agent.name)
        await add_agent_to_room(hub, room_id, agent.id)
        await client.join(room_id)
        await gateway.send({"type": "gateway:agent_status", "agentId": agent.id,
                            "status": "busy", "queueDepth": 9})  # fmt: skip
        await gateway.sync()
        # "two" is sent once "one" has reached the agent: each message is routed by its own
        # conversation task, and one sent while the first is still being routed can pass too.
        await client.send({"type": "client:send_message", "roomId": room_id,
                           "content": f"@{agent.name} one"})  # fmt: skip
        await client.receive_type("server:new_message")
        [delivery] = [await gateway.receive_type("server:send_to_agent")]
        assert delivery["content"] == f"@{agent.name} one"
        await client.send({"type": "client:send_message", "roomId": room_id,
                           "content": f"@{agent.name} two"})  # fmt: skip
        await client.receive_type("server:new_message")
        notice = (await client.receive_type("server:new_message"))["message"]
        match = BUSY.fullmatch(notice["content"])
        assert match is not None and match[2] == "9" and 118 <= int(match[3]) <= 120, notice
        await gateway.nothing(0.3, ignore=("server:agent_status", "server:room_context"))


async def test_two_messages_sent_at_once_on_two_processes_reach_a_backlogged_agent_once(
    hub: RunningHub, spawn_hub: SpawnHub
) -> None:
    """The cooldown is claimed atomically: routed at the same moment (each message by its own
    conversation task, here on different processes), one goes through, the other is held."""
    one, two = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent = Agent(f"agent-{new_id(8)}", agent_name())
    async with (
        signed_in_gateway(one.ws_url, owner) as gateway,
        connect(one.ws_url) as left,
        connect(two.ws_url) as right,
    ):
        for client in (left, right):
            assert (await client.auth(owner))["ok"] is True
        await gateway.register(agent.id, agent.name)
        await add_agent_to_room(hub, room_id, agent.id)
        for client in (left, right):
            await client.join(room_id)
        await gateway.send({"type": "gateway:agent_status", "agentId": agent.id,
                            "status": "busy", "queueDepth": 3})  # fmt: skip
        await gateway.sync()
        for client, text in ((left, "left"), (right, "right")):
            await client.send({"type": "client:send_message", "roomId": room_id,
                               "content": f"@{agent.name} {text}"})  # fmt: skip
        [delivery] = [await gateway.receive_type("server:send_to_agent")]
        notices = []
        for client in (left, right):
            for _ in range(3):  # both user messages, and the busy notice (the sender's sockets)
                frame = (await client.receive_type("server:new_message"))["message"]
                if frame["senderType"] == "system":
                    notices.append(frame["content"])
        assert len(notices) == 2 and all(BUSY.fullmatch(n) for n in notices), notices
        assert delivery["content"] in (f"@{agent.name} left", f"@{agent.name} right")
        await gateway.nothing(0.5, ignore=("server:agent_status", "server:room_context"))


async def test_the_real_gateways_status_rhythm_tells_the_room_each_change_once(
    hub: RunningHub,
) -> None:
    """AgentIM's gateway reports busy before and online after every reply; the completion
    already set the agent online, so the room hears busy, the reply, online: once each."""
    async with routing_scene(hub, 1) as s:
        [a] = s.agents
        for round_trip in range(2):
            first = await send_user_message(s, f"@{a.name} go {round_trip}")
            [delivery] = await deliveries(s.gateway, 1)
            assert delivery["messageId"] == first["id"]
            reply_id, chunk = new_id(), {"type": "text", "content": "working"}
            base = {"roomId": s.room_id, "agentId": a.id, "messageId": reply_id}
            for frame in (
                {"type": "gateway:agent_status", "agentId": a.id, "status": "busy",
                 "queueDepth": 0},
                {"type": "gateway:message_chunk", **base, "chunk": chunk},
                {"type": "gateway:message_complete", **base, "fullContent": "working",
                 "chunks": [chunk], "conversationId": delivery["conversationId"], "depth": 0},
                {"type": "gateway:agent_status", "agentId": a.id, "status": "online",
                 "queueDepth": 0},
            ):  # fmt: skip
                await s.gateway.send(frame)
            await s.gateway.sync()
            seen = []
            while len(seen) < 4:
                frame = await s.client.receive()
                if frame["type"] in ("server:agent_status", "server:message_chunk",
                                     "server:message_complete"):  # fmt: skip
                    seen.append(frame["agent"]["status"] if "agent" in frame else frame["type"])
            assert seen == ["busy", "server:message_chunk", "server:message_complete", "online"]
            await s.client.nothing(0.3)
            row = await hub.services.db.fetchval("SELECT status FROM agents WHERE id = $1", a.id)
            assert row == "online"

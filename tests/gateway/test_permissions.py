"""Permission requests end to end (DIFFERENCES D17), and the broker's single expiry task."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from agentim.actions.permissions import pending_permission_frames
from agentim.protocol.ids import new_id
from agentim.routing.hub import Hub
from agentim.routing.permissions import PermissionBroker
from tests.gateway_helpers import (
    Gateway,
    add_agent_to_room,
    agent_name,
    agent_with_watcher,
    signed_in_gateway,
)
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import signed_in


def _request(room_id: str, agent_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "gateway:permission_request", "requestId": new_id(), "agentId": agent_id,
            "roomId": room_id, "toolName": "Bash", "toolInput": {"command": "rm -rf build"},
            **extra}  # fmt: skip


async def _ask(gateway: Gateway, request: dict[str, Any]) -> None:
    await gateway.send(request)
    await gateway.sync()


async def test_a_member_answers_and_the_gateway_hears_it(hub: RunningHub) -> None:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with (
        signed_in_gateway(hub, owner) as gateway,
        signed_in(hub, member) as client,
        signed_in(hub, owner) as other,
    ):
        await gateway.register(agent_id, name)
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)
        await other.join(room_id)
        request = _request(room_id, agent_id, timeoutMs=1500)
        await _ask(gateway, request)
        shown = await client.receive_type("server:permission_request")
        assert shown == {
            "type": "server:permission_request", "requestId": request["requestId"],
            "agentId": agent_id, "agentName": name, "roomId": room_id, "toolName": "Bash",
            "toolInput": {"command": "rm -rf build"}, "expiresAt": shown["expiresAt"],
        }  # fmt: skip
        assert shown["expiresAt"].endswith("Z") and len(shown["expiresAt"]) == 24
        assert await pending_permission_frames(hub.services, room_id) == [shown]
        await client.send(
            {
                "type": "client:permission_response",
                "requestId": request["requestId"],
                "decision": "allow",
            }
        )
        answer = await gateway.receive_type("server:permission_response")
        assert answer == {"type": "server:permission_response",
                          "requestId": request["requestId"], "agentId": agent_id,
                          "decision": "allow"}  # fmt: skip
        await other.send(
            {
                "type": "client:permission_response",
                "requestId": request["requestId"],
                "decision": "deny",
            }
        )
        assert await pending_permission_frames(hub.services, room_id) == []
        await trio.sleep(1.8)  # past expiresAt: answered requests do not expire
        await gateway.nothing(0.2, ignore=("server:room_context",))
        await client.nothing(0.2)


async def test_an_unanswered_request_expires(hub: RunningHub) -> None:
    async with agent_with_watcher(hub) as s:
        room_id, agent_id, gateway, client = s.room_id, s.agent_id, s.gateway, s.client
        request = _request(room_id, agent_id, timeoutMs=1000)  # the least 631a1ad allows
        await _ask(gateway, request)
        await client.receive_type("server:permission_request")
        expired = await client.receive_type("server:permission_request_expired")
        assert expired == {"type": "server:permission_request_expired",
                           "requestId": request["requestId"]}  # fmt: skip
        timeout = await gateway.receive_type("server:permission_response")
        assert timeout == {"type": "server:permission_response",
                           "requestId": request["requestId"], "agentId": agent_id,
                           "decision": "timeout"}  # fmt: skip
        await client.send(
            {
                "type": "client:permission_response",
                "requestId": request["requestId"],
                "decision": "allow",
            }
        )
        await gateway.nothing(0.3, ignore=("server:room_context",))


async def test_outsiders_and_foreign_agents_are_ignored(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    owner, outsider = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, outsider) as client:
        await gateway.register(agent_id, agent_name())
        await add_agent_to_room(hub, room_id, agent_id)
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await _ask(gateway, _request(room_id, "someone-else"))
            await _ask(gateway, _request("no-room", agent_id))
            request = _request(room_id, agent_id)
            await _ask(gateway, request)
            await _ask(gateway, request)  # same id again
            await client.send(
                {
                    "type": "client:permission_response",
                    "requestId": request["requestId"],
                    "decision": "allow",
                }
            )
            await client.send({"type": "client:ping", "ts": 1})
            await client.receive_type("server:pong")
        await gateway.nothing(0.3, ignore=("server:room_context",))
    text = caplog.text
    assert "Gateway attempted to request permission for unowned agent someone-else" in text
    assert f"Agent {agent_id} is not a member of room no-room, dropping permission" in text
    assert f"Permission request {request['requestId']} is already pending, dropping" in text
    assert f"User {outsider.id} answered permission request {request['requestId']}" in text
    assert len(await pending_permission_frames(hub.services, room_id)) == 1


async def test_broker_expires_in_deadline_order_with_one_task(autojump_clock: Any) -> None:
    hub = Hub()
    expired: list[tuple[str, float]] = []

    async def on_expire(request_id: str, agent_id: str, room_id: str) -> None:
        expired.append((request_id, trio.current_time()))
        if request_id == "boom":
            raise RuntimeError("expiry failed")

    async with trio.open_nursery() as nursery:
        broker = await nursery.start(PermissionBroker(hub, on_expire, max_pending=4).run)
        start = trio.current_time()
        broker.schedule("late", "a", "r", 300)
        broker.schedule("boom", "a", "r", 10)
        await trio.sleep(1)
        broker.schedule("early", "a", "r", 5)  # moves the deadline forward
        await trio.sleep(400)
        assert [rid for rid, _ in expired] == ["early", "boom", "late"]
        assert [round(t - start) for _, t in expired] == [6, 10, 300]
        assert len(broker) == 0
        for i in range(5):
            broker.schedule(f"r{i}", "a", "r", 1000)
        await trio.sleep(1)
        assert [rid for rid, _ in expired[3:]] == ["r4"]  # over the cap: expired at once
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("answer", "heard"),
    [
        ({"decision": "allowAlways"}, {"decision": "allowAlways"}),
        ({"decision": "deny", "denyReason": "not on main"},
         {"decision": "deny", "denyReason": "not on main"}),
        ({"decision": "deny", "denyReason": ""}, {"decision": "deny"}),
        ({"decision": "allow", "denyReason": "x" * 500}, {"decision": "allow",
                                                          "denyReason": "x" * 500}),
    ],
)  # fmt: skip
async def test_allow_always_and_deny_reasons_reach_the_gateway(
    hub: RunningHub, answer: dict[str, str], heard: dict[str, str]
) -> None:
    """head-gap B2/B29/E7: 631a1ad's "Always allow" button and deny reason."""
    async with agent_with_watcher(hub) as s:
        room_id, agent_id, gateway, client = s.room_id, s.agent_id, s.gateway, s.client
        request = _request(room_id, agent_id)
        await _ask(gateway, request)
        await client.receive_type("server:permission_request")
        await client.send({"type": "client:permission_response",
                           "requestId": request["requestId"], **answer})  # fmt: skip
        response = await gateway.receive_type("server:permission_response")
        assert response == {"type": "server:permission_response",
                            "requestId": request["requestId"], "agentId": agent_id,
                            **heard}  # fmt: skip


@pytest.mark.parametrize(
    "answer",
    [
        {"requestId": "q", "decision": "allowOnce"},
        {"requestId": "q", "decision": "deny", "denyReason": "x" * 501},
        {"requestId": "q", "decision": "deny", "denyReason": 3},
        {"requestId": "q" * 101, "decision": "allow"},
    ],
)
async def test_bad_permission_answers_are_invalid_messages(
    hub: RunningHub, answer: dict[str, Any]
) -> None:
    owner = await signed_in_user(hub)
    async with signed_in(hub, owner) as client:
        await client.send({"type": "client:permission_response", **answer})
        assert await client.receive_type("server:error") == {
            "type": "server:error", "code": "INVALID_MESSAGE", "message": "Invalid message format"
        }  # fmt: skip

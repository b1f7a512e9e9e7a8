"""Text PostgreSQL cannot store (NUL, unpaired surrogates) in any field of a frame is refused
where the frame is decoded: INVALID_MESSAGE on /ws/client, a dropped frame and a warning on
/ws/gateway (an agent's reply instead keeps its text with U+FFFD in place: see
tests/gateway/test_chunk_tolerance.py); never INTERNAL_ERROR, an error line or a row. A socket
that keeps sending bad frames logs its first warnings, then a count (issue 15, item 4)."""

from __future__ import annotations

import json
import logging

import pytest

from agentim.logs import BUDGET_SPENT, BudgetFilter
from agentim.protocol.storable import UNSTORABLE_TEXT
from agentim.ws.endpoints import LOG_BUDGET
from tests.gateway_helpers import DEVICE, connect_gateway, signed_in_gateway
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect, signed_in

INVALID = {"type": "server:error", "code": "INVALID_MESSAGE", "message": "Invalid message format"}
DROPPED = f"Gateway sent invalid message format: {UNSTORABLE_TEXT}"
# As a JSON encoder writes them: NUL and lone surrogates can only arrive as \u escapes.
NUL, HIGH, LOW = "\\u0000", "\\ud800", "\\udfff"
TASK_NUL = f'{{"type":"gateway:task_update","taskId":"t{NUL}","status":"completed"}}'


def _client_frames(room_id: str) -> list[str]:
    return [
        f'{{"type":"client:send_message","roomId":"{room_id}","content":"hi{NUL}there"}}',
        f'{{"type":"client:send_message","roomId":"{room_id}","content":"hi{HIGH}"}}',
        f'{{"type":"client:send_message","roomId":"{room_id}{NUL}","content":"hi"}}',
        f'{{"type":"client:send_message","roomId":"{room_id}","content":"x","mentions":["{LOW}"]}}',
        f'{{"type":"client:join_room","roomId":"{room_id}{NUL}"}}',
        f'{{"type":"client:join_room","roomId":"{HIGH}"}}',
        f'{{"type":"client:leave_room","roomId":"{LOW}"}}',
        f'{{"type":"client:typing","roomId":"{room_id}{NUL}"}}',
        f'{{"type":"client:stop_generation","roomId":"{room_id}","agentId":"{NUL}"}}',
        f'{{"type":"client:permission_response","requestId":"r{NUL}","decision":"allow"}}',
        f'{{"type":"client:permission_response","requestId":"{HIGH}","decision":"deny"}}',
        f'{{"type":"client:ping","ts":1,"extra{NUL}":1}}',
    ]


async def test_client_frames_with_bad_text_get_invalid_message(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    with caplog.at_level(logging.WARNING):
        async with signed_in(hub, user) as client:
            await client.join(room_id)
            for frame in _client_frames(room_id):
                await client.send(frame)
                assert await client.receive_type("server:error") == INVALID, frame
            await client.send({"type": "client:send_message", "roomId": room_id, "content": "ok"})
            message = (await client.receive_type("server:new_message"))["message"]
            assert message["content"] == "ok"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    count = await hub.services.db.fetchval("SELECT count(*) FROM messages WHERE room_id = $1",
                                           room_id)  # fmt: skip
    assert count == 1


async def test_client_auth_with_bad_text_is_invalid_message(hub: RunningHub) -> None:
    async with connect(hub) as client:
        await client.send(f'{{"type":"client:auth","token":"abc{NUL}"}}')
        assert await client.receive() == INVALID
        await client.send({"type": "client:ping", "ts": 3})
        assert await client.receive() == {"type": "server:pong", "ts": 3}


def _gateway_frames(agent_id: str) -> list[str]:
    agent = f'"id":"{agent_id}","type":"generic"'
    return [
        f'{{"type":"gateway:register_agent","agent":{{{agent},"name":"bot{NUL}"}}}}',
        f'{{"type":"gateway:register_agent","agent":{{"id":"{HIGH}","name":"b","type":"generic"}}}}',
        f'{{"type":"gateway:unregister_agent","agentId":"{agent_id}{NUL}"}}',
        f'{{"type":"gateway:agent_status","agentId":"{LOW}","status":"online"}}',
        f'{{"type":"gateway:task_update","taskId":"t{NUL}","status":"completed"}}',
        f'{{"type":"gateway:permission_request","requestId":"p","agentId":"{agent_id}",'
        f'"roomId":"r{LOW}","toolName":"t","toolInput":{{}},"timeoutMs":1000}}',
    ]


async def test_gateway_frames_with_bad_text_are_dropped_and_warned(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    with caplog.at_level(logging.WARNING):
        async with signed_in_gateway(hub, user) as gateway:
            await gateway.register("agent-bad-text", "clean_bot")
            frames = _gateway_frames("agent-bad-text")
            for frame in frames:
                await gateway.send(frame)
            await gateway.sync()  # still served, in order
            await gateway.nothing(0.2, ignore=("server:pong",))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert caplog.text.count(DROPPED) == len(frames)
    name = await hub.services.db.fetchval("SELECT name FROM agents WHERE id = 'agent-bad-text'")
    assert name == "clean_bot"


async def test_gateway_auth_with_a_bad_hostname_is_dropped_then_a_good_one_works(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    async with connect_gateway(hub) as gateway:
        with caplog.at_level(logging.WARNING):
            frame = {"type": "gateway:auth", "token": user.token, "gatewayId": gateway.gateway_id,
                     "deviceInfo": {**DEVICE, "hostname": "h@NUL@"}}  # fmt: skip
            await gateway.send(json.dumps(frame).replace("@NUL@", NUL))
            await gateway.sync()
        assert caplog.messages == [DROPPED]  # the frame's only fault is that NUL
        assert await gateway.auth(user) == {"type": "server:gateway_auth_result", "ok": True}


async def test_a_socket_sending_bad_frames_logs_its_first_warnings_then_a_count(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """The production log handler carries BudgetFilter (logs.configure); so does caplog's here."""
    caplog.handler.addFilter(BudgetFilter())
    user = await signed_in_user(hub)
    sent = LOG_BUDGET * 5
    with caplog.at_level(logging.WARNING):
        async with signed_in_gateway(hub, user) as gateway:
            for _ in range(sent):
                await gateway.send(TASK_NUL)
            await gateway.sync()
        async with signed_in_gateway(hub, user) as other:  # another socket: its own budget
            await other.send(TASK_NUL)
            await other.sync()
    lines = [r.getMessage() for r in caplog.records]
    dropped = [line for line in lines if line.startswith(DROPPED)]
    assert len(dropped) == LOG_BUDGET + 1 + 1  # ours: the budget, one notice; the other: one
    assert sum(BUDGET_SPENT in line for line in dropped) == 1
    summary = [line for line in lines if "were not logged" in line]
    assert len(summary) == 1
    assert summary[0].startswith(f"{sent - LOG_BUDGET - 1} more warnings from gateway socket ")

"""Gateway frames the hub refuses are logged and dropped; the socket keeps working (§1.3)."""

from __future__ import annotations

import json
import logging

import attrs
import pytest
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import signed_in_gateway
from tests.helpers import RunningHub, signed_in_user


@pytest.mark.parametrize(
    ("frame", "logged"),
    [
        ("{not json", "Gateway sent invalid JSON, dropping message"),
        (b"\x00\x01", "Gateway sent invalid JSON, dropping message"),
        (json.dumps({"type": "gateway:ping", "ts": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}),
         "Gateway sent too deeply nested JSON, dropping message"),
        ("[1, 2]", "Gateway sent invalid message format: Expected object"),
        (json.dumps({"type": "gateway:nope"}),
         "Gateway sent invalid message format: Invalid discriminator value. Expected "
         "'gateway:auth' | "),
        (json.dumps({"type": "gateway:register_agent", "agent": {"id": "a", "name": "n",
                                                                 "type": "robot"}}),
         "Gateway sent invalid message format: Invalid enum value. Expected 'claude-code' | "
         "'codex' | 'gemini' | 'generic', received 'robot'"),
        (json.dumps({"type": "gateway:message_chunk", "roomId": "r", "agentId": "",
                     "messageId": "m", "chunk": {"type": "text", "content": "x"}}),
         "Gateway sent invalid message format: String must contain at least 1 character(s)"),
        (json.dumps({"type": "gateway:unregister_agent"}),
         "Gateway sent invalid message format: Required"),
    ],
)  # fmt: skip
async def test_bad_frames_are_logged_and_dropped(
    hub: RunningHub, caplog: pytest.LogCaptureFixture, frame: str | bytes, logged: str
) -> None:
    user = await signed_in_user(hub)
    async with signed_in_gateway(hub, user) as gateway:
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.send(frame)
            await gateway.sync()  # still served, in order
        await gateway.nothing(0.2)
    assert logged in caplog.text


async def test_oversized_frame_is_dropped(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    hub = await start_hub(nursery, attrs.evolve(settings, max_gateway_frame_bytes=4096),
                          redis_prefix)  # fmt: skip
    user = await signed_in_user(hub)
    async with signed_in_gateway(hub, user) as gateway:
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.send({"type": "gateway:terminal_data", "agentId": "a",
                                "data": "x" * 5000})  # fmt: skip
            await gateway.sync()
    assert "Gateway sent oversized message (" in caplog.text
    assert "bytes), dropping" in caplog.text


async def test_handler_errors_do_not_end_the_connection(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    async with signed_in_gateway(hub, user) as gateway:
        await gateway.register("agent-err", "err_bot")
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.send({"type": "gateway:task_update", "taskId": "missing",
                                "status": "completed"})  # fmt: skip
            await gateway.sync()
        assert "Task missing not found, ignoring update" in caplog.text

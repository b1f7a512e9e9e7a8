"""Issue 15 item 6: SIGTERM while an agent streams. The clients waiting on the reply get its
`server:message_complete` (ending in the error chunk) before `SERVER_SHUTDOWN` and close 1001, on
the stopping process and on another one; the partial reply is stored (DIFFERENCES D14)."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio_websocket

from agentim.protocol.ids import new_id
from tests.e2e.conftest import SpawnHub, spawn_hub  # noqa: F401  (a fixture)
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import Client, connect

SCENARIO_S = 60.0  # the whole scenario, two hub processes included
EXIT_S = 10.0  # D14: the hub exits within 10 s of SIGTERM
SHUTDOWN_ERROR = {"type": "server:error", "code": "SERVER_SHUTDOWN",
                  "message": "Server is shutting down"}  # fmt: skip
ERROR_CHUNK = {"type": "error", "content": "Stream interrupted: server shutting down"}


async def _frames_until_closed(client: Client) -> tuple[list[dict[str, Any]], int]:
    """Every frame the server sends until it closes the socket, and the close code."""
    frames: list[dict[str, Any]] = []
    with trio.fail_after(EXIT_S):
        try:
            while True:
                frames.append(json.loads(await client.ws.get_message()))
        except trio_websocket.ConnectionClosed as exc:
            return frames, exc.reason.code


async def test_sigterm_mid_stream_completes_the_reply_before_shutdown(
    hub: RunningHub,
    spawn_hub: SpawnHub,  # noqa: F811
) -> None:
    with trio.fail_after(SCENARIO_S):
        stopping, staying = await spawn_hub(), await spawn_hub()
        owner, watcher = await signed_in_user(hub), await signed_in_user(hub)
        room_id = await create_room(hub, owner, members=(watcher,))
        agent_id, name, reply_id = f"agent-{new_id(8)}", agent_name(), new_id()
        parts = ["one ", "two ", "three"]
        async with (
            signed_in_gateway(stopping.ws_url, owner) as gateway,
            connect(stopping.ws_url) as here,
            connect(staying.ws_url) as there,
        ):
            await gateway.register(agent_id, name)
            await add_agent_to_room(hub, room_id, agent_id)
            for client, user in ((here, owner), (there, watcher)):
                assert (await client.auth(user))["ok"] is True
                await client.join(room_id)
            for part in parts:
                await gateway.chunk(room_id, agent_id, reply_id, part)
            for client in (here, there):  # the stream is under way on both processes
                for _ in parts:
                    assert (await client.receive_type("server:message_chunk"))["messageId"] == (
                        reply_id
                    )

            stopping.process.terminate()  # SIGTERM mid-stream
            frames, code = await _frames_until_closed(here)
            completes = [f for f in frames if f["type"] == "server:message_complete"]
            assert len(completes) == 1, frames
            message = completes[0]["message"]
            assert message["id"] == reply_id and message["senderId"] == agent_id
            assert message["content"] == "one two three"
            assert message["chunks"] == [
                *({"type": "text", "content": p} for p in parts),
                ERROR_CHUNK,
            ]
            assert frames.index(completes[0]) < frames.index(SHUTDOWN_ERROR), frames
            assert frames[-1] == SHUTDOWN_ERROR, frames  # nothing after the goodbye
            assert code == 1001

            elsewhere = await there.receive_type("server:message_complete")
            assert elsewhere["message"] == message  # the other process's client too
            assert (await gateway.closed()).code == 1001

        with trio.fail_after(EXIT_S):
            await stopping.process.wait()
        assert stopping.process.returncode == 0
        assert stopping.fatal_lines() == []
        row = await hub.services.db.fetchrow(
            "SELECT content, chunks, sender_id FROM messages WHERE id = $1", reply_id
        )
        assert row is not None
        assert (row["content"], row["sender_id"]) == ("one two three", agent_id)
        assert json.loads(row["chunks"])[-1] == ERROR_CHUNK

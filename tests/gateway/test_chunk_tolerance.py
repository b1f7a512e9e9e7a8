"""DIFFERENCES D25 with head-gap B20: a chunk the hub cannot accept never takes a reply with it.

`workspace_status` (631a1ad's CHUNK_TYPES) is relayed and stored like any chunk; a malformed
chunk is left out (logged once per stream, with the agent id) and the rest of the reply is
stored, shown and routed on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest

from agentim.protocol.ids import new_id
from tests.gateway_helpers import Gateway, add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import Client, signed_in

# What the 631a1ad gateway appends after a reply from a git work tree (packages/gateway/src
# agent-manager.ts + lib/git-utils.ts): the JSON WorkspaceStatus, the directory in metadata.
WORKSPACE = {
    "branch": "main",
    "changedFiles": [{"path": "src/app.py", "status": "modified", "additions": 3,
                      "deletions": 1, "diff": "@@ -1 +1,3 @@\n-a\n+b\n+c\n+d\n"}],
    "summary": {"filesChanged": 1, "additions": 3, "deletions": 1},
    "recentCommits": [{"hash": "abc1234", "message": "Initial commit"}],
}  # fmt: skip
WORKSPACE_CHUNK = {"type": "workspace_status", "content": json.dumps(WORKSPACE),
                   "metadata": {"workingDirectory": "/home/dev/project"}}  # fmt: skip


@attrs.frozen
class Scene:
    hub: RunningHub
    owner: User
    room_id: str
    agents: list[tuple[str, str]]  # (id, name)
    client: Client
    gateway: Gateway


@asynccontextmanager
async def scene(hub: RunningHub, agents: int = 1) -> AsyncIterator[Scene]:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    members = [(f"agent-{new_id(8)}", agent_name()) for _ in range(agents)]
    async with signed_in(hub, owner) as client, signed_in_gateway(hub, owner) as gateway:
        for agent_id, name in members:
            await gateway.register(agent_id, name)
            await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)
        yield Scene(hub, owner, room_id, members, client, gateway)


async def stored_chunks(hub: RunningHub, message_id: str) -> Any:
    text = await hub.services.db.fetchval("SELECT chunks FROM messages WHERE id = $1", message_id)
    return json.loads(text) if text is not None else None


async def history(hub: RunningHub, user: User, room_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        response = await http.get(f"/api/messages/rooms/{room_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]  # type: ignore[no-any-return]


def chunk_frame(s: Scene, message_id: str, chunk: Any, agent: int = 0) -> dict[str, Any]:
    return {"type": "gateway:message_chunk", "roomId": s.room_id, "agentId": s.agents[agent][0],
            "messageId": message_id, "chunk": chunk}  # fmt: skip


def warnings_about(caplog: pytest.LogCaptureFixture, agent_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "GatewayHandler"
            and r.levelno == logging.WARNING and agent_id in r.getMessage()]  # fmt: skip


async def test_a_reply_ending_with_workspace_status_is_stored_and_shown(hub: RunningHub) -> None:
    async with scene(hub) as s:
        [(agent_id, _)] = s.agents
        message_id = new_id()
        text = {"type": "text", "content": "Done: edited src/app.py"}
        await s.gateway.send(chunk_frame(s, message_id, text))
        await s.gateway.send(chunk_frame(s, message_id, WORKSPACE_CHUNK))
        await s.gateway.complete(s.room_id, agent_id, message_id, text["content"],
                                 chunks=[text, WORKSPACE_CHUNK])  # fmt: skip
        relayed = [await s.client.receive_type("server:message_chunk") for _ in range(2)]
        assert [r["chunk"] for r in relayed] == [text, WORKSPACE_CHUNK]
        done = (await s.client.receive_type("server:message_complete"))["message"]
        assert done["chunks"] == [text, WORKSPACE_CHUNK]
        assert await stored_chunks(hub, done["id"]) == [text, WORKSPACE_CHUNK]
        [shown] = [m for m in await history(hub, s.owner, s.room_id) if m["id"] == done["id"]]
        assert shown["chunks"][-1] == WORKSPACE_CHUNK


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "diagram", "content": "x"},  # a chunk type this hub does not know
        {"type": "text", "content": 42},
        {"type": "text", "content": "x", "metadata": {f"k{i}": i for i in range(51)}},
        {"type": "text", "content": "x", "metadata": {"big": "y" * 100_001}},
        "not an object",
    ],
)
async def test_a_bad_chunk_in_message_complete_leaves_out_only_itself(
    hub: RunningHub, caplog: pytest.LogCaptureFixture, bad: Any
) -> None:
    async with scene(hub, agents=2) as s:
        (a_id, _), (b_id, b_name) = s.agents
        first = {"type": "text", "content": f"Asking @{b_name}"}
        last = {"type": "tool_result", "content": "ok", "metadata": {"tool": "Bash"}}
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await s.gateway.complete(s.room_id, a_id, new_id(), first["content"],
                                     chunks=[first, bad, last], conversationId="c",
                                     depth=0)  # fmt: skip
            done = (await s.client.receive_type("server:message_complete"))["message"]
            delivery = await s.gateway.receive_type("server:send_to_agent")  # routed on
        assert done["chunks"] == [first, last]
        assert await stored_chunks(hub, done["id"]) == [first, last]
        assert (delivery["agentId"], delivery["messageId"]) == (b_id, done["id"])
    [record] = warnings_about(caplog, a_id)
    assert record.exc_info is None and "chunks[1]" in record.getMessage()


async def test_a_bad_streamed_chunk_is_dropped_and_the_stream_goes_on(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with scene(hub) as s:
        [(agent_id, _)] = s.agents
        message_id = new_id()
        parts = [{"type": "text", "content": "one "}, {"type": "text", "content": "two"}]
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await s.gateway.send(chunk_frame(s, message_id, parts[0]))
            for _ in range(3):  # logged once for the stream, not three times
                await s.gateway.send(chunk_frame(s, message_id, {"type": "diagram",
                                                                 "content": "x"}))  # fmt: skip
            await s.gateway.send(chunk_frame(s, message_id, parts[1]))
            await s.gateway.complete(s.room_id, agent_id, message_id, "one two")
            relayed = [await s.client.receive_type("server:message_chunk") for _ in range(2)]
            done = (await s.client.receive_type("server:message_complete"))["message"]
        assert [r["chunk"] for r in relayed] == parts
        assert done["content"] == "one two" and done["chunks"] == parts  # the buffered stream
        await s.gateway.nothing(0.2)  # the gateway is not told: nothing it could fix
    [record] = warnings_about(caplog, agent_id)
    assert record.exc_info is None and message_id in record.getMessage()


async def test_an_oversized_chunk_gets_chunk_too_large_and_the_stream_goes_on(
    hub: RunningHub,
) -> None:
    async with scene(hub) as s:
        [(agent_id, _)] = s.agents
        message_id = new_id()
        await s.gateway.send(chunk_frame(s, message_id, {"type": "text",
                                                         "content": "x" * 1_000_001}))  # fmt: skip
        error = await s.gateway.receive_type("server:error")
        assert error == {"type": "server:error", "code": "CHUNK_TOO_LARGE",
                         "message": "Chunk exceeds maximum size (1000000 characters)"}  # fmt: skip
        await s.gateway.chunk(s.room_id, agent_id, message_id, "small")
        relayed = await s.client.receive_type("server:message_chunk")
        assert relayed["chunk"] == {"type": "text", "content": "small"}


async def test_a_bad_routing_field_keeps_the_reply_but_routes_it_nowhere(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with scene(hub, agents=2) as s:
        (a_id, _), (_, b_name) = s.agents
        message_id = new_id()
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await s.gateway.complete(s.room_id, a_id, message_id, f"@{b_name} go", depth=-1)
            done = (await s.client.receive_type("server:message_complete"))["message"]
            await s.gateway.nothing(0.5, ignore=("server:agent_status",))
        assert done["content"] == f"@{b_name} go"
        assert await stored_chunks(hub, done["id"]) is None  # stored, without chunks
    [record] = warnings_about(caplog, a_id)
    assert "(not routed on): depth: Number must be greater than or equal to 0" in (
        record.getMessage()
    )


async def test_a_reply_with_text_postgresql_cannot_store_keeps_the_rest(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """A NUL or a lone surrogate in an agent's output costs that character, not the reply (D25):
    it is relayed, stored and completed with U+FFFD in its place, and a warning is logged."""
    async with scene(hub) as s:
        [(agent_id, _)] = s.agents
        message_id = new_id()
        ids = f'"roomId":"{s.room_id}","agentId":"{agent_id}","messageId":"{message_id}"'
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await s.gateway.send(  # as JSON.stringify writes them: \u escapes
                f'{{"type":"gateway:message_chunk",{ids},'
                f'"chunk":{{"type":"text","content":"bin\\u0000ary"}}}}'
            )
            await s.gateway.send(
                f'{{"type":"gateway:message_complete",{ids},"fullContent":"bin\\u0000ary \\ud800",'
                f'"chunks":[{{"type":"text","content":"bin\\u0000ary"}}]}}'
            )
            chunk = await s.client.receive_type("server:message_chunk")
            done = (await s.client.receive_type("server:message_complete"))["message"]
        assert chunk["chunk"]["content"] == "bin\ufffdary"
        assert (done["content"], done["chunks"]) == (
            "bin\ufffdary \ufffd", [{"type": "text", "content": "bin\ufffdary"}])  # fmt: skip
        row = await hub.services.db.fetchval(
            "SELECT content FROM messages WHERE id = $1", done["id"]
        )
        assert row == "bin\ufffdary \ufffd"
        kept = [r for r in caplog.records if "cannot store" in r.getMessage()]
        assert len(kept) == 2 and all(r.levelno == logging.WARNING for r in kept)

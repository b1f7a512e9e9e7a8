"""A reply written in one burst (chunks and completion in one TCP write) reaches clients whole and
in order: the chunks are relayed in one pipelined publish, ahead of the completion (D6)."""

from __future__ import annotations

import json

import trio

from agentim.protocol.ids import new_id
from bench.wsclient import Socket, client_frame
from tests.gateway_helpers import DEVICE, add_agent_to_room, agent_name
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import signed_in


async def _raw_gateway(hub: RunningHub, owner: User, agent_id: str, name: str) -> Socket:
    sock = await Socket.connect(hub.url, path="/ws/gateway")
    await sock.send({"type": "gateway:auth", "token": owner.token,
                     "gatewayId": f"gw-{new_id(10)}", "deviceInfo": DEVICE})  # fmt: skip
    await sock.send({"type": "gateway:register_agent",
                     "agent": {"id": agent_id, "name": name, "type": "generic"}})  # fmt: skip
    await sock.send({"type": "gateway:ping", "ts": 7})
    with trio.fail_after(10):
        while (await sock.next_json())["type"] != "server:pong":
            pass
    return sock


async def test_a_reply_sent_in_one_write_streams_in_order(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id, name, reply_id = f"agent-{new_id(8)}", agent_name(), new_id()
    gateway = await _raw_gateway(hub, owner, agent_id, name)
    await add_agent_to_room(hub, room_id, agent_id)
    parts = [f"part {n} " for n in range(8)]
    common = {"roomId": room_id, "agentId": agent_id, "messageId": reply_id}
    frames = [
        {"type": "gateway:message_chunk", **common, "chunk": {"type": "text", "content": p}}
        for p in parts
    ]
    frames.append({"type": "gateway:message_complete", **common, "fullContent": "".join(parts)})
    async with signed_in(hub, owner) as client:
        await client.join(room_id)
        await gateway.send_raw(b"".join(client_frame(json.dumps(f)) for f in frames))
        received = [await client.receive_type("server:message_chunk") for _ in parts]
        complete = await client.receive_type("server:message_complete")
    await gateway.aclose()
    assert [c["chunk"]["content"] for c in received] == parts
    assert {c["messageId"] for c in received} == {reply_id}
    assert complete["message"]["content"] == "".join(parts)
    stored = await hub.services.db.fetchval("SELECT content FROM messages WHERE id = $1", reply_id)
    assert stored == "".join(parts)

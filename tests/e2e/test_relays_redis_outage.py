"""D16 for the relays: with Redis unreachable, a client and a gateway on the same process still
reach each other (pending requests and waiting users are kept in the process meanwhile)."""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.e2e.test_redis_outage import CuttableProxy
from tests.gateway_helpers import (
    agent_with_watcher,
)


async def test_relays_work_within_one_process_while_redis_is_down(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    parts = urlsplit(redis_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    await nursery.start(proxy.run)
    proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    hub = await start_hub(nursery, attrs.evolve(settings, redis_url=proxied), redis_prefix)
    async with agent_with_watcher(hub) as s:
        room_id, agent_id, gateway, client = s.room_id, s.agent_id, s.gateway, s.client
        proxy.cut()
        with trio.fail_after(30):
            await client.send({"type": "client:request_workspace", "roomId": room_id,
                               "agentId": agent_id, "request": {"kind": "status"}})  # fmt: skip
            request = await gateway.receive_type("server:request_workspace")
            await gateway.send({"type": "gateway:workspace_response", "agentId": agent_id,
                                "requestId": request["requestId"],
                                "response": {"kind": "status", "data": None}})  # fmt: skip
            answer = await client.receive_type("server:workspace_response")
            assert answer["response"] == {"kind": "status", "data": None}

            await client.send({"type": "client:agent_command", "agentId": agent_id,
                               "roomId": room_id, "command": "clear"})  # fmt: skip
            await gateway.receive_type("server:agent_command")
            await gateway.send({"type": "gateway:agent_command_result", "agentId": agent_id,
                                "roomId": room_id, "command": "clear",
                                "success": True})  # fmt: skip
            assert (await client.receive_type("server:agent_command_result"))["success"] is True

            await client.send({"type": "client:list_gateway_credentials",
                               "gatewayId": gateway.gateway_id, "agentType": "codex"})  # fmt: skip
            assert (await gateway.receive_type("server:list_credentials"))["agentType"] == "codex"

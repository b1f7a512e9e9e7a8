"""Routing end to end: broadcast rooms asking a real local fake LLM (realtime.md §3.4, D11), its
failures, and a chain that continues on another hub process (D15)."""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import pytest
import trio

from agentim.actions.messages import Draft, send_one
from agentim.actions.routing import route_user_message
from agentim.protocol.ids import new_id
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.e2e.conftest import HubProcess, SpawnHub
from tests.gateway.test_routing import (
    Agent,
    Scene,
    decision,
    deliveries,
    routing_scene,
    send_user_message,
    set_room_router,
    update_room,
    wait_logged,
)
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.http.routers_support import API_KEY, stored_key
from tests.http.test_rooms import insert_agent
from tests.routing.fake_llm import FakeLlm, start_fake_llm


@pytest.fixture(autouse=True)
def _routing_logs(caplog: pytest.LogCaptureFixture) -> None:
    for logger in ("Routing", "GatewayHandler", "RouterLLM"):
        caplog.set_level(logging.INFO, logger=logger)


@pytest.fixture
async def private_hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> RunningHub:
    """ROUTER_ALLOW_PRIVATE_NETWORKS=true: the fake LLM listens on 127.0.0.1."""
    allowed = attrs.evolve(settings, router_allow_private_networks=True, router_llm_timeout_s=2.0)
    return await start_hub(nursery, allowed, redis_prefix)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeLlm:
    return await start_fake_llm(nursery)


async def use_fake_router(s: Scene, fake: FakeLlm, **room: Any) -> dict[str, Any]:
    router = await set_room_router(s, llmBaseUrl=f"{fake.url}/v1", llmModel="tiny")
    if room:
        await update_room(s, **room)
    return router


async def add_api_agent(s: Scene) -> str:
    """An agent member connected through the API, not a gateway: never a broadcast candidate."""
    agent_id = await insert_agent(s.hub, s.owner, name=agent_name())
    await s.hub.services.db.execute(
        "UPDATE agents SET connection_type = 'api' WHERE id = $1", agent_id
    )
    await add_agent_to_room(s.hub, s.room_id, agent_id)
    return agent_id


async def test_broadcast_routes_to_the_agents_the_llm_names_once_each(
    private_hub: RunningHub, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(private_hub, 3, broadcast=True) as s:
        a, b, c = s.agents
        api_agent = await add_api_agent(s)
        router = await use_fake_router(s, fake, systemPrompt="Ship it")
        fake.answer("```json\n" + json.dumps({"agentIds": [c.id, a.id, c.id, "ghost",
                                                            api_agent]}) + "\n```")  # fmt: skip
        sent = await send_user_message(s, "who can help with the release?")
        first, second = await deliveries(s.gateway, 2)
        cid = first["conversationId"]
        assert first == {
            "type": "server:send_to_agent", "agentId": c.id, "roomId": s.room_id,
            "messageId": sent["id"], "content": sent["content"],
            "senderName": s.owner.username, "senderType": "user", "routingMode": "broadcast",
            "conversationId": cid, "depth": 0,
        }  # fmt: skip
        assert second == {**first, "agentId": a.id}
        await s.gateway.nothing(0.5)
    assert decision(sent, f"broadcast [{c.id}, {a.id}] (conversation {cid}, depth 0)") in (
        caplog.text
    )
    assert (await stored_key(private_hub, router["id"])).startswith("enc:")
    [request] = fake.requests
    assert (request.path, request.headers["authorization"]) == (
        "/v1/chat/completions",
        f"Bearer {API_KEY}",  # stored encrypted, decrypted for the call
    )
    body = request.json()
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("tiny", 0, 256)
    system, user = body["messages"]
    assert system["content"].endswith("\n\nRoom context: Ship it")
    offered = [line for line in user["content"].split("\n") if line.startswith("- id: ")]
    assert offered == [f'- id: "{x.id}", name: "{x.name}", type: "generic"' for x in (a, b, c)]
    assert user["content"].endswith('\n\nUser message: "who can help with the release?"')


async def test_a_mention_in_a_broadcast_room_routes_direct_without_the_llm(
    private_hub: RunningHub, fake: FakeLlm
) -> None:
    async with routing_scene(private_hub, 2, broadcast=True) as s:
        a, _ = s.agents
        await use_fake_router(s, fake)
        await send_user_message(s, f"@{a.name} only you")
        [delivery] = await deliveries(s.gateway, 1)
        assert (delivery["agentId"], delivery["routingMode"]) == (a.id, "direct")
        await s.gateway.nothing(0.3)
    assert fake.requests == []


async def test_an_llm_timeout_is_logged_and_routes_to_nobody(
    private_hub: RunningHub, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(private_hub, 2, broadcast=True) as s:
        await use_fake_router(s, fake)
        fake.delay_s = 30
        started = trio.current_time()
        sent = await send_user_message(s, "anyone?")
        await wait_logged(caplog, decision(sent, "nobody (router LLM chose no agent)"))
        assert 1.9 <= trio.current_time() - started < 5  # ROUTER_LLM_TIMEOUT_MS=2000 here
        assert "Router LLM timeout: no answer within 2000 ms" in caplog.text
        await s.gateway.nothing(0.3)


async def test_broadcast_rooms_without_a_usable_router_route_to_nobody(
    private_hub: RunningHub, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(private_hub, 1, broadcast=True) as s:
        plain = await send_user_message(s, "no router yet")
        unusable = "nobody (broadcast room without a usable router)"
        await wait_logged(caplog, decision(plain, unusable))
        await use_fake_router(s, fake)
        await private_hub.services.db.execute(
            "UPDATE routers SET llm_api_key = 'enc:00:00:00'"
            " WHERE id = (SELECT router_id FROM rooms WHERE id = $1)",
            s.room_id,
        )  # fmt: skip
        broken = await send_user_message(s, "undecryptable key")
        await wait_logged(caplog, decision(broken, unusable))
        await s.gateway.nothing(0.3)
    assert fake.requests == []


# several processes (D15): what a chain needs lives in Redis -------------------------------------
async def wait_output(process: HubProcess, text: str) -> None:
    with trio.fail_after(10):
        while not process.logged(text):  # noqa: ASYNC110
            await trio.sleep(0.05)  # a child's log lines: polling is the only way to watch them


async def test_a_chain_continues_on_another_process(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    """User → A (gateway on process 1) → B (process 2) → A is stopped on process 2 by the visited
    set process 1 wrote."""
    one, two = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    a, b = (Agent(f"agent-{new_id(8)}", agent_name()) for _ in range(2))
    async with (
        signed_in_gateway(one.ws_url, owner) as gateway_a,
        signed_in_gateway(two.ws_url, owner) as gateway_b,
    ):
        await gateway_a.register(a.id, a.name)
        await gateway_b.register(b.id, b.name)
        for agent in (a, b):
            await add_agent_to_room(hub, room_id, agent.id)
        sent = await send_one(
            hub.services, user_id=owner.id, username=owner.username,
            draft=Draft(room_id, f"@{a.name} start"),
        )  # fmt: skip
        await route_user_message(hub.services, sent)
        to_a = await gateway_a.receive_type("server:send_to_agent")
        cid = to_a["conversationId"]
        await gateway_a.complete(room_id, a.id, new_id(), f"@{b.name} go", conversationId=cid,
                                 depth=to_a["depth"])  # fmt: skip
        to_b = await gateway_b.receive_type("server:send_to_agent")
        assert (to_b["senderName"], to_b["conversationId"], to_b["depth"]) == (a.name, cid, 1)
        await gateway_b.complete(room_id, b.id, new_id(), f"@{a.name} back", conversationId=cid,
                                 depth=to_b["depth"])  # fmt: skip
        await wait_output(two, f"Agent {a.id} already visited in conversation {cid}, skipping")
        await gateway_a.nothing(0.3)
    assert await hub.services.kv.smembers(f"conv:{cid}:visited") == {a.id, b.id}

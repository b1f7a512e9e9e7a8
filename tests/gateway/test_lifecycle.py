"""Gateway sign-in and the agent lifecycle (realtime.md §1.2.3, §5; DIFFERENCES D13, D14)."""

from __future__ import annotations

import logging

import pytest
import trio

from agentim.actions.agents import reset_stale_agents
from agentim.protocol.ids import new_id
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import (
    add_agent_to_room,
    agent_name,
    agent_row,
    connect_gateway,
    signed_in_gateway,
    wait_disconnected,
    wait_status,
)
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import signed_in

AUTH_RESULT = "server:gateway_auth_result"


async def test_gateway_auth_outcomes(hub: RunningHub, caplog: pytest.LogCaptureFixture) -> None:
    user, other = await signed_in_user(hub), await signed_in_user(hub)
    async with connect_gateway(hub) as gateway:
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            assert await gateway.auth(user, token="junk") == {
                "type": AUTH_RESULT,
                "ok": False,
                "error": "Authentication failed",
            }
        # a bad token is the peer's mistake: a warning, never an error line (level 50)
        [record] = [r for r in caplog.records if "Gateway auth failed:" in r.getMessage()]
        assert record.levelno == logging.WARNING
        refresh = hub.services.tokens.issue(user.id, user.username, "refresh")
        assert (await gateway.auth(user, token=refresh))["error"] == "Invalid token type"
        assert await gateway.auth(user) == {"type": AUTH_RESULT, "ok": True}
        await gateway.auth(user)  # re-auth as the same user is fine
    row = await hub.services.db.fetchrow("SELECT * FROM gateways WHERE id = $1", gateway.gateway_id)
    assert row is not None and row["user_id"] == user.id
    assert (row["name"], row["hostname"], row["platform"]) == ("box", "box", "linux")
    async with connect_gateway(hub, gateway.gateway_id) as thief:
        assert (await thief.auth(other))["error"] == "Gateway ID belongs to another user"


async def test_per_user_gateway_limit(hub: RunningHub, caplog: pytest.LogCaptureFixture) -> None:
    user = await signed_in_user(hub)
    await hub.services.db.execute("UPDATE users SET max_gateways = 1 WHERE id = $1", user.id)
    async with signed_in_gateway(hub, user), connect_gateway(hub) as second:
        with caplog.at_level(logging.WARNING, logger="Connections"):
            assert (await second.auth(user))["error"] == "Too many gateway connections"
        assert f"User {user.id} exceeded max gateways (1)" in caplog.text


async def test_register_announces_status_and_sends_room_context(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner, name="ops")
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with signed_in(hub, owner) as client, signed_in_gateway(hub, owner) as gateway:
        await gateway.register(agent_id, name, agent_type="codex", capabilities=["py"])
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)
        await gateway.send({"type": "gateway:unregister_agent", "agentId": agent_id})
        offline = await client.receive_type("server:agent_status")
        assert offline == {
            "type": "server:agent_status",
            "agent": {"id": agent_id, "name": name, "type": "codex", "status": "offline"},
        }
        agent = {"id": agent_id, "name": name, "type": "codex", "capabilities": ["py"]}
        await gateway.send({"type": "gateway:register_agent", "agent": agent})
        online = await client.receive_type("server:agent_status")
        assert online["agent"]["status"] == "online"
        context = await gateway.receive_type("server:room_context")
        assert context == {"type": "server:room_context", "agentId": agent_id, "context": {
            "roomId": room_id, "roomName": "ops", "members": [
                {"id": owner.id, "name": owner.username, "type": "user"},
                {"id": agent_id, "name": name, "type": "agent", "agentType": "codex",
                 "capabilities": ["py"], "status": "online"},
            ], "recentMessages": []}}  # fmt: skip
        await gateway.send({"type": "gateway:agent_status", "agentId": agent_id,
                            "status": "busy"})  # fmt: skip
        busy = await client.receive_type("server:agent_status")
        assert busy["agent"]["status"] == "busy"
    await wait_status(hub, agent_id, "offline")


async def test_ownership_checks_are_logged(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    owner, stranger = await signed_in_user(hub), await signed_in_user(hub)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as mine:
        await mine.register(agent_id, agent_name())
        async with signed_in_gateway(hub, stranger) as theirs:
            with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
                await theirs.register(agent_id, "stolen")
                for message in (
                    {"type": "gateway:unregister_agent", "agentId": agent_id},
                    {"type": "gateway:agent_status", "agentId": agent_id, "status": "busy"},
                    {"type": "gateway:terminal_data", "agentId": agent_id, "data": "ls"},
                ):
                    await theirs.send(message)
                await theirs.sync()
            await theirs.nothing(0.2)
    text = caplog.text
    assert (f"Gateway {theirs.gateway_id} attempted to register agent {agent_id} owned by "
            "another user") in text  # fmt: skip
    assert f"Gateway attempted to unregister agent {agent_id} it does not own" in text
    assert f"Gateway attempted to update status for unregistered agent {agent_id}" in text
    assert f"Gateway attempted to send terminal data for unowned agent {agent_id}" in text


async def test_same_user_reregistering_elsewhere_keeps_agent_online(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with signed_in_gateway(hub, owner) as old:
        await old.register(agent_id, name)
        async with signed_in_gateway(hub, owner) as new:
            await new.register(agent_id, name)
            await old.ws.aclose()  # the old socket's close must not take the agent offline
            await wait_disconnected(hub, old.gateway_id)
            row = await agent_row(hub, agent_id)
            assert row is not None and row["status"] == "online"
            assert hub.services.hub.agents[agent_id] in hub.services.hub.sessions


async def test_deleted_agent_is_refused_across_a_restart(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    agent_id = f"agent-{new_id(8)}"
    for attempt in range(2):
        hub = await start_hub(nursery, settings, redis_prefix)
        owner = await signed_in_user(hub)
        if attempt == 0:
            async with signed_in_gateway(hub, owner) as gateway:
                await gateway.register(agent_id, agent_name())
            await hub.services.db.execute(
                "INSERT INTO deleted_agents (agent_id, user_id, deleted_at) "
                "VALUES ($1, $2, 'x')", agent_id, owner.id,
            )  # fmt: skip
            await hub.services.db.execute("DELETE FROM agents WHERE id = $1", agent_id)
        else:
            with caplog.at_level(logging.INFO, logger="GatewayHandler"):
                async with signed_in_gateway(hub, owner) as gateway:
                    await gateway.send({"type": "gateway:register_agent", "agent": {
                        "id": agent_id, "name": "again", "type": "generic"}})  # fmt: skip
                    assert await gateway.receive_type("server:remove_agent") == {
                        "type": "server:remove_agent",
                        "agentId": agent_id,
                    }
            assert (f"Rejecting re-registration of deleted agent {agent_id}, notifying gateway"
                    in caplog.text)  # fmt: skip
            assert await agent_row(hub, agent_id) is None
        hub.shutdown.set()
        with trio.fail_after(15):
            while hub.services.hub.sessions or not hub.services.hub.closing:  # noqa: ASYNC110
                await trio.sleep(0.05)  # the hub exposes no "stopped" event
        await trio.sleep(0.5)


async def test_start_up_resets_agents_a_crash_left_online(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    agent_id, live_id = f"agent-{new_id(8)}", f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway:
        await gateway.register(agent_id, agent_name())
        await gateway.register(live_id, agent_name())
        await hub.services.kv.delete(f"agent:gw:{agent_id}")  # as if its process had died
        stale = await reset_stale_agents(hub.services)
        assert agent_id in stale and live_id not in stale
        assert (await agent_row(hub, agent_id) or {})["status"] == "offline"
        assert (await agent_row(hub, live_id) or {})["status"] == "online"


async def test_shutdown_marks_this_process_agents_offline(
    hub: RunningHub, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    other = await start_hub(nursery, settings, redis_prefix)  # `hub` outlives it, to look
    owner = await signed_in_user(hub)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(other, owner) as gateway:
        await gateway.register(agent_id, agent_name())
        other.shutdown.set()
        reason = await gateway.closed()
        assert reason.code == 1001
    await wait_status(hub, agent_id, "offline")

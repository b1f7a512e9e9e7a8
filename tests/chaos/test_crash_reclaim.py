"""What a SIGKILLed hub process owned is reclaimed by a live one within the documented bound:
its agents go offline, its gateway rows disconnected, its users offline, with the usual events,
once per dead process however many survivors sweep (issue 15 item 2)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx
import trio
import trio_websocket

from agentim import embedded
from agentim.protocol.ids import new_id
from tests.chaos.conftest import ChaosSpawn, PostgresServer, admin_http, new_user
from tests.e2e.conftest import HubProcess
from tests.gateway_helpers import Gateway, signed_in_gateway
from tests.helpers import User
from tests.ws.wsclient import Client, connect

# Small bounds through the env settings, so a scenario takes seconds; the bound under test is
# the liveness TTL (since the last beat) plus one reclaim interval, plus slack for a loaded
# two-core machine (a pass, the events' way through Redis).
FAST = {"HUB_LIVENESS_TTL_MS": "1500", "HUB_RECLAIM_INTERVAL_MS": "300"}
FAST_BOUND_S = 1.5 + 0.3
SLACK_S = 4.0
DEFAULT_BOUND_S = 30.0 + 10.0  # HUB_LIVENESS_TTL_MS and HUB_RECLAIM_INTERVAL_MS defaults
SCENARIO_S = 120


@attrs.define
class Scene:
    """An owner's gateway with one agent in a room on the doomed hub, a user online only there,
    and a watcher of the room."""

    owner: User
    loner: User
    watcher: User
    room_id: str
    agent_id: str
    gateway_id: str


async def _user(hub: HubProcess) -> User:
    try:
        admin = await admin_http(hub)
    except httpx.ConnectError as exc:  # say why: the hub's own last lines
        tail = b"\n".join(hub.output[-30:]).decode(errors="replace")
        code = hub.process.returncode
        raise AssertionError(f"hub unreachable (exit code {code}):\n{tail}") from exc
    try:
        return await new_user(admin)
    finally:
        await admin.aclose()


async def _post(hub: HubProcess, user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        response = await http.post(path, json=body, headers=user.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def _agent(hub: HubProcess, user: User, agent_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        response = await http.get(f"/api/agents/{agent_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def _client(stack: AsyncExitStack, hub: HubProcess, user: User) -> Client:
    client = await stack.enter_async_context(connect(hub.ws_url))
    assert (await client.auth(user))["ok"] is True
    return client


@asynccontextmanager
async def _doomed_gateway(hub: HubProcess, user: User) -> AsyncIterator[Gateway]:
    """A gateway whose hub gets killed under it: its broken close is expected."""
    try:
        async with signed_in_gateway(hub.ws_url, user) as gateway:
            yield gateway
    except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError):
        pass


async def _scene(stack: AsyncExitStack, doomed: HubProcess) -> Scene:
    owner, loner, watcher = await _user(doomed), await _user(doomed), await _user(doomed)
    room = await _post(doomed, owner, "/api/rooms", {"name": "reclaim", "memberIds": [watcher.id]})
    room_id = room["data"]["id"]
    gateway = await stack.enter_async_context(_doomed_gateway(doomed, owner))
    agent_id = new_id()
    await gateway.register(agent_id, "reclaimable")
    await _post(doomed, owner, f"/api/rooms/{room_id}/members",
                {"memberId": agent_id, "memberType": "agent"})  # fmt: skip
    await _client(stack, doomed, loner)  # online on the doomed process only
    return Scene(owner, loner, watcher, room_id, agent_id, gateway.gateway_id)


def _is_agent_offline(scene: Scene, frame: dict[str, Any]) -> bool:
    return frame["type"] == "server:agent_status" and frame["agent"] == {
        **frame["agent"], "id": scene.agent_id, "status": "offline",
    }  # fmt: skip


def _is_loner_offline(scene: Scene, frame: dict[str, Any]) -> bool:
    return frame["type"] == "server:presence" and (frame["userId"], frame["online"]) == (
        scene.loner.id, False,
    )  # fmt: skip


async def _frames_until(client: Client, deadline: float, *wanted: Any) -> list[dict[str, Any]]:
    """Every frame until each predicate matched one (fails at `deadline`, trio time)."""
    seen: list[dict[str, Any]] = []
    missing = list(wanted)
    with trio.fail_at(deadline):
        while missing:
            frame = json.loads(await client.ws.get_message())  # no per-frame timeout
            seen.append(frame)
            missing = [w for w in missing if not w(frame)]
    return seen


async def _frames_for(client: Client, seconds: float) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    with trio.move_on_after(seconds):
        while True:
            seen.append(json.loads(await client.ws.get_message()))
    return seen


async def _disconnected_at(postgres: PostgresServer, gateway_id: str) -> str:
    argv = [embedded.pg_bin("psql"), "-X", "-A", "-t", postgres.url, "-c",
            f"SELECT disconnected_at FROM gateways WHERE id = '{gateway_id}'"]  # fmt: skip
    result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return result.stdout.decode().strip()


async def test_a_survivor_reclaims_a_sigkilled_process_within_the_bound(
    chaos_hub: ChaosSpawn, own_postgres: PostgresServer
) -> None:
    with trio.fail_after(SCENARIO_S):
        doomed, survivor = await chaos_hub(**FAST), await chaos_hub(**FAST)
        async with AsyncExitStack() as stack:
            scene = await _scene(stack, doomed)
            watcher = await _client(stack, survivor, scene.watcher)
            await watcher.join(scene.room_id)
            owner = await _client(stack, survivor, scene.owner)
            assert (await _agent(survivor, scene.owner, scene.agent_id))["status"] == "online"

            await doomed.kill()
            killed_at = trio.current_time()
            wanted = (
                lambda f: _is_agent_offline(scene, f),
                lambda f: _is_loner_offline(scene, f),
            )
            await _frames_until(watcher, killed_at + FAST_BOUND_S + SLACK_S, *wanted)
            elapsed = trio.current_time() - killed_at
            print(f"reclaimed {elapsed:.2f} s after the SIGKILL")
            assert (await _agent(survivor, scene.owner, scene.agent_id))["status"] == "offline"
            assert await _disconnected_at(own_postgres, scene.gateway_id) != ""
            # the owner's gateway list changed: their clients hear it
            await _frames_until(owner, trio.current_time() + SLACK_S,
                                lambda f: f["type"] == "server:agents_changed")  # fmt: skip
            assert survivor.logged("Reclaimed dead hub process")
            assert survivor.fatal_lines() == []


async def test_several_survivors_reclaim_a_dead_process_once(chaos_hub: ChaosSpawn) -> None:
    with trio.fail_after(SCENARIO_S):
        doomed = await chaos_hub(**FAST)
        survivors = [await chaos_hub(**FAST), await chaos_hub(**FAST)]
        async with AsyncExitStack() as stack:
            scene = await _scene(stack, doomed)
            watchers = [await _client(stack, hub, scene.watcher) for hub in survivors]
            for watcher in watchers:
                await watcher.join(scene.room_id)

            await doomed.kill()
            seen = await _frames_for(watchers[0], FAST_BOUND_S + SLACK_S)
            other = await _frames_for(watchers[1], 0.5)
            for frames in (seen, other):
                assert sum(_is_agent_offline(scene, f) for f in frames) == 1, frames
                assert sum(_is_loner_offline(scene, f) for f in frames) == 1, frames
            claims = sum(hub.logged("Reclaimed dead hub process") for hub in survivors)
            assert claims == 1


async def test_a_fresh_process_reclaims_the_only_one_sigkilled_before_it(
    chaos_hub: ChaosSpawn,
) -> None:
    """The start-up reset trusts the dead process until its liveness lapses; the sweep after it
    must not."""
    with trio.fail_after(SCENARIO_S):
        doomed = await chaos_hub(**FAST)
        async with AsyncExitStack() as stack:
            scene = await _scene(stack, doomed)
            await doomed.kill()
            killed_at = trio.current_time()
            fresh = await chaos_hub(**FAST)
            watcher = await _client(stack, fresh, scene.watcher)
            await watcher.join(scene.room_id)
            deadline = killed_at + FAST_BOUND_S + SLACK_S
            with trio.fail_at(max(deadline, trio.current_time() + 1)):
                while (await _agent(fresh, scene.owner, scene.agent_id))["status"] != "offline":  # noqa: ASYNC110
                    await trio.sleep(0.1)  # a row in another process's database: poll it
            print(f"offline {trio.current_time() - killed_at:.2f} s after the SIGKILL")


async def test_the_default_bound_holds(chaos_hub: ChaosSpawn) -> None:
    """Defaults: offline within HUB_LIVENESS_TTL_MS + HUB_RECLAIM_INTERVAL_MS of the kill."""
    with trio.fail_after(SCENARIO_S):
        doomed = await chaos_hub()
        async with AsyncExitStack() as stack:
            scene = await _scene(stack, doomed)
            await doomed.kill()
            killed_at = trio.current_time()
            fresh = await chaos_hub()
            watcher = await _client(stack, fresh, scene.watcher)
            await watcher.join(scene.room_id)
            await _frames_until(watcher, killed_at + DEFAULT_BOUND_S + SLACK_S,
                                lambda f: _is_agent_offline(scene, f))  # fmt: skip
            elapsed = trio.current_time() - killed_at
            print(f"default bound: offline {elapsed:.2f} s after the SIGKILL")
            assert (await _agent(fresh, scene.owner, scene.agent_id))["status"] == "offline"


async def test_a_stalled_process_taken_for_dead_puts_its_agents_back(
    chaos_hub: ChaosSpawn,
) -> None:
    """SIGSTOP past the bound: a survivor reclaims it; after SIGCONT its next beat finds out and
    its agent (its gateway socket never closed) is online again, its user too."""
    with trio.fail_after(SCENARIO_S):
        stalled, survivor = await chaos_hub(**FAST), await chaos_hub(**FAST)
        async with AsyncExitStack() as stack:
            scene = await _scene(stack, stalled)
            watcher = await _client(stack, survivor, scene.watcher)
            await watcher.join(scene.room_id)
            os.kill(stalled.process.pid, signal.SIGSTOP)
            try:
                await _frames_until(watcher, trio.current_time() + FAST_BOUND_S + SLACK_S,
                                    lambda f: _is_agent_offline(scene, f))  # fmt: skip
            finally:
                os.kill(stalled.process.pid, signal.SIGCONT)
            back = await _frames_until(
                watcher, trio.current_time() + FAST_BOUND_S + SLACK_S,
                lambda f: f["type"] == "server:agent_status" and f["agent"]["status"] == "online",
                lambda f: f["type"] == "server:presence" and f["online"] is True,
            )  # fmt: skip
            assert any(f.get("userId") == scene.loner.id for f in back)
            assert (await _agent(survivor, scene.owner, scene.agent_id))["status"] == "online"
            assert stalled.logged("was taken for dead")


async def test_a_clean_shutdown_is_reclaimed_without_waiting_for_the_ttl(
    chaos_hub: ChaosSpawn,
) -> None:
    """SIGTERM drops the liveness key on the way out: the users the stopped process had go
    offline at the survivor's next sweep, long before a (here 60 s) TTL."""
    slow_ttl = {**FAST, "HUB_LIVENESS_TTL_MS": "60000"}
    with trio.fail_after(SCENARIO_S):
        leaving, survivor = await chaos_hub(**slow_ttl), await chaos_hub(**slow_ttl)
        async with AsyncExitStack() as stack:
            scene = await _scene(stack, leaving)
            watcher = await _client(stack, survivor, scene.watcher)
            await watcher.join(scene.room_id)
            assert await leaving.terminate() == 0
            stopped_at = trio.current_time()
            await _frames_until(watcher, stopped_at + 0.3 + SLACK_S,
                                lambda f: _is_agent_offline(scene, f),
                                lambda f: _is_loner_offline(scene, f))  # fmt: skip
            print(f"clean shutdown: reclaimed {trio.current_time() - stopped_at:.2f} s after it")

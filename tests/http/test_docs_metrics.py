"""/api/docs/openapi.json is generated from the served routes; /api/metrics moves with traffic."""

from __future__ import annotations

import re

import attrs
import httpx
import trio

from agentim.app import create_app
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect


def _served_api_routes(hub_app_rules: list[tuple[str, set[str]]]) -> set[tuple[str, str]]:
    found = set()
    for rule, methods in hub_app_rules:
        if "<path:" in rule or rule.endswith("/"):
            continue  # catch-all 404s (e.g. /api/auth/<path>) are not routes
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule.removeprefix("/api"))
        found |= {(path, m.lower()) for m in methods - {"HEAD", "OPTIONS"}}
    return found


async def test_every_served_route_is_documented_and_every_documented_route_answers(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    response = await client.get("/api/docs/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.0.3" and document["info"]["title"] == "AgentIM API"
    assert document["servers"] == [{"url": "/api"}]
    documented = {(p, m) for p, ops in document["paths"].items() for m in ops}
    app = create_app(hub.services)  # the same blueprints the running hub serves
    rules = [
        (r.rule, set(r.methods or ()))
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/")
    ]
    assert documented == _served_api_routes(rules)
    assert ("/auth/login", "post") in documented and ("/health", "get") in documented
    user = await signed_in_user(hub)
    for path, method in sorted(documented):
        url = "/api" + re.sub(r"\{[^}]+\}", "doesNotExist1", path)
        answer = await client.request(method.upper(), url, headers=user.headers, json={})
        assert answer.text != "404 Not Found", (
            f"{method.upper()} {path} is documented but not served"
        )


async def test_metrics_count_real_traffic(hub: RunningHub, client: httpx.AsyncClient) -> None:
    before = (await client.get("/api/metrics")).text
    await client.get("/api/nope-this-is-an-error")
    await client.get("/api/health")
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    async with connect(hub) as socket:
        assert (await socket.auth(user))["ok"] is True
        await socket.join(room_id)
        await socket.send({"type": "client:send_message", "roomId": room_id, "content": "hi"})
        await socket.receive_type("server:new_message")
    after = await client.get("/api/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain; version=0.0.4")
    for name in (
        "agentim_ws_client_connections",
        "agentim_ws_gateway_connections",
        "agentim_online_users",
        "agentim_connected_agents",
        "agentim_active_rooms",
        "agentim_messages_total",
        "agentim_ws_messages_total",
        "agentim_api_errors_total",
        "agentim_http_request_duration_seconds",
        "agentim_agent_response_duration_seconds",
        "process_uptime_seconds",
        "process_rss_bytes",
    ):
        assert f"# TYPE {name} " in after.text, name
    assert (
        _value(after.text, "agentim_http_request_duration_seconds_count")
        >= _value(before, "agentim_http_request_duration_seconds_count") + 2
    )
    assert _value(after.text, 'agentim_api_errors_total{status="404"}') >= 1
    moved = (
        'agentim_messages_total{type="text"}',
        'agentim_ws_messages_total{direction="in"}',
        'agentim_ws_messages_total{direction="out"}',
    )
    for series in moved:
        assert _value(after.text, series) > _value(before, series), series


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_need_a_token_in_production_unless_disabled(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, env="production"), redis_prefix)
    async with httpx.AsyncClient(base_url=hub.url) as client:
        assert (await client.get("/api/metrics")).status_code == 401
        user = await signed_in_user(hub)
        assert (await client.get("/api/metrics", headers=user.headers)).status_code == 200
    hub.shutdown.set()
    open_hub = await start_hub(
        nursery, attrs.evolve(settings, env="production", metrics_auth_enabled=False), redis_prefix
    )
    async with httpx.AsyncClient(base_url=open_hub.url) as client:
        assert (await client.get("/api/metrics")).status_code == 200

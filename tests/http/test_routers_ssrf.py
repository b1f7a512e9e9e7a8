"""SSRF refusals on POST/PUT /api/routers (api.md §10.5), with the line operators grep."""

from __future__ import annotations

import logging

import attrs
import httpx
import pytest
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, signed_in_user
from tests.http.routers_support import create_router, router_body

SSRF_BODY = {"ok": False, "error": "LLM base URL must not point to internal or private networks"}
REFUSED = [  # (URL, what the log line names)
    ("http://127.0.0.1", "127.0.0.1"),
    ("http://0x7f000001", "0x7f000001 (127.0.0.1)"),
    ("http://[::ffff:7f00:1]", "[::ffff:7f00:1]"),
    ("http://169.254.169.254", "169.254.169.254"),
    ("http://localhost", "localhost"),
    ("http://10.0.0.1", "10.0.0.1"),
    ("http://017700000001", "017700000001 (127.0.0.1)"),
    ("http://2130706433", "2130706433 (127.0.0.1)"),
    ("http://[::ffff:127.0.0.1]/v1", "[::ffff:127.0.0.1] ([::ffff:7f00:1])"),
    ("http://0x7f.1:8080/v1", "0x7f.1 (127.0.0.1)"),
    ("http://192.168.1.20:11434", "192.168.1.20"),
]


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name in ("Routers", "RouterLLM") and "internal or private networks" in r.getMessage()
    ]


@pytest.mark.parametrize(("url", "logged_host"), REFUSED)
async def test_create_refuses_internal_targets(
    hub: RunningHub, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, url: str,
    logged_host: str,
) -> None:  # fmt: skip
    user = await signed_in_user(hub)
    with caplog.at_level(logging.WARNING, logger="Routers"), trio.fail_after(10):
        response = await client.post(
            "/api/routers", json=router_body(llmBaseUrl=url), headers=user.headers
        )
    assert response.status_code == 400
    assert (
        response.text
        == '{"ok":false,"error":"LLM base URL must not point to internal or private networks"}'
    )
    [line] = refusal_lines(caplog)
    assert f"host {logged_host}:" in line
    count = await hub.services.db.fetchval(
        "SELECT count(*) FROM routers WHERE created_by_id = $1", user.id
    )
    assert count == 0


async def test_update_refuses_internal_targets(
    hub: RunningHub, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    router = await create_router(client, user)
    with caplog.at_level(logging.WARNING, logger="Routers"):
        response = await client.put(
            f"/api/routers/{router['id']}",
            json={"llmBaseUrl": "http://169.254.169.254/latest"},
            headers=user.headers,
        )
    assert (response.status_code, response.json()) == (400, SSRF_BODY)
    assert "169.254.169.254" in refusal_lines(caplog)[0]
    stored = await hub.services.db.fetchval(
        "SELECT llm_base_url FROM routers WHERE id = $1", router["id"]
    )
    assert stored == router["llmBaseUrl"]


async def test_allow_private_networks_lets_local_model_servers_in(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    allowed = attrs.evolve(settings, router_allow_private_networks=True)
    hub = await start_hub(nursery, allowed, redis_prefix)
    user = await signed_in_user(hub)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
        router = await create_router(client, user, llmBaseUrl="http://127.0.0.1:11434/v1")
        assert router["llmBaseUrl"] == "http://127.0.0.1:11434/v1"
        response = await client.post(
            "/api/routers", json=router_body(llmBaseUrl="ftp://127.0.0.1"), headers=user.headers
        )
        assert response.status_code == 400  # schema: not an HTTP(S) URL

"""POST /api/routers/:id/test (api.md §10.3) against a real local fake LLM endpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import attrs
import httpx
import pytest
import trio

from agentim.routing import ai_selector
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, signed_in_user
from tests.http.routers_support import API_KEY, create_router, stored_key
from tests.routing.fake_llm import FakeLlm, start_fake_llm


@pytest.fixture
async def private_hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> RunningHub:
    """The hub with ROUTER_ALLOW_PRIVATE_NETWORKS=true: the fake LLM listens on 127.0.0.1."""
    allowed = attrs.evolve(settings, router_allow_private_networks=True)
    return await start_hub(nursery, allowed, redis_prefix)


@pytest.fixture
async def http(private_hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=private_hub.url, timeout=30) as client:
        yield client


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeLlm:
    return await start_fake_llm(nursery)


async def run_test(
    http: httpx.AsyncClient, router_id: str, headers: dict[str, str]
) -> httpx.Response:
    with trio.fail_after(15):
        return await http.post(f"/api/routers/{router_id}/test", headers=headers)


async def test_success_sends_the_decrypted_key(
    private_hub: RunningHub, http: httpx.AsyncClient, fake: FakeLlm
) -> None:
    user = await signed_in_user(private_hub)
    router = await create_router(http, user, llmBaseUrl=f"{fake.url}/v1", llmModel="tiny")
    stored = await stored_key(private_hub, router["id"])
    assert stored.startswith("enc:") and API_KEY not in stored
    response = await run_test(http, router["id"], user.headers)
    assert (response.status_code, response.text) == (200, '{"ok":true,"data":{"success":true}}')
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 5,
    }


async def test_trailing_slash_is_joined_as_is(
    private_hub: RunningHub, http: httpx.AsyncClient, fake: FakeLlm
) -> None:
    user = await signed_in_user(private_hub)
    router = await create_router(http, user, llmBaseUrl=f"{fake.url}/v1/")
    await run_test(http, router["id"], user.headers)
    assert fake.requests[0].path == "/v1//chat/completions"


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (401, {}, "LLM API returned HTTP 401"),
        (500, {}, "LLM API returned HTTP 500"),
        (302, {"Location": "http://169.254.169.254/"}, "Connection failed"),
        (307, {"Location": "/elsewhere"}, "Connection failed"),
    ],
)
async def test_failures_are_http_200(
    private_hub: RunningHub, http: httpx.AsyncClient, fake: FakeLlm, status: int,
    headers: dict[str, str], error: str,
) -> None:  # fmt: skip
    fake.status, fake.extra_headers = status, headers
    user = await signed_in_user(private_hub)
    router = await create_router(http, user, llmBaseUrl=fake.url)
    response = await run_test(http, router["id"], user.headers)
    assert (response.status_code, response.json()) == (200, {"ok": False, "error": error})
    assert len(fake.requests) == 1  # a redirect is never followed


async def test_connection_refused(private_hub: RunningHub, http: httpx.AsyncClient) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    user = await signed_in_user(private_hub)
    router = await create_router(http, user, llmBaseUrl=f"http://127.0.0.1:{port}")
    response = await run_test(http, router["id"], user.headers)
    assert (response.status_code, response.json()) == (
        200,
        {"ok": False, "error": "Connection failed"},
    )


async def test_timeout(
    private_hub: RunningHub, http: httpx.AsyncClient, fake: FakeLlm,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(ai_selector, "TEST_TIMEOUT_S", 0.5)  # the 10 s wait, shortened
    fake.delay_s = 10
    user = await signed_in_user(private_hub)
    router = await create_router(http, user, llmBaseUrl=fake.url)
    response = await run_test(http, router["id"], user.headers)
    assert response.json() == {"ok": False, "error": "Connection timeout (10s)"}


async def test_undecryptable_key_is_a_configuration_error(
    private_hub: RunningHub, http: httpx.AsyncClient, fake: FakeLlm
) -> None:
    user = await signed_in_user(private_hub)
    router = await create_router(http, user, llmBaseUrl=fake.url)
    await private_hub.services.db.execute(
        "UPDATE routers SET llm_api_key = 'enc:000102030405060708090a0b:00:11' WHERE id = $1",
        router["id"],
    )
    response = await run_test(http, router["id"], user.headers)
    assert (response.status_code, response.json()) == (
        500, {"ok": False, "error": "Router configuration error"},
    )  # fmt: skip
    assert fake.requests == []


async def test_visibility_applies(
    private_hub: RunningHub, http: httpx.AsyncClient, fake: FakeLlm
) -> None:
    owner, other = await signed_in_user(private_hub), await signed_in_user(private_hub)
    admin = await signed_in_user(private_hub, role="admin")
    router = await create_router(http, owner, llmBaseUrl=fake.url)
    response = await run_test(http, router["id"], other.headers)
    assert (response.status_code, response.json()["error"]) == (404, "Router not found")
    response = await run_test(http, router["id"], admin.headers)
    assert response.json() == {"ok": True, "data": {"success": True}}


async def test_private_answer_is_refused_at_test_time_without_the_flag(
    hub: RunningHub, client: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    # A row from before the guard (or a DNS change): the test call does not reach it.
    user = await signed_in_user(hub)
    router = await create_router(client, user)
    await hub.services.db.execute(
        "UPDATE routers SET llm_base_url = $2 WHERE id = $1", router["id"], fake.url
    )
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        response = await run_test(client, router["id"], user.headers)
    assert response.json() == {"ok": False, "error": "Connection failed"}
    assert fake.requests == []
    assert any("internal or private networks" in r.getMessage() for r in caplog.records)

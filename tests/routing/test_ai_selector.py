"""The broadcast-mode Router LLM call (realtime.md §3.4) against a real local fake endpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from agentim.auth.crypto import seal
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.routing.ai_selector import (
    SYSTEM_PROMPT_LINES,
    RouterCandidate,
    RouterConfig,
    build_messages,
    load_router_config,
    new_llm_client,
    select_agents,
)
from agentim.store.ai_routers import insert_router
from tests.helpers import RunningHub, create_room, create_user
from tests.routing.fake_llm import FakeLlm, start_fake_llm

CANDIDATES = (
    RouterCandidate("agent-a", "alice", "claude-code", ("python", "review")),
    RouterCandidate("agent-b", "bob", "codex"),
    RouterCandidate("agent-c", "carol", "gemini"),
)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeLlm:
    return await start_fake_llm(nursery)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_llm_client() as client:
        yield client


def config_for(fake: FakeLlm) -> RouterConfig:
    return RouterConfig(
        router_id="r1", base_url=f"{fake.url}/v1", api_key="sk-fake-key", model="gpt-test"
    )


async def select(
    http: httpx.AsyncClient, fake: FakeLlm, *, allow_private: bool = True,
    prompt: str | None = None, timeout_s: float = 5.0,
) -> list[str]:  # fmt: skip
    with trio.fail_after(10):
        return await select_agents(
            http, config_for(fake), CANDIDATES, "Please review my PR", prompt,
            allow_private=allow_private, timeout_s=timeout_s,
        )  # fmt: skip


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "RouterLLM"]


async def test_valid_answer_and_the_exact_request(http: httpx.AsyncClient, fake: FakeLlm) -> None:
    fake.answer('{"agentIds": ["agent-b", "agent-a"]}')
    assert await select(http, fake, prompt="Be helpful") == ["agent-b", "agent-a"]
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-fake-key"
    assert request.headers["content-type"] == "application/json"
    system = "\n".join([*SYSTEM_PROMPT_LINES, "\nRoom context: Be helpful"])
    user = (
        "Available agents:\n"
        '- id: "agent-a", name: "alice", type: "claude-code" (capabilities: python, review)\n'
        '- id: "agent-b", name: "bob", type: "codex"\n'
        '- id: "agent-c", name: "carol", type: "gemini"\n\n'
        'User message: "Please review my PR"'
    )
    assert request.json() == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "temperature": 0,
        "max_tokens": 256,
    }
    assert '{ "agentIds": ["id1", "id2"] }' in system
    assert request.body.startswith(b'{"model":"gpt-test","messages":[{"role":"system","content":')


def test_prompt_without_room_context_and_capped_capabilities() -> None:
    many = RouterCandidate("x", "x", "t", tuple(f"c{i}" for i in range(12)))
    system, user = build_messages([many], 'say "hi"', None)
    assert system["content"] == "\n".join(SYSTEM_PROMPT_LINES)
    assert "(capabilities: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9)" in user["content"]
    assert user["content"].endswith('User message: "say "hi""')


async def test_duplicates_are_removed_keeping_first_order(
    http: httpx.AsyncClient, fake: FakeLlm
) -> None:
    fake.answer('{"agentIds": ["agent-c", "agent-a", "agent-c", "agent-a"]}')
    assert await select(http, fake) == ["agent-c", "agent-a"]


async def test_unknown_ids_are_dropped(http: httpx.AsyncClient, fake: FakeLlm) -> None:
    fake.answer('{"agentIds": ["nobody", "agent-b", "agent-z"]}')
    assert await select(http, fake) == ["agent-b"]


async def test_code_fenced_json_is_read(http: httpx.AsyncClient, fake: FakeLlm) -> None:
    fake.answer('Sure!\n```json\n{"agentIds": ["agent-a"]}\n```\n')
    assert await select(http, fake) == ["agent-a"]


async def test_empty_choice_is_no_routing(http: httpx.AsyncClient, fake: FakeLlm) -> None:
    fake.answer('{"agentIds": []}')
    assert await select(http, fake) == []


async def test_timeout_is_router_llm_timeout(
    http: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.delay_s = 30
    started = trio.current_time()
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, fake, timeout_s=1.5) == []
    assert 1.4 <= trio.current_time() - started < 3
    assert "Router LLM timeout: no answer within 1500 ms" in warnings_of(caplog)


async def test_http_error_status(
    http: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.status, fake.body = 500, b'{"error":"boom"}'
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, fake) == []
    assert warnings_of(caplog) == ["Router LLM HTTP error: status 500 Internal Server Error"]


async def test_redirects_are_failures(
    http: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.status, fake.extra_headers = 302, {"Location": "http://169.254.169.254/"}
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, fake) == []
    assert len(fake.requests) == 1
    [message] = warnings_of(caplog)
    assert message.startswith("Router LLM network error")


@pytest.mark.parametrize(
    ("body", "warning"),
    [
        (b"<html>nope</html>", "Router LLM response body is not valid JSON"),
        (b'{"choices": "x"}', "Router LLM response schema mismatch: choices: Expected array"),
        (b'{"choices": [{"message": {"content": 7}}]}', "Router LLM response schema mismatch"),
        (b'{"choices": []}', "Router LLM returned empty content"),
        (b'{"choices": [{"message": {"content": "  \\n "}}]}', "Router LLM returned empty content"),
        (b"[" * 100_000 + b"]" * 100_000, "Router LLM unexpected error"),  # too deep
        (b" " * (2 * 1024 * 1024), "Router LLM network error: response larger than"),
    ],
)
async def test_unusable_bodies(
    http: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture, body: bytes,
    warning: str,
) -> None:  # fmt: skip
    fake.body = body
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, fake) == []
    [message] = warnings_of(caplog)
    assert message.startswith(warning)


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        ("I pick alice", "Router LLM response does not contain JSON object"),
        ("{agentIds: [a]}", "Router LLM returned invalid JSON in content: {agentIds: [a]}"),
        (
            '{"agentIds": "agent-a"}',
            "Router LLM agentIds schema mismatch: agentIds: Expected array",
        ),
        ('{"agentIds": [1]}', "Router LLM agentIds schema mismatch: agentIds.0: Expected string"),
        ('{"ids": []}', "Router LLM agentIds schema mismatch: agentIds: Required"),
    ],
)
async def test_unusable_contents(
    http: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture, content: str,
    warning: str,
) -> None:  # fmt: skip
    fake.answer(content)
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, fake) == []
    [message] = warnings_of(caplog)
    assert message.startswith(warning)


async def test_private_address_is_refused_at_call_time(
    http: httpx.AsyncClient, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.answer('{"agentIds": ["agent-a"]}')
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, fake, allow_private=False) == []
    assert fake.requests == []
    [message] = warnings_of(caplog)
    assert "Router LLM" in message
    assert "internal or private networks" in message


async def test_connection_refused_is_a_network_error(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        closed = FakeLlm(port=sock.getsockname()[1])
    with caplog.at_level(logging.WARNING, logger="RouterLLM"):
        assert await select(http, closed) == []
    [message] = warnings_of(caplog)
    assert message.startswith("Router LLM network error")


# Router config lookup (realtime.md §3.4) ---------------------------------------------------


async def _router(
    hub: RunningHub, owner_id: str, *, scope: str, api_key: str,
    base_url: str = "http://llm.example/v1",
) -> str:  # fmt: skip
    router_id = new_id()
    await insert_router(
        hub.services.db, router_id=router_id, name=f"r-{router_id}", description=None, scope=scope,
        created_by_id=owner_id, llm_base_url=base_url, llm_api_key=api_key, llm_model="m",
        max_chain_depth=7, rate_limit_window=30, rate_limit_max=9, visibility="all",
        visibility_list="[]", now=iso_now(),
    )  # fmt: skip
    return router_id


async def _room_with(hub: RunningHub, owner_id: str, router_id: str | None) -> str:
    owner = await create_user(hub)
    room_id = await create_room(hub, owner, broadcast=True)
    await hub.services.db.execute(
        "UPDATE rooms SET router_id = $2, created_by_id = $3 WHERE id = $1",
        room_id, router_id, owner_id,
    )  # fmt: skip
    return room_id


async def test_router_config_lookup(hub: RunningHub) -> None:
    key = hub.services.settings.encryption_key
    creator, other = await create_user(hub), await create_user(hub)
    sealed = seal("sk-secret-1", key)
    personal = await _router(hub, creator.id, scope="personal", api_key=sealed)
    shared = await _router(hub, other.id, scope="global", api_key=sealed)
    broken = await _router(hub, creator.id, scope="global", api_key="enc:00:11:22")
    empty_url = await _router(hub, creator.id, scope="global", api_key=sealed, base_url="")
    db = hub.services.db

    async def lookup(owner_id: str, router_id: str | None) -> RouterConfig | None:
        room_id = await _room_with(hub, owner_id, router_id)
        return await load_router_config(db, room_id, encryption_key=key)

    config = await lookup(creator.id, personal)
    assert config == RouterConfig(
        router_id=personal, base_url="http://llm.example/v1", api_key="sk-secret-1", model="m",
        max_chain_depth=7, rate_limit_window=30, rate_limit_max=9,
    )  # fmt: skip
    assert "sk-secret-1" not in repr(config)
    assert await lookup(other.id, personal) is None  # someone else's personal router
    assert (await lookup(creator.id, shared)) is not None
    assert await lookup(creator.id, broken) is None
    assert await lookup(creator.id, empty_url) is None
    assert await lookup(creator.id, None) is None
    assert await load_router_config(db, "no-such-room", encryption_key=key) is None

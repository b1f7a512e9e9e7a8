"""The AI router's LLM call (realtime.md §3.4) and the router test call (api.md §10.3).

Every failure of the selector is an empty answer plus one `Router LLM …` warning (logger
`RouterLLM`); it never raises, and its answer names each agent once (DIFFERENCES D11).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import httpx
import trio

from agentim.auth.crypto import open_secret
from agentim.protocol.jsontypes import type_name
from agentim.protocol.textrules import js_trim
from agentim.routing.ssrf import PrivateNetworkRefused, check_resolved_address
from agentim.store.ai_routers import get_room_router
from agentim.store.db import Conn

log = logging.getLogger("RouterLLM")

SELECT_TIMEOUT_S: Final = 15.0  # ROUTER_LLM_TIMEOUT_MS's default (config D7; was 5 s in the seed)
SELECT_MAX_AGENTS: Final = 20  # ROUTER_LLM_MAX_AGENTS's default (config D7)
_TOKEN: Final = re.compile(r"[a-z0-9\u4e00-\u9fff]+")
TEST_TIMEOUT_S: Final = 10.0  # api.md §10.3: the router test call
SELECT_MAX_TOKENS: Final = 256
TEST_MAX_TOKENS: Final = 5
MAX_CAPABILITIES: Final = 10  # capabilities listed per candidate in the prompt
MAX_RESPONSE_BYTES: Final = 1024 * 1024  # an answer is a short JSON object; cap what we buffer
INVALID_CONTENT_PREVIEW: Final = 200  # characters of a bad answer shown in the warning
# fetch(redirect: "error") fails on these; other 3xx are plain non-2xx answers.
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

SYSTEM_PROMPT_LINES: Final = (
    "You are a message router for a multi-agent chat system.",
    "Choose which agent(s) from the list below should receive the user's message.",
    'Respond with ONLY a JSON object in this exact format: { "agentIds": ["id1", "id2"] }',
    "Pick the most relevant agent(s). If no agent fits the message, return an empty array.",
)


@attrs.frozen
class RouterConfig:
    """A room's usable router: where to ask, and the chain limits it overrides."""

    router_id: str
    base_url: str
    api_key: str = attrs.field(repr=False)
    model: str
    max_chain_depth: int = 5
    rate_limit_window: int = 60
    rate_limit_max: int = 20


@attrs.frozen
class RouterCandidate:
    """An agent the router may choose: a broadcast candidate of the room."""

    id: str
    name: str
    type: str
    capabilities: tuple[str, ...] = ()


class _Unusable(Exception):
    """The answer cannot be used; the message is the whole warning."""


def new_llm_client() -> httpx.AsyncClient:
    """A client for router LLM calls: no redirects, no proxy from the environment.

    Timeouts are the callers' cancel scopes, not httpx settings.
    """
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None)


def router_config(row: Mapping[str, Any], encryption_key: str | None) -> RouterConfig | None:
    """A `routers` row as a config; None when its key cannot be read or a field is empty."""
    api_key = open_secret(row["llm_api_key"], encryption_key)
    if api_key is None:
        log.warning(
            "Router LLM config unusable: the API key of router %s cannot be decrypted "
            "(check ENCRYPTION_KEY)",
            row["id"],
        )
        return None
    if not row["llm_base_url"] or not api_key:
        return None
    return RouterConfig(
        router_id=row["id"], base_url=row["llm_base_url"], api_key=api_key,
        model=row["llm_model"], max_chain_depth=row["max_chain_depth"],
        rate_limit_window=row["rate_limit_window"], rate_limit_max=row["rate_limit_max"],
    )  # fmt: skip


async def load_router_config(
    conn: Conn, room_id: str, *, encryption_key: str | None
) -> RouterConfig | None:
    """The router config a room routes with (realtime.md §3.4 "Router config lookup").

    Args:
        conn: the pool or a transaction.
        room_id: the room.
        encryption_key: ENCRYPTION_KEY, to open the stored API key.

    Returns:
        None when the room has no router, its personal router belongs to someone other than
        the room's creator, the key cannot be decrypted, or the base URL or key is empty.
    """
    row = await get_room_router(conn, room_id)
    return router_config(row, encryption_key) if row is not None else None


def _candidate_line(candidate: RouterCandidate) -> str:
    line = f'- id: "{candidate.id}", name: "{candidate.name}", type: "{candidate.type}"'
    if candidate.capabilities:
        line += f" (capabilities: {', '.join(candidate.capabilities[:MAX_CAPABILITIES])})"
    return line


def build_messages(
    candidates: Sequence[RouterCandidate], content: str, system_prompt: str | None
) -> list[dict[str, str]]:
    """The system and user messages of the selection request (content is not escaped)."""
    system = list(SYSTEM_PROMPT_LINES)
    if system_prompt:
        system.append(f"\nRoom context: {system_prompt}")
    user = (
        "Available agents:\n"
        + "\n".join(_candidate_line(candidate) for candidate in candidates)
        + f'\n\nUser message: "{content}"'
    )
    return [{"role": "system", "content": "\n".join(system)}, {"role": "user", "content": user}]


def _expect(value: object, kind: str, path: str) -> None:
    if type_name(value) != kind:
        raise _Unusable(f"{path}: Expected {kind}, received {type_name(value)}")


def _completion_content(data: object) -> str | None:
    """`choices[0].message.content`, each level optional, as the reference's schema reads it."""
    _expect(data, "object", "(root)")
    assert isinstance(data, dict)
    if "choices" not in data:
        return None
    choices = data["choices"]
    _expect(choices, "array", "choices")
    for index, choice in enumerate(choices):
        _expect(choice, "object", f"choices.{index}")
        if "message" in choice:
            _expect(choice["message"], "object", f"choices.{index}.message")
            content = choice["message"].get("content")
            if content is not None:  # a null content is an empty answer, not a broken one
                _expect(content, "string", f"choices.{index}.message.content")
    message = choices[0].get("message", {}) if choices else {}
    content = message.get("content")
    return content if isinstance(content, str) else None


def _agent_ids(answer: object) -> list[str]:
    _expect(answer, "object", "(root)")
    assert isinstance(answer, dict)
    if "agentIds" not in answer:
        raise _Unusable("agentIds: Required")
    ids = answer["agentIds"]
    _expect(ids, "array", "agentIds")
    for index, value in enumerate(ids):
        _expect(value, "string", f"agentIds.{index}")
    return list(ids)


def _content(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        raise _Unusable("Router LLM response body is not valid JSON") from None
    try:
        content = _completion_content(data)
    except _Unusable as exc:
        raise _Unusable(f"Router LLM response schema mismatch: {exc}") from None
    if content is None or not js_trim(content):
        raise _Unusable("Router LLM returned empty content")
    return content


def _answer(content: str) -> list[str]:
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end < start:
        raise _Unusable("Router LLM response does not contain JSON object")
    try:
        answer = json.loads(content[start : end + 1])  # greedy span: code fences are skipped
    except ValueError:
        preview = content[:INVALID_CONTENT_PREVIEW]
        raise _Unusable(f"Router LLM returned invalid JSON in content: {preview}") from None
    try:
        return _agent_ids(answer)
    except _Unusable as exc:
        raise _Unusable(f"Router LLM agentIds schema mismatch: {exc}") from None


def parse_answer(body: bytes, candidate_ids: Sequence[str]) -> list[str]:
    """Steps 3-8 of realtime.md §3.4 on a 2xx body: candidate ids, each once, in LLM order."""
    try:
        chosen = _answer(_content(body))
    except _Unusable as exc:
        log.warning("%s", exc)
        return []
    known = set(candidate_ids)
    return list(dict.fromkeys(agent_id for agent_id in chosen if agent_id in known))


def _request(url: str, api_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    return {"method": "POST", "url": url, "headers": headers, "content": body}


async def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _Unusable(
                f"Router LLM network error: response larger than {MAX_RESPONSE_BYTES} bytes"
            )
    return bytes(body)


async def _post(http: httpx.AsyncClient, request: dict[str, Any]) -> bytes:
    async with http.stream(**request) as response:
        status = response.status_code
        if status in REDIRECT_STATUSES:
            raise _Unusable(f"Router LLM network error: unexpected redirect (HTTP {status})")
        if not 200 <= status < 300:
            raise _Unusable(f"Router LLM HTTP error: status {status} {response.reason_phrase}")
        return await _read_capped(response)


async def _fetch(
    http: httpx.AsyncClient, url: str, request: dict[str, Any], *, allow_private: bool,
    timeout_s: float,
) -> bytes:  # fmt: skip
    """The 2xx body, under the `timeout_s` scope; the DNS answer is checked again first
    (rebinding)."""
    with trio.move_on_after(timeout_s):
        try:
            await check_resolved_address(httpx.URL(url).host, allow_private=allow_private)
            return await _post(http, request)
        except PrivateNetworkRefused as exc:
            raise _Unusable(
                f"Router LLM refused: {exc.host} points to internal or private networks"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _Unusable(f"Router LLM network error: {exc or type(exc).__name__}") from None
    raise _Unusable(f"Router LLM timeout: no answer within {round(timeout_s * 1000)} ms")


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


def prefilter(
    candidates: Sequence[RouterCandidate], content: str, limit: int
) -> list[RouterCandidate]:
    """At most `limit` candidates for the LLM: when there are more, those sharing the most
    words (name, type, capabilities) with the message, ties in member order (config D7)."""
    if len(candidates) <= limit:
        return list(candidates)
    words = _tokens(content)

    def score(candidate: RouterCandidate) -> int:
        text = " ".join([candidate.name, candidate.type, *candidate.capabilities])
        return len(words & _tokens(text))

    return sorted(candidates, key=score, reverse=True)[:limit]  # sorted() is stable


async def select_agents(
    http: httpx.AsyncClient, config: RouterConfig, candidates: Sequence[RouterCandidate],
    content: str, system_prompt: str | None, *, allow_private: bool,
    timeout_s: float = SELECT_TIMEOUT_S, max_agents: int = SELECT_MAX_AGENTS,
) -> list[str]:  # fmt: skip
    """Ask the room's router LLM which candidates get a message that mentions nobody.

    Args:
        http: a client from `new_llm_client()` (no redirects).
        config: the room's router (`load_router_config`).
        candidates: the room's broadcast candidates, in member order.
        content: the sanitised user message.
        system_prompt: the room's system prompt, if any.
        allow_private: ROUTER_ALLOW_PRIVATE_NETWORKS; else a private DNS answer is refused.
        timeout_s: ROUTER_LLM_TIMEOUT_MS, the whole call.
        max_agents: ROUTER_LLM_MAX_AGENTS, the most candidates offered (`prefilter`).

    Returns:
        Candidate ids in the LLM's order, each once; [] on any failure (never raises).
    """
    candidates = prefilter(candidates, content, max_agents)
    url = config.base_url + "/chat/completions"  # plain join, as the reference does
    payload = {
        "model": config.model,
        "messages": build_messages(candidates, content, system_prompt),
        "temperature": 0,
        "max_tokens": SELECT_MAX_TOKENS,
    }
    try:
        body = await _fetch(
            http, url, _request(url, config.api_key, payload), allow_private=allow_private,
            timeout_s=timeout_s,
        )  # fmt: skip
        return parse_answer(body, [candidate.id for candidate in candidates])
    except _Unusable as exc:
        log.warning("%s", exc)
    except Exception as exc:  # step 9 (e.g. JSON nested too deep): routing must go on
        log.warning("Router LLM unexpected error: %s", exc)
    return []


async def probe_llm(
    http: httpx.AsyncClient, *, base_url: str, api_key: str, model: str, allow_private: bool
) -> str | None:
    """The router test call (api.md §10.3): None when the LLM answers 2xx, else the error text.

    The DNS answer is checked for private addresses first unless `allow_private`, so the test
    cannot be turned into a probe of the internal network after a DNS change.
    """
    url = base_url + "/chat/completions"
    payload = {"model": model, "messages": [{"role": "user", "content": "Hello"}],
               "max_tokens": TEST_MAX_TOKENS}  # fmt: skip
    with trio.move_on_after(TEST_TIMEOUT_S):
        try:
            await check_resolved_address(httpx.URL(url).host, allow_private=allow_private)
            async with http.stream(**_request(url, api_key, payload)) as response:
                status = response.status_code
        except PrivateNetworkRefused as exc:
            log.warning("Router test refused: %s points to internal or private networks", exc.host)
            return "Connection failed"
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError):
            return "Connection failed"
        if status in REDIRECT_STATUSES:
            return "Connection failed"
        return None if 200 <= status < 300 else f"LLM API returned HTTP {status}"
    return "Connection timeout (10s)"

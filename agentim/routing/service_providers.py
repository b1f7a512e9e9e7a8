"""Service-agent providers (head-gap A3): the provider APIs the hub itself calls for a service
agent, and the HTTP client that reaches them only through the SSRF guard.

A provider's config arrives validated (http/service_agents.py holds the per-provider rules);
here it is only read. Streaming providers yield text deltas; errors are `ProviderError`, whose
text is shown in the room, so it never carries the API key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
import httpx2
import openai
import trio
from openai.types.chat import ChatCompletionMessageParam

from agentim.routing.ssrf import (
    PrivateNetworkRefused,
    check_resolved_address,
    is_blocked_host,
    parse_url,
)

log = logging.getLogger("ServiceAgents")

SSRF_REFUSED: Final = "Base URL points to a private network (SSRF blocked)"
VALIDATE_TIMEOUT_S: Final = 10.0  # the reference's validate call: GET {baseUrl}/models
DEFAULT_MAX_TOKENS: Final = 4096
ERROR_BODY_CHARS: Final = 300  # how much of a provider's error text is shown in the room


@attrs.frozen
class ProviderMeta:
    type: str
    display_name: str
    category: str
    description: str


@attrs.frozen
class Prompt:
    """What a service agent is asked: the message that mentioned it, and by whom."""

    content: str
    sender_name: str


class ProviderError(Exception):
    """The provider refused or failed; the text is shown in the room (no secrets in it)."""


OPENAI_CHAT: Final = ProviderMeta(
    "openai-chat", "OpenAI Chat", "chat", "OpenAI-compatible chat completions API"
)
# Provider types the hub can run, by type; others may be stored (the reference's list) but
# answer "Unsupported service agent type."
PROVIDERS: Final = {meta.type: meta for meta in (OPENAI_CHAT,)}


# the SSRF guard ------------------------------------------------------------------------------
class SsrfRefused(httpx2.ConnectError):
    """A connection the guard would not open (an httpx2 error, so clients wrap it as such)."""

    def __init__(self, host: str, request: httpx2.Request) -> None:
        super().__init__(f"{host} points to internal or private networks", request=request)
        self.host = host


class GuardedTransport(httpx2.AsyncBaseTransport):
    """Refuses, before connecting, a request whose host is or resolves to a private address
    (unless `allow_private`, ROUTER_ALLOW_PRIVATE_NETWORKS). Every request is checked, so a
    redirect cannot lead inward either."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpx2.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if not self.allow_private:
            target = parse_url(str(request.url))
            try:
                if target is None or is_blocked_host(target):
                    raise PrivateNetworkRefused(request.url.host)
                await check_resolved_address(request.url.host)
            except PrivateNetworkRefused as exc:
                log.warning("Refused service agent request to %s: internal or private networks "
                            "are not allowed", exc.host)  # fmt: skip
                raise SsrfRefused(exc.host, request) from None
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def new_provider_client(*, allow_private: bool) -> httpx2.AsyncClient:
    """The client every provider call uses; timeouts are the callers' cancel scopes."""
    return httpx2.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private), follow_redirects=False,
        trust_env=False, timeout=None,
    )  # fmt: skip


# openai-chat ---------------------------------------------------------------------------------
def chat_messages(config: Mapping[str, Any], prompt: Prompt) -> list[ChatCompletionMessageParam]:
    """The reference's request: an optional system prompt, then `[sender]: content`."""
    messages: list[ChatCompletionMessageParam] = []
    if config.get("systemPrompt"):
        messages.append({"role": "system", "content": str(config["systemPrompt"])})
    messages.append({"role": "user", "content": f"[{prompt.sender_name}]: {prompt.content}"})
    return messages


def _openai(http: httpx2.AsyncClient, config: Mapping[str, Any]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=str(config["apiKey"]), base_url=str(config["baseUrl"]), http_client=http,
        max_retries=0, timeout=None,
    )  # fmt: skip


TextSink = Callable[[str], Awaitable[bool]]  # takes a delta; False stops the stream


async def stream_chat(
    http: httpx2.AsyncClient, config: Mapping[str, Any], prompt: Prompt, on_text: TextSink
) -> bool:
    """Hand each text delta of `{baseUrl}/chat/completions` (`stream: true`) to `on_text`.

    Returns:
        False when `on_text` stopped the stream, else True.

    Raises:
        ProviderError: refused by the SSRF guard, a network error, or a non-2xx answer.
    """
    client = _openai(http, config)
    try:
        stream = await client.chat.completions.create(
            model=str(config["model"]), messages=chat_messages(config, prompt),
            max_tokens=int(config.get("maxTokens") or DEFAULT_MAX_TOKENS), stream=True,
        )  # fmt: skip
        async with stream:
            async for event in stream:
                for choice in event.choices:
                    text = choice.delta.content if choice.delta else None
                    if text and not await on_text(text):
                        return False
    except openai.APIStatusError as exc:
        raise ProviderError(_status_text(exc)) from None
    except openai.APIConnectionError as exc:
        raise ProviderError(_connection_text(exc)) from None
    except openai.OpenAIError as exc:
        raise ProviderError(f"OpenAI API error: {type(exc).__name__}") from None
    return True


async def validate_chat(http: httpx2.AsyncClient, config: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's check: `GET {baseUrl}/models` answers 2xx within 10 s."""
    url = str(config["baseUrl"]).rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {config['apiKey']}"}
    try:
        with trio.fail_after(VALIDATE_TIMEOUT_S):
            response = await http.get(url, headers=headers)
    except SsrfRefused:
        return {"valid": False, "error": SSRF_REFUSED}
    except TimeoutError:
        return {"valid": False, "error": "The operation was aborted due to timeout"}
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        return {"valid": False, "error": str(exc) or type(exc).__name__}
    if not response.is_success:
        return {"valid": False, "error": f"API returned {response.status_code}"}
    return {"valid": True}


def _status_text(exc: openai.APIStatusError) -> str:
    body = exc.response.text if exc.response is not None else ""
    return f"OpenAI API error ({exc.status_code}): {body[:ERROR_BODY_CHARS]}".rstrip(": ")


def _connection_text(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__
    if isinstance(cause, SsrfRefused):
        return SSRF_REFUSED
    log.info("Service agent provider unreachable: %s", cause or exc)
    return "Could not reach the provider"

"""Service-agent providers (head-gap A3): the provider APIs the hub itself calls for a service
agent, and the HTTP client that reaches them only through the SSRF guard.

A provider's config arrives validated (http/service_agents.py holds the per-provider rules);
here it is only read. Streaming providers yield text deltas; errors are `ProviderError`, whose
text is shown in the room, so it never carries the API key.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import attrs
import httpx2
import trio

from agentim.routing.ssrf import (
    PrivateNetworkRefused,
    check_resolved_address,
    is_blocked_host,
    parse_url,
)

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionMessageParam


def _sdk() -> Any:
    """The openai package, imported on first use: about a second of imports that a hub with
    no service agent (and every test process) should not pay at start-up."""
    import openai

    return openai


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


@attrs.frozen
class Media:
    """A generated file, to be stored as an upload and attached to the reply."""

    data: bytes
    mime_type: str
    filename: str
    caption: str | None = None


class ProviderError(Exception):
    """The provider refused or failed; the text is shown in the room (no secrets in it)."""


OPENAI_CHAT: Final = ProviderMeta(
    "openai-chat", "OpenAI Chat", "chat", "OpenAI-compatible chat completions API"
)
OPENAI_IMAGE: Final = ProviderMeta(
    "openai-image", "OpenAI Image Generation", "image",
    "Generate images via OpenAI Images API (GPT Image, DALL-E)",
)  # fmt: skip
ELEVENLABS: Final = ProviderMeta(
    "elevenlabs", "ElevenLabs Text-to-Speech", "audio",
    "Convert text to natural-sounding speech via ElevenLabs",
)  # fmt: skip
# ElevenLabs' API root; the reference has it fixed, our config may name another (`baseUrl`).
ELEVENLABS_BASE_URL: Final = "https://api.elevenlabs.io/v1"
CAPTION_CHARS: Final = 200  # a speech reply's text: the start of what was spoken
PERPLEXITY: Final = ProviderMeta(
    "perplexity", "Perplexity Search", "search",
    "AI-powered search with citations via Perplexity API",
)  # fmt: skip
PERPLEXITY_BASE_URL: Final = "https://api.perplexity.ai"  # fixed in the reference; ours: baseUrl
RUNWAY: Final = ProviderMeta(
    "runway", "Runway Video Generation", "video",
    "Generate videos from text prompts via Runway API",
)  # fmt: skip
RUNWAY_BASE_URL: Final = "https://api.dev.runwayml.com/v1"  # fixed in the reference; ours: baseUrl
RUNWAY_VERSION: Final = "2024-11-06"
MESHY: Final = ProviderMeta(
    "meshy", "Meshy 3D Generation", "3d", "Generate 3D models from text prompts via Meshy API"
)
MESHY_BASE_URL: Final = "https://api.meshy.ai/openapi/v2"  # fixed in the reference; ours: baseUrl
POLL_ANSWER_S: Final = 15.0  # one status request of a polled job
MAX_MEDIA_BYTES: Final = 100 * 1024 * 1024  # the reference's cap on a service agent's media file
# Provider types the hub can run, by type; others may be stored (the reference's list) but
# answer "Unsupported service agent type."
PROVIDERS: Final = {
    meta.type: meta for meta in (OPENAI_CHAT, OPENAI_IMAGE, ELEVENLABS, PERPLEXITY, RUNWAY, MESHY)
}


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


def _openai(
    http: httpx2.AsyncClient, config: Mapping[str, Any], base_url: str | None = None
) -> openai.AsyncOpenAI:
    return _sdk().AsyncOpenAI(
        api_key=str(config["apiKey"]), base_url=base_url or str(config["baseUrl"]),
        http_client=http, max_retries=0, timeout=None,
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
    except _sdk().OpenAIError as exc:
        raise _provider_error("OpenAI API", exc) from None
    return True


# perplexity ----------------------------------------------------------------------------------
async def search_answer(http: httpx2.AsyncClient, config: Mapping[str, Any], prompt: Prompt) -> str:
    """One (not streamed) answer of Perplexity's chat API, its citations listed under it."""
    client = _openai(http, config, str(config.get("baseUrl") or PERPLEXITY_BASE_URL))
    messages: list[ChatCompletionMessageParam] = []
    if config.get("systemPrompt"):
        messages.append({"role": "system", "content": str(config["systemPrompt"])})
    messages.append({"role": "user", "content": prompt.content})
    try:
        completion = await client.chat.completions.create(
            model=str(config.get("model") or "sonar"), messages=messages,
            max_tokens=int(config.get("maxTokens") or DEFAULT_MAX_TOKENS),
        )  # fmt: skip
    except _sdk().OpenAIError as exc:
        raise _provider_error("Perplexity API", exc) from None
    content = (completion.choices[0].message.content if completion.choices else None) or ""
    citations = (completion.model_extra or {}).get("citations")
    if isinstance(citations, list) and citations:
        listed = "\n".join(f"{n}. {url}" for n, url in enumerate(citations, start=1))
        content += "\n\n---\n**Sources:**\n" + listed
    return content


# openai-image --------------------------------------------------------------------------------
async def generate_image(
    http: httpx2.AsyncClient, config: Mapping[str, Any], prompt: Prompt
) -> Media:
    """One image from `{baseUrl}/images/generations`, fetched (a URL answer) through the same
    guarded client, at most MAX_MEDIA_BYTES.

    Raises:
        ProviderError: as `stream_chat`, or no image in the answer.
    """
    client = _openai(http, config)
    try:
        result = await client.images.generate(
            model=str(config["model"]), prompt=prompt.content, n=1,
            size=config.get("size", "auto"), quality=config.get("quality", "auto"),
        )  # fmt: skip
    except _sdk().OpenAIError as exc:
        raise _provider_error("OpenAI Image API", exc) from None
    item = result.data[0] if result.data else None
    if item is None or not (item.url or item.b64_json):
        raise ProviderError("OpenAI Image API returned no image")
    data = _decoded(item.b64_json) if item.b64_json else await download(http, str(item.url))
    filename = f"image-{int(time.time() * 1000)}.png"
    return Media(data, "image/png", filename, item.revised_prompt)


def _decoded(text: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProviderError("OpenAI Image API returned an unreadable image") from None
    if len(data) > MAX_MEDIA_BYTES:
        raise ProviderError("Generated file exceeds maximum size")
    return data


async def download(http: httpx2.AsyncClient, url: str) -> bytes:
    """A generated file by URL (the SSRF guard applies), at most MAX_MEDIA_BYTES."""
    return await _fetch_media(http, "Failed to download media", "GET", url)


async def _fetch_media(
    http: httpx2.AsyncClient, label: str, method: str, url: str, **request: Any
) -> bytes:
    """The 2xx body, at most MAX_MEDIA_BYTES; else ProviderError(`label (status): text`)."""
    try:
        async with http.stream(method, url, **request) as response:
            if not response.is_success:
                text = (await response.aread())[:ERROR_BODY_CHARS].decode(errors="replace")
                raise ProviderError(f"{label} ({response.status_code}): {text}")
            parts, size = [], 0
            async for part in response.aiter_bytes():
                size += len(part)
                if size > MAX_MEDIA_BYTES:
                    raise ProviderError("Generated file exceeds maximum size")
                parts.append(part)
    except SsrfRefused:
        raise ProviderError(SSRF_REFUSED) from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise ProviderError(f"{label}: {type(exc).__name__}") from None
    return b"".join(parts)


# runway (a polled job) -------------------------------------------------------------------------
Progress = Callable[[str], Awaitable[None]]  # a status line while a job runs


async def generate_video(
    http: httpx2.AsyncClient, config: Mapping[str, Any], prompt: Prompt, progress: Progress,
    poll_s: float,
) -> Media:  # fmt: skip
    """Start a Runway text-to-video task, poll it every `poll_s` until it succeeds or fails (the
    caller's scope bounds the wait), then fetch the video through the guarded client."""
    base = str(config.get("baseUrl") or RUNWAY_BASE_URL).rstrip("/")
    headers = {"Authorization": f"Bearer {config['apiKey']}", "X-Runway-Version": RUNWAY_VERSION}
    body = {
        "model": config.get("model", "gen4_turbo"),
        "promptText": prompt.content,
        "duration": int(config.get("duration", "5")),
        "ratio": config.get("ratio", "16:9"),
    }
    started = await _json_call(http, "Runway API error", "POST", f"{base}/text_to_video",
                               json=body, headers=headers)  # fmt: skip
    task_id = started.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise ProviderError("Runway API returned no task ID")
    await progress("Generating video... This may take 1-3 minutes.")
    task_url = f"{base}/tasks/{quote(task_id, safe='')}"
    url = await _poll_job(http, "Runway", task_url, headers, poll_s, _runway_result)
    data = await download(http, url)
    return Media(data, "video/mp4", f"video-{int(time.time() * 1000)}.mp4")


def _runway_result(task: Mapping[str, Any]) -> str | None:
    status, output = task.get("status"), task.get("output")
    if status == "FAILED":
        raise ProviderError(f"Runway generation failed: {task.get('failure') or 'unknown'}")
    if status == "SUCCEEDED" and isinstance(output, list) and output:
        return str(output[0])
    return None


async def _poll_job(
    http: httpx2.AsyncClient, label: str, url: str, headers: dict[str, str], poll_s: float,
    result: Callable[[Mapping[str, Any]], str | None],
) -> str:  # fmt: skip
    """Ask for the job's status every `poll_s` until `result` names the file's URL (or raises);
    the caller's scope bounds the whole wait."""
    while True:
        await trio.sleep(poll_s)
        task: dict[str, Any] | None = None
        with trio.move_on_after(POLL_ANSWER_S):
            task = await _json_call(http, f"{label} poll error", "GET", url, headers=headers)
        if task is None:
            raise ProviderError(f"{label} poll error: no answer within {POLL_ANSWER_S:g} s")
        if (found := result(task)) is not None:
            return found


# meshy (a polled job) --------------------------------------------------------------------------
async def generate_model(
    http: httpx2.AsyncClient, config: Mapping[str, Any], prompt: Prompt, progress: Progress,
    poll_s: float,
) -> Media:  # fmt: skip
    """A Meshy text-to-3D preview task, polled until done; the GLB fetched through the guard."""
    base = str(config.get("baseUrl") or MESHY_BASE_URL).rstrip("/")
    headers = {"Authorization": f"Bearer {config['apiKey']}"}
    body = {"mode": "preview", "prompt": prompt.content,
            "art_style": config.get("artStyle", "realistic"),
            "topology": config.get("topology", "quad"),
            "target_polycount": config.get("targetPolycount", 30_000)}  # fmt: skip
    started = await _json_call(http, "Meshy API error", "POST", f"{base}/text-to-3d",
                               json=body, headers=headers)  # fmt: skip
    task_id = started.get("result")
    if not isinstance(task_id, str) or not task_id:
        raise ProviderError("Meshy API returned no task ID")
    await progress("Generating 3D model... This may take 1-5 minutes.")
    task_url = f"{base}/text-to-3d/{quote(task_id, safe='')}"
    url = await _poll_job(http, "Meshy", task_url, headers, poll_s, _meshy_result)
    data = await download(http, url)
    return Media(data, "model/gltf-binary", f"model-{int(time.time() * 1000)}.glb")


def _meshy_result(task: Mapping[str, Any]) -> str | None:
    if task.get("status") == "FAILED":
        error = task.get("task_error")
        message = error.get("message") if isinstance(error, dict) else None
        raise ProviderError(f"Meshy generation failed: {message or 'unknown'}")
    urls = task.get("model_urls")
    if task.get("status") == "SUCCEEDED" and isinstance(urls, dict) and urls.get("glb"):
        return str(urls["glb"])
    return None


async def _json_call(
    http: httpx2.AsyncClient, label: str, method: str, url: str, **request: Any
) -> dict[str, Any]:
    """A JSON object answer; ProviderError(`label (status): text`) otherwise."""
    try:
        response = await http.request(method, url, **request)
    except SsrfRefused:
        raise ProviderError(SSRF_REFUSED) from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise ProviderError(f"{label}: {type(exc).__name__}") from None
    if not response.is_success:
        raise ProviderError(f"{label} ({response.status_code}): "
                            f"{response.text[:ERROR_BODY_CHARS]}")  # fmt: skip
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ProviderError(f"{label}: the answer is not a JSON object")
    return answer


# elevenlabs ----------------------------------------------------------------------------------
def _elevenlabs_base(config: Mapping[str, Any]) -> str:
    return str(config.get("baseUrl") or ELEVENLABS_BASE_URL).rstrip("/")


async def synthesize_speech(
    http: httpx2.AsyncClient, config: Mapping[str, Any], prompt: Prompt
) -> Media:
    """The prompt spoken by `POST {base}/text-to-speech/{voiceId}`, as the reference sends it."""
    voice = quote(str(config["voiceId"]), safe="")
    output = str(config.get("outputFormat", "mp3_44100_128"))
    body = {
        "text": prompt.content, "model_id": config.get("modelId"),
        "voice_settings": {"stability": config.get("stability"),
                           "similarity_boost": config.get("similarityBoost")},
        "output_format": output,
    }  # fmt: skip
    headers = {"xi-api-key": str(config["apiKey"]), "Accept": "audio/mpeg"}
    data = await _fetch_media(http, "ElevenLabs API error", "POST",
                              f"{_elevenlabs_base(config)}/text-to-speech/{voice}",
                              json=body, headers=headers)  # fmt: skip
    mp3 = output.startswith("mp3")
    filename = f"speech-{int(time.time() * 1000)}.{'mp3' if mp3 else 'wav'}"
    return Media(data, "audio/mpeg" if mp3 else "audio/wav", filename,
                 prompt.content[:CAPTION_CHARS])  # fmt: skip


async def validate_elevenlabs(
    http: httpx2.AsyncClient, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The reference's check: `GET {base}/voices` answers 2xx within 10 s."""
    headers = {"xi-api-key": str(config["apiKey"])}
    return await _probe(http, f"{_elevenlabs_base(config)}/voices", headers)


async def validate_chat(http: httpx2.AsyncClient, config: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's check: `GET {baseUrl}/models` answers 2xx within 10 s."""
    url = str(config["baseUrl"]).rstrip("/") + "/models"
    return await _probe(http, url, {"Authorization": f"Bearer {config['apiKey']}"})


async def _probe(http: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
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


def _provider_error(label: str, exc: openai.OpenAIError) -> ProviderError:
    if isinstance(exc, _sdk().APIStatusError):
        body = exc.response.text if exc.response is not None else ""
        return ProviderError(f"{label} error ({exc.status_code}): {body[:ERROR_BODY_CHARS]}")
    if isinstance(exc, _sdk().APIConnectionError):
        return ProviderError(_connection_text(exc))
    return ProviderError(f"{label} error: {type(exc).__name__}")


def _connection_text(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__
    if isinstance(cause, SsrfRefused):
        return SSRF_REFUSED
    log.info("Service agent provider unreachable: %s", cause or exc)
    return "Could not reach the provider"

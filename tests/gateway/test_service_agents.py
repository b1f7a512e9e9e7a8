"""Service-agent replies (head-gap A3): an @mention in a room with no gateway makes the hub call
the provider (a local fake OpenAI-compatible server streaming SSE) and stream the answer to the
room exactly as a gateway's reply would come: chunks, one complete, the stored message, then
routed on. Stops, timeouts, provider errors and the SSRF guard end the reply visibly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.fake_provider import FakeProvider, running_provider
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import Client, signed_in


@attrs.frozen
class Scene:
    hub: RunningHub
    user: User
    room_id: str
    agent_id: str
    name: str
    client: Client
    fake: FakeProvider


@asynccontextmanager
async def scene(
    nursery: trio.Nursery, settings: Settings, redis_prefix: str, *, allow_private: bool = True,
    kind: str = "openai-chat", config: dict[str, Any] | None = None, **fake: Any,
) -> AsyncIterator[Scene]:  # fmt: skip
    """A hub, a fake provider, a service agent pointed at it in a user's room, the user's
    joined client socket."""
    settings = attrs.evolve(settings, router_allow_private_networks=allow_private,
                            service_agent_timeout_s=fake.pop("timeout_s", 120.0),
                            service_agent_poll_interval_s=0.05)  # fmt: skip
    hub = await start_hub(nursery, settings, redis_prefix)
    async with running_provider(**fake) as provider:
        admin = await signed_in_user(hub, role="admin")
        name = agent_name()
        body = {"name": name, "type": kind, "config": {
            "baseUrl": provider.base_url, "apiKey": "sk-fake", "model": "fake-model",
            "systemPrompt": "Be brief.", **(config or {})}}  # fmt: skip
        async with httpx.AsyncClient(base_url=hub.url) as http:
            created = await http.post("/api/service-agents", json=body, headers=admin.headers)
        assert created.status_code == 201, created.text
        agent_id = created.json()["data"]["id"]
        user = await signed_in_user(hub)
        room_id = await create_room(hub, user)
        await add_agent_to_room(hub, room_id, agent_id)
        async with signed_in(hub, user) as client:
            await client.join(room_id)
            yield Scene(hub, user, room_id, agent_id, name, client, provider)


async def _mention(s: Scene, text: str = "what is up?") -> None:
    content = f"@{s.name} {text}"
    await s.client.send({"type": "client:send_message", "roomId": s.room_id, "content": content})
    await s.client.receive_type("server:new_message")


async def _history(s: Scene) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=s.hub.url) as http:
        response = await http.get(f"/api/messages/rooms/{s.room_id}", headers=s.user.headers)
    return response.json()["data"]["items"]  # type: ignore[no-any-return]


async def _until_complete(client: Client) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    chunks = []
    while True:
        frame = await client.receive()
        if frame["type"] == "server:message_chunk":
            chunks.append(frame)
        elif frame["type"] == "server:message_complete":
            return chunks, frame


async def test_mention_streams_stores_and_calls_provider(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix) as s:
        await _mention(s)
        chunks, complete = await _until_complete(s.client)
        assert [c["chunk"] for c in chunks] == [
            {"type": "text", "content": part} for part in ("Hello", " from", " the", " provider")
        ]
        assert {c["agentId"] for c in chunks} == {s.agent_id}
        assert {c["agentName"] for c in chunks} == {s.name}
        message = complete["message"]
        assert message["id"] == chunks[0]["messageId"]
        assert message["content"] == "Hello from the provider"
        assert message["senderId"] == s.agent_id and message["senderType"] == "agent"
        assert message["type"] == "agent_response"

        stored = {m["id"]: m for m in await _history(s)}[message["id"]]
        assert stored["content"] == "Hello from the provider"

        request = s.fake.requests[0]
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer sk-fake"
        sent = request.json()
        assert sent["stream"] is True and sent["model"] == "fake-model"
        assert sent["max_tokens"] == 4096
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["messages"][1]["content"].endswith("what is up?")


async def test_no_mention_no_call(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix) as s:
        await s.client.send({"type": "client:send_message", "roomId": s.room_id,
                             "content": "nobody in particular"})  # fmt: skip
        await s.client.receive_type("server:new_message")
        await s.client.nothing(0.5)
        assert s.fake.requests == []


async def test_stop_generation_mid_stream(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    deltas = [f"w{i} " for i in range(40)]
    async with scene(nursery, settings, redis_prefix, deltas=deltas, delay_s=0.1) as s:
        await _mention(s)
        first = await s.client.receive_type("server:message_chunk")
        await s.client.receive_type("server:message_chunk")
        await s.client.send({"type": "client:stop_generation", "roomId": s.room_id,
                             "agentId": s.agent_id})  # fmt: skip
        chunks, complete = await _until_complete(s.client)
        got = 2 + len(chunks)
        assert 2 <= got < len(deltas)
        content = complete["message"]["content"]
        assert content == "".join(deltas[:got])
        assert complete["message"]["id"] == first["messageId"]
        with trio.fail_after(5):
            await s.fake.closed.wait()  # the provider's stream was let go
        stored = {m["id"]: m for m in await _history(s)}
        assert stored[complete["message"]["id"]]["content"] == content


async def test_provider_error_is_an_error_chunk(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix, status=503) as s:
        await _mention(s)
        chunks, complete = await _until_complete(s.client)
        assert len(chunks) == 1 and chunks[0]["chunk"]["type"] == "error"
        text = chunks[0]["chunk"]["content"]
        assert text.startswith("OpenAI API error (503)") and "model overloaded" in text
        assert "sk-fake" not in text
        assert complete["message"]["content"] == ""
        assert complete["message"]["chunks"] == [chunks[0]["chunk"]]


async def test_timeout_ends_the_reply(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix, deltas=["slow", "er"], delay_s=1.5,
                     timeout_s=1.0) as s:  # fmt: skip
        await _mention(s)
        chunks, complete = await _until_complete(s.client)
        assert [c["chunk"] for c in chunks] == [
            {"type": "error", "content": "Service agent timed out after 1 s"}
        ]
        assert complete["message"]["content"] == ""


async def test_ssrf_guard_refuses_loopback(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    """ROUTER_ALLOW_PRIVATE_NETWORKS=false: the loopback provider is never contacted."""
    async with scene(nursery, settings, redis_prefix, allow_private=False) as s:
        await _mention(s)
        chunks, _ = await _until_complete(s.client)
        assert [c["chunk"] for c in chunks] == [
            {"type": "error", "content": "Base URL points to a private network (SSRF blocked)"}
        ]
        assert s.fake.requests == []


async def test_reply_is_routed_on_with_depth(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    """The service agent's answer mentions a gateway agent: it gets it one hop deeper, in the
    same conversation, exactly as after a gateway's reply."""
    other = agent_name()
    async with (
        scene(nursery, settings, redis_prefix, deltas=[f"ask @{other} please"]) as s,
        signed_in_gateway(s.hub, s.user) as gateway,
    ):
        await gateway.register("agent-other", other)
        await add_agent_to_room(s.hub, s.room_id, "agent-other")
        await _mention(s)
        _, complete = await _until_complete(s.client)
        delivered = await gateway.receive_type("server:send_to_agent")
        assert delivered["agentId"] == "agent-other"
        assert delivered["messageId"] == complete["message"]["id"]
        assert delivered["senderType"] == "agent" and delivered["depth"] == 1


async def test_image_generation_is_stored_as_an_upload(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    for as_url in (False, True):  # base64 in the answer, then a URL fetched through the guard
        async with scene(nursery, settings, redis_prefix, kind="openai-image",
                         image_as_url=as_url) as s:  # fmt: skip
            await _mention(s, "a red square please")
            chunks, complete = await _until_complete(s.client)
            assert chunks == []
            message = complete["message"]
            assert message["content"] == "a red square"  # the provider's revised prompt
            [attachment] = message["attachments"]
            assert (
                attachment["mimeType"] == "image/png" and attachment["messageId"] == message["id"]
            )
            assert attachment["size"] == len(s.fake.image)

            sent = s.fake.requests[0]
            assert sent.path == "/v1/images/generations"
            assert sent.json()["prompt"].endswith("a red square please")
            assert sent.json()["size"] == "auto" and sent.json()["n"] == 1

            async with httpx.AsyncClient(base_url=s.hub.url) as http:
                got = await http.get(attachment["url"], headers=s.user.headers)
            assert got.status_code == 200 and got.content == s.fake.image
            stored = {m["id"]: m for m in await _history(s)}[message["id"]]
            assert [a["id"] for a in stored["attachments"]] == [attachment["id"]]


async def test_speech_is_stored_as_an_audio_upload(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix, kind="elevenlabs",
                     config={"voiceId": "voice-1"}) as s:  # fmt: skip
        await _mention(s, "say hello")
        _, complete = await _until_complete(s.client)
        message = complete["message"]
        assert message["content"].endswith("say hello")  # the start of what was spoken
        [attachment] = message["attachments"]
        assert attachment["mimeType"] == "audio/mpeg" and attachment["url"].endswith(".mp3")

        sent = s.fake.requests[0]
        assert sent.path == "/v1/text-to-speech/voice-1"
        assert sent.headers["xi-api-key"] == "sk-fake"
        assert sent.json()["text"].endswith("say hello")
        assert sent.json()["model_id"] == "eleven_multilingual_v2"
        assert sent.json()["voice_settings"] == {"stability": 0.5, "similarity_boost": 0.75}

        async with httpx.AsyncClient(base_url=s.hub.url) as http:
            got = await http.get(attachment["url"], headers=s.user.headers)
            admin = await signed_in_user(s.hub, role="admin")
            valid = await http.post(f"/api/service-agents/{s.agent_id}/validate",
                                    headers=admin.headers)  # fmt: skip
        assert got.status_code == 200 and got.content == s.fake.audio
        assert valid.json() == {"ok": True, "data": {"valid": True}}
        assert s.fake.requests[-1].path == "/v1/voices"


async def test_search_answer_lists_its_sources(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix, kind="perplexity",
                     deltas=["Trio is ", "a library."]) as s:  # fmt: skip
        await _mention(s, "what is trio?")
        chunks, complete = await _until_complete(s.client)
        expected = ("Trio is a library.\n\n---\n**Sources:**\n1. https://a.example/1\n"
                    "2. https://b.example/2")  # fmt: skip
        assert complete["message"]["content"] == expected
        assert [c["chunk"] for c in chunks] == [{"type": "text", "content": expected}]
        sent = s.fake.requests[0].json()
        assert s.fake.requests[0].path == "/v1/chat/completions"
        assert sent["model"] == "fake-model" and "stream" not in sent
        assert sent["messages"][-1] == {"role": "user", "content": f"@{s.name} what is trio?"}


async def test_video_job_is_polled_then_stored(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix, kind="runway") as s:
        await _mention(s, "a cat surfing")
        chunks, complete = await _until_complete(s.client)
        assert [c["chunk"]["type"] for c in chunks] == ["thinking"], [c["chunk"] for c in chunks]
        message = complete["message"]
        assert message["content"] == "Generation complete"
        [attachment] = message["attachments"]
        assert attachment["mimeType"] == "video/mp4" and attachment["url"].endswith(".mp4")
        paths = [r.path for r in s.fake.requests]
        assert paths == ["/v1/text_to_video", "/v1/tasks/task-1", "/v1/tasks/task-1",
                         "/files/video.mp4"]  # fmt: skip
        started = s.fake.requests[0]
        assert started.headers["x-runway-version"] == "2024-11-06"
        assert started.json() == {"model": "fake-model", "promptText": f"@{s.name} a cat surfing",
                                  "duration": 5, "ratio": "16:9"}  # fmt: skip
        async with httpx.AsyncClient(base_url=s.hub.url) as http:
            got = await http.get(attachment["url"], headers=s.user.headers)
        assert got.status_code == 200 and got.content == s.fake.video


async def test_3d_job_is_polled_then_stored(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    async with scene(nursery, settings, redis_prefix, kind="meshy") as s:
        await _mention(s, "a teapot")
        chunks, complete = await _until_complete(s.client)
        assert [c["chunk"] for c in chunks] == [
            {"type": "thinking", "content": "Generating 3D model... This may take 1-5 minutes."}
        ]
        [attachment] = complete["message"]["attachments"]
        assert attachment["mimeType"] == "model/gltf-binary" and attachment["url"].endswith(".glb")
        assert [r.path for r in s.fake.requests] == [
            "/v1/text-to-3d", "/v1/text-to-3d/mesh-1", "/v1/text-to-3d/mesh-1", "/files/model.glb"
        ]  # fmt: skip
        assert s.fake.requests[0].json() == {
            "mode": "preview", "prompt": f"@{s.name} a teapot", "art_style": "realistic",
            "topology": "quad", "target_polycount": 30000,
        }  # fmt: skip
        async with httpx.AsyncClient(base_url=s.hub.url) as http:
            got = await http.get(attachment["url"], headers=s.user.headers)
        assert got.status_code == 200 and got.content == s.fake.model

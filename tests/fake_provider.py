"""A real local OpenAI-compatible provider for service-agent tests: a trio TCP server on
loopback answering `POST …/chat/completions` with a server-sent-event stream and
`GET …/models` with a model list. Each answer is whatever the test set: the deltas, a delay
between them, or an error status. Every request is recorded.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

from tests.routing.fake_llm import Recorded, _read_request

# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@attrs.define
class FakeProvider:
    port: int = 0
    requests: list[Recorded] = attrs.Factory(list)
    deltas: list[str] = attrs.Factory(lambda: ["Hello", " from", " the", " provider"])
    delay_s: float = 0.0  # between deltas
    status: int = 200  # non-200: answer with an error body instead of a stream
    error_body: str = '{"error":{"message":"model overloaded","type":"server_error"}}'
    closed: trio.Event = attrs.Factory(trio.Event)  # set when a stream's client went away
    image: bytes = PNG  # what /images/generations generates
    image_as_url: bool = False  # answer with a URL on this server instead of base64
    video: bytes = b"\x00\x00\x00\x18ftypmp42fake-video"  # what a finished video task holds
    model: bytes = b"glTF\x02\x00\x00\x00fake-mesh"  # what a finished 3D task holds
    polls: int = 0  # status requests of the video task so far (it succeeds on the second)
    citations: list[str] = attrs.Factory(lambda: ["https://a.example/1", "https://b.example/2"])
    audio: bytes = b"ID3\x04\x00fake-mp3-frames"  # what /text-to-speech/<voice> speaks

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            request = await _read_request(stream)
            if request is None:
                return
            self.requests.append(request)
            try:
                await self._answer(stream, request)
            except trio.BrokenResourceError:
                self.closed.set()

    async def _answer(self, stream: trio.SocketStream, request: Recorded) -> None:
        if request.method == "GET" and request.path.endswith("/models"):
            await _send(stream, 200, "application/json", b'{"object":"list","data":[]}')
            return
        if request.method == "GET" and request.path.endswith("/voices"):
            await _send(stream, 200, "application/json", b'{"voices":[]}')
            return
        if request.method == "GET" and request.path.endswith("/files/image.png"):
            await _send(stream, 200, "image/png", self.image)
            return
        if self.status != 200:
            await _send(stream, self.status, "application/json", self.error_body.encode())
            return
        if request.path.endswith("/text-to-3d") and request.method == "POST":
            await _send(stream, 200, "application/json", b'{"result":"mesh-1"}')
            return
        if request.path.endswith("/text-to-3d/mesh-1"):
            self.polls += 1
            done = self.polls >= 2
            task: dict[str, Any] = {
                "id": "mesh-1",
                "status": "SUCCEEDED" if done else "IN_PROGRESS",
            }
            if done:
                task["model_urls"] = {"glb": f"http://127.0.0.1:{self.port}/files/model.glb"}
            await _send(stream, 200, "application/json", json.dumps(task).encode())
            return
        if request.path.endswith("/files/model.glb"):
            await _send(stream, 200, "model/gltf-binary", self.model)
            return
        if request.path.endswith("/text_to_video"):
            await _send(stream, 200, "application/json", b'{"id":"task-1"}')
            return
        if "/tasks/" in request.path:
            self.polls += 1
            done = self.polls >= 2
            task = {"id": "task-1", "status": "SUCCEEDED" if done else "RUNNING"}  # video
            if done:
                task["output"] = [f"http://127.0.0.1:{self.port}/files/video.mp4"]
            await _send(stream, 200, "application/json", json.dumps(task).encode())
            return
        if request.path.endswith("/files/video.mp4"):
            await _send(stream, 200, "video/mp4", self.video)
            return
        if "/text-to-speech/" in request.path:
            await _send(stream, 200, "audio/mpeg", self.audio)
            return
        if request.path.endswith("/images/generations"):
            await _send(stream, 200, "application/json", json.dumps(self._image_answer()).encode())
            return
        if not request.json().get("stream"):  # a whole answer (Perplexity's search)
            answer = {"id": "c1", "object": "chat.completion", "created": 0, "model": "fake",
                      "choices": [{"index": 0, "finish_reason": "stop", "message": {
                          "role": "assistant", "content": "".join(self.deltas)}}],
                      "citations": self.citations}  # fmt: skip
            await _send(stream, 200, "application/json", json.dumps(answer).encode())
            return
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                              b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n")  # fmt: skip
        for delta in self.deltas:
            await trio.sleep(self.delay_s)
            await stream.send_all(b"data: " + json.dumps(_chunk(delta)).encode() + b"\n\n")
        await stream.send_all(b"data: [DONE]\n\n")

    def _image_answer(self) -> dict[str, Any]:
        if self.image_as_url:
            item = {"url": f"http://127.0.0.1:{self.port}/files/image.png"}
        else:
            item = {"b64_json": base64.b64encode(self.image).decode()}
        return {"created": 0, "data": [{**item, "revised_prompt": "a red square"}]}


def _chunk(delta: str) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": delta}, "finish_reason": None}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [choice]}  # fmt: skip


async def _send(stream: trio.SocketStream, status: int, kind: str, body: bytes) -> None:
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")  # fmt: skip
    await stream.send_all(head.encode() + body)


@asynccontextmanager
async def running_provider(**fields: Any) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(**fields)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, fake.handle, 0, host="127.0.0.1"))
        fake.port = listeners[0].socket.getsockname()[1]
        yield fake
        nursery.cancel_scope.cancel()

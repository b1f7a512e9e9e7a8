"""A real local OpenAI-compatible endpoint for tests: a trio TCP server speaking HTTP/1.1.

It records every request and answers with whatever the test set (status, body, delay).
"""

from __future__ import annotations

import json
from functools import partial
from http import HTTPStatus
from typing import Any

import attrs
import trio

HEAD_LIMIT_BYTES = 64 * 1024


@attrs.frozen
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class FakeLlm:
    port: int = 0
    requests: list[Recorded] = attrs.Factory(list)
    status: int = 200
    body: bytes = b'{"choices":[{"message":{"content":"ok"}}]}'
    extra_headers: dict[str, str] = attrs.Factory(dict)
    delay_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, content: str) -> None:
        """Reply 200 with a chat completion whose message content is `content`."""
        self.status = 200
        self.body = json.dumps({"choices": [{"message": {"content": content}}]}).encode()

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            request = await _read_request(stream)
            if request is None:
                return
            self.requests.append(request)
            await trio.sleep(self.delay_s)
            await stream.send_all(self._response())

    def _response(self) -> bytes:
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Unknown"
        headers = {"Content-Type": "application/json", "Content-Length": str(len(self.body)),
                   "Connection": "close", **self.extra_headers}  # fmt: skip
        head = f"HTTP/1.1 {self.status} {reason}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        return head.encode() + b"\r\n" + self.body


async def _read_request(stream: trio.SocketStream) -> Recorded | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk or len(data) > HEAD_LIMIT_BYTES:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = await stream.receive_some()
        if not chunk:
            return None
        body += chunk
    return Recorded(method, path, headers, body[:length])


async def start_fake_llm(nursery: trio.Nursery) -> FakeLlm:
    """Serve a FakeLlm on 127.0.0.1 (port 0) until the nursery is cancelled."""
    fake = FakeLlm()
    listeners = await nursery.start(partial(trio.serve_tcp, fake.handle, 0, host="127.0.0.1"))
    fake.port = listeners[0].socket.getsockname()[1]
    return fake

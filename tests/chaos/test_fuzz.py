"""A seeded fuzz corpus against a hub process: malformed frames on both sockets (every client:*
and gateway:* type, auth included) and malformed requests on every REST route of the served
route table (path parameters, query strings and bodies), with NUL, unpaired surrogates and other
control characters. Nothing may answer >= 500, log at level 50, or send INTERNAL_ERROR, and a
control pair of users chats on undisturbed throughout (issue 15, item 4).

AGENTIM_FUZZ_INPUTS sets the corpus size (default 10,000: frames plus requests).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, Final
from urllib.parse import quote

import attrs
import httpx
import trio
import trio_websocket

from tests.chaos.conftest import ChaosSpawn, admin_http, new_user
from tests.e2e.conftest import HubProcess
from tests.helpers import User

SEED: Final = 15_004
INPUTS: Final = int(os.environ.get("AGENTIM_FUZZ_INPUTS", "10000"))
SHARES: Final = {"client": 0.3, "gateway": 0.2, "http": 0.5}
HTTP_WORKERS: Final = 6
SYNC_EVERY: Final = 40  # frames between ping round trips (flow control, and order checks)
CONTROL_EVERY_S: Final = 0.25
TIME_LIMIT_S: Final = 240.0

BAD_TEXT: Final = ("\x00", "\ud800", "\udfff", "a\x00b", "x\udbff", "\udc00y\x00")
ODD_TEXT: Final = (
    "", " ", "\x01", "\x1f\x7f", "\u2028\u2029", "\ufeff", "\u202eevil", "\x1b[31mred",
    "\t\r\n", "../../etc/passwd", "%00", "\\u0000", "'; DROP TABLE users; --", "\U0001f600",
    "@admin @all", "<script>", "ab" * 3000,
)  # fmt: skip
FIELDS: Final = (
    "name", "type", "content", "roomId", "agentId", "messageId", "requestId", "taskId",
    "username", "password", "currentPassword", "newPassword", "displayName", "avatarUrl",
    "role", "memberId", "memberType", "memberIds", "messageIds", "roleDescription",
    "broadcastMode", "systemPrompt", "routerId", "title", "description", "status",
    "assigneeId", "assigneeType", "emoji", "pref", "refreshToken", "visibility", "scope",
    "maxWsConnections", "maxGateways", "limit", "pinned", "archived", "data",
)  # fmt: skip
QUERY_NAMES: Final = (
    "limit", "offset", "cursor", "after", "before", "q", "roomId", "sender", "token",
    "status", "type", "page", "search",
)  # fmt: skip
# Path segments as sent (already percent-encoded): NUL, a UTF-8 encoded surrogate, control
# characters, invalid UTF-8, traversal, overlong.
PATH_JUNK: Final = (
    "%00", "a%00b", "%ED%A0%80", "%01", "%FF", "%E2%80%AE", "..", "%2F", "-", "x" * 300,
    "%C0%AF", "%25", "nope",
)  # fmt: skip

CLIENT_TEMPLATES: Final[dict[str, dict[str, Any]]] = {
    "client:auth": {"token": "@token"},
    "client:ping": {"ts": 1},
    "client:join_room": {"roomId": "@room"},
    "client:leave_room": {"roomId": "@room"},
    "client:send_message": {"roomId": "@room", "content": "hello", "mentions": []},
    "client:typing": {"roomId": "@room"},
    "client:stop_generation": {"roomId": "@room", "agentId": "@agent"},
    "client:permission_response": {"requestId": "req-1", "decision": "allow"},
}
GATEWAY_TEMPLATES: Final[dict[str, dict[str, Any]]] = {
    "gateway:auth": {
        "token": "@token", "gatewayId": "@gateway",
        "deviceInfo": {"hostname": "box", "platform": "linux", "arch": "x64",
                       "nodeVersion": "v22.0.0"},
    },
    "gateway:ping": {"ts": 1},
    "gateway:register_agent": {"agent": {"id": "@agent", "name": "fuzz_bot", "type": "generic"}},
    "gateway:unregister_agent": {"agentId": "@other_agent"},
    "gateway:agent_status": {"agentId": "@agent", "status": "online"},
    "gateway:message_chunk": {
        "roomId": "@room", "agentId": "@agent", "messageId": "m-1",
        "chunk": {"type": "text", "content": "part"},
    },
    "gateway:message_complete": {
        "roomId": "@room", "agentId": "@agent", "messageId": "m-1", "fullContent": "done",
        "chunks": [{"type": "text", "content": "done"}], "conversationId": "c-1", "depth": 0,
    },
    "gateway:terminal_data": {"agentId": "@agent", "data": "$ ls"},
    "gateway:task_update": {"taskId": "@task", "status": "completed", "result": "ok"},
    "gateway:permission_request": {
        "requestId": "p-1", "agentId": "@agent", "roomId": "@room", "toolName": "bash",
        "toolInput": {"command": "ls"}, "timeoutMs": 1000,
    },
}  # fmt: skip


@attrs.define
class World:
    """The fuzz user's objects (path ids and frame fields point at them) and the findings."""

    hub: HubProcess
    fuzzer: User
    admin_token: str
    values: dict[str, str]
    routes: list[tuple[str, str]]
    server_errors: list[str] = attrs.field(factory=list)
    internal_errors: list[str] = attrs.field(factory=list)
    statuses: dict[int, int] = attrs.field(factory=dict)
    frames_sent: int = 0


class Fuzz:
    """Seeded generators of malformed values, frames and requests (pure: no I/O)."""

    def __init__(self, rng: random.Random, values: dict[str, str]) -> None:
        self.rng = rng
        self.values = values

    def text(self) -> str:
        pick = self.rng.random()
        if pick < 0.45:
            bad = self.rng.choice(BAD_TEXT)
            return self.rng.choice((bad, f"pre{bad}", f"{bad}post", f"{self.word()}{bad}"))
        if pick < 0.8:
            return self.rng.choice(ODD_TEXT)
        return self.word()

    def word(self) -> str:
        return "".join(self.rng.choice("abcXYZ019_-é€𝄞") for _ in range(self.rng.randint(1, 12)))

    def value(self, depth: int = 0) -> Any:
        pick = self.rng.random()
        if pick < 0.5 or depth > 2:
            return self.text()
        if pick < 0.62:
            return self.rng.choice((0, -1, 1.5, 2**63, -(2**53) - 1, 1e308, True, False, None))
        if pick < 0.75:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        if pick < 0.9:
            return {self.key(): self.value(depth + 1) for _ in range(self.rng.randint(0, 3))}
        nested: Any = self.text()
        for _ in range(self.rng.randint(8, 20)):
            nested = [nested] if self.rng.random() < 0.5 else {"k": nested}
        return nested

    def key(self) -> str:
        return self.rng.choice(FIELDS) if self.rng.random() < 0.7 else self.text()

    def resolve(self, template: Any) -> Any:
        if isinstance(template, str) and template.startswith("@"):
            return self.values[template[1:]]
        if isinstance(template, dict):
            return {k: self.resolve(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self.resolve(v) for v in template]
        return template

    def mutate(self, message: dict[str, Any], *, keep_token: bool) -> dict[str, Any]:
        """One to three faults: a field replaced (at any depth), dropped or added, or the type.

        keep_token: a gateway:auth token may only become bad text or a non-string (a
        well-formed wrong token is a failed login, logged as such, not malformed input).
        """
        for _ in range(self.rng.randint(1, 3)):
            target = message
            while True:
                nested = [k for k, v in target.items() if isinstance(v, dict) and k != "type"]
                if not nested or self.rng.random() < 0.6:
                    break
                target = target[self.rng.choice(nested)]
            keys = [k for k in target if k != "type"]
            pick = self.rng.random()
            if pick < 0.6 and keys:
                key = self.rng.choice(keys)
                if key == "token" and keep_token:
                    target[key] = self.rng.choice((*BAD_TEXT, 7, None, ["x"]))
                else:
                    target[key] = self.value()
            elif pick < 0.75 and keys:
                del target[self.rng.choice(keys)]
            elif pick < 0.95:
                target[self.key()] = self.value()
            else:
                message["type"] = self.rng.choice((self.text(), 5, None, f"{message['type']}x"))
        return message

    def frame(self, templates: dict[str, dict[str, Any]], kind: str) -> str | bytes:
        pick = self.rng.random()
        if pick < 0.04:
            return self.rng.choice(("{", "null", "[1,2]", '{"type":', "\ufeff{}", "NaN"))
        if pick < 0.06:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 64)))
        message = {"type": kind, **self.resolve(templates[kind])}
        message = self.mutate(message, keep_token=kind == "gateway:auth")
        return json.dumps(message)  # ASCII: unpaired surrogates travel as \u escapes

    def query(self) -> str:
        parts = []
        for _ in range(self.rng.randint(0, 3)):
            name = self.rng.choice(QUERY_NAMES) if self.rng.random() < 0.85 else self.text()
            parts.append(f"{_escape(name)}={_escape(self.text())}")
        return "&".join(parts)

    def path(self, rule: str) -> str:
        segments = []
        for segment in rule.split("/"):
            if segment.startswith("{"):
                real = self.values["room"]  # the one id of every kind the fuzz user has
                segment = real if self.rng.random() < 0.35 else self.rng.choice(PATH_JUNK)
            segments.append(segment)
        return "/".join(segments)

    def body(self) -> tuple[bytes, dict[str, str]]:
        pick = self.rng.random()
        if pick < 0.08:
            raw = self.rng.choice((b"{", b"\xff\xfe{}", b'{"name":"\xed\xa0\x80"}', b"null",
                                   b'{"a":' * 200, b"[]"))  # fmt: skip
            return raw, {"Content-Type": "application/json"}
        if pick < 0.12:
            boundary = "fuzzboundary"
            raw = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                   f"filename=\"{_escape(self.text())}\"\r\nContent-Type: text/plain\r\n\r\n"
                   f"{self.word()}\r\n--{boundary}--\r\n").encode()  # fmt: skip
            return raw, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        body = {self.key(): self.value() for _ in range(self.rng.randint(0, 5))}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}


def _escape(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# the scenario -----------------------------------------------------------------------------------
async def test_fuzz_corpus_leaves_no_5xx_no_level_50_and_chat_undisturbed(
    chaos_hub: ChaosSpawn,
) -> None:
    with trio.fail_after(TIME_LIMIT_S):
        hub = await chaos_hub(CLIENT_RATE_LIMIT_MAX="1000", AGENT_RATE_LIMIT_MAX="1000")
        world = await _world(hub)
        control = Control(hub, *(await _control_pair(world)))
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(control.run)
            async with trio.open_nursery() as fuzzers:
                fuzzers.start_soon(_client_fuzz, world, int(INPUTS * SHARES["client"]))
                fuzzers.start_soon(_gateway_fuzz, world, int(INPUTS * SHARES["gateway"]))
                fuzzers.start_soon(_http_fuzz, world, int(INPUTS * SHARES["http"]))
            elapsed = time.monotonic() - started
            await control.stop()
    records = hub.log_records()
    warnings = sum(r["level"] == 40 for r in records)
    print(
        f"fuzz: {world.frames_sent} frames + {sum(world.statuses.values())} requests in "
        f"{elapsed:.1f}s; statuses {dict(sorted(world.statuses.items()))}; {warnings} warnings "
        f"logged; control chat {len(control.received)} messages, worst delay "
        f"{control.worst_delay_s:.2f}s"
    )
    assert world.server_errors == []
    assert world.internal_errors == []
    assert hub.fatal_lines() == []
    assert control.received == control.sent
    assert len(control.sent) >= 3


async def _world(hub: HubProcess) -> World:
    admin = await admin_http(hub)
    try:
        fuzzer = await new_user(admin)
        headers = {"Authorization": f"Bearer {fuzzer.token}"}
        room = await admin.post("/api/rooms", json={"name": "fuzz room"}, headers=headers)
        room_id = room.json()["data"]["id"]
        docs = await admin.get("/api/docs/openapi.json")
        routes = [(method.upper(), f"/api{path}") for path, ops in docs.json()["paths"].items()
                  for method in ops]  # fmt: skip
        routes.append(("GET", "/uploads/{name}"))  # served, not documented
        admin_token = admin.headers["Authorization"].removeprefix("Bearer ")
    finally:
        await admin.aclose()
    assert len(routes) >= 50, routes
    values = {"token": fuzzer.token, "room": room_id,
              "agent": "fuzz-agent", "other_agent": "fuzz-agent-2", "gateway": "gw-fuzz",
              "task": "task-none"}  # fmt: skip
    return World(hub, fuzzer, admin_token, values, routes)


async def _control_pair(world: World) -> tuple[User, User, str]:
    admin = await admin_http(world.hub)
    try:
        sender, reader = await new_user(admin), await new_user(admin)
        headers = {"Authorization": f"Bearer {sender.token}"}
        room = await admin.post("/api/rooms", headers=headers,
                                json={"name": "control", "memberIds": [reader.id]})  # fmt: skip
        assert room.status_code in (200, 201), room.text
        return sender, reader, room.json()["data"]["id"]
    finally:
        await admin.aclose()


class Control:
    """Two users chatting in their own room while the fuzz runs: every message must arrive,
    in order."""

    def __init__(self, hub: HubProcess, sender: User, reader: User, room_id: str) -> None:
        self.hub, self.sender, self.reader, self.room_id = hub, sender, reader, room_id
        self.sent: list[str] = []
        self.received: list[str] = []
        self.worst_delay_s = 0.0
        self._stop = trio.Event()
        self._done = trio.Event()

    async def run(self) -> None:
        async with _socket(self.hub, "/ws/client") as out, _socket(self.hub, "/ws/client") as inp:
            for ws, user in ((out, self.sender), (inp, self.reader)):
                await _auth_and_join(ws, user, self.room_id)
            while not self._stop.is_set():
                content = f"control-{len(self.sent)}"
                sent_at = time.monotonic()
                await out.send_message(
                    json.dumps(
                        {"type": "client:send_message", "roomId": self.room_id, "content": content}
                    )
                )
                self.sent.append(content)
                self.received.append(await _next_message(inp))
                self.worst_delay_s = max(self.worst_delay_s, time.monotonic() - sent_at)
                with trio.move_on_after(CONTROL_EVERY_S):
                    await self._stop.wait()
        self._done.set()

    async def stop(self) -> None:
        self._stop.set()
        await self._done.wait()


def _socket(hub: HubProcess, path: str) -> Any:
    return trio_websocket.open_websocket_url(f"{hub.ws_url}{path}", connect_timeout=10,
                                             max_message_size=64 * 1024 * 1024)  # fmt: skip


async def _auth_and_join(ws: trio_websocket.WebSocketConnection, user: User, room: str) -> None:
    await ws.send_message(json.dumps({"type": "client:auth", "token": user.token}))
    await ws.send_message(json.dumps({"type": "client:join_room", "roomId": room}))
    await ws.send_message(json.dumps({"type": "client:ping", "ts": 1}))
    with trio.fail_after(10):
        while json.loads(await ws.get_message())["type"] != "server:pong":
            pass


async def _next_message(ws: trio_websocket.WebSocketConnection) -> str:
    with trio.fail_after(15):
        while True:
            frame = json.loads(await ws.get_message())
            if frame["type"] == "server:new_message":
                return str(frame["message"]["content"])


async def _client_fuzz(world: World, count: int) -> None:
    fuzz = Fuzz(random.Random(SEED), world.values)
    kinds = sorted(CLIENT_TEMPLATES)
    sent = 0
    while sent < count:
        async with _socket(world.hub, "/ws/client") as ws:
            if fuzz.rng.random() < 0.85:  # most sockets fuzz signed in, so handlers run
                await _auth_and_join(ws, world.fuzzer, world.values["room"])
            auth_frames = 0
            for _ in range(min(SYNC_EVERY * 10, count - sent)):
                kind = fuzz.rng.choice(kinds)
                if kind == "client:auth" and auth_frames == 4:
                    kind = "client:ping"  # a fifth auth attempt closes the socket (1008)
                auth_frames += kind == "client:auth"
                await ws.send_message(fuzz.frame(CLIENT_TEMPLATES, kind))
                sent += 1
                if sent % SYNC_EVERY == 0:
                    await _sync_client(ws, world)
            await _sync_client(ws, world)
    world.frames_sent += sent


async def _sync_client(ws: trio_websocket.WebSocketConnection, world: World) -> None:
    """Ping, and read every answer until the pong (INTERNAL_ERROR is a finding)."""
    await ws.send_message(json.dumps({"type": "client:ping", "ts": 424242}))
    with trio.fail_after(30):
        while True:
            frame = json.loads(await ws.get_message())
            if frame.get("code") == "INTERNAL_ERROR":
                world.internal_errors.append(json.dumps(frame))
            if frame == {"type": "server:pong", "ts": 424242}:
                return


async def _gateway_fuzz(world: World, count: int) -> None:
    fuzz = Fuzz(random.Random(SEED + 1), world.values)
    kinds = sorted(GATEWAY_TEMPLATES)
    sent = 0
    while sent < count:
        async with _socket(world.hub, "/ws/gateway") as ws:
            if fuzz.rng.random() < 0.85:
                await _gateway_sign_in(ws, fuzz)
            for _ in range(min(SYNC_EVERY * 10, count - sent)):
                await ws.send_message(fuzz.frame(GATEWAY_TEMPLATES, fuzz.rng.choice(kinds)))
                sent += 1
                if sent % SYNC_EVERY == 0:
                    await _sync_gateway(ws)
            await _sync_gateway(ws)
    world.frames_sent += sent


async def _gateway_sign_in(ws: trio_websocket.WebSocketConnection, fuzz: Fuzz) -> None:
    auth = {"type": "gateway:auth", **fuzz.resolve(GATEWAY_TEMPLATES["gateway:auth"])}
    agent = {"type": "gateway:register_agent",
             **fuzz.resolve(GATEWAY_TEMPLATES["gateway:register_agent"])}  # fmt: skip
    await ws.send_message(json.dumps(auth))
    await ws.send_message(json.dumps(agent))
    await _sync_gateway(ws)


async def _sync_gateway(ws: trio_websocket.WebSocketConnection) -> None:
    await ws.send_message(json.dumps({"type": "gateway:ping", "ts": 434343}))
    with trio.fail_after(30):
        while json.loads(await ws.get_message()) != {"type": "server:pong", "ts": 434343}:
            pass


async def _http_fuzz(world: World, count: int) -> None:
    share = count // HTTP_WORKERS
    async with trio.open_nursery() as nursery:
        for worker in range(HTTP_WORKERS):
            nursery.start_soon(_http_worker, world, SEED + 10 + worker, share)


async def _http_worker(world: World, seed: int, count: int) -> None:
    fuzz = Fuzz(random.Random(seed), world.values)
    async with httpx.AsyncClient(base_url=world.hub.url, timeout=30) as http:
        for i in range(count):
            method, rule = world.routes[i % len(world.routes)]  # every route, in turn
            request = _request(fuzz, world, method, rule)
            response = await http.send(request)
            world.statuses[response.status_code] = world.statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                world.server_errors.append(f"{method} {request.url} -> {response.status_code} "
                                           f"{response.text[:200]}")  # fmt: skip


def _request(fuzz: Fuzz, world: World, method: str, rule: str) -> httpx.Request:
    path = fuzz.path(rule)
    query = fuzz.query()
    url = f"{world.hub.url}{path}{'?' + query if query else ''}"
    headers = _auth_header(fuzz, world, method, rule)
    content = b""
    if method in ("POST", "PUT", "PATCH", "DELETE") and fuzz.rng.random() < 0.9:
        content, more = fuzz.body()
        headers.update(more)
    return httpx.Request(method, httpx.URL(url), headers=headers, content=content)


def _auth_header(fuzz: Fuzz, world: World, method: str, rule: str) -> dict[str, str]:
    """Mostly the fuzz user's token (to get past auth); the admin's for reads; some junk.

    Never a token that would end the fuzz user's session (logout) or an admin write on a real
    user (which could delete the control pair): those get no or junk credentials."""
    pick = fuzz.rng.random()
    if rule in ("/api/auth/logout", "/api/auth/logout-all") or pick < 0.1:
        return {}
    if pick < 0.15:
        return {"Authorization": fuzz.rng.choice(("Bearer", "Bearer x.y.z", "Basic Zm9v", "x"))}
    if pick < 0.25 and method == "GET":
        return {"Authorization": f"Bearer {world.admin_token}"}
    return {"Authorization": f"Bearer {world.fuzzer.token}"}

"""Smoke client for a running hub: health, login, create a room, and one message over /ws/client.

Exit 0 when the hub echoes our message back as server:new_message; 1 (naming the step) otherwise.
Used by scripts/image-test.sh against the container; works against any hub:

    .venv/bin/python scripts/smoke_client.py --port 3000 --username admin --password ...
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Final

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket

STEP_TIMEOUT_S: Final = 10.0  # each step; a healthy hub answers in milliseconds
TOTAL_TIMEOUT_S: Final = 30.0

JsonObject = dict[str, object]


class SmokeError(Exception):
    """A step failed; the message says which and why."""


# What a failed step raises; anything else is a bug in this script and gets a traceback.
FAILURES: Final = (SmokeError, httpx.HTTPError, HandshakeError, ConnectionClosed, trio.TooSlowError)


def _object(value: object, what: str) -> JsonObject:
    if not isinstance(value, dict):
        raise SmokeError(f"{what}: expected a JSON object, got {value!r:.200}")
    return value


def _text(obj: JsonObject, key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise SmokeError(f"{what}: no {key!r} in {obj!r:.300}")
    return value


def _ok_data(response: httpx.Response, what: str, status: int) -> JsonObject:
    """The `data` of an {"ok":true,"data":...} body with the expected status."""
    try:
        body = _object(response.json(), what)
    except ValueError:
        body = {}
    if response.status_code != status or body.get("ok") is not True:
        raise SmokeError(f"{what}: HTTP {response.status_code} {response.text[:300]!r}")
    return _object(body.get("data"), what)


async def check_health(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/health")
    if response.status_code != 200 or '"ok":true' not in response.text:
        raise SmokeError(f"health: HTTP {response.status_code} {response.text[:300]!r}")
    print(f"health: {response.text[:200]}")


async def login(http: httpx.AsyncClient, username: str, password: str) -> str:
    body = {"username": username, "password": password}
    data = _ok_data(await http.post("/api/auth/login", json=body), "login", 200)
    token = _text(data, "accessToken", "login")
    print(f"login: ok as {username}")
    return token


async def create_room(http: httpx.AsyncClient, token: str) -> str:
    body = {"name": f"smoke-{secrets.token_hex(3)}"}
    headers = {"Authorization": f"Bearer {token}"}
    response = await http.post("/api/rooms", json=body, headers=headers)
    room_id = _text(_ok_data(response, "create room", 201), "id", "create room")
    print(f"create room: {room_id}")
    return room_id


async def send(ws: WebSocketConnection, frame: JsonObject) -> None:
    await ws.send_message(json.dumps(frame, separators=(",", ":")))


async def receive_until(ws: WebSocketConnection, frame_type: str, what: str) -> JsonObject:
    """The next frame of frame_type; a server:error first fails the step."""
    with trio.move_on_after(STEP_TIMEOUT_S):
        while True:
            raw = await ws.get_message()
            if isinstance(raw, bytes):
                raise SmokeError(f"{what}: unexpected binary frame")
            frame = _object(json.loads(raw), what)
            if frame.get("type") == frame_type:
                return frame
            if frame.get("type") == "server:error":
                raise SmokeError(f"{what}: {raw[:300]}")
    raise SmokeError(f"{what}: no {frame_type} within {STEP_TIMEOUT_S:g} s")


async def chat(host: str, port: int, token: str, room_id: str) -> None:
    """Auth, join and send on /ws/client; wait for our message's server:new_message echo."""
    async with open_websocket(host, port, "/ws/client", use_ssl=False) as ws:
        await send(ws, {"type": "client:auth", "token": token})
        result = await receive_until(ws, "server:auth_result", "ws auth")
        if result.get("ok") is not True:
            raise SmokeError(f"ws auth: {result!r:.300}")
        print(f"ws auth: ok, userId {result.get('userId')}")
        await send(ws, {"type": "client:join_room", "roomId": room_id})
        content = f"smoke test {secrets.token_hex(4)}"
        await send(
            ws,
            {"type": "client:send_message", "roomId": room_id, "content": content, "mentions": []},
        )
        while True:
            frame = await receive_until(ws, "server:new_message", "ws send_message")
            message = _object(frame.get("message"), "ws send_message")
            if message.get("roomId") == room_id and message.get("content") == content:
                print(f"ws send_message: echoed as {message.get('id')}")
                return


async def run(host: str, port: int, username: str, password: str) -> None:
    base = f"http://{host}:{port}"
    with trio.fail_after(TOTAL_TIMEOUT_S):
        async with httpx.AsyncClient(base_url=base, timeout=STEP_TIMEOUT_S) as http:
            await check_health(http)
            token = await login(http, username, password)
            room_id = await create_room(http, token)
        await chat(host, port, token, room_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    try:
        trio.run(run, args.host, args.port, args.username, args.password)
    except* FAILURES as group:
        for exc in _leaves(group):
            print(f"smoke client FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print("smoke client OK")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


if __name__ == "__main__":
    main()

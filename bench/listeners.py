"""Passive clients in their own process, so the load generator's probes are not queued behind
hundreds of sockets in one Python process (that queueing would be counted as hub latency).

    python -m bench.listeners --spec spec.json     # started by `python -m bench`, not by hand

The spec names the hub URLs, the room and the (index, token) pairs. The process prints `ready`
once every client has joined; on stdin `start` begins counting `server:new_message` frames and
`stop` prints the count and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from bench.wsclient import Socket

NEW_MESSAGE: bytes = b'{"type":"server:new_message"'


PING: bytes = b"\x89\x00"  # the hub's keep-alive ping (an empty, unmasked ping frame)
PONG: bytes = b"\x8a\x80\x00\x00\x00\x00"  # its answer: an empty pong, all-zero mask
RECEIVE_BYTES: int = 1 << 20


class Counter:
    """Counts `server:new_message` frames by their prefix in the raw stream (C speed: a listener
    receives up to hundreds of thousands of frames per second and must not be the bottleneck).
    Exact for the bench's traffic, whose contents never contain the prefix."""

    def __init__(self) -> None:
        self.measuring = False
        self.deliveries = 0

    def count(self, data: bytes) -> int:
        found = data.count(NEW_MESSAGE)
        if self.measuring:
            self.deliveries += found
        return found


def fake_ip(index: int) -> str:
    """One client address per socket: the hub's per-IP upgrade limit counts each separately."""
    return f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"


async def open_member(url: str, token: str, room_id: str, index: int) -> Socket:
    """A client authenticated, joined to the room, and synced (a ping round trip)."""
    sock = await Socket.connect(url, forwarded_for=fake_ip(index))
    await sock.send({"type": "client:auth", "token": token})
    while (frame := await sock.next_json())["type"] != "server:auth_result":
        pass
    if frame.get("ok") is not True:
        raise RuntimeError(f"auth failed: {frame}")
    await sock.send({"type": "client:join_room", "roomId": room_id})
    await sock.send({"type": "client:ping", "ts": index})
    while (frame := await sock.next_json())["type"] != "server:pong":
        if frame["type"] == "server:error":
            raise RuntimeError(f"join failed: {frame}")
    return sock


async def _drain(sock: Socket, counter: Counter) -> None:
    """Count frames as they stream in; a prefix cut by a read boundary is counted once (the
    last bytes of each read are searched again with the next)."""
    carry = bytes(sock.buffer)  # what arrived with the setup replies
    keep = len(NEW_MESSAGE) - 1
    while True:
        data = carry + await sock.stream.receive_some(RECEIVE_BYTES)
        if len(data) == len(carry):
            raise ConnectionError("closed by the hub")
        counter.count(data)  # the carry is shorter than the prefix: never counted twice
        carry = data[-keep:]
        if PING in data:
            await sock.send_raw(PONG)


async def main(spec: dict[str, Any]) -> None:
    urls, room_id = spec["urls"], spec["room_id"]
    socks: list[Socket] = []
    limiter = trio.CapacityLimiter(20)

    async def one(index: int, token: str) -> None:
        async with limiter:
            socks.append(await open_member(urls[index % len(urls)], token, room_id, index))

    async with trio.open_nursery() as nursery:
        for index, token in spec["members"]:
            nursery.start_soon(one, index, token)
    counter = Counter()
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    print("ready", flush=True)
    async with trio.open_nursery() as nursery:
        for sock in socks:
            nursery.start_soon(_drain, sock, counter)
        async for line in _lines(stdin):
            if line == "start":
                counter.measuring = True
            elif line == "stop":
                counter.measuring = False
                print(counter.deliveries, flush=True)
                nursery.cancel_scope.cancel()


async def _lines(stream: trio.lowlevel.FdStream) -> Any:
    buffer = b""
    while data := await stream.receive_some(4096):
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode().strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.listeners")
    parser.add_argument("--spec", required=True)
    with open(parser.parse_args().spec) as spec_file:
        trio.run(main, json.load(spec_file))

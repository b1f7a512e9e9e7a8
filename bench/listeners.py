"""Passive clients and latency probes in their own processes, so that what is measured is the
hub, not the load generator: in one Python process with the senders, a probe's frame waited
behind the other sockets' frames and trio's task switches, and that queueing was counted as hub
latency.

    python -m bench.listeners --spec spec.json     # started by `python -m bench`, not by hand

The spec names the hub URLs, the room, the (index, token) pairs and whether the process probes.
The process prints `ready` once every client has joined; on stdin `start` begins counting
`server:new_message` frames and `stop` prints one JSON line and exits: the count and, for a
probe process, the latency of every bench message (its send time travels in its content) as
seen right after the read that brought it.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from typing import Any

import trio

from bench.wsclient import Socket

NEW_MESSAGE: bytes = b'{"type":"server:new_message"'
MARKER: bytes = b'"content":"bench:'  # followed by the send time (perf_counter ns) and ":"
PING: bytes = b"\x89\x00"  # the hub's keep-alive ping (an empty, unmasked ping frame)
PONG: bytes = b"\x8a\x80\x00\x00\x00\x00"  # its answer: an empty pong, all-zero mask
RECEIVE_BYTES: int = 1 << 20


class Counter:
    """Counts `server:new_message` frames by their prefix in the raw stream (C speed: a listener
    receives up to hundreds of thousands of frames per second and must not be the bottleneck).
    Exact for the bench's traffic, whose contents never contain the prefix."""

    def __init__(self, *, probe: bool = False) -> None:
        self.measuring = False
        self.deliveries = 0
        self.probe = probe
        self.latencies_ns: list[int] = []

    def count(self, data: bytes) -> int:
        found = data.count(NEW_MESSAGE)
        if self.measuring:
            self.deliveries += found
        return found

    def time(self, data: bytes, received_ns: int) -> bytes:
        """Record the latency of each complete send time in `data`; what the read boundary may
        have cut short (a send time, or the start of a marker) comes back, to be searched again
        with the next read."""
        at, searched = data.find(MARKER), 0
        while at >= 0:
            start = at + len(MARKER)
            end = data.find(b":", start)
            if end < 0:
                return data[at:]
            if self.measuring:
                self.latencies_ns.append(received_ns - int(data[start:end]))
            searched = end
            at = data.find(MARKER, end)
        return data[max(searched, len(data) - len(MARKER) + 1) :]

    def result(self) -> str:
        return json.dumps({"deliveries": self.deliveries, "latencies_ns": self.latencies_ns})


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


class Stream:
    """One joined socket after setup: its descriptor and the bytes not yet searched."""

    __slots__ = ("carry", "fd", "timing")

    def __init__(self, fd: int, carry: bytes) -> None:
        self.fd = fd
        self.carry = carry
        self.timing = carry  # a probe's bytes not yet searched for send times


def _read(stream: Stream, counter: Counter) -> None:
    """Count the frames in what arrived; a prefix cut by a read boundary is counted once (the
    last bytes of each read are searched again with the next, and are too short to hold it)."""
    try:
        data = os.read(stream.fd, RECEIVE_BYTES)
    except BlockingIOError:
        return
    received_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC: the senders' clock too
    if not data:
        raise ConnectionError("closed by the hub")
    if counter.probe:
        stream.timing = counter.time(stream.timing + data, received_ns)
    data = stream.carry + data
    counter.count(data)
    stream.carry = data[-(len(NEW_MESSAGE) - 1) :]
    if PING in data:
        os.write(stream.fd, PONG)


def count_until_stopped(streams: list[Stream], *, probe: bool) -> None:
    """A plain epoll loop (no trio: a few microseconds per read instead of a task switch and
    an epoll re-arm, so the listeners are not the bottleneck). Commands arrive on stdin."""
    counter = Counter(probe=probe)
    by_fd = {s.fd: s for s in streams}
    stdin = sys.stdin.fileno()
    poller = select.epoll()
    poller.register(stdin, select.EPOLLIN)
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    print("ready", flush=True)
    pending = b""
    while True:
        for fd, _ in poller.poll():
            if fd != stdin:
                _read(by_fd[fd], counter)
                continue
            pending += os.read(stdin, 4096) or b"stop\n"
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip() == b"start":
                    counter.measuring = True
                elif line.strip() == b"stop":
                    print(counter.result(), flush=True)
                    return


async def join_all(spec: dict[str, Any]) -> list[Stream]:
    """Connect, authenticate and join every member (20 at a time); hand over the raw sockets."""
    urls, room_id = spec["urls"], spec["room_id"]
    socks: list[Socket] = []
    limiter = trio.CapacityLimiter(20)

    async def one(index: int, token: str) -> None:
        async with limiter:
            socks.append(await open_member(urls[index % len(urls)], token, room_id, index))

    async with trio.open_nursery() as nursery:
        for index, token in spec["members"]:
            nursery.start_soon(one, index, token)
    return [Stream(sock.stream.socket.detach(), bytes(sock.buffer)) for sock in socks]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.listeners")
    parser.add_argument("--spec", required=True)
    with open(parser.parse_args().spec) as spec_file:
        spec = json.load(spec_file)
    count_until_stopped(trio.run(join_all, spec), probe=bool(spec.get("probe")))

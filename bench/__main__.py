"""Load generator for /ws/client: N clients in one room, S senders, throughput and latency.

    python -m bench --spawn 1 --clients 50 --senders 5 --outstanding 16
    python -m bench --spawn 2 --clients 200 --senders 10 --rate 50
    python -m bench --url http://127.0.0.1:3000 --clients 50 --senders 5 --rate 100
    python -m bench --spawn 1 --idle 1000          # server memory per idle authenticated socket

Users and the room are written straight to PostgreSQL (DATABASE_URL) and tokens are minted with
JWT_SECRET, so the bench needs no REST endpoint. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import attrs
import trio

from bench.hubs import add_hub_arguments, check_hub_arguments, spawn_hubs
from bench.listeners import MARKER, NEW_MESSAGE, fake_ip, open_member
from bench.setup import Cast, cast_for
from bench.wsclient import Socket, client_frame

PAD = "x" * 80  # a message of realistic size (~300 bytes on the wire)


@attrs.define
class Stats:
    measuring: bool = False
    hub_cpu_s: float = 0.0  # CPU time the hub processes spent in the window (with --spawn)
    accepted: int = 0
    deliveries: int = 0
    errors: int = 0
    latencies_ns: list[int] = attrs.field(factory=list)
    error_samples: list[bytes] = attrs.field(factory=list)


@attrs.define
class Client:
    index: int
    sock: Socket
    probe: bool  # records latencies here (only with --listener-procs 0)
    sender: int | None  # sender number, or None
    window: trio.Semaphore | None = None


def _on_frame(client: Client, stats: Stats, payload: bytes) -> None:
    if not payload.startswith(NEW_MESSAGE):
        if payload.startswith(b'{"type":"server:error"'):
            stats.errors += 1
            if len(stats.error_samples) < 5:
                stats.error_samples.append(payload)
            if client.window is not None:
                client.window.release()  # the answer to one of its messages (RATE_LIMITED)
        return
    if stats.measuring:
        stats.deliveries += 1
    if not client.probe and client.sender is None:
        return
    at = payload.find(MARKER)
    if at < 0:
        return
    t_ns, sender, _ = payload[at + len(MARKER) :].split(b":", 2)
    if client.probe and stats.measuring:
        stats.latencies_ns.append(time.perf_counter_ns() - int(t_ns))
    if client.sender is not None and int(sender) == client.sender:
        if stats.measuring:
            stats.accepted += 1
        if client.window is not None:
            client.window.release()


async def _receive_loop(client: Client, stats: Stats) -> None:
    handler = partial(_on_frame, client, stats)
    while True:
        await client.sock.pump(handler)


def _message(room_id: str, sender: int, seq: int) -> bytes:
    content = f"bench:{time.perf_counter_ns()}:{sender}:{seq} {PAD}"
    return client_frame(
        f'{{"type":"client:send_message","roomId":"{room_id}","content":"{content}"}}'
    )


async def _send_window(client: Client, room_id: str) -> None:
    """Closed loop: keep `outstanding` messages in flight; the echo frees a slot."""
    assert client.window is not None and client.sender is not None
    seq = 0
    while True:
        await client.window.acquire()
        seq += 1
        await client.sock.send_raw(_message(room_id, client.sender, seq))


async def _send_paced(client: Client, room_id: str, rate: float, senders: int) -> None:
    """Open loop: the senders take turns, so the hub gets one message every 1/rate seconds
    (each sender every senders/rate seconds), whatever the echoes do."""
    assert client.sender is not None
    interval, seq = senders / rate, 0
    next_at = trio.current_time() + (client.sender + 1) / rate
    while True:
        await trio.sleep_until(next_at)
        seq += 1
        await client.sock.send_raw(_message(room_id, client.sender, seq))
        next_at += interval


async def _open_client(index: int, url: str, cast: Cast, args: argparse.Namespace) -> Client:
    sock = await open_member(url, cast.tokens[index], cast.room_id, index)
    sender = index if index < args.senders else None
    probe = not args.listener_procs and index < _active(args)
    return Client(index, sock, probe=probe, sender=sender)


async def _open_all(urls: Sequence[str], cast: Cast, args: argparse.Namespace) -> list[Client]:
    """The senders (and, without listener processes, every other client too)."""
    count = args.clients if not args.listener_procs else min(args.clients, args.senders)
    clients: list[Client | None] = [None] * count
    limiter = trio.CapacityLimiter(20)  # connect in small waves

    async def one(index: int) -> None:
        async with limiter:
            clients[index] = await _open_client(index, urls[index % len(urls)], cast, args)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return [c for c in clients if c is not None]


def _active(args: argparse.Namespace) -> int:
    return args.senders + args.probes


class Listeners:
    """The passive clients, split over `--listener-procs` child processes, and the probes in
    one more (bench/listeners.py).

    The hub writes a room's sockets in join order, so where the probes join decides whether they
    measure the first, the median or the last recipient. Half of the listener processes join
    before the senders and the probes and half after, so the probes sit in the middle: the
    median client.
    """

    def __init__(self) -> None:
        self.processes: list[trio.Process] = []
        self._lines: list[Callable[[], Awaitable[str]]] = []

    @staticmethod
    def probes(cast: Cast, args: argparse.Namespace) -> list[tuple[int, str]]:
        """The (index, token) pairs of the probe process (none without listener processes)."""
        if not args.listener_procs:
            return []
        return [(i, cast.tokens[i]) for i in range(args.senders, min(args.clients, _active(args)))]

    @staticmethod
    def groups(cast: Cast, args: argparse.Namespace) -> list[list[tuple[int, str]]]:
        """The (index, token) pairs of each listener process."""
        passive = list(range(_active(args), args.clients))
        if not args.listener_procs or not passive:
            return []
        procs = args.listener_procs
        return [[(i, cast.tokens[i]) for i in passive[n::procs]] for n in range(procs)]

    async def start(
        self,
        urls: Sequence[str],
        cast: Cast,
        members: Sequence[tuple[int, str]],
        *,
        probe: bool = False,
    ) -> None:
        """One listener process for `members`; returns once they all joined the room."""
        if not members:
            return
        spec = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        with spec:
            json.dump({"urls": list(urls), "room_id": cast.room_id, "members": members,
                       "probe": probe}, spec)  # fmt: skip
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bench.listeners", "--spec", spec.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self.processes.append(process)
        read_line = _line_reader(process)
        self._lines.append(read_line)
        try:
            with trio.fail_after(120):
                if await read_line() != "ready":
                    raise RuntimeError("a listener process failed to start")
        finally:
            os.unlink(spec.name)

    def kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()

    async def tell(self, command: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            await process.stdin.send_all(f"{command}\n".encode())

    async def stop(self, stats: Stats) -> None:
        """Stop counting; add what the listeners counted and the probes measured to `stats`."""
        await self.tell("stop")
        with trio.fail_after(30):
            for read_line in self._lines:
                result = json.loads(await read_line())
                stats.deliveries += result["deliveries"]
                stats.latencies_ns += result["latencies_ns"]
            for process in self.processes:
                await process.wait()


def _line_reader(process: trio.Process) -> Callable[[], Awaitable[str]]:
    buffer = bytearray()

    async def read_line() -> str:
        assert process.stdout is not None
        while b"\n" not in buffer:
            data = await process.stdout.receive_some(4096)
            if not data:
                raise RuntimeError("a listener process exited")
            buffer.extend(data)
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        return line.decode().strip()

    return read_line


def _percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (procfs), so a busy machine does not hide our cost."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:  # noqa: ASYNC230 (a tiny procfs read)
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run_load(
    urls: Sequence[str], cast: Cast, args: argparse.Namespace, pids: Sequence[int]
) -> Stats:
    stats = Stats()
    listeners = Listeners()
    try:
        clients = await _run_clients(urls, cast, args, pids, stats, listeners)
    finally:
        listeners.kill()
    for client in clients:
        await client.sock.aclose()
    return stats


async def _run_clients(
    urls: Sequence[str], cast: Cast, args: argparse.Namespace, pids: Sequence[int],
    stats: Stats, listeners: Listeners,
) -> list[Client]:  # fmt: skip
    groups = Listeners.groups(cast, args)
    early, late = groups[: len(groups) // 2], groups[len(groups) // 2 :]
    async with trio.open_nursery() as nursery:
        for members in early:
            await listeners.start(urls, cast, members)
        clients = await _open_all(urls, cast, args)
        await listeners.start(urls, cast, Listeners.probes(cast, args), probe=True)
        for members in late:
            await listeners.start(urls, cast, members)
        for client in clients:
            if args.outstanding and client.sender is not None:
                client.window = trio.Semaphore(args.outstanding)
            nursery.start_soon(_receive_loop, client, stats)
        await trio.sleep(0.5)  # presence and pongs settle
        for client in clients:
            if client.sender is None:
                continue
            if args.outstanding:
                nursery.start_soon(_send_window, client, cast.room_id)
            else:
                nursery.start_soon(_send_paced, client, cast.room_id, args.rate, args.senders)
        await trio.sleep(args.warmup)
        gc.collect()
        gc.freeze()  # the load generator's own GC pauses would show up as hub latency
        await listeners.tell("start")
        stats.measuring, cpu_before = True, cpu_seconds(pids)
        await trio.sleep(args.duration)
        stats.measuring, stats.hub_cpu_s = False, cpu_seconds(pids) - cpu_before
        await listeners.stop(stats)
        nursery.cancel_scope.cancel()
    return clients


def report(stats: Stats, args: argparse.Namespace, hubs: int) -> str:
    lat = sorted(stats.latencies_ns)
    mode = f"outstanding={args.outstanding}" if args.outstanding else f"rate={args.rate}/s"
    lines = [
        f"hubs={hubs} clients={args.clients} senders={args.senders} {mode} "
        f"duration={args.duration}s",
        f"  accepted messages/s : {stats.accepted / args.duration:10.1f}",
        f"  deliveries/s        : {stats.deliveries / args.duration:10.1f}",
        f"  fan-out latency ms  : p50 {_percentile(lat, 0.50):.2f}  "
        f"p95 {_percentile(lat, 0.95):.2f}  p99 {_percentile(lat, 0.99):.2f}  (n={len(lat)})",
        f"  server errors       : {stats.errors}",
    ]
    if stats.hub_cpu_s:
        per_message = stats.hub_cpu_s / max(1, stats.accepted) * 1000
        lines.append(f"  hub CPU             : {stats.hub_cpu_s / args.duration:.2f} cores, "
                     f"{per_message:.2f} ms per accepted message")  # fmt: skip
    lines += [f"    {sample[:200]!r}" for sample in stats.error_samples]
    return "\n".join(lines)


async def _drain(sock: Socket) -> None:
    """An idle client still reads what the hub sends it (presence of the others, pings)."""
    try:
        while True:
            await sock.pump(None)
    except (ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def run_idle(
    urls: Sequence[str], cast: Cast, args: argparse.Namespace, rss: RssReader
) -> str:
    before = rss()
    socks: list[Socket] = []
    async with trio.open_nursery() as nursery:
        for index in range(args.idle):
            sock = await Socket.connect(urls[index % len(urls)], forwarded_for=fake_ip(index))
            await sock.send({"type": "client:auth", "token": cast.tokens[index]})
            while (await sock.next_json())["type"] != "server:auth_result":
                pass
            socks.append(sock)
            nursery.start_soon(_drain, sock)
        await trio.sleep(7)  # past the hub's writer linger: the steady idle state
        after = rss()
        nursery.cancel_scope.cancel()
    for sock in socks:
        await sock.aclose()
    per_socket = (after - before) / args.idle / 1024
    return (f"idle authenticated sockets={args.idle}: server RSS {before / 2**20:.1f} MiB → "
            f"{after / 2**20:.1f} MiB, {per_socket:.1f} KiB per socket")  # fmt: skip


class RssReader:
    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = pids

    def __call__(self) -> int:
        total = 0
        for pid in self.pids:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total


async def main(args: argparse.Namespace) -> None:
    users = max(args.clients, args.idle)
    async with cast_for(args, users=users) as cast:
        await _measure(cast, args)


async def _measure(cast: Cast, args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        if args.spawn:
            hubs = await spawn_hubs(nursery, args.spawn, args)
            urls, pids = [h.url for h in hubs], [h.pid for h in hubs]
        else:
            urls, pids = list(args.url), []
        if args.idle:
            if not pids:
                sys.exit("--idle needs --spawn (the RSS is read from /proc/<pid>)")
            print(await run_idle(urls, cast, args, RssReader(pids)), flush=True)
        else:
            print(report(await run_load(urls, cast, args, pids), args, len(urls)), flush=True)
        nursery.cancel_scope.cancel()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", action="append", default=[], help="a running hub (repeatable)")
    parser.add_argument("--spawn", type=int, default=0, help="start this many hub processes")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--outstanding", type=int, default=0, help="messages in flight/sender")
    parser.add_argument("--rate", type=float, default=100.0, help="paced total messages/s")
    parser.add_argument("--probes", type=int, default=5, help="non-sending latency probes")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--idle", type=int, default=0, help="measure N idle sockets instead")
    parser.add_argument(
        "--listener-procs", type=int, default=2,
        help="child processes for the clients that neither send nor probe, besides the probes' "
        "own (0: all in this one)",
    )  # fmt: skip
    add_hub_arguments(parser, base_port=3100)
    args = parser.parse_args(argv)
    check_hub_arguments(parser, args)
    return args


if __name__ == "__main__":
    trio.run(main, parse_args())

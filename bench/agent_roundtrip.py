"""Agent round trips: a client @mentions an agent, its gateway streams chunks, the client waits
for `server:message_complete`. Reports round trips/s, chunks/s and the round-trip latency.

    python -m bench.agent_roundtrip --spawn 1 --agents 5 --rate 20          # paced
    python -m bench.agent_roundtrip --spawn 1 --agents 5 --outstanding 8    # full speed
    python -m bench.agent_roundtrip --spawn 2 --split --agents 5 --rate 20  # gateways on hub B

Fixtures go straight to PostgreSQL (DATABASE_URL) and tokens are minted with JWT_SECRET, as in
`python -m bench`; the agents are registered by the bench's own gateway sockets.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.store.bridge import open_bridge
from agentim.store.db import open_database
from bench.__main__ import cpu_seconds
from bench.api_setup import add_agents_via_api
from bench.hubs import add_hub_arguments, check_hub_arguments, spawn_hubs
from bench.setup import Cast, cast_for
from bench.wsclient import Socket, client_frame

MARKER = b"bench:"
CHUNK_PREFIX = b'{"type":"server:message_chunk"'
COMPLETE_PREFIX = b'{"type":"server:message_complete"'
DELIVERY_PREFIX = b'{"type":"server:send_to_agent"'
PART = "streamed text of a realistic chunk size, " * 2  # ~80 characters per chunk
GATEWAY_PING_S = 30.0  # AgentIM's gateway heartbeat interval


@attrs.define
class Stats:
    measuring: bool = False
    hub_cpu_s: float = 0.0
    sent: int = 0
    completes: int = 0
    chunks: int = 0
    latencies_ns: list[int] = attrs.field(factory=list)
    chunk_latencies_ns: list[int] = attrs.field(factory=list)  # gateway write → client read


async def connect_gateway(url: str, forwarded_for: str) -> Socket:
    """A /ws/gateway socket on the bench's lean client."""
    return await Socket.connect(url, forwarded_for=forwarded_for, path="/ws/gateway")


async def _until(sock: Socket, kind: str) -> dict[str, object]:
    while (frame := await sock.next_json())["type"] != kind:
        pass
    return frame


async def open_gateway(url: str, token: str, agents: Sequence[tuple[str, str]], n: int) -> Socket:
    sock = await connect_gateway(url, f"10.9.0.{n}")
    await sock.send({"type": "gateway:auth", "token": token, "gatewayId": f"bench-gw-{new_id(8)}",
                     "deviceInfo": {"hostname": "bench", "platform": "linux", "arch": "x64",
                                    "nodeVersion": "v22"}})  # fmt: skip
    result = await _until(sock, "server:gateway_auth_result")
    if result.get("ok") is not True:
        raise RuntimeError(f"gateway auth failed: {result}")
    for agent_id, name in agents:
        await sock.send(
            {
                "type": "gateway:register_agent",
                "agent": {"id": agent_id, "name": name, "type": "generic"},
            }
        )
    await sock.send({"type": "gateway:ping", "ts": n})
    await _until(sock, "server:pong")
    return sock


CHUNK_MARK = "chunkts:"  # each chunk's text starts with chunkts:<t_ns>; (relay latency)
CHUNK_MARK_BYTES = CHUNK_MARK.encode()


def _frame(payload: dict[str, Any]) -> bytes:
    return client_frame(json.dumps(payload))


def reply_frames(delivery: dict[str, Any], chunks: int, reuse_id: bool, *, lean: bool,
                 queued: int) -> bytes:  # fmt: skip
    """The gateway's whole answer to one delivery, written at once.

    As AgentIM's gateway sends it (unless `lean`): `gateway:agent_status` busy with the agent's
    queue depth, the chunks under a fresh reply id, `gateway:message_complete` carrying the
    `chunks` array, then `online` once the agent has nothing queued (`queued` == 0).
    """
    room_id, agent_id = delivery["roomId"], delivery["agentId"]
    message_id = delivery["messageId"] if reuse_id else new_id()
    marker = delivery["content"].split(" ", 1)[1]  # bench:<t_ns>:<seq>
    base = {"roomId": room_id, "agentId": agent_id, "messageId": message_id}
    parts = [{"type": "text", "content": f"{CHUNK_MARK}{time.perf_counter_ns()};{PART}"}
             for _ in range(chunks)]  # fmt: skip
    frames = [_frame({"type": "gateway:message_chunk", **base, "chunk": c}) for c in parts]
    complete: dict[str, Any] = {
        "type": "gateway:message_complete", **base, "fullContent": f"{marker} done",
        "conversationId": delivery["conversationId"], "depth": delivery.get("depth", 0),
    }  # fmt: skip
    if lean:
        return b"".join([*frames, _frame(complete)])
    status = {"type": "gateway:agent_status", "agentId": agent_id}
    busy = _frame({**status, "status": "busy", "queueDepth": queued})
    after = [_frame({**status, "status": "online", "queueDepth": 0})] if queued == 0 else []
    return b"".join([busy, *frames, _frame({**complete, "chunks": parts}), *after])


async def gateway_loop(sock: Socket, chunks: int, reuse_id: bool, lean: bool) -> None:
    pending: list[dict[str, Any]] = []
    next_ping = trio.current_time() + GATEWAY_PING_S

    def on_frame(payload: bytes) -> None:
        if payload.startswith(DELIVERY_PREFIX):
            pending.append(json.loads(payload))

    while True:
        with trio.move_on_at(next_ping):
            await sock.pump(on_frame)
        if trio.current_time() >= next_ping:  # the gateway's heartbeat, as AgentIM's sends it
            await sock.send({"type": "gateway:ping", "ts": int(time.time() * 1000)})
            next_ping += GATEWAY_PING_S
        if pending:
            left = {d["agentId"]: 0 for d in pending}
            for d in pending:
                left[d["agentId"]] += 1
            replies = []
            for d in pending:
                left[d["agentId"]] -= 1
                replies.append(reply_frames(d, chunks, reuse_id, lean=lean,
                                            queued=left[d["agentId"]]))  # fmt: skip
            pending.clear()
            await sock.send_raw(b"".join(replies))


def client_on_frame(stats: Stats, window: trio.Semaphore | None, payload: bytes) -> None:
    if payload.startswith(CHUNK_PREFIX):
        if stats.measuring:
            stats.chunks += 1
            at = payload.find(CHUNK_MARK_BYTES)
            if at >= 0:
                sent_ns = int(payload[at + len(CHUNK_MARK_BYTES) :].split(b";", 1)[0])
                stats.chunk_latencies_ns.append(time.perf_counter_ns() - sent_ns)
        return
    if not payload.startswith(COMPLETE_PREFIX):
        return
    at = payload.find(MARKER)
    if at < 0:
        return
    t_ns = int(payload[at + len(MARKER) :].split(b":", 1)[0])
    if stats.measuring:
        stats.completes += 1
        stats.latencies_ns.append(time.perf_counter_ns() - t_ns)
    if window is not None:
        window.release()


async def client_loop(sock: Socket, stats: Stats, window: trio.Semaphore | None) -> None:
    while True:
        await sock.pump(lambda payload: client_on_frame(stats, window, payload))


def message_frame(room_id: str, agent_name: str, seq: int) -> bytes:
    content = f"@{agent_name} bench:{time.perf_counter_ns()}:{seq}"
    return client_frame(json.dumps({"type": "client:send_message", "roomId": room_id,
                                    "content": content}))  # fmt: skip


async def send_loop(
    sock: Socket, stats: Stats, room_id: str, names: Sequence[str], args: argparse.Namespace,
    window: trio.Semaphore | None,
) -> None:  # fmt: skip
    """Round-robin over the agents: paced at `--rate`, or `--outstanding` in flight."""
    seq, interval = 0, 1.0 / args.rate
    next_at = trio.current_time()
    while True:
        if window is not None:
            await window.acquire()
        else:
            await trio.sleep_until(next_at)
            next_at += interval
        seq += 1
        stats.sent += stats.measuring
        await sock.send_raw(message_frame(room_id, names[seq % len(names)], seq))


async def add_agents_to_room(database_url: str, room_id: str, agent_ids: Sequence[str]) -> None:
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        await db.executemany(
            "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
            "VALUES ($1, $2, 'agent', 'member', $3)",
            [(room_id, agent_id, iso_now()) for agent_id in agent_ids],
        )


async def open_client(url: str, cast: Cast) -> Socket:
    sock = await Socket.connect(url, forwarded_for="10.8.0.1")
    await sock.send({"type": "client:auth", "token": cast.tokens[0]})
    if (await _until(sock, "server:auth_result")).get("ok") is not True:
        raise RuntimeError("client auth failed")
    await sock.send({"type": "client:join_room", "roomId": cast.room_id})
    await sock.send({"type": "client:ping", "ts": 0})
    await _until(sock, "server:pong")
    return sock


async def run(
    urls: Sequence[str], pids: Sequence[int], args: argparse.Namespace, cast: Cast
) -> Stats:
    run_id = new_id(5).replace("-", "x")
    agents = [(new_id(), f"bench_{run_id}_{k}") for k in range(args.agents)]
    gateway_url = urls[-1] if args.split else urls[0]
    per_gateway = [agents[g :: args.gateways] for g in range(args.gateways)]
    gateways = [await open_gateway(gateway_url, cast.tokens[0], group, n)
                for n, group in enumerate(per_gateway)]  # fmt: skip
    if args.api_admin:
        await add_agents_via_api(urls[0], cast, [a for a, _ in agents])
    else:
        await add_agents_to_room(args.database_url, cast.room_id, [a for a, _ in agents])
    client = await open_client(urls[0], cast)
    stats = Stats()
    window = trio.Semaphore(args.outstanding) if args.outstanding else None
    async with trio.open_nursery() as nursery:
        for sock in gateways:
            nursery.start_soon(gateway_loop, sock, args.chunks, args.reuse_id, args.lean_gateway)
        nursery.start_soon(client_loop, client, stats, window)
        names = [name for _, name in agents]
        nursery.start_soon(send_loop, client, stats, cast.room_id, names, args, window)
        await trio.sleep(args.warmup)
        stats.measuring, cpu_before = True, cpu_seconds(pids)
        await trio.sleep(args.duration)
        stats.measuring, stats.hub_cpu_s = False, cpu_seconds(pids) - cpu_before
        nursery.cancel_scope.cancel()
    for sock in [client, *gateways]:
        await sock.aclose()
    return stats


def _percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def report(stats: Stats, args: argparse.Namespace) -> str:
    lat = sorted(stats.latencies_ns)
    relay = sorted(stats.chunk_latencies_ns)
    mode = f"outstanding={args.outstanding}" if args.outstanding else f"rate={args.rate}/s"
    where = "client on A, gateways on B" if args.split else "one hub"
    lines = [
        f"agents={args.agents} gateways={args.gateways} chunks={args.chunks} {mode} "
        f"duration={args.duration}s ({where}{', reused ids' if args.reuse_id else ''}"
        f"{', lean gateway' if args.lean_gateway else ', real gateway frame mix'})",
        f"  round trips/s       : {stats.completes / args.duration:10.1f}"
        f"  (sent {stats.sent / args.duration:.1f}/s)",
        f"  chunks/s at client  : {stats.chunks / args.duration:10.1f}",
        f"  round trip ms       : p50 {_percentile(lat, 0.50):.2f}  p95 "
        f"{_percentile(lat, 0.95):.2f}  p99 {_percentile(lat, 0.99):.2f}  (n={len(lat)})",
        f"  chunk relay ms      : p50 {_percentile(relay, 0.50):.2f}  p95 "
        f"{_percentile(relay, 0.95):.2f}  p99 {_percentile(relay, 0.99):.2f}  (gateway → client)",
    ]
    if stats.hub_cpu_s:
        per_trip = stats.hub_cpu_s / max(1, stats.completes) * 1000
        lines.append(f"  hub CPU             : {stats.hub_cpu_s / args.duration:.2f} cores, "
                     f"{per_trip:.2f} ms per round trip")  # fmt: skip
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        if args.spawn:
            hubs = await spawn_hubs(nursery, args.spawn, args)
            urls, pids = [h.url for h in hubs], [h.pid for h in hubs]
        else:
            urls, pids = list(args.url), []
        async with cast_for(args, users=1) as cast:
            print(report(await run(urls, pids, args, cast), args), flush=True)
        nursery.cancel_scope.cancel()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.agent_roundtrip", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--url", action="append", default=[], help="a running hub (repeatable)")
    parser.add_argument("--spawn", type=int, default=0, help="start this many hub processes")
    parser.add_argument("--split", action="store_true", help="gateways on the last hub")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=10, help="chunks per reply")
    parser.add_argument("--rate", type=float, default=20.0, help="paced round trips/s")
    parser.add_argument("--outstanding", type=int, default=0, help="round trips in flight")
    parser.add_argument("--reuse-id", action="store_true", help="reply under the user msg id")
    parser.add_argument(
        "--lean-gateway", action="store_true",
        help="send only chunks and a bare completion (no status frames, no chunks array): "
        "the frame mix of earlier bench runs, for comparison",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    add_hub_arguments(parser, base_port=3200)
    args = parser.parse_args(argv)
    check_hub_arguments(parser, args)
    if args.split and len(args.url) + args.spawn < 2:
        parser.error("--split needs two hubs")
    return args


if __name__ == "__main__":
    trio.run(main, parse_args())

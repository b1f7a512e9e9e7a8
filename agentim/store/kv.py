"""Redis: counters (Lua INCR+EXPIRE), flags, sets, pub/sub.

The hot calls (`incr_window`, `publish`, `get`, `mget`, `set`, `delete`) go over the trio-native
client in `resp.py`; the rest goes through redis.asyncio on the bridge (STYLE §5.23). Sentinel URLs
use redis.asyncio for everything: the native client does not speak the sentinel discovery
protocol.

Keys are the reference's (`rl:*`, `ws:rate:*`, `revoked:*`, `rm:*`, `conv:<id>:visited`,
`oauth_state:*`) plus the events stream `agentim:events`, with an optional prefix
(REDIS_KEY_PREFIX). Every Redis failure surfaces as KvUnavailable.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions
import trio
from redis.asyncio.sentinel import Sentinel

from agentim.store import resp
from agentim.store.bridge import aio
from agentim.store.db import StartupError

log = logging.getLogger("Redis")

PING_ATTEMPTS: Final = 3  # api.md §16.2
PING_RETRY_DELAY_S: Final = 1.0
COMMAND_TIMEOUT_S: Final = 5.0
# redis.asyncio's default pool raises "Too many connections" past its cap; a blocking pool makes
# bursts wait (at most COMMAND_TIMEOUT_S) for a free connection instead.
AIO_MAX_CONNECTIONS: Final = 64
CLOSE_TIMEOUT_S: Final = 2.0  # closing the clients on shutdown
# Events: each is appended to one Redis stream (a key, so it lives in the URL's database under
# the key prefix) and, in the same atomic step, pushed on a pub/sub channel with its entry id.
# Subscribers get pushes (cheap); after a lost subscription they read what they missed from the
# stream. Channels are server-wide, so the channel name carries the prefix and the database
# number: hubs sharing a Redis server never see each other's events.
EVENTS_STREAM: Final = "agentim:events"
EVENT_FIELD: Final = b"e"  # a stream entry's one field: the encoded event
# The stream keeps about this many entries (XADD MAXLEN ~): a subscriber away for less time than
# the hub takes to publish them misses nothing (100 s at 100 events/s, a few MB of memory).
EVENTS_STREAM_MAXLEN: Final = 10_000
# KEYS[1] stream; ARGV channel, payload, maxlen. The push is `<entry id>\n<payload>`.
_PUBLISH_EVENT_LUA: Final = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
redis.call('PUBLISH', ARGV[1], id .. '\\n' .. ARGV[2])
return id
"""
# One atomic step: INCR, and EXPIRE only on the first hit, so windows are fixed (api.md §2.4).
_INCR_WINDOW_LUA: Final = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""
# What a native call can fail with; each one surfaces as KvUnavailable.
_NATIVE_FAILURES: Final = (
    resp.RespError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
)


@functools.cache
def _sha1(lua: str) -> str:
    return hashlib.sha1(lua.encode()).hexdigest()


class KvUnavailable(Exception):
    """Redis did not answer; callers fall back as the spec says (D16)."""


def _sentinel_client(url: str) -> aioredis.Redis:
    """`redis+sentinel://[:password@]host:port[,host:port]/service[/db]` (rediss+ for TLS)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")
    password = unquote(netloc[0].partition(":")[2]) or None if netloc[1] else None
    hosts = []
    for item in netloc[2].split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        hosts.append((host or item, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    service = path[0] if path else "mymaster"
    db = int(path[1]) if len(path) > 1 else 0
    ssl = parts.scheme.startswith("rediss")
    sentinel = Sentinel(hosts, sentinel_kwargs={"password": password}, ssl=ssl)
    return sentinel.master_for(service, password=password, db=db, ssl=ssl)


def url_db(url: str) -> int:
    """The database number a Redis URL selects (0 unless it says otherwise)."""
    if _is_sentinel(url):
        path = [p for p in urlsplit(url).path.split("/") if p]
        return int(path[1]) if len(path) > 1 else 0
    return resp.parse_url(url).db


def _is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme.endswith("+sentinel")


def client_for(url: str) -> aioredis.Redis:
    if _is_sentinel(url):
        return _sentinel_client(url)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=AIO_MAX_CONNECTIONS,
        timeout=COMMAND_TIMEOUT_S,  # the wait for a free pooled connection
        socket_timeout=COMMAND_TIMEOUT_S,
        socket_connect_timeout=COMMAND_TIMEOUT_S,
    )
    return aioredis.Redis.from_pool(pool)  # the client's aclose closes the pool


def native_pool_for(url: str) -> resp.Pool | None:
    """The trio-native pool for the hot calls; None for sentinel URLs (redis.asyncio only)."""
    return None if _is_sentinel(url) else resp.Pool(url)


class Kv:
    """Typed trio functions over one redis.asyncio client and, if given, a native pool.

    Without a native pool (sentinel, or a bare client in tests) every call uses redis.asyncio.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "",
        native: resp.Pool | None = None,
        db: int = 0,
    ) -> None:
        self._client = client
        self._native = native
        self.prefix = prefix
        self.db = db  # the URL's database number: pub/sub channels are server-wide
        self._scripts: dict[str, Any] = {}  # Lua source → redis.asyncio script object

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    @property
    def native(self) -> resp.Pool | None:
        return self._native

    def key(self, name: str) -> str:
        return self.prefix + name

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with trio.fail_after(COMMAND_TIMEOUT_S):
                return await aio(method, *args, **kwargs)
        except (redis.exceptions.RedisError, OSError, trio.TooSlowError) as exc:
            raise KvUnavailable(str(exc) or type(exc).__name__) from exc

    async def _native_call(self, pool: resp.Pool, *args: resp.Arg) -> resp.Reply:
        with _native_guard():
            return await pool.call(*args)

    async def ping(self) -> bool:
        """Both clients answer (the native one too, so a URL it cannot use fails at startup)."""
        if self._native is not None:
            await self._native_call(self._native, "PING")
        return bool(await self._call(self._client.ping))

    async def get(self, name: str) -> str | None:
        if self._native is not None:
            value = await self._native_call(self._native, "GET", self.key(name))
        else:
            value = await self._call(self._client.get, self.key(name))
        return value.decode() if isinstance(value, bytes) else None

    async def mget(self, *names: str) -> list[str | None]:
        """The keys' values (None where missing) in one round trip."""
        if not names:
            return []
        keys = [self.key(n) for n in names]
        if self._native is not None:
            values = await self._native_call(self._native, "MGET", *keys)
        else:
            values = await self._call(self._client.mget, keys)
        if not isinstance(values, list):
            raise KvUnavailable(f"expected an array reply, got {values!r}")
        return [v.decode() if isinstance(v, bytes) else None for v in values]

    async def set(self, name: str, value: str, *, ex: int | None = None, nx: bool = False) -> bool:
        if self._native is None:
            return bool(await self._call(self._client.set, self.key(name), value, ex=ex, nx=nx))
        args: list[resp.Arg] = ["SET", self.key(name), value]
        if ex is not None:
            args += ["EX", ex]
        if nx:
            args.append("NX")
        return await self._native_call(self._native, *args) is not None  # NX not met: null

    async def getdel(self, name: str) -> str | None:
        """Read and delete in one step (a one-time value such as an OAuth state)."""
        if self._native is not None:
            value = await self._native_call(self._native, "GETDEL", self.key(name))
        else:
            value = await self._call(self._client.getdel, self.key(name))
        return value.decode() if isinstance(value, bytes) else None

    async def delete(self, *names: str) -> int:
        keys = [self.key(n) for n in names]
        if self._native is None:
            return int(await self._call(self._client.delete, *keys))
        return _as_int(await self._native_call(self._native, "DEL", *keys))

    async def ttl(self, name: str) -> int:
        return int(await self._call(self._client.ttl, self.key(name)))

    async def incr_window(self, name: str, window_s: int, hits: int = 1) -> tuple[int, int]:
        """Count `hits` in a fixed window (the first hit starts it); returns (count, ttl s)."""
        reply = await self.eval_script(_INCR_WINDOW_LUA, [self.key(name)], [window_s, hits])
        if not (isinstance(reply, list) and len(reply) == 2):
            raise KvUnavailable(f"unexpected reply to the window script: {reply!r}")
        return _as_int(reply[0]), _as_int(reply[1])

    async def eval_script(
        self, lua: str, keys: Sequence[str], args: Sequence[resp.Arg]
    ) -> resp.Reply:
        """Run a Lua script (EVALSHA; EVAL once when the server lacks it). Keys are passed as
        given (already prefixed)."""
        if self._native is None:
            script = self._scripts.get(lua)
            if script is None:
                script = self._scripts[lua] = self._client.register_script(lua)
            return await self._call(script, keys=list(keys), args=list(args))  # type: ignore[no-any-return]
        with _native_guard():
            try:
                return await self._native.call("EVALSHA", _sha1(lua), len(keys), *keys, *args)
            except resp.RespError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            return await self._native.call("EVAL", lua, len(keys), *keys, *args)

    async def sadd_expire(self, name: str, member: str, ttl_s: int) -> None:
        await self._call(self._client.sadd, self.key(name), member)
        await self._call(self._client.expire, self.key(name), ttl_s)

    async def sismember(self, name: str, member: str) -> bool:
        return bool(await self._call(self._client.sismember, self.key(name), member))

    async def smembers(self, name: str) -> builtins.set[str]:
        members = await self._call(self._client.smembers, self.key(name))
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def scan_keys(self, pattern: str) -> list[str]:
        """Keys matching pattern (without the prefix); for operators' checks and tests."""
        found: list[str] = []
        cursor = 0
        while True:
            cursor, batch = await self._call(
                self._client.scan, cursor, match=self.key(pattern), count=500
            )
            found.extend(k.decode()[len(self.prefix) :] for k in batch)
            if int(cursor) == 0:
                return found

    @property
    def events_channel(self) -> str:
        return f"{self.key(EVENTS_STREAM)}:{self.db}"

    async def publish_events(self, payloads: list[bytes]) -> None:
        """Store and push each payload, in order, in one round trip (pipelined).

        Raises KvUnavailable if Redis did not answer or refused an event (out of memory).
        """
        key, channel = self.key(EVENTS_STREAM), self.events_channel
        if self._native is None:
            for payload in payloads:
                await self.eval_script(
                    _PUBLISH_EVENT_LUA, [key], [channel, payload, EVENTS_STREAM_MAXLEN]
                )
            return
        sha = _sha1(_PUBLISH_EVENT_LUA)
        args: list[tuple[resp.Arg, ...]] = [
            (key, channel, p, EVENTS_STREAM_MAXLEN) for p in payloads
        ]
        with _native_guard():
            replies = await self._native.call_many([("EVALSHA", sha, 1, *a) for a in args])
            unknown = [i for i, r in enumerate(replies) if _is_noscript(r)]
            if unknown:  # a restarted Redis has an empty script cache
                again = await self._native.call_many(
                    [("EVAL", _PUBLISH_EVENT_LUA, 1, *args[i]) for i in unknown]
                )
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
        refused = [r for r in replies if isinstance(r, resp.RespError)]
        if refused:
            raise KvUnavailable(f"{len(refused)} of {len(replies)} events refused: {refused[0]}")

    async def stream_last_id(self) -> bytes:
        """The id of the events stream's newest entry; `0-0` when it is empty or missing."""
        entries = await self._stream_call("XREVRANGE", "+", "-", "COUNT", 1)
        return entries[0][0] if entries else b"0-0"

    async def stream_has(self, entry_id: bytes) -> bool:
        """Whether the events stream still holds the entry (not trimmed, not lost)."""
        return bool(await self._stream_call("XRANGE", entry_id, entry_id))

    async def stream_after(self, entry_id: bytes, count: int) -> list[resp.StreamEntry]:
        """Up to `count` entries of the events stream after `entry_id`, oldest first."""
        key = self.key(EVENTS_STREAM)
        reply = await self._raw("XREAD", "COUNT", count, "STREAMS", key, entry_id)
        if not reply:  # nothing after it (the server's null; redis.asyncio makes it [])
            return []
        if not (isinstance(reply, list) and reply and isinstance(reply[0], list)):
            raise KvUnavailable(f"unexpected reply to XREAD: {reply!r:.100}")
        return _entries(reply[0][1])

    async def _stream_call(self, command: str, *args: resp.Arg) -> list[resp.StreamEntry]:
        return _entries(await self._raw(command, self.key(EVENTS_STREAM), *args))

    async def _raw(self, *args: resp.Arg) -> resp.Reply:
        """A command whose reply is wanted as the server sent it (no redis-py parsing)."""
        if self._native is not None:
            return await self._native_call(self._native, *args)
        reply = await self._call(self._client.execute_command, *args, NEVER_DECODE=True)
        return _as_reply(reply)


def _entries(reply: resp.Reply) -> list[resp.StreamEntry]:
    try:
        return resp.stream_entries(reply, EVENT_FIELD)
    except resp.RespError as exc:
        raise KvUnavailable(str(exc)) from exc


def _as_reply(value: Any) -> resp.Reply:
    """redis-py's answer to a raw command as resp.Reply (tuples and lists of bytes and ints)."""
    if isinstance(value, list | tuple):
        return [_as_reply(v) for v in value]
    if isinstance(value, dict):  # a parsed stream entry's fields
        return [x for pair in value.items() for x in map(_as_reply, pair)]
    if isinstance(value, str):
        return value.encode()
    return value  # type: ignore[no-any-return]


def _is_noscript(reply: resp.Reply) -> bool:
    return isinstance(reply, resp.RespError) and str(reply).startswith("NOSCRIPT")


@contextmanager
def _native_guard() -> Iterator[None]:
    """The command timeout, and every native failure as KvUnavailable."""
    try:
        with trio.fail_after(COMMAND_TIMEOUT_S):
            yield
    except _NATIVE_FAILURES as exc:
        raise KvUnavailable(str(exc) or type(exc).__name__) from exc


def _as_int(reply: resp.Reply) -> int:
    if not isinstance(reply, int):
        raise KvUnavailable(f"expected an integer reply, got {reply!r}")
    return reply


async def _ping_with_retry(kv: Kv) -> None:
    for attempt in range(1, PING_ATTEMPTS + 1):
        try:
            await kv.ping()
            return
        except KvUnavailable as exc:
            log.warning("Redis ping attempt %d failed: %s", attempt, exc)
        if attempt < PING_ATTEMPTS:
            await trio.sleep(PING_RETRY_DELAY_S)
    raise StartupError("Error: Redis connection refused")


@asynccontextmanager
async def open_redis(url: str, *, prefix: str = "") -> AsyncIterator[Kv]:
    """Connect and PING (3 tries, 1 s apart); closed on exit."""
    native = native_pool_for(url)
    kv = Kv(client_for(url), prefix=prefix, native=native, db=url_db(url))
    try:
        await _ping_with_retry(kv)
        yield kv
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            if native is not None:
                await native.aclose()
            await aio(kv.client.aclose)
        log.info("Redis connection closed")


# Presence across processes (DIFFERENCES D15): `presence:<userId>` is the set of hub processes
# holding a client socket of the user; `presence:hub:<processId>` says a process is alive
# (its heartbeat, store/processes.py), so members left by a dead process are pruned; and
# `presence:users:<processId>` (userId → username) is what a survivor reclaims when it dies.
# KEYS: the user's set, the process's users. ARGV: process id, liveness prefix, set TTL s,
# user id, username.
_PRESENCE_JOIN_LUA: Final = """
local others = 0
for _, pid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if pid ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[2] .. pid) == 1 then others = others + 1
    else redis.call('SREM', KEYS[1], pid) end
  end
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then others = others + 1 end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
return others
"""
# KEYS: the user's set, the process's users. ARGV: process id, liveness prefix, user id.
_PRESENCE_LEAVE_LUA: Final = """
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[3])
local count = 0
for _, pid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[2] .. pid) == 1 then count = count + 1
  else redis.call('SREM', KEYS[1], pid) end
end
return count
"""
PRESENCE_SET_TTL_S: Final = 86400  # a user's set outlives any one socket; renewed on each join


class PresenceKv:
    """The two presence steps, each one atomic script."""

    def __init__(self, kv: Kv) -> None:
        self._kv = kv

    def _alive_prefix(self) -> str:
        return self._kv.key("presence:hub:")

    def _keys(self, user_id: str, process_id: str) -> list[str]:
        return [self._kv.key(f"presence:{user_id}"), self._kv.key(f"presence:users:{process_id}")]

    async def join(self, user_id: str, username: str, process_id: str) -> int:
        """Add this process to the user's set; returns how many live processes had it before."""
        result = await self._kv.eval_script(
            _PRESENCE_JOIN_LUA, self._keys(user_id, process_id),
            [process_id, self._alive_prefix(), PRESENCE_SET_TTL_S, user_id, username],
        )  # fmt: skip
        return _as_int(result)

    async def leave(self, user_id: str, process_id: str) -> int:
        """Remove this process from the user's set; returns how many live processes remain."""
        result = await self._kv.eval_script(
            _PRESENCE_LEAVE_LUA, self._keys(user_id, process_id),
            [process_id, self._alive_prefix(), user_id],
        )  # fmt: skip
        return _as_int(result)


# Web Push (issue 21 item 7): which of these users has a client socket on any live hub process
# (a member of `presence:<userId>` whose `presence:hub:<processId>` still exists). Read-only.
# KEYS: the users' sets. ARGV: liveness prefix. Returns 1/0 per key, in order.
_PRESENCE_ONLINE_LUA: Final = """
local result = {}
for i, key in ipairs(KEYS) do
  result[i] = 0
  for _, pid in ipairs(redis.call('SMEMBERS', key)) do
    if redis.call('EXISTS', ARGV[1] .. pid) == 1 then result[i] = 1 break end
  end
end
return result
"""


async def online_users(kv: Kv, user_ids: Sequence[str]) -> builtins.set[str]:
    """The users among `user_ids` with a client socket on some live hub process."""
    if not user_ids:
        return set()
    keys = [kv.key(f"presence:{user_id}") for user_id in user_ids]
    reply = await kv.eval_script(_PRESENCE_ONLINE_LUA, keys, [kv.key("presence:hub:")])
    if not isinstance(reply, list) or len(reply) != len(user_ids):
        raise KvUnavailable(f"unexpected reply to the presence script: {reply!r}")
    return {user_id for user_id, flag in zip(user_ids, reply, strict=True) if flag == 1}

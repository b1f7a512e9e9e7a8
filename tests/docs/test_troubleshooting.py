"""docs/TROUBLESHOOTING.md checked against the hub: every claim an operator could act on.

The guide is parsed (headings, code blocks, quoted texts, variable names, SQL, greps), so a claim
edited in the guide without making it true fails here. Each test names the section it checks;
error texts are produced by the hub itself (HTTP, WebSocket, or `agentim` run as a process), SQL
runs as written against the test database, greps run over log lines the hub really wrote.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import shlex
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import httpx
import trio
import trio_websocket

from agentim import __version__, logs
from agentim.auth.tokens import TokenService, digest
from agentim.errors import ErrorCode
from agentim.protocol.ids import new_id
from agentim.settings import DEFAULT_MIME_TYPES, LOG_LEVELS, Settings, problems, redis_url_problem
from agentim.ws import endpoints as ws_endpoints, gateway_session, listener, session as ws_session
from tests.cli.procs import ROOT, base_env, free_port, run_cli
from tests.conftest import TEST_JWT_SECRET, start_hub
from tests.gateway_helpers import (
    Gateway,
    add_agent_to_room,
    agent_name,
    connect_gateway,
    signed_in_gateway,
    wait_status,
)
from tests.helpers import (
    RunningHub,
    User,
    create_room,
    create_user,
    login,
    signed_in_user,
)
from tests.http.routers_support import router_body
from tests.ws.wsclient import connect, signed_in

GUIDE = (ROOT / "docs" / "TROUBLESHOOTING.md").read_text()
WAIT_S = 10.0
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(32))

# The seed guide's headings, in order: ours covers every one of them (DIFFERENCES D1).
SEED_HEADINGS = (
    "## Server Won't Start",
    "### Missing required environment variables",
    "### Cannot connect to PostgreSQL",
    "### Cannot connect to Redis",
    "### Database migration fails",
    "## Authentication Problems",
    '### "Invalid credentials" even with correct password',
    '### "Token revoked" on WebSocket',
    "### Refresh token loop (constantly prompted to log in)",
    "## WebSocket Issues",
    "### Clients keep disconnecting",
    '### "Authentication timeout" (code 4001)',
    "### Messages not delivered to agents",
    "## Agent / Gateway Issues",
    "### Gateway connects but agents stay offline",
    "### Agent messages not appearing in chat",
    "### Agent-to-agent routing stopped",
    "## File Upload Issues",
    '### "File type is not allowed"',
    '### "File content does not match declared type"',
    "### Upload directory not writable",
    "## Performance Issues",
    "### High database CPU",
    "### High Redis memory usage",
    "### High server memory",
    "## Logging",
    "### Log levels",
    "### Structured log fields",
    "### Finding specific issues",
    "### Audit log queries",
    "## Docker / Deployment",
    "### Container exits immediately",
    "### CORS errors in browser",
    "### Push notifications do not arrive",
    "### WebSocket connection blocked by reverse proxy",
    "## Getting Help",
)


# parsing the guide -----------------------------------------------------------------------------
def _without_code(text: str) -> str:
    return re.sub(r"^ *```.*?^ *```", "", text, flags=re.M | re.S)


def section(title: str) -> str:
    """The text under the heading `title` up to the next heading of its level or above."""
    level, fenced, found = 0, False, []
    for line in GUIDE.splitlines(keepends=True):
        fenced ^= line.lstrip().startswith("```")
        heading = None if fenced else re.match(r"(#+) (.+)$", line.rstrip("\n"))
        if not level:
            level = len(heading.group(1)) if heading and heading.group(2) == title else 0
        elif heading and len(heading.group(1)) <= level:
            break
        else:
            found.append(line)
    assert level, f"heading {title!r} is missing from the guide"
    return "".join(found)


def search(pattern: str, text: str, flags: int = 0) -> tuple[str, ...]:
    found = re.search(pattern, text, flags)
    assert found, f"/{pattern}/ not found"
    return found.groups()


def blocks(text: str, lang: str | None = None) -> list[str]:
    """Fenced code blocks (dedented); `lang` "" means blocks without a language tag."""
    found = re.findall(r"^ *```(\w*)\n(.*?)^ *```", text, re.M | re.S)
    return [textwrap.dedent(body) for kind, body in found if lang is None or kind == lang]


def claim(pattern: str, text: str = GUIDE) -> tuple[str, ...]:
    """The groups of the guide's sentence matching `pattern` (whitespace-tolerant)."""
    found = re.search(pattern.replace(" ", r"\s+"), text)
    assert found, f"the guide no longer says /{pattern}/"
    return found.groups()


def bre(pattern: str) -> re.Pattern[str]:
    """A grep basic regular expression as a Python one (`\\|` alternates; `+?(){}|` literal)."""
    out, chars = [], iter(pattern)
    for char in chars:
        if char == "\\":
            nxt = next(chars)
            out.append("|" if nxt == "|" else "\\" + nxt)
        elif char in "+?(){}|":
            out.append("\\" + char)
        else:
            out.append(char)
    return re.compile("".join(out))


def run_pipeline(command: str, lines: list[str]) -> list[str]:
    """`grep 'x' server.log | grep 'y' | jq .` over `lines` (jq checks each line is JSON)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    stages: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            stages.append([])
        else:
            stages[-1].append(token)
    for stage in stages:
        if stage[0] == "grep":
            rx = bre(stage[1])
            lines = [line for line in lines if rx.search(line)]
        elif stage[:2] == ["jq", "."]:
            for line in lines:
                json.loads(line)
        else:
            raise AssertionError(f"the test cannot run `{' '.join(stage)}` from the guide")
    return lines


def message_template(msg: str) -> re.Pattern[str]:
    """A log message as the guide shows it: `<id>` any id, `N`/`M` any number."""
    rx = re.escape(msg).replace("<id>", r"[\w-]+")
    return re.compile(re.sub(r"\b[NM]\b", r"\\d+", rx))


# the hub's log lines -------------------------------------------------------------------------
@attrs.define
class LogLines:
    stream: io.StringIO

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    async def wait_for(self, text: str) -> None:
        with trio.fail_after(WAIT_S):
            while text not in self.stream.getvalue():  # noqa: ASYNC110
                await trio.sleep(0.02)  # log lines: polling is the only way to watch them


@contextmanager
def captured_logs(*, budgeted: bool = False) -> Iterator[LogLines]:
    """Every record the hub logs meanwhile, as the JSON lines it writes to stdout."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    if budgeted:
        handler.addFilter(logs.BudgetFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield LogLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# scenes --------------------------------------------------------------------------------------
@attrs.frozen
class Agent:
    id: str
    name: str


@attrs.frozen
class Scene:
    owner: User
    room_id: str
    agents: list[Agent]
    gateway: Gateway


@asynccontextmanager
async def agent_scene(hub: RunningHub, count: int) -> AsyncIterator[Scene]:
    """A room of an owner with `count` agents registered on one gateway."""
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agents = [Agent(f"agent-{new_id(8)}", agent_name()) for _ in range(count)]
    async with signed_in_gateway(hub, owner) as gateway:
        for agent in agents:
            await gateway.register(agent.id, agent.name)
            await add_agent_to_room(hub, room_id, agent.id)
        yield Scene(owner, room_id, agents, gateway)


async def complete(scene: Scene, agent: Agent, content: str, **extra: Any) -> None:
    await scene.gateway.complete(scene.room_id, agent.id, new_id(), content, **extra)


async def a2a_hop(scene: Scene, conversation_id: str) -> dict[str, Any]:
    """The first agent mentions the second, which gets the delivery."""
    first, second = scene.agents[:2]
    await complete(scene, first, f"@{second.name} over to you", conversationId=conversation_id,
                   depth=0)  # fmt: skip
    return await scene.gateway.receive_type("server:send_to_agent")


def http_client(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.url, timeout=30)


# Server Won't Start ------------------------------------------------------------------------------
def test_every_seed_section_is_covered_in_order() -> None:
    headings = re.findall(r"^#{2,3} .+$", _without_code(GUIDE), re.M)
    positions = [headings.index(h) if h in headings else -1 for h in SEED_HEADINGS]
    missing = [h for h, p in zip(SEED_HEADINGS, positions, strict=True) if p < 0]
    assert not missing, f"seed sections missing from the guide: {missing}"
    assert positions == sorted(positions), "seed sections are out of order"


# Every variable the guide names, with a value that changes Settings when it is read.
ENV_SAMPLES = {
    "AGENTIM_ENV": "production",
    "NODE_ENV": "production",
    "LOG_LEVEL": "warn",
    "DATA_DIR": "/srv/agentim",
    "DATABASE_URL": "postgres://u:p@db:5432/agentim",
    "REDIS_URL": "redis://:p@redis:6379",
    "JWT_SECRET": "s" * 40,
    "JWT_SECRET_PREVIOUS": "p" * 40,
    "JWT_ACCESS_EXPIRY": "30m",
    "JWT_REFRESH_EXPIRY": "30d",
    "ENCRYPTION_KEY": "e" * 40,
    "ADMIN_PASSWORD": "Adm1nPassword",
    "CORS_ORIGIN": "https://chat.example.com",
    "TRUST_PROXY": "true",
    "TRUST_PROXY_HOPS": "2",
    "WS_AUTH_TIMEOUT_MS": "5000",
    "WS_PING_INTERVAL_MS": "5000",
    "CLIENT_RATE_LIMIT_MAX": "5",
    "CLIENT_RATE_LIMIT_WINDOW": "5",
    "MAX_AGENT_CHAIN_DEPTH": "3",
    "AGENT_RATE_LIMIT_MAX": "5",
    "AGENT_RATE_LIMIT_WINDOW": "5",
    "ALLOWED_MIME_TYPES": "image/png,text/plain",
    "MAX_AGENT_MESSAGE_BYTES": "2048",
    "UPLOAD_DIR": "/srv/uploads",
    "REDIS_KEY_PREFIX": "chat:",
    "HUB_LIVENESS_TTL_MS": "60000",
    "HUB_RECLAIM_INTERVAL_MS": "5000",
    "GATEWAY_MAX_OFFLINE_DAYS": "7",
    "GATEWAY_CLEANUP_INTERVAL": "3600000",
    "VAPID_PUBLIC_KEY": "BExamplePublicKey",
    "VAPID_PRIVATE_KEY": "examplePrivateKey",
    "PUSH_ALLOW_PRIVATE_NETWORKS": "true",
    "AUDIT_LOG_RETENTION_DAYS": "30",
    "AUDIT_LOG_CLEANUP_INTERVAL": "3600000",
    # service agents
    "ROUTER_ALLOW_PRIVATE_NETWORKS": "true",
    "SERVICE_AGENT_TIMEOUT_MS": "5000",
    "OAUTH_GITHUB_CLIENT_ID": "Iv1.abc",
    "OAUTH_GITHUB_CLIENT_SECRET": "gh-secret",
    "OAUTH_GOOGLE_CLIENT_ID": "123.apps.example",
    "OAUTH_GOOGLE_CLIENT_SECRET": "g-secret",
    # uploads in an S3-compatible bucket
    "STORAGE_PROVIDER": "s3",
    "S3_BUCKET": "agentim-uploads",
    "S3_REGION": "eu-central-1",
    "S3_ENDPOINT": "http://minio:9000",
    "S3_ACCESS_KEY_ID": "minio-key",
    "S3_SECRET_ACCESS_KEY": "minio-secret",
    "S3_FORCE_PATH_STYLE": "false",
}
ALIASES = {"NODE_ENV"}  # read as a fallback; .env.example mentions it rather than setting it


def test_every_variable_named_is_in_env_example_and_read_by_settings() -> None:
    example = (ROOT / "config" / ".env.example").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.M))
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", GUIDE))
    named -= {code.value for code in ErrorCode}  # wire codes, not variables
    assert {"JWT_SECRET", "WS_PING_INTERVAL_MS", "TRUST_PROXY_HOPS"} <= named
    baseline = Settings.from_env({})
    for name in sorted(named):
        assert name in (example if name in ALIASES else assigned), f"{name} not in .env.example"
        assert name in ENV_SAMPLES, f"the guide names {name}: add a sample value to this test"
        assert Settings.from_env({name: ENV_SAMPLES[name]}) != baseline, f"{name} is not read"


def test_the_defaults_the_guide_states() -> None:
    s = Settings.from_env({})
    stated = [
        (claim(r"`WS_PING_INTERVAL_MS` \(default (\d+)\)"), s.ws_ping_interval_s * 1000),
        (claim(r"`CLIENT_RATE_LIMIT_MAX` messages \(default (\d+)\)"), s.client_rate_limit_max),
        (claim(r"`CLIENT_RATE_LIMIT_WINDOW` seconds \(default (\d+)\)"),
         s.client_rate_limit_window),
        (claim(r"`WS_AUTH_TIMEOUT_MS` \(default (\d+) seconds\)"), s.ws_auth_timeout_s),
        (claim(r"`MAX_AGENT_CHAIN_DEPTH`, default (\d+)"), s.max_agent_chain_depth),
        (claim(r"`AGENT_RATE_LIMIT_MAX` replies, default (\d+)"), s.agent_rate_limit_max),
        (claim(r"`AGENT_RATE_LIMIT_WINDOW` seconds, default (\d+)"), s.agent_rate_limit_window),
        (claim(r"`JWT_REFRESH_EXPIRY`, (\d+) days by default"), s.refresh_ttl_s / 86400),
        (claim(r"(\d+)MB max per agent message, `MAX_AGENT_MESSAGE_BYTES`"),
         s.max_agent_message_bytes / 2**20),
        (claim(r"curl http://localhost:(\d+)/api/health"), s.port),
    ]  # fmt: skip
    for (text,), value in stated:
        assert float(text) == value, (text, value)
    production, development = claim(r"Default: `?(\w+)`? in production, `?(\w+)`? in development")
    assert Settings.from_env({"AGENTIM_ENV": "production"}).log_level == production
    assert Settings.from_env({"AGENTIM_ENV": "development"}).log_level == development


def test_production_refuses_the_quoted_configuration_errors(tmp_path: Path) -> None:
    text = section("Missing required environment variables")
    expected = blocks(text, "")[0].strip().splitlines()
    env = base_env(AGENTIM_ENV="production", JWT_SECRET="too-short", CORS_ORIGIN="https://x.io",
                   DATABASE_URL="postgresql://db/x", REDIS_URL="redis://r:6379")  # fmt: skip
    for command in ("serve", "check-config"):  # "refuses to start" / "prints the same list"
        result = run_cli([command], env, tmp_path)
        assert result.returncode == 1, result.stderr
        assert set(expected) <= set(result.stderr.splitlines()), (command, result.stderr)


def test_the_suggested_secrets_are_long_enough() -> None:
    [script] = blocks(section("Missing required environment variables"), "bash")
    for size, name in re.findall(r"openssl rand -base64 (\d+)\s+# (\w+)", script):
        secret = base64.b64encode(os.urandom(int(size))).decode()
        env = {"AGENTIM_ENV": "production", name: secret}
        assert not [p for p in problems(Settings.from_env(env)) if p.startswith(f"{name} must")]
        assert len(secret) >= 8


def test_postgres_unreachable_prints_econnrefused_after_three_tries(
    tmp_path: Path, redis_url: str
) -> None:
    text = section("Cannot connect to PostgreSQL")
    [quoted] = [b.strip() for b in blocks(text, "")]
    tries, delay = claim(r"tries (\d+) times, (\d+) s apart", text)
    (url_format,) = claim(r"Format: `(postgres://[^`]+)`", text)
    port = free_port()
    url = url_format.replace("user:password@host:5432/dbname", f"postgres:x@127.0.0.1:{port}/x")
    env = base_env(DATABASE_URL=url, REDIS_URL=redis_url, JWT_SECRET=TEST_JWT_SECRET,
                   DATA_DIR=str(tmp_path / "d"), UPLOAD_DIR=str(tmp_path / "up"))  # fmt: skip
    started = time.monotonic()
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert re.sub(r":5432$", f":{port}", quoted) in result.stderr.splitlines()
    assert result.stdout.count("PostgreSQL connection attempt") == int(tries)
    plain = claim(
        r"between two plain lines the hub prints for people: `(\w+[^`]*?) http[^`]*`"
        r"[^`]+`([^`/]+?) admin / …`"
    )
    for line in result.stdout.splitlines():  # "Logs are JSON lines on stdout"
        assert line.startswith(plain) or json.loads(line)["msg"], line
    # "In development nothing is required": the missing secrets were generated meanwhile
    name, mode = claim(r"generated once into\s+`DATA_DIR/([\w.]+)` \(mode (0\d+)\)")
    assert (tmp_path / "d" / name).stat().st_mode & 0o777 == int(mode, 8)
    assert time.monotonic() - started >= (int(tries) - 1) * int(delay)


def test_redis_unreachable_prints_connection_refused(tmp_path: Path, database_url: str) -> None:
    [quoted] = [b.strip() for b in blocks(section("Cannot connect to Redis"), "")]
    env = base_env(DATABASE_URL=database_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}",
                   JWT_SECRET=TEST_JWT_SECRET, DATA_DIR=str(tmp_path / "d"),
                   UPLOAD_DIR=str(tmp_path / "up"))  # fmt: skip
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert quoted in result.stderr.splitlines()


def test_every_redis_url_form_named_is_accepted() -> None:
    urls = re.findall(r"`((?:redis|rediss|unix|redis\+sentinel)://[^`]+)`",
                      section("Cannot connect to Redis"))  # fmt: skip
    assert {u.split("://")[0] for u in urls} == {"redis", "rediss", "unix", "redis+sentinel"}
    for url in urls:
        assert redis_url_problem(url) is None, url


def test_embedded_servers_live_where_the_guide_says() -> None:
    source = (ROOT / "agentim" / "embedded.py").read_text()
    source += (ROOT / "agentim" / "devsecrets.py").read_text()
    for path in re.findall(r"`DATA_DIR/([\w.]+)`", GUIDE):
        assert f'"{path}"' in source, f"DATA_DIR/{path} is not what embedded.py uses"


async def test_migrations_are_recorded_and_a_failing_file_stops_start_up(
    hub: RunningHub, database_url: str, tmp_path: Path
) -> None:
    text = section("Database migration fails")
    [query] = blocks(text, "sql")
    rows = await hub.services.db.fetch(query)
    assert rows and rows[0]["version"] == "0001" and all(r["applied_at"] for r in rows)

    (up_to_date,) = claim(r"`agentim migrate` then prints `([^`]+)`", text)
    env = base_env(DATABASE_URL=database_url, JWT_SECRET=TEST_JWT_SECRET)
    result = await trio.to_thread.run_sync(run_cli, ["migrate"], env, tmp_path)
    assert result.returncode == 0 and up_to_date in result.stdout

    [quoted] = [b.strip() for b in blocks(text, "")]
    folder = tmp_path / "migrations"
    folder.mkdir()
    # fails whether or not `users` exists already; nothing of it may stay behind
    (folder / "9999_broken.sql").write_text("CREATE TABLE users (id text);\n" * 2)
    script = (
        "import pathlib, sys\nimport agentim.store.schema as schema\n"
        "schema.migrations_dir = lambda: pathlib.Path(sys.argv[1])\n"
        "from agentim.cli import main\nmain(['migrate'])\n"
    )
    process = await trio.run_process(
        [sys.executable, "-c", script, str(folder)], env=env, cwd=tmp_path, capture_stdout=True,
        capture_stderr=True, check=False,
    )  # fmt: skip
    assert process.returncode == 1
    assert quoted in process.stderr.decode()
    assert await hub.services.db.fetchval(
        "SELECT count(*) FROM schema_migrations WHERE version = '9999'"
    ) == 0  # fmt: skip


# Authentication Problems ---------------------------------------------------------------------
def quoted_headings() -> set[str]:
    return set(re.findall(r'^### "([^"]+)"', _without_code(GUIDE), re.M))


def test_every_quoted_heading_text_is_checked_below() -> None:
    # Each of these is produced by the hub in the test named after it; a new one needs a test.
    assert quoted_headings() == {
        "Invalid credentials",  # test_lockout_and_its_sql
        "Token revoked",  # test_token_revoked_on_websocket
        "Authentication timeout",  # test_authentication_timeout_closes_4001
        "File type is not allowed",  # test_upload_errors
        "File content does not match declared type",  # test_upload_errors
    }


async def test_lockout_and_its_sql(hub: RunningHub, client: httpx.AsyncClient) -> None:
    text = section('"Invalid credentials" even with correct password')
    lockout = r"(\d+) consecutive failed login attempts trigger a (\d+)-minute lockout"
    attempts, minutes = map(int, claim(lockout, text))
    select_sql, update_sql = (q.replace("your-username", "{}") for q in blocks(text, "sql"))
    user = await create_user(hub)
    body = {"ok": False, "error": "Invalid credentials"}

    async def login_as(password: str) -> httpx.Response:
        return await client.post("/api/auth/login", json={"username": user.username,
                                                          "password": password})  # fmt: skip

    for _ in range(attempts):
        response = await login_as("Wrong-passw0rd")
        assert (response.status_code, response.json()) == (401, body)
    response = await login_as(user.password)  # "even with correct password"
    assert (response.status_code, response.json()) == (401, body)

    [row] = await hub.services.db.fetch(select_sql.format(user.username))
    assert (row["username"], row["failed_login_attempts"]) == (user.username, attempts)
    until = datetime.fromisoformat(row["locked_until"])
    expected = datetime.now(UTC) + timedelta(minutes=minutes)
    assert abs((until - expected).total_seconds()) < 60

    await hub.services.db.execute(update_sql.format(user.username))
    assert (await login_as(user.password)).status_code == 200


async def test_admin_password_is_reapplied_at_start_up(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    claim(r"re-hashes the admin password on startup")
    hub = await start_hub(nursery, attrs.evolve(settings, admin_password="N3wAdminPass"),
                          redis_prefix)  # fmt: skip
    async with http_client(hub) as http:
        credentials = {"username": "admin", "password": "N3wAdminPass"}
        response = await http.post("/api/auth/login", json=credentials)
    assert response.status_code == 200  # the next hub a test starts seeds the usual one again


async def test_token_revoked_on_websocket(hub: RunningHub, client: httpx.AsyncClient) -> None:
    text = section('"Token revoked" on WebSocket')
    code, close_code, reason = claim(
        r"`server:error` with code `(\w+)` and the socket closes with code (\d+) \(`([^`]+)`\)",
        text)  # fmt: skip
    (error,) = claim(r'`"error":"([^"]+)"`', text)
    claim(r"Only the sockets that\s+signed in with that session's access token close; the user's "
          r"other tabs, devices and\s+gateways stay connected", text)  # fmt: skip
    user = await login(client, await create_user(hub))
    other = await login(client, user)
    async with signed_in(hub, user) as ws, signed_in(hub, other) as other_ws:
        assert (await client.post("/api/auth/logout", headers=user.headers)).status_code == 200
        frame = await ws.receive_type("server:error")
        assert frame == {"type": "server:error", "code": code, "message": reason}
        closed = await ws.closed()
        assert (closed.code, closed.reason) == (int(close_code), reason)
        await other_ws.send({"type": "client:ping", "ts": 2})
        assert (await other_ws.receive_type("server:pong"))["ts"] == 2
        await _assert_refused_twice(hub, user, error, f"revoked_token:{digest(user.token)}")
        out = await client.post("/api/auth/logout-all", headers=other.headers)
        assert out.status_code == 200
        assert await other_ws.receive_type("server:error") == frame
    await _assert_refused_twice(hub, other, error, f"revoked:{user.id}")
    claim(r"Redis keeps them for the lifetime of an access token\s+\(`JWT_ACCESS_EXPIRY`\): "
          r"`revoked:<userId>` holds the user's cut-off", text)  # fmt: skip
    claim(r"`revoked_token:<sha256 of the token>` one logged-out\s+access token", text)
    claim(r"PostgreSQL keeps them too \(table `(revoked_tokens)`\)", text)
    claim(r"if Redis is down or was flushed, the hub checks PostgreSQL, so tokens issued before "
          r"the\s+revocation stay refused", text)  # fmt: skip


async def _assert_refused_twice(hub: RunningHub, user: User, error: str, key: str) -> None:
    """Refused with the key in Redis (kept for at most the access-token lifetime), and again
    once the key is gone: read from PostgreSQL and copied back."""
    kv = hub.services.kv
    kept = await kv.get(key)
    assert kept not in (None, "0")
    assert 0 < await kv.ttl(key) <= hub.services.settings.access_ttl_s
    await kv.delete(key)
    async with connect(hub) as ws:
        assert await ws.auth(user) == {"type": "server:auth_result", "ok": False, "error": error}
    assert await kv.get(key) == kept


def test_a_previous_jwt_secret_keeps_old_tokens_valid() -> None:
    claim(r"put the old value in `JWT_SECRET_PREVIOUS` until the old tokens have expired")
    old = TokenService("o" * 40, None, 900, 86400).issue("u1", "ada", "access")
    rotated = TokenService("n" * 40, "o" * 40, 900, 86400)
    assert rotated.verify(old).user_id == "u1"


# WebSocket Issues ------------------------------------------------------------------------------
UPGRADE = (
    b"GET /ws/client HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _silent_peer(hub: RunningHub) -> tuple[int, int, str]:
    """A raw socket that never answers pings: (pings seen, close code, close reason)."""
    stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
    async with stream:
        await stream.send_all(UPGRADE)
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        assert data.startswith(b"HTTP/1.1 101")
        data, pings = data.partition(b"\r\n\r\n")[2], 0
        while True:
            while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
                data += await stream.receive_some(65536)
            opcode, size = data[0] & 0x0F, data[1] & 0x7F  # server frames: small, unmasked
            payload, data = data[2 : 2 + size], data[2 + size :]
            if opcode == 0x9:
                pings += 1
            elif opcode == 0x8:
                return pings, int.from_bytes(payload[:2], "big"), payload[2:].decode()


async def test_the_hub_pings_and_closes_a_peer_that_misses_two(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    (missed,) = claim(r"closes a peer that misses (\w+) pings in a row")
    assert {"two": 2}[missed] == ws_session.MISSED_PONGS_ALLOWED + 1
    assert Settings.from_env({"WS_PING_INTERVAL_MS": "5000"}).ws_ping_interval_s == 5.0
    hub = await start_hub(nursery, attrs.evolve(settings, ws_ping_interval_s=0.2), redis_prefix)
    with trio.fail_after(WAIT_S):
        pings, code, reason = await _silent_peer(hub)
    assert (pings, code, reason) == (2, *ws_session.PING_TIMEOUT)
    async with connect(hub) as answering:  # trio-websocket answers pings: it stays
        await trio.sleep(1.0)
        await answering.send({"type": "client:ping", "ts": 1})
        assert await answering.receive() == {"type": "server:pong", "ts": 1}


async def test_client_rate_limit_answers_rate_limited_and_counts_in_redis(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    text = section("Clients keep disconnecting")
    (pattern,) = claim(r'redis-cli keys "([^"]+)"', text)
    (code,) = claim(r"beyond it the client gets `(\w+)`", text)
    hub = await start_hub(nursery, attrs.evolve(settings, client_rate_limit_max=2), redis_prefix)
    user = await signed_in_user(hub)
    async with signed_in(hub, user) as ws:
        for _ in range(3):
            await ws.send({"type": "client:typing", "roomId": "not-joined"})
        frame = await ws.receive_type("server:error")
    assert frame == {"type": "server:error", "code": code,
                     "message": "Too many messages, please slow down"}  # fmt: skip
    assert f"ws:rate:{user.id}" in await hub.services.kv.scan_keys(pattern)
    (slow_close,) = claim(r"closed \(code (\d+)\) rather than slowing everyone down", text)
    assert int(slow_close) == ws_session.SLOW_CONSUMER[0]  # set in session.send_nowait


async def test_authentication_timeout_closes_4001(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    reason, code = search(r'^### "([^"]+)" \(code (\d+)\)$', GUIDE, re.M)
    claim(r"did not send `client:auth` within `WS_AUTH_TIMEOUT_MS`")
    assert Settings.from_env({"WS_AUTH_TIMEOUT_MS": "300"}).ws_auth_timeout_s == 0.3
    hub = await start_hub(nursery, attrs.evolve(settings, ws_auth_timeout_s=0.3), redis_prefix)
    async with connect(hub) as ws:
        closed = await ws.closed()
    assert (closed.code, closed.reason) == (int(code), reason)


# Messages not delivered / Agent / Gateway Issues ---------------------------------------------
def example_line(title: str) -> tuple[int, str, re.Pattern[str]]:
    """The `{"level":…,"name":…,"msg":…}` example of a section: level, name, msg pattern."""
    [line] = [b.strip() for b in blocks(section(title), "")]
    shown = json.loads(line)
    return shown["level"], shown["name"], message_template(shown["msg"])


def logged(lines: LogLines, example: tuple[int, str, re.Pattern[str]], *ids: str) -> list[str]:
    level, name, template = example
    return [
        line["msg"] for line in lines.parsed()
        if (line["level"], line["name"]) == (level, name) and template.fullmatch(line["msg"])
        and all(i in line["msg"] for i in ids)
    ]  # fmt: skip


async def test_routing_decisions_offline_agents_and_chain_depth(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    text = section("Messages not delivered to agents")
    [grep] = blocks(text, "")
    (metric,) = claim(r"\(`(agentim_\w+)`\)", text)
    depth_example = example_line("Agent-to-agent routing stopped")
    with captured_logs() as lines:
        async with agent_scene(hub, 3) as scene:
            first, second, offline = scene.agents
            ids = {a.id for a in scene.agents}
            listed = (await client.get("/api/agents", headers=scene.owner.headers)).json()["data"]
            statuses = {a["id"]: a["status"] for a in listed if a["id"] in ids}
            assert statuses == dict.fromkeys(ids, "online")  # "Check `/api/agents` for status"

            delivery = await a2a_hop(scene, "conv-1")
            assert (delivery["agentId"], delivery["depth"]) == (second.id, 1)
            await lines.wait_for(f"→ direct [{second.id}]")

            await scene.gateway.send({"type": "gateway:unregister_agent", "agentId": offline.id})
            await wait_status(hub, offline.id, "offline")
            await complete(scene, first, f"@{offline.name} are you there?", conversationId="c2")
            await lines.wait_for(f"Agent {offline.id} is offline")

            await complete(scene, first, f"@{second.name} again", conversationId="c3", depth=5)
            await lines.wait_for("Chain depth 5 exceeds max 5")
            await scene.gateway.nothing(0.3, ignore=("server:pong",))
    assert run_pipeline(grep.strip(), lines.lines)  # the routeToAgents lines
    undelivered = [line for line in lines.parsed() if f"Agent {offline.id} is offline" in
                   line["msg"]]  # fmt: skip
    assert [line["name"] for line in undelivered] == ["GatewayHandler"]
    metrics = (await client.get("/api/metrics")).text
    assert re.search(rf"^{metric} [1-9]", metrics, re.M), metrics
    assert logged(lines, depth_example, "conversation c3")


async def test_deleted_agents_are_refused_across_restarts(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    example = example_line("Gateway connects but agents stay offline")
    (table,) = claim(r"remembers deleted agents in the table `(\w+)`")
    with captured_logs() as lines:
        async with agent_scene(hub, 1) as scene:
            [agent] = scene.agents
            response = await client.delete(f"/api/agents/{agent.id}", headers=scene.owner.headers)
            assert response.status_code == 200
            assert await scene.gateway.receive_type("server:remove_agent") == {
                "type": "server:remove_agent", "agentId": agent.id}  # fmt: skip
            await scene.gateway.send({"type": "gateway:register_agent",
                                      "agent": {"id": agent.id, "name": agent.name,
                                                "type": "generic"}})  # fmt: skip
            assert await scene.gateway.receive_type("server:remove_agent") == {
                "type": "server:remove_agent", "agentId": agent.id}  # fmt: skip
    assert logged(lines, example, agent.id)
    row = await hub.services.db.fetchval(f"SELECT count(*) FROM {table} WHERE agent_id = $1",
                                         agent.id)  # fmt: skip
    assert row == 1


async def test_a_rate_limited_agent_message_is_saved_and_shown_but_not_routed(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    text = section("Agent messages not appearing in chat")
    example = example_line("Agent messages not appearing in chat")
    claim(r"Its message is still saved and shown in the room; only agent-to-agent routing stops",
          text)  # fmt: skip
    hub = await start_hub(nursery, attrs.evolve(settings, agent_rate_limit_max=1), redis_prefix)
    with captured_logs() as lines:
        async with agent_scene(hub, 2) as scene, signed_in(hub, scene.owner) as ws:
            first, second = scene.agents
            await ws.join(scene.room_id)
            await a2a_hop(scene, "conv-a")
            await ws.receive_type("server:message_complete")  # the routed one
            await complete(scene, first, f"@{second.name} once more", conversationId="conv-b")
            shown = (await ws.receive_type("server:message_complete"))["message"]
            assert shown["content"] == f"@{second.name} once more"
            await lines.wait_for(f"Agent {first.id} rate limited")
            await scene.gateway.nothing(0.3, ignore=("server:pong",))
    assert logged(lines, example, first.id)
    saved = await hub.services.db.fetchval("SELECT content FROM messages WHERE id = $1",
                                           shown["id"])  # fmt: skip
    assert saved == shown["content"]


# File Upload Issues --------------------------------------------------------------------------
async def test_upload_errors(hub: RunningHub, client: httpx.AsyncClient) -> None:
    text = section('"File type is not allowed"')
    listed = re.findall(r"`(\w+/[\w.+-]+)`", text.split("Configure")[0])
    assert set(listed) == set(DEFAULT_MIME_TYPES)
    claim(r"Configure `ALLOWED_MIME_TYPES` in your `.env` to change this list \(comma-separated\)")
    custom = Settings.from_env({"ALLOWED_MIME_TYPES": "image/png, text/plain"})
    assert custom.allowed_mime_types == ("image/png", "text/plain")

    user = await signed_in_user(hub)
    for content, mime, error in (
        (b"MZ\x90\x00", "application/x-msdownload", "File type is not allowed"),
        (JPEG, "image/png", "File content does not match declared type"),
    ):
        response = await client.post("/api/upload", headers=user.headers,
                                     files={"file": ("a.bin", content, mime)})  # fmt: skip
        assert (response.status_code, response.json()) == (400, {"ok": False, "error": error})
        assert f'### "{error}"' in GUIDE


def test_upload_directory_not_writable_is_fatal(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    [quoted] = [b.strip() for b in blocks(section("Upload directory not writable"), "")]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    upload_dir = blocker / "uploads"
    env = base_env(DATABASE_URL=database_url, REDIS_URL=redis_url, UPLOAD_DIR=str(upload_dir),
                   JWT_SECRET=TEST_JWT_SECRET)  # fmt: skip
    result = run_cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert quoted.replace("/app/uploads", str(upload_dir.resolve())) in result.stderr.splitlines()


def test_the_chown_advice_names_the_image_user() -> None:
    containerfile = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
    user, group = search(r"^USER (\w+):(\w+)$", containerfile, re.M)
    uid, gid, name = search(r"useradd --uid (\d+) --gid (\d+) .*?(\w+)\s*$", containerfile, re.M)
    assert name == user == group
    (upload_dir,) = search(r"UPLOAD_DIR=(\S+)", containerfile)
    [script] = blocks(section("Upload directory not writable"), "bash")
    assert re.search(rf"chown -R {uid}:{gid} {re.escape(upload_dir)}\s", script), script
    assert f"uid {uid}" in script and f"`{user}` user" in script
    [quoted] = blocks(section("Upload directory not writable"), "")
    assert quoted.strip().endswith(upload_dir)


# Performance Issues --------------------------------------------------------------------------
async def test_slow_query_sql_analyze_and_the_index(hub: RunningHub) -> None:
    text = section("High database CPU")
    [query] = blocks(text, "sql")
    await hub.services.db.fetch(query)
    (analyze,) = claim(r"import: `(ANALYZE;)`", text)
    await hub.services.db.execute(analyze)
    (index,) = claim(r"ensure the `(\w+)`\s+index exists", text)
    definition = await hub.services.db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = $1", index
    )
    assert (
        definition and "ON public.messages" in definition and "(room_id, created_at)" in definition
    )


async def test_tables_and_columns_named_exist(hub: RunningHub) -> None:
    db = hub.services.db
    pairs = re.findall(r"`(\w+)\.(\w+)`", GUIDE)
    columns = [(t, c) for t, c in pairs if c not in {"log", "md", "json", "conf", "yaml", "env"}]
    assert ("users", "locked_until") in columns
    tables = set(re.findall(r"table `(\w+)`", GUIDE))
    for sql in blocks(GUIDE, "sql"):
        tables |= set(re.findall(r"\b(?:FROM|JOIN) (\w+)", sql))
    assert {"schema_migrations", "deleted_agents", "audit_log", "users"} <= tables
    for table in tables | {t for t, _ in columns}:
        assert await db.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
    for table, column in columns:
        assert await db.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = $1 "
            "AND column_name = $2", table, column,
        ) == 1, f"{table}.{column}"  # fmt: skip


async def test_redis_keys_to_watch_appear_and_expire(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    text = section("High Redis memory usage")
    watched = dict(re.findall(r"^- `([^`]+)` — (.+?)(?:,|$)", text, re.M))
    assert set(watched) == {"ws:rate:*", "revoked:*", "revoked_token:*", "rl:*", "conv:*:visited"}
    kv, settings = hub.services.kv, hub.services.settings
    user = await login(client, await create_user(hub))
    other = await login(client, user)
    async with signed_in(hub, user) as ws:
        await ws.send({"type": "client:typing", "roomId": "any"})  # a counted client frame
        await ws.send({"type": "client:ping", "ts": 1})
        await ws.receive_type("server:pong")
    await client.post("/api/auth/logout", headers=user.headers)  # one token
    await client.post("/api/auth/logout-all", headers=other.headers)  # the user's cut-off
    async with agent_scene(hub, 2) as scene:
        await a2a_hop(scene, "watch-me")
    hub.services.limiter.enabled = True  # test mode has no HTTP limits; count one login
    try:
        await client.post("/api/auth/login", json={})
    finally:
        hub.services.limiter.enabled = False
    ttl_bounds = {  # what each bullet says about expiry, as the longest TTL it allows
        "rate limit counters (expire automatically)": settings.client_rate_limit_window,
        "token revocation flags (expire with JWT TTL)": settings.access_ttl_s,
        "single logged-out access tokens (expire with JWT TTL)": settings.access_ttl_s,
        "HTTP rate-limit windows per class and IP": 60,
        "loop detection sets (5 min TTL)": 5 * 60,
    }
    expected = {"ws:rate:*": f"ws:rate:{user.id}", "revoked:*": f"revoked:{user.id}",
                "revoked_token:*": f"revoked_token:{digest(user.token)}",
                "rl:*": "rl:auth:127.0.0.1:60",
                "conv:*:visited": "conv:watch-me:visited"}  # fmt: skip
    claim(r"`rl:auth:<ip>:60` for logins,\s+`rl:auth_refresh:<ip>:60` for refreshes", text)
    for pattern, what in watched.items():
        assert expected[pattern] in await kv.scan_keys(pattern)
        assert 0 < await kv.ttl(expected[pattern]) <= ttl_bounds[what], pattern
    (leak_pattern,) = claim(r"redis-cli --scan --pattern '([^']+)'", text)
    assert "conv:watch-me:visited" in await kv.scan_keys(leak_pattern)


def test_stream_buffers_are_bounded_as_stated() -> None:
    each, streams = claim(r"at most `(\w+)` each and (\d+) per gateway connection")
    assert int(streams) == gateway_session.MAX_OPEN_STREAMS
    services = SimpleNamespace(settings=Settings.from_env({each: "4096"}))
    endpoint = gateway_session.GatewayEndpoint(services)  # type: ignore[arg-type]
    assert (endpoint.streams.max_bytes, endpoint.streams.max_streams) == (4096, int(streams))


async def test_health_exposes_memory_under_system(client: httpx.AsyncClient) -> None:
    (path, key) = claim(r"curl http://localhost:\d+(/api/health) \| jq \.(\w+)")
    body = (await client.get(path)).json()
    assert isinstance(body[key], dict) and body[key]["memoryMB"] > 0


# Logging ---------------------------------------------------------------------------------------
def test_log_levels_and_their_numbers() -> None:
    names = re.findall(r"`(\w+)`", claim(r"Set via `LOG_LEVEL` env var: ([^\n]+)")[0])
    assert set(names) == set(LOG_LEVELS)
    assert Settings.from_env({"LOG_LEVEL": "warn"}).log_level == "warn"
    numbers = dict(re.findall(r"(\d+)=(\w+)", section("Structured log fields")))
    python_level = {
        "trace": logs.TRACE,
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "error": logging.ERROR,
        "fatal": logging.CRITICAL,
    }
    assert {logs.pino_level(python_level[n]): n for n in LOG_LEVELS} == {
        int(k): v for k, v in numbers.items()}  # fmt: skip
    source = "".join(p.read_text() for p in (ROOT / "agentim").rglob("*.py"))
    (examples,) = claim(r"module name \(e\.g\. ([^)]+)\)")
    for name in re.findall(r"`(\w+)`", examples):
        assert f'getLogger("{name}")' in source, name


async def test_the_greps_find_what_the_hub_logs(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    # development mode: the HTTP rate limits are on (test mode turns them off)
    hub = await start_hub(nursery, attrs.evolve(settings, env="development"), redis_prefix)
    user = await signed_in_user(hub)
    stranger = f"nobody_{new_id(6)}"
    db = hub.services.db
    with captured_logs() as lines:
        async with http_client(hub) as http:
            private = router_body(llmBaseUrl="http://10.1.2.3/v1")
            response = await http.post("/api/routers", headers=user.headers, json=private)
            assert response.status_code == 400
            async with connect_gateway(hub) as gateway:
                assert (await gateway.auth(user, token="junk"))["ok"] is False  # a warning
            await db.execute("ALTER TABLE gateways RENAME TO gateways_hidden_by_docs_test")
            try:  # a server-side failure during gateway auth: an error line
                async with connect_gateway(hub) as gateway:
                    assert (await gateway.auth(user))["ok"] is False
            finally:
                await db.execute("ALTER TABLE gateways_hidden_by_docs_test RENAME TO gateways")
            await db.execute("ALTER TABLE routers RENAME TO routers_hidden_by_docs_test")
            try:
                assert (await http.get("/api/routers", headers=user.headers)).status_code == 500
            finally:
                await db.execute("ALTER TABLE routers_hidden_by_docs_test RENAME TO routers")
            statuses = [
                (await http.post("/api/auth/login",
                                 json={"username": stranger, "password": "x"})).status_code
                for _ in range(21)
            ]  # fmt: skip
    assert statuses == [401] * 20 + [429]  # login's own budget: 20 a minute per IP

    for line in lines.parsed():  # "All log entries include"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert line["level"] in (10, 20, 30, 40, 50, 60) and line["name"] and "msg" in line

    evidence = {  # each grep's comment → what its lines must show
        "Authentication failures": stranger,
        "Rate limit hits": "rate limit auth exceeded",
        "WebSocket errors": "Gateway auth failed",
        "SSRF attempts": "10.1.2.3",
        "DB errors": 'relation \\"routers\\" does not exist',
    }
    [script] = blocks(section("Finding specific issues"), "bash")
    label = ""
    checked = set()
    for row in script.strip().splitlines():
        if row.startswith("# ") and not label:
            label = row[2:].split(" (")[0]
        elif row.startswith("grep "):
            assert label in evidence, f"no check for the guide's grep {label!r}"
            found = run_pipeline(row, lines.lines)
            assert any(evidence[label] in line for line in found), (label, row)
            checked.add(label)
            label = ""
    assert checked == set(evidence)


async def test_audit_queries_run_as_written(hub: RunningHub, client: httpx.AsyncClient) -> None:
    [script] = blocks(section("Audit log queries"), "sql")
    failed, uploads, admin = (q.strip() for q in script.strip().split("\n\n"))
    db = hub.services.db
    stranger = f"nobody_{new_id(6)}"
    await client.post("/api/auth/login", json={"username": stranger, "password": "x"})
    assert any(stranger in (r["metadata"] or "") for r in await db.fetch(failed))

    user = await signed_in_user(hub)
    response = await client.post("/api/upload", headers=user.headers,
                                 files={"file": ("a.png", PNG, "image/png")})  # fmt: skip
    assert response.status_code == 200
    [row] = await db.fetch(uploads.replace("usr_xxx", user.id))
    assert row["target_id"] == response.json()["data"]["id"]

    admin_user = await login(client, User("", "admin", hub.services.settings.admin_password or ""))
    new_user = {"username": f"new_{new_id(6)}", "password": "Passw0rdX"}
    created = await client.post("/api/users", headers=admin_user.headers, json=new_user)
    assert created.status_code == 200
    expected = ("admin_user_create", "admin", created.json()["data"]["id"])
    rows = await db.fetch(admin)
    assert expected in [(r["action"], r["username"], r["target_id"]) for r in rows]


# Docker / Deployment -------------------------------------------------------------------------
def test_container_and_pod_names_match_the_deployment_samples() -> None:
    deployment = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    started = set(re.findall(r"--name (\S+)", deployment))
    for name in re.findall(r"podman logs (\S+)", GUIDE):
        assert name in started, f"`podman logs {name}`: DEPLOYMENT.md runs {started}"
    text = section("Container exits immediately")
    path, first, second = claim(r"`(config/podman/[\w.-]+)` calls them `(\w+)` and `(\w+)`", text)
    pod = (ROOT / path).read_text()
    assert re.search(rf"hostnames: \[{first}, {second}\]", pod)
    (missing,) = claim(r"Missing env vars \(`([^`]+)`", text)
    assert missing in blocks(section("Missing required environment variables"), "")[0]


def test_cors_origin_must_be_exact() -> None:
    (origin,) = claim(r"Set `CORS_ORIGIN=(\S+)` exactly \(no trailing slash, no wildcard\)")

    def cors_problems(value: str) -> list[str]:
        env = {"AGENTIM_ENV": "production", "CORS_ORIGIN": value}
        return [p for p in problems(Settings.from_env(env)) if p.startswith("CORS_ORIGIN")]

    assert cors_problems(origin) == []
    assert cors_problems(origin + "/") and cors_problems("*")


def _nginx_lines(block: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return [re.sub(r"^proxy_pass http://\S+;$", "proxy_pass <hub>;", x) for x in lines if x]


def test_the_nginx_block_is_the_one_in_config() -> None:
    [guide_block] = blocks(section("WebSocket connection blocked by reverse proxy"), "nginx")
    config = (ROOT / "config" / "nginx" / "agentim.conf").read_text()
    found = re.search(r"^ *location /ws/ \{\n.*?^ *\}", config, re.M | re.S)
    assert found, "config/nginx/agentim.conf has no `location /ws/` block"
    assert _nginx_lines(guide_block) == _nginx_lines(found.group(0))


async def test_trust_proxy_hops_picks_the_address_from_the_right(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    (hops,) = claim(r"`TRUST_PROXY_HOPS` from the right; (\d+) when nginx\s+is the only proxy")
    behind_proxy = attrs.evolve(settings, trust_proxy=True, trust_proxy_hops=int(hops))
    hub = await start_hub(nursery, behind_proxy, redis_prefix)
    stranger = f"nobody_{new_id(6)}"
    async with http_client(hub) as http:
        await http.post("/api/auth/login", json={"username": stranger, "password": "x"},
                        headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})  # fmt: skip
    ip = await hub.services.db.fetchval(
        "SELECT ip_address FROM audit_log WHERE action = 'login_failed' AND metadata LIKE $1",
        f"%{stranger}%",
    )
    assert ip == "203.0.113.9"
    hub.services.limiter.enabled = True  # "every WebSocket upgrade would come from unknown"
    url = f"{hub.ws_url}/ws/client"
    headers = [(b"X-Forwarded-For", b"203.0.113.9")]
    async with trio_websocket.open_websocket_url(url, extra_headers=headers):
        pass
    async with connect(hub):
        pass
    keys = await hub.services.kv.scan_keys("rl:ws_upgrade:*")
    assert {"rl:ws_upgrade:203.0.113.9:60", "rl:ws_upgrade:unknown:60"} <= set(keys)


# Getting Help ----------------------------------------------------------------------------------
def test_version_command_and_links(tmp_path: Path) -> None:
    (command,) = claim(r"Server version \(`([^`]+)`\)")
    assert command == "agentim --version"
    result = run_cli(["--version"], base_env(), tmp_path)
    assert result.returncode == 0 and __version__ in result.stdout
    for target in re.findall(r"\]\(\./([\w.]+)\)", GUIDE):
        assert (ROOT / "docs" / target).is_file(), target


# Refused input, per-socket warnings, early answers, socket counts (issue 15) ------------------
def budgeted_logs() -> AbstractContextManager[LogLines]:
    """As captured_logs, with the per-connection budget the hub's own handler applies."""
    return captured_logs(budgeted=True)


async def test_unstorable_text_is_refused_as_stated(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    body = section("Frames or requests refused for NUL or unpaired surrogate characters")
    code, text = search(r"`server:error` `(\w+)` \"([^\"]+)\"", body)
    (warned,) = search(r"logged at warn\s+`([^`]+)`", body)
    (answer,) = search(r"`(\{\"ok\":false,\"error\":\"Validation failed\"[^`]+)`", body)
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    response = await client.get(f"/api/messages/rooms/{room_id}?cursor=%00", headers=user.headers)
    assert (response.status_code, response.text) == (400, answer)
    with captured_logs() as lines:
        async with signed_in(hub, user) as ws:
            await ws.send('{"type":"client:join_room","roomId":"\\u0000"}')
            expected = {"type": "server:error", "code": code, "message": text}
            assert await ws.receive_type("server:error") == expected
        async with signed_in_gateway(hub, user) as gateway:
            await gateway.send(
                '{"type":"gateway:task_update","taskId":"t\\ud800","status":"completed"}'
            )
            await gateway.sync()
    records = lines.parsed()
    assert [r["level"] for r in records if r["msg"] == warned] == [40]
    assert not [r for r in records if r["level"] >= 50]


async def test_a_sockets_warnings_stop_as_stated(hub: RunningHub) -> None:
    body = section("A socket logs at most 20 warnings a minute")
    limit, notice_at = (
        int(n) for n in search(r"first (\d+) warnings in each minute\.\s+The\s+(\d+)st", body)
    )
    (notice,) = search(r"ends with\s+`\(([^`]+)\)`", body)
    [script] = blocks(body, "bash")
    grep, example = script.strip().splitlines()
    summary = re.escape(json.loads(example.removeprefix("# "))["msg"]).replace("312", r"(\d+)")
    summary = re.sub(r"<\w+>", r"\\S+", summary.replace(r"\<", "<").replace(r"\>", ">"))
    user = await signed_in_user(hub)
    frame = '{"type":"gateway:task_update","taskId":"t\\u0000","status":"completed"}'
    with budgeted_logs() as lines:
        async with signed_in_gateway(hub, user) as gateway:
            for _ in range(limit + 10):
                await gateway.send(frame)
            await gateway.sync()
        await lines.wait_for("were not logged")
    refused = [line for line in lines.lines if "Gateway sent invalid message format" in line]
    assert len(refused) == notice_at == limit + 1
    assert notice in refused[-1]
    [found] = run_pipeline(grep, lines.lines)
    assert json.loads(found)["name"] == "Connections" and json.loads(found)["level"] == 40
    matched = re.fullmatch(summary, json.loads(found)["msg"])
    assert matched is not None and int(matched.group(1)) == 10 - 1
    assert (limit, logs.BUDGET_WINDOW_S) == (ws_endpoints.LOG_BUDGET, 60.0)  # "a minute"


async def test_an_early_answer_reaches_the_client_as_stated(hub: RunningHub) -> None:
    body = section("Upload fails with a connection reset instead of an answer")
    mib, seconds = search(r"at most (\d+) MiB, for at most (\d+) seconds", body)
    assert int(mib) * 1024 * 1024 == listener.LINGER_MAX_BYTES
    assert float(seconds) == listener.LINGER_S
    (status_line,) = search(r"\(`(HTTP/1\.1 \d+ [A-Za-z ]+)`", body)
    async with http_client(hub) as http:
        response = await http.post("/api/upload", files={"file": ("a.bin", bytes(2 << 20))})
    assert f"HTTP/1.1 {response.status_code} {response.reason_phrase}" == status_line
    assert response.headers["connection"] == "close"


async def test_health_counts_sockets_as_stated(hub: RunningHub, client: httpx.AsyncClient) -> None:
    open_key, signed_key = search(
        r"`(\w+)` is every open one, signed in or not;\s+`(\w+)` the signed-in ones",
        section("High server memory"),
    )
    user = await signed_in_user(hub)
    async with connect(hub), connect(hub), connect(hub), signed_in(hub, user):
        with trio.fail_after(WAIT_S):
            while (await client.get("/api/health")).json()["system"][open_key] != 4:  # noqa: ASYNC110
                await trio.sleep(0.05)  # the count is what is being watched
        system = (await client.get("/api/health")).json()["system"]
    assert system[signed_key] == 1

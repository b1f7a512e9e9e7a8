"""`agentim import-agentim`: an AgentIM database of each schema version, copied into a hub's
database through the command line; then a hub serves it to the users who had it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import argon2
import asyncpg
import attrs
import bcrypt
import httpx
import pytest
import trio

from agentim.auth.crypto import open_secret, seal
from agentim.settings import Settings
from tests.cli.procs import base_env, run_cli
from tests.conftest import TEST_JWT_SECRET, _with_database, start_hub
from tests.importer.agentim_schemas import SCHEMAS

KEY = "test-encryption-key-that-is-32-chars-plus"  # the `settings` fixture's ENCRYPTION_KEY
ALICE_PASSWORD, BOB_PASSWORD, DAVE_PASSWORD = "AlicePass1", "BobPass123", "DavePass1"
T0 = "2025-01-02T03:04:05.678Z"
TABLES = (
    "users", "gateways", "routers", "agents", "rooms", "room_members", "messages",
    "message_attachments", "message_reactions", "message_edits", "tasks", "audit_log",
)  # fmt: skip


def _admin(server: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(_with_database(server, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@attrs.frozen
class Dbs:
    source: str
    hub: str


@pytest.fixture
def dbs(server_urls: tuple[str, str]) -> Iterator[Dbs]:
    """A fresh AgentIM database and a fresh hub database, dropped afterwards."""
    stem = f"importer_test_{secrets.token_hex(4)}"
    names = (f"{stem}_src", f"{stem}_hub")
    for name in names:
        _admin(server_urls[0], f'CREATE DATABASE "{name}"')
    yield Dbs(*(_with_database(server_urls[0], name) for name in names))
    for name in names:
        _admin(server_urls[0], f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sql(url: str, sql: str, *args: Any, fetch: bool = False) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(url)
        try:
            if fetch:
                return [dict(row) for row in await conn.fetch(sql, *args)]
            return await conn.execute(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _count(url: str, table: str) -> int:
    return int(_sql(url, f"SELECT count(*) AS n FROM {table}", fetch=True)[0]["n"])


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def fill_agentim(url: str, version: str, *, create: bool = True) -> None:
    """A small AgentIM installation: alice (bcrypt hash), bob (argon2id, what AgentIM writes),
    dave (whose username the hub already has), an agent on alice's gateway, two routers, two
    rooms with members, messages with an attachment, a reaction, an edit, a task, an audit row."""
    if create:
        _sql(url, SCHEMAS[version])
    later = "2025-01-02T05:04:05.678+02:00" if version == "631a1ad" else T0
    argon = argon2.PasswordHasher(time_cost=1, memory_cost=1024).hash(BOB_PASSWORD)
    _sql(url, f"""
        INSERT INTO users (id, username, password_hash, display_name, avatar_url, created_at,
                           updated_at) VALUES
          ('u_alice', 'alice', '{_bcrypt(ALICE_PASSWORD)}', 'Alice', '/uploads/avatar_a.png',
           '{T0}', '{T0}'),
          ('u_bob', 'bob', '{argon}', 'Bob', NULL, '{T0}', '{T0}'),
          ('u_dave', 'dave', '{_bcrypt(DAVE_PASSWORD)}', 'Dave', NULL, '{T0}', '{T0}');
        INSERT INTO gateways (id, user_id, name, connected_at, created_at)
          VALUES ('g1', 'u_alice', 'laptop', '{T0}', '{T0}');
        INSERT INTO agents (id, name, type, status, visibility, gateway_id, capabilities,
                            created_at, updated_at)
          VALUES ('a1', 'coder', 'cursor', 'online', 'shared', 'g1', '["code"]', '{T0}', '{T0}');
        INSERT INTO routers (id, name, created_by_id, llm_base_url, llm_api_key, llm_model,
                             visibility_list, created_at, updated_at) VALUES
          ('r1', 'main', 'u_alice', 'https://llm.example.com/v1', '{seal("sk-sealed-1", KEY)}',
           'gpt', '[]', '{T0}', '{T0}'),
          ('r2', 'daves', 'u_dave', 'https://llm.example.com/v1', 'sk-plain-2', 'gpt',
           '["u_dave", "u_bob"]', '{T0}', '{T0}');
        INSERT INTO rooms (id, name, router_id, created_by_id, created_at, updated_at) VALUES
          ('room1', 'Project', 'r1', 'u_alice', '{T0}', '{T0}'),
          ('room2', 'Dave room', NULL, 'u_dave', '{T0}', '{T0}');
        INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) VALUES
          ('room1', 'u_alice', 'user', 'owner', '{T0}'),
          ('room1', 'u_bob', 'user', 'member', '{T0}'),
          ('room1', 'a1', 'agent', 'member', '{T0}'),
          ('room2', 'u_dave', 'user', 'owner', '{T0}'),
          ('room2', 'u_alice', 'user', 'member', '{T0}');
        INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content,
                              reply_to_id, mentions, chunks, created_at, updated_at) VALUES
          ('m1', 'room1', 'u_alice', 'user', 'Alice', 'hello @bob', NULL, '["bob"]', NULL,
           '{T0}', '{T0}'),
          ('m2', 'room1', 'a1', 'agent', 'coder', 'hi', 'm1', '[]',
           '[{{"type": "text", "content": "hi"}}]', '{later}', NULL),
          ('m3', 'room2', 'u_dave', 'user', 'Dave', 'mine', NULL, '[]', NULL, '{T0}', NULL);
        INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url,
                                         uploaded_by, created_at) VALUES
          ('f1', 'm1', 'notes.txt', 'text/plain', 5, '/uploads/f1.txt', 'u_alice', '{T0}'),
          ('f2', NULL, 'lost.bin', 'application/octet-stream', 3, '/uploads/lost.bin',
           'u_alice', '{T0}');
        INSERT INTO message_reactions (message_id, user_id, emoji, created_at)
          VALUES ('m1', 'u_bob', '👍', '{T0}');
        INSERT INTO message_edits (id, message_id, previous_content, edited_at)
          VALUES ('e1', 'm1', 'helo', '{T0}');
        INSERT INTO tasks (id, room_id, title, assignee_id, assignee_type, created_by_id,
                           created_at, updated_at)
          VALUES ('t1', 'room1', 'Fix it', 'a1', 'agent', 'u_dave', '{T0}', '{T0}');
        INSERT INTO audit_logs (id, user_id, action, metadata, created_at)
          VALUES ('au1', 'u_alice', 'login', '{{"via": "web"}}', '{T0}');
    """)  # fmt: skip
    if version == "631a1ad":
        _sql(url, f"""
            INSERT INTO users (id, username, password_hash, display_name, created_at, updated_at)
              VALUES ('u_carol', 'carol', NULL, 'Carol (GitHub)', '{T0}', '{T0}');
            UPDATE agents SET model = 'opus', slash_commands = '[{{"name": "clear"}}]',
                              visibility = 'whitelist', visibility_list = '["u_dave"]';
            UPDATE rooms SET agent_command_role = 'admin' WHERE id = 'room1';
            UPDATE tasks SET result = 'done', due_date = '{T0}';
        """)  # fmt: skip


def _env(hub_url: str, upload_dir: Path) -> dict[str, str]:
    return base_env(DATABASE_URL=hub_url, ENCRYPTION_KEY=KEY, JWT_SECRET=TEST_JWT_SECRET,
                    UPLOAD_DIR=str(upload_dir), LOG_LEVEL="warn")  # fmt: skip


def _import(dbs: Dbs, tmp_path: Path, *extra: str) -> str:
    result = run_cli(
        ["import-agentim", "--from", dbs.source, *extra],
        _env(dbs.hub, tmp_path / "hub-uploads"), tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _line(output: str, table: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{table} "))


def _snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    return {t: _sql(url, f"SELECT * FROM {t} ORDER BY 1, 2", fetch=True) for t in TABLES}


def _prepare(dbs: Dbs, tmp_path: Path, version: str) -> None:
    """The AgentIM database and upload folder; the hub database already migrated, with its own
    account `dave`."""
    fill_agentim(dbs.source, version)
    agentim_uploads = tmp_path / "agentim-uploads"
    agentim_uploads.mkdir()
    (agentim_uploads / "f1.txt").write_bytes(b"notes")
    (agentim_uploads / "avatar_a.png").write_bytes(b"\x89PNG....")
    migrate = run_cli(["migrate"], _env(dbs.hub, tmp_path / "hub-uploads"), tmp_path)
    assert migrate.returncode == 0, migrate.stderr
    _sql(dbs.hub, "INSERT INTO users (id, username, password_hash, display_name, created_at,"
                  " updated_at) VALUES ('hub_dave', 'dave', $1, 'Hub Dave', $2, $2)",
         _bcrypt("HubDave123"), T0)  # fmt: skip


def _check_rows(hub: str, version: str) -> None:
    def rows(sql: str) -> list[dict[str, Any]]:
        return _sql(hub, sql, fetch=True)  # type: ignore[no-any-return]

    users = {r["username"]: r for r in rows("SELECT * FROM users")}
    assert users["alice"]["id"] == "u_alice" and users["alice"]["created_at"] == T0
    assert users["alice"]["password_hash"].startswith("$2b$")
    assert users["bob"]["password_hash"].startswith("$argon2id$")
    assert users["dave"]["id"] == "hub_dave" and users["dave"]["display_name"] == "Hub Dave"
    assert ("carol" in users) == (version == "631a1ad")
    [agent] = rows("SELECT * FROM agents")
    assert (agent["type"], agent["status"], agent["capabilities"]) == (
        "generic",
        "offline",
        '["code"]',
    )
    if version == "631a1ad":
        assert (agent["visibility"], agent["visibility_list"]) == ("whitelist", '["hub_dave"]')
        assert agent["model"] == "opus"
    else:
        assert (agent["visibility"], agent["visibility_list"]) == ("all", "[]")
    routers = {r["id"]: r for r in rows("SELECT * FROM routers")}
    assert open_secret(routers["r1"]["llm_api_key"], KEY) == "sk-sealed-1"
    assert routers["r2"]["llm_api_key"].startswith("enc:")  # was plaintext in AgentIM
    assert open_secret(routers["r2"]["llm_api_key"], KEY) == "sk-plain-2"
    assert routers["r2"]["created_by_id"] == "hub_dave"
    assert routers["r2"]["visibility_list"] == '["hub_dave", "u_bob"]'
    rooms = {r["id"]: r for r in rows("SELECT * FROM rooms")}
    assert rooms["room2"]["created_by_id"] == "hub_dave"
    assert rooms["room1"]["agent_command_role"] == ("admin" if version == "631a1ad" else "member")
    members = rows("SELECT room_id, member_id, role FROM room_members ORDER BY 1, 2")
    assert [(m["room_id"], m["member_id"]) for m in members] == [
        ("room1", "a1"), ("room1", "u_alice"), ("room1", "u_bob"),
        ("room2", "hub_dave"), ("room2", "u_alice"),
    ]  # fmt: skip
    messages = {m["id"]: m for m in rows("SELECT * FROM messages")}
    assert messages["m1"]["mentions"] == '["bob"]' and messages["m1"]["updated_at"] == T0
    assert messages["m2"]["created_at"] == ("2025-01-02T03:04:05.678Z" if version == "631a1ad"
                                            else T0)  # fmt: skip
    assert messages["m2"]["chunks"] == '[{"type": "text", "content": "hi"}]'
    assert messages["m3"]["sender_id"] == "hub_dave"
    attachments = rows("SELECT id, message_id, uploaded_by FROM message_attachments ORDER BY 1")
    assert attachments == [
        {"id": "f1", "message_id": "m1", "uploaded_by": "u_alice"},
        {"id": "f2", "message_id": None, "uploaded_by": "u_alice"},
    ]
    [task] = rows("SELECT * FROM tasks")
    assert (task["created_by_id"], task["assignee_id"]) == ("hub_dave", "a1")
    assert (task["result"], task["due_date"]) == (
        ("done", T0) if version == "631a1ad" else (None, None)
    )
    assert len(rows("SELECT * FROM message_reactions")) == 1
    assert len(rows("SELECT * FROM message_edits")) == 1
    [entry] = rows("SELECT * FROM audit_log")
    assert entry["metadata"] == '{"via": "web"}' and entry["created_at"] == T0


async def _serve_imported(
    settings: Settings, hub_url: str, upload_dir: Path, redis_prefix: str
) -> None:
    """A hub on the imported database: old passwords log in; rooms and files are there."""
    settings = attrs.evolve(settings, database_url=hub_url, upload_dir=upload_dir)
    async with trio.open_nursery() as nursery:
        hub = await start_hub(nursery, settings, redis_prefix)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
            for username, password in (("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)):
                response = await http.post(
                    "/api/auth/login", json={"username": username, "password": password}
                )
                assert response.status_code == 200, response.text
            token = response.json()["data"]["accessToken"]  # bob's
            rooms = await http.get("/api/rooms", headers={"Authorization": f"Bearer {token}"})
            assert rooms.status_code == 200
            assert [room["name"] for room in rooms.json()["data"]] == ["Project"]
            login = await http.post(
                "/api/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}
            )
            alice = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
            rooms = await http.get("/api/rooms", headers=alice)
            assert sorted(room["name"] for room in rooms.json()["data"]) == ["Dave room", "Project"]
            history = await http.get("/api/messages/rooms/room1", headers=alice)
            assert history.status_code == 200, history.text
            file = await http.get("/uploads/f1.txt", headers=alice)
            assert (file.status_code, file.content) == (200, b"notes")
            # the AgentIM account dave is the hub's dave now: the hub's password counts
            wrong = await http.post(
                "/api/auth/login", json={"username": "dave", "password": DAVE_PASSWORD}
            )
            assert wrong.status_code == 401
        hub.shutdown.set()


@pytest.mark.parametrize("version", sorted(SCHEMAS))
async def test_import_copies_agentim_and_users_log_in(
    bridge: None, dbs: Dbs, tmp_path: Path, version: str, settings: Settings, redis_prefix: str
) -> None:
    await trio.to_thread.run_sync(_prepare, dbs, tmp_path, version)
    uploads = ["--uploads", str(tmp_path / "agentim-uploads")]

    dry = await trio.to_thread.run_sync(_import, dbs, tmp_path, "--dry-run", *uploads)
    assert dry.startswith("Dry run: nothing was written.")
    assert f"schema {version}" in dry
    assert "messages                    3 in AgentIM, would copy        3" in dry
    new_users = 3 if version == "631a1ad" else 2  # carol (OAuth, no password) only in 631a1ad
    assert f"would copy        {new_users}, already in the hub        1" in _line(dry, "users")
    assert await trio.to_thread.run_sync(_count, dbs.hub, "messages") == 0

    first = await trio.to_thread.run_sync(_import, dbs, tmp_path, *uploads)
    assert "copied        3, already in the hub        0" in _line(first, "messages")
    assert "Users the hub already has" in first and ": dave" in first
    assert "Router API keys re-encrypted for this hub's ENCRYPTION_KEY: 1" in first
    assert "uploads                     3 referenced, copied        2" in first
    assert "Warning: upload not found in the AgentIM folder: lost.bin" in first
    await trio.to_thread.run_sync(_check_rows, dbs.hub, version)
    before = await trio.to_thread.run_sync(_snapshot, dbs.hub)

    second = await trio.to_thread.run_sync(_import, dbs, tmp_path, *uploads)
    for table in TABLES:
        assert "copied        0" in _line(second, table), second
    assert "copied        0, already in the hub        2" in _line(second, "uploads")
    assert await trio.to_thread.run_sync(_snapshot, dbs.hub) == before

    await _serve_imported(settings, dbs.hub, tmp_path / "hub-uploads", redis_prefix)
    hashes = await trio.to_thread.run_sync(
        partial(_sql, fetch=True), dbs.hub, "SELECT password_hash FROM users WHERE username = 'bob'"
    )
    assert hashes[0]["password_hash"].startswith("$2b$")  # rehashed at bob's first login


def test_dry_run_on_an_unmigrated_hub_writes_nothing(dbs: Dbs, tmp_path: Path) -> None:
    fill_agentim(dbs.source, "631a1ad")
    output = _import(dbs, tmp_path, "--dry-run")
    assert "Hub migrations would be applied first: 0001" in output
    assert "would copy        4" in _line(output, "users")
    assert "4 uploaded files are referenced" not in output  # 3: two attachments, one avatar
    assert "3 uploaded files are referenced; pass --uploads" in output
    assert _sql(dbs.hub, "SELECT to_regclass('users') AS t", fetch=True) == [{"t": None}]


def test_a_database_that_is_not_agentims_is_refused(dbs: Dbs, tmp_path: Path) -> None:
    _sql(dbs.source, "CREATE TABLE things (id text)")
    result = run_cli(["import-agentim", "--from", dbs.source],
                     _env(dbs.hub, tmp_path / "up"), tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert "Error: Not an AgentIM database: table users not found" in result.stderr


def test_a_row_the_hub_refuses_stops_the_import_with_nothing_written(
    dbs: Dbs, tmp_path: Path
) -> None:
    """An AgentIM database whose attachment names a user that does not exist (its constraint
    dropped): the hub's foreign key refuses it, and the tables copied before it roll back."""
    fill_agentim(dbs.source, "728c8f5")
    _sql(
        dbs.source,
        "ALTER TABLE message_attachments DROP CONSTRAINT message_attachments_uploaded_by_fkey;"
        " UPDATE message_attachments SET uploaded_by = 'ghost' WHERE id = 'f2'",
    )
    result = run_cli(["import-agentim", "--from", dbs.source],
                     _env(dbs.hub, tmp_path / "up"), tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "Error: import failed: insert or update on table" in result.stderr
    assert "message_attachments_uploaded_by_users_id_fk" in result.stderr
    assert _count(dbs.hub, "users") == 0 and _count(dbs.hub, "messages") == 0


def test_from_is_required(tmp_path: Path) -> None:
    result = run_cli(["import-agentim"], base_env(), tmp_path)
    assert result.returncode == 2
    assert "import-agentim needs --from <AgentIM database URL>" in result.stderr

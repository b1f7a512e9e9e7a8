"""Time `agentim import-agentim` on a generated AgentIM database (bench/README.md).

    python -m bench.import_agentim --server postgresql://postgres@127.0.0.1:5432 \
        --schema 631a1ad --messages 100000

Creates <prefix>_src (AgentIM tables of the chosen schema, from tests/importer) and <prefix>_hub,
fills the source with 100 users, 50 rooms of 20 members and N messages, runs the import twice
(the second copies nothing) as an operator would, prints the times, and drops both databases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import asyncpg

from tests.importer.agentim_schemas import SCHEMAS

T0 = "2025-01-02T03:04:05.678Z"


async def _admin(server: str, *statements: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def _fill(url: str, schema: str, messages: int) -> None:
    json_type, ts_type = ("jsonb", "timestamptz") if schema == "631a1ad" else ("text", "text")
    iso = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMAS[schema])
        await conn.execute(f"""
          INSERT INTO users (id, username, password_hash, display_name, created_at, updated_at)
            SELECT 'u' || i, 'user' || i, '!', 'User ' || i, '{T0}', '{T0}'
              FROM generate_series(1, 100) i;
          INSERT INTO rooms (id, name, created_by_id, created_at, updated_at)
            SELECT 'r' || i, 'Room ' || i, 'u' || (1 + i % 100), '{T0}', '{T0}'
              FROM generate_series(1, 50) i;
          INSERT INTO room_members (room_id, member_id, member_type, joined_at)
            SELECT 'r' || r, 'u' || u, 'user', '{T0}'
              FROM generate_series(1, 50) r, generate_series(1, 20) u;
          INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content,
                                mentions, chunks, created_at)
            SELECT 'm' || i, 'r' || (1 + i % 50), 'u' || (1 + i % 20), 'user', 'User',
                   repeat('message text ', 10) || i, '["user1"]'::{json_type},
                   (CASE WHEN i % 3 = 0 THEN '[{{"type":"text","content":"x"}}]' END)::{json_type},
                   to_char(('{T0}'::timestamptz + i * interval '1 second') AT TIME ZONE 'UTC',
                           {iso})::{ts_type}
              FROM generate_series(1, {messages}) i;
        """)  # fmt: skip
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.import_agentim")
    parser.add_argument("--server", required=True, help="postgresql://user@host:port")
    parser.add_argument("--schema", choices=sorted(SCHEMAS), default="631a1ad")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--prefix", default="agentim_bench_import")
    args = parser.parse_args()
    src, hub = f"{args.prefix}_src", f"{args.prefix}_hub"
    drop = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in (src, hub)]
    asyncio.run(_admin(args.server, *drop, *(f'CREATE DATABASE "{n}"' for n in (src, hub))))
    try:
        asyncio.run(_fill(f"{args.server}/{src}", args.schema, args.messages))
        env = {**os.environ, "DATABASE_URL": f"{args.server}/{hub}", "LOG_LEVEL": "warn",
               "JWT_SECRET": "bench-secret-that-is-at-least-32-characters",
               "ENCRYPTION_KEY": "bench-key-that-is-at-least-32-characters"}  # fmt: skip
        rows = 100 + 50 + 1000 + args.messages
        for run in ("first", "second"):
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "agentim", "import-agentim", "--from",
                 f"{args.server}/{src}"], env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            took = time.monotonic() - started
            print(f"{args.schema} {run} run: {rows} rows in {took:.1f} s, {rows / took:.0f} rows/s"
                  " (the whole command, start-up and migrations included)")  # fmt: skip
    finally:
        asyncio.run(_admin(args.server, *drop))


if __name__ == "__main__":
    main()

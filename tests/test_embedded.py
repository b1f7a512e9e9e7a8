"""Embedded PostgreSQL and valkey as real child processes: start, use, stop, crash, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from agentim.embedded import EmbeddedServerError, pg_bin, run_postgres, run_redis, valkey_bin

TEST_LIMIT_S = 120  # a cold initdb plus a few server starts, on a slow CI box
EXIT_WAIT_S = 10  # for processes that are not our children to go away

# A hub killed hard: it prints both URLs, then waits for SIGKILL.
HUB_SCRIPT = """
import sys, trio
from pathlib import Path
from agentim.embedded import run_postgres, run_redis

async def main() -> None:
    async with trio.open_nursery() as nursery:
        for run in (run_postgres, run_redis):
            print(await nursery.start(run, Path(sys.argv[1])), flush=True)

trio.run(main)
"""


@pytest.fixture
def tmp_path(embedded_dir: Path) -> Path:
    """Embedded servers need a data dir outside pytest's 0700 tmp root (see conftest)."""
    return embedded_dir


async def psql(url: str, sql: str) -> str:
    argv = [pg_bin("psql"), "-X", "-tA", url, "-c", sql]
    result = await trio.run_process(argv, capture_stdout=True)
    return result.stdout.decode().strip()


async def redis_ping(url: str) -> str:
    cli = str(Path(valkey_bin()).with_name("valkey-cli"))
    result = await trio.run_process([cli, "-u", url, "PING"], capture_stdout=True)
    return result.stdout.decode().strip()


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


async def server_pids(data_dir: Path) -> set[int]:
    """The postmaster, its children, and valkey, from their pid files."""
    postmaster = postmaster_pid(data_dir)
    children = await trio.run_process(["pgrep", "-P", str(postmaster)], capture_stdout=True)
    valkey_pid_file = data_dir / "redis" / "valkey.pid"
    valkey = [int(valkey_pid_file.read_text())] if valkey_pid_file.exists() else []
    return {postmaster, *map(int, children.stdout.split()), *valkey}


def alive(pids: set[int]) -> set[int]:
    """The pids still running (zombies count as gone: nothing runs there)."""
    return {pid for pid in pids if Path(f"/proc/{pid}/cmdline").exists() and _cmdline(pid)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def wait_gone(pids: set[int]) -> None:
    with trio.fail_after(EXIT_WAIT_S):
        while alive(pids):  # noqa: ASYNC110 (these are not our children)
            await trio.sleep(0.05)


async def test_start_use_stop_and_restart_on_same_data(tmp_path: Path) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        async with trio.open_nursery() as nursery:
            pg_url = await nursery.start(run_postgres, tmp_path)
            redis_url = await nursery.start(run_redis, tmp_path)
            assert pg_url.startswith("postgresql://postgres@127.0.0.1:")
            assert pg_url.endswith("/agentim")
            await psql(pg_url, "create table t (x int); insert into t values (42)")
            assert await redis_ping(redis_url) == "PONG"
            pids = await server_pids(tmp_path)
            assert len(pids) >= 3  # postmaster, at least one postgres child, valkey
            nursery.cancel_scope.cancel()
        assert not alive(pids)  # cancellation returns only once every child has exited

        pg_version = (tmp_path / "postgres" / "PG_VERSION").stat()
        async with trio.open_nursery() as nursery:
            pg_url = await nursery.start(run_postgres, tmp_path)
            assert await psql(pg_url, "select x from t") == "42"
            nursery.cancel_scope.cancel()
        assert (tmp_path / "postgres" / "PG_VERSION").stat().st_mtime_ns == pg_version.st_mtime_ns


async def test_crashed_postgres_is_an_error_and_restarts_over_its_stale_pid_file(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        crash = pytest.RaisesExc(EmbeddedServerError, match="PostgreSQL exited with code -9")
        with pytest.RaisesGroup(crash, flatten_subgroups=True):
            async with trio.open_nursery() as nursery:
                pg_url = await nursery.start(run_postgres, tmp_path)
                await psql(pg_url, "create table t (x int)")
                pids = await server_pids(tmp_path)
                os.kill(postmaster_pid(tmp_path), signal.SIGKILL)
                await trio.sleep_forever()
        await wait_gone(pids)
        assert (tmp_path / "postgres" / "postmaster.pid").exists()

        async with trio.open_nursery() as nursery:
            pg_url = await nursery.start(run_postgres, tmp_path)
            assert await psql(pg_url, "select count(*) from t") == "0"
            nursery.cancel_scope.cancel()


async def test_servers_left_by_a_hard_killed_hub_are_stopped_at_next_start(tmp_path: Path) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        async with trio.open_nursery() as nursery:
            argv = [sys.executable, "-c", HUB_SCRIPT, str(tmp_path)]
            hub = await nursery.start(
                partial(trio.run_process, argv, stdout=subprocess.PIPE, check=False)
            )
            assert hub.stdout is not None
            output = b""
            while output.count(b"\n") < 2:
                output += await hub.stdout.receive_some()
            orphans = await server_pids(tmp_path)
            hub.kill()
        assert alive(orphans) == orphans  # the servers outlive the hub

        async with trio.open_nursery() as nursery:
            pg_url = await nursery.start(run_postgres, tmp_path)
            redis_url = await nursery.start(run_redis, tmp_path)
            await wait_gone(orphans)
            assert await psql(pg_url, "select 1") == "1"
            assert await redis_ping(redis_url) == "PONG"
            nursery.cancel_scope.cancel()


async def test_a_data_dir_serves_one_hub_at_a_time(tmp_path: Path) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_redis, tmp_path)
            with pytest.raises(EmbeddedServerError, match="another running hub"):
                await nursery.start(run_redis, tmp_path)
            nursery.cancel_scope.cancel()


async def test_a_server_that_exits_at_start_up_fails_with_its_log_tail(tmp_path: Path) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_postgres, tmp_path)
            nursery.cancel_scope.cancel()
        conf = trio.Path(tmp_path / "postgres" / "postgresql.conf")
        await conf.write_text(await conf.read_text() + "no_such_setting = 1\n")

        bad_config = pytest.RaisesExc(EmbeddedServerError, match="no_such_setting")
        with pytest.RaisesGroup(bad_config, flatten_subgroups=True):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_postgres, tmp_path)

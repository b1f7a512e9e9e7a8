"""Command line: serve | migrate | check-config | healthcheck | import-agentim | --version | --help.

The one place that reads os.environ and .env; everything below gets a frozen Settings.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import trio
from dotenv import dotenv_values

from agentim import __version__, embedded, logs
from agentim.importer.cli import add_import_options, cmd_import_agentim
from agentim.main import serve
from agentim.settings import Settings, problems
from agentim.store.bridge import open_bridge
from agentim.store.db import StartupError, open_database
from agentim.store.schema import apply_migrations


def read_env(env_file: str | None) -> dict[str, str]:
    path = Path(env_file or os.environ.get("ENV_FILE") or ".env")
    from_file = (
        {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    )
    return {**from_file, **os.environ}


def load_settings(env: Mapping[str, str]) -> Settings:
    settings = Settings.from_env(env)
    logs.configure(settings.log_level, log_format=env.get("LOG_FORMAT"))
    return settings


def tune_gc() -> None:
    """Move the imported world out of the collector's way and collect young objects less often:
    measured, the largest single latency win on the message hot path (bench/README.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def cmd_serve(settings: Settings) -> int:
    tune_gc()
    trio.run(partial(serve, settings, handle_signals=True))
    return 0


async def _migrate(settings: Settings) -> list[str]:
    async with trio.open_nursery() as backing:
        url = settings.database_url or await backing.start(embedded.run_postgres, settings.data_dir)
        async with open_bridge(), open_database(url, pool_size=2) as db:
            applied = await apply_migrations(db)
        backing.cancel_scope.cancel()
    return applied


def cmd_migrate(settings: Settings) -> int:
    applied = trio.run(_migrate, settings)
    print(f"Applied migrations: {', '.join(applied)}" if applied else "Schema is up to date")
    return 0


def cmd_check_config(settings: Settings) -> int:
    found = problems(settings)
    for text in found:
        print(f"Error: {text}", file=sys.stderr)
    if not found:
        print(f"Configuration OK ({settings.env})")
    if settings.admin_password is None:  # allowed (api.md §4.11), but worth saying
        print("Note: ADMIN_PASSWORD is unset: no admin user is seeded")
    return 1 if found and (settings.is_production or any("REDIS_URL" in t for t in found)) else 0


def cmd_healthcheck(settings: Settings) -> int:
    """Exit 0 only on 200 with "ok":true from /api/health on 127.0.0.1:PORT (container check)."""
    url = f"http://127.0.0.1:{settings.port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            return 0 if response.status == 200 and '"ok":true' in body else 1
    except OSError:
        return 1


COMMANDS = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "check-config": cmd_check_config,
    "healthcheck": cmd_healthcheck,
}
# import-agentim (issue 21 C14) takes its own options: see agentim/importer/cli.py
EXTRA_COMMANDS = {"import-agentim"}


COMMAND_HELP = {
    "serve": "run the hub until SIGTERM or Ctrl-C (the default)",
    "migrate": "apply the database migrations, then exit",
    "check-config": "print every configuration problem; exit 1 if any",
    "healthcheck": "exit 0 if /api/health on 127.0.0.1:PORT answers ok (container check)",
    "import-agentim": "copy an AgentIM database (--from URL, --uploads DIR) into this hub's",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; a bad one exits 2 with argparse's usage and message."""
    width = max(map(len, COMMAND_HELP))
    parser = argparse.ArgumentParser(
        prog="agentim", description="AgentIM hub server",
        epilog="commands:\n" + "\n".join(
            f"  {name:<{width}}  {text}" for name, text in COMMAND_HELP.items()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"agentim {__version__}")
    parser.add_argument("--env-file", help="read variables from this file (default: ./.env)")
    parser.add_argument(
        "command", choices=sorted({*COMMANDS, *EXTRA_COMMANDS}), nargs="?", default="serve",
        metavar="COMMAND", help="one of the commands below (default: serve)",
    )  # fmt: skip
    add_import_options(parser)
    args = parser.parse_args(argv)
    if args.env_file is not None and not Path(args.env_file).is_file():
        parser.error(f"--env-file {args.env_file}: no such file")
    if args.command != "import-agentim" and args.source_url is not None:
        parser.error("--from is an option of import-agentim")
    if args.command == "import-agentim" and args.source_url is None:
        parser.error("import-agentim needs --from <AgentIM database URL>")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    env = read_env(args.env_file)
    settings = load_settings(env)
    try:
        if args.command == "import-agentim":
            code = cmd_import_agentim(settings, args, env)
        else:
            code = COMMANDS[args.command](settings)
    except BaseException as exc:  # noqa: ASYNC103 (sync code after trio.run; unwrapping groups)
        startup = _find(exc, StartupError)
        if startup is None:
            if _find(exc, KeyboardInterrupt) is not None:
                sys.exit(0)
            raise
        print(str(startup), file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _find(inner, kind)) is not None:
                return found
    return None

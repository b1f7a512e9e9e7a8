"""`agentim --help` names every command with a word on each; a missing --env-file is refused."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentim import cli


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()  # cli.main configures logging
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_help_lists_each_command_with_its_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for name in ("serve", "migrate", "check-config", "healthcheck"):
        [line] = [x for x in out.splitlines() if x.strip().startswith(name + " ")]
        assert len(line.split()) > 2, line  # the command, then what it does
    assert set(cli.COMMAND_HELP) == {*cli.COMMANDS, *cli.EXTRA_COMMANDS}


def test_a_missing_env_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--env-file", "/nonexistent/agentim.env", "check-config"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "agentim: error: --env-file /nonexistent/agentim.env: no such file" in err


def test_an_env_file_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "hub.env"
    env.write_text("AGENTIM_ENV=test\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--env-file", str(env), "check-config"])
    assert "Configuration OK (test)" in capsys.readouterr().out
    assert exited.value.code == 0


def test_bare_just_lists_the_recipes_without_just_on_path() -> None:
    just = Path(sys.executable).parent / "just"  # rust-just, a dev dependency
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(just)], cwd=root, env={"PATH": "/usr/bin:/bin", "HOME": str(root)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Available recipes:" in result.stdout and "check-config" in result.stdout

"""The start-up line: a URL one can open, printed once in a terminal, kept for log scrapers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import attrs
import pytest

from agentim import logs
from agentim.main import _announce
from agentim.settings import Settings


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_shows_one_localhost_url(capsys: pytest.CaptureFixture[str]) -> None:
    stream = _Terminal()
    logs.configure("info", stream=stream)
    _announce(attrs.evolve(Settings.from_env({}), host="0.0.0.0"), ["http://0.0.0.0:3000"])
    assert capsys.readouterr().out == ""  # no second, plain copy of the line
    assert stream.getvalue().count("AgentIM server running at http://localhost:3000") == 1


def test_piped_output_keeps_the_plain_line_and_the_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)
    _announce(attrs.evolve(Settings.from_env({}), host="127.0.0.1"), ["http://127.0.0.1:4000"])
    assert capsys.readouterr().out == "AgentIM server running at http://127.0.0.1:4000\n"
    record = json.loads(stream.getvalue())
    assert (record["level"], record["name"], record["msg"]) == (
        30, "Server", "AgentIM server running at http://127.0.0.1:4000",
    )  # fmt: skip

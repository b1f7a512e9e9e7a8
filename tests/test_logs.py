"""JSON log lines: time, numeric level, name, msg; extras kept, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from agentim import logs


@pytest.fixture(autouse=True)
def _restore_root_logger():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _line(level: int, msg: str, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    logs.configure("trace", stream=stream)
    logging.getLogger("Auth").log(level, msg, extra=extra)
    return json.loads(stream.getvalue().splitlines()[-1])


def test_lines_carry_the_seed_fields() -> None:
    line = _line(logging.WARNING, "Login failed", action="login_failed", username="bob")
    assert line["level"] == 40 and line["name"] == "Auth" and line["msg"] == "Login failed"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["time"]))
    assert line["action"] == "login_failed" and line["username"] == "bob"


def test_levels_use_the_pino_scale() -> None:
    assert [logs.pino_level(x) for x in (logs.TRACE, 10, 20, 30, 40, 50)] == [
        10,
        20,
        30,
        40,
        50,
        60,
    ]


def test_secret_extras_are_redacted() -> None:
    assert _line(logging.INFO, "x", password="hunter2")["password"] == "[redacted]"


def test_log_level_filters() -> None:
    stream = io.StringIO()
    logs.configure("warn", stream=stream)
    logging.getLogger("DB").info("hidden")
    logging.getLogger("DB").error("shown")
    assert [json.loads(x)["msg"] for x in stream.getvalue().splitlines()] == ["shown"]


def test_a_log_budget_holds_back_warnings_only() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.BudgetFilter())
    log = logging.getLogger("BudgetTest")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        with logs.log_budget(2) as budget:
            for i in range(5):
                log.warning("warn %d", i)
                log.info("info %d", i)
            log.error("error")
        log.warning("after")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["warn 0", "info 0", "warn 1"]
    assert f"warn 2 ({logs.BUDGET_SPENT})" in lines
    assert not {"warn 3", "warn 4"} & set(lines)
    assert {f"info {i}" for i in range(5)} | {"error", "after"} <= set(lines)
    assert budget.suppressed == 2


def test_a_log_budget_starts_again_each_minute() -> None:
    budget = logs.LogBudget(1)
    record = logging.LogRecord("x", logging.WARNING, "", 0, "w", None, None)
    assert [budget.admit(record) for _ in range(3)] == [True, True, False]
    record.created = budget.window_start + logs.BUDGET_WINDOW_S
    assert [budget.admit(record) for _ in range(3)] == [True, True, False]
    assert budget.suppressed == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_is_pretty_on_a_terminal_and_json_elsewhere() -> None:
    assert logs.choose_format(None, io.StringIO()) == "json"  # piped, or a file
    assert logs.choose_format("", _Terminal()) == "pretty"
    assert logs.choose_format("json", _Terminal()) == "json"  # LOG_FORMAT forces either
    assert logs.choose_format(" Pretty ", io.StringIO()) == "pretty"
    assert logs.choose_format("xml", io.StringIO()) == "json"  # unknown: the default rule


def test_pretty_lines_are_readable_coloured_and_redacted() -> None:
    stream = _Terminal()
    assert logs.configure("info", stream=stream) == "pretty"
    logging.getLogger("Auth").warning("Login failed for %s", "bob", extra={"password": "x"})
    line = stream.getvalue().rstrip("\n")
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d \x1b\[33mWARN \x1b\[0m \x1b\[2mAuth\x1b\[0m Login failed for bob "
        r"\x1b\[2mpassword=\[redacted\]\x1b\[0m",
        line,
    ), line
    plain = io.StringIO()
    logs.configure("info", stream=plain, log_format="pretty")  # forced, but not a terminal
    logging.getLogger("DB").info("ready")
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO  DB ready\n", plain.getvalue())


def test_library_chatter_stays_below_the_hub_at_debug() -> None:
    stream = io.StringIO()
    logs.configure("trace", stream=stream)
    logging.getLogger("redis.asyncio.connection").debug("MAINT_NOTIFICATIONS handshake")
    logging.getLogger("trio_asyncio._base").info("loop started")
    logging.getLogger("redis.asyncio.client").warning("connection lost")
    logging.getLogger("DB").debug("pool ready")
    names = [(json.loads(x)["name"], json.loads(x)["msg"]) for x in stream.getvalue().splitlines()]
    assert names == [("redis.asyncio.client", "connection lost"), ("DB", "pool ready")]

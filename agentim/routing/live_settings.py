"""LiveSettings: the one view of the hub's settings while it runs (head-gap A1, config row D12).

`current` is the startup `Settings` with the administrator's saved values laid over it
(runtime_settings.layered). Every consumer of a runtime-changeable knob reads
`services.live.current.<field>` at the moment it needs the value; nothing keeps a copy.

A save on any process publishes the `settings_changed` control event; each process's
subscriber hands it to `changed()`, and `run` reloads the table. A reload every
REFRESH_INTERVAL_S as well covers a change published while Redis was down (D16: such an event
reaches only the process that made it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import trio

from agentim import runtime_settings
from agentim.auth.crypto import ENC_PREFIX, open_secret
from agentim.protocol.events import Event
from agentim.routing.hub import Hub
from agentim.settings import Settings
from agentim.store import runtime_settings as rows
from agentim.store.db import Database, DbError

log = logging.getLogger("Settings")

SETTINGS_CHANGED: Final = "settings_changed"
REFRESH_INTERVAL_S: Final = 30.0  # the longest a change can take without its event
RELOAD_TIMEOUT_S: Final = 10.0  # one read of the settings table

Watcher = Callable[[Settings, Settings], None]  # (before, after): side effects of a change


class LiveSettings:
    def __init__(self, base: Settings, db: Database) -> None:
        self.base = base  # from the environment at start-up; never changes
        self.current = base
        self.stored: dict[str, str] = {}  # saved values in clear, by dotted key
        self.reloads = 0
        self._db = db
        self._watchers: list[Watcher] = []
        self._wake = trio.Event()
        self._lock = trio.Lock()

    def value(self, key: str) -> str:
        """A setting's text, saved value first (for knobs without a Settings field yet)."""
        if key in self.stored:
            return self.stored[key]
        definition = runtime_settings.BY_KEY[key]
        defaults = Settings.from_env({"AGENTIM_ENV": self.base.env})
        return runtime_settings.startup_text(definition, self.base, defaults)[0]

    def saved(self, key: str) -> bool:
        return key in self.stored

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def install(self, hub: Hub) -> None:
        hub.controls[SETTINGS_CHANGED] = self._on_event

    def _on_event(self, hub: Hub, event: Event) -> None:
        self.changed()

    def changed(self) -> None:
        """Sync (from the hub's control dispatch): reload soon."""
        self._wake.set()

    async def reload(self) -> None:
        """Read the table and lay it over the startup settings.

        Raises:
            DbError: the table could not be read; nothing changes then.
        """
        async with self._lock:
            stored = await rows.load_all(self._db)
            self._apply(self._opened(stored))

    def _opened(self, stored: dict[str, str]) -> dict[str, str]:
        """Known keys in clear; a secret that does not open falls back to its startup value."""
        found: dict[str, str] = {}
        key_text = self.base.encryption_key
        for key, value in stored.items():
            definition = runtime_settings.BY_KEY.get(key)
            if definition is None:
                continue
            if definition.sensitive and value.startswith(ENC_PREFIX):
                plain = open_secret(value, key_text)
                if plain is None:
                    log.warning('Failed to decrypt setting "%s". Check ENCRYPTION_KEY.', key)
                    continue
                value = plain
            if runtime_settings.problem(definition, value) is not None:
                log.warning('Ignoring invalid stored value of setting "%s"', key)
                continue
            found[key] = value
        return found

    def _apply(self, stored: dict[str, str]) -> None:
        before = self.current
        self.stored = stored
        self.current = runtime_settings.layered(self.base, stored)
        self.reloads += 1
        for watcher in self._watchers:
            watcher(before, self.current)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload on each `settings_changed` event, and every REFRESH_INTERVAL_S.

        Error policy: a failed reload is logged and the previous values stay until the next.
        """
        task_status.started()
        while True:
            with trio.move_on_after(REFRESH_INTERVAL_S):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                with trio.fail_after(RELOAD_TIMEOUT_S):
                    await self.reload()
            except (DbError, trio.TooSlowError) as exc:
                log.warning("Failed to reload runtime settings: %s", exc)

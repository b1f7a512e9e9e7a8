"""Saving runtime settings (head-gap A1): check every change, write all in one transaction,
audit, reload this process, then tell every other process (control event `settings_changed`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import attrs
import trio

from agentim import runtime_settings
from agentim.actions.audit import audit
from agentim.auth.crypto import seal
from agentim.protocol.events import control_event
from agentim.routing.live_settings import RELOAD_TIMEOUT_S, SETTINGS_CHANGED
from agentim.services import Services
from agentim.store import runtime_settings as rows
from agentim.store.db import DbError

log = logging.getLogger("SettingsRoute")

AUDIT_ACTION: Final = "admin_setting_update"  # the reference's setting_update, D21's prefix


@attrs.frozen
class SaveResult:
    updated: list[str]
    errors: list[str]


def check_changes(changes: Mapping[str, str]) -> list[str]:
    """Every problem of `changes`, in their order (the reference's texts)."""
    errors: list[str] = []
    for key, value in changes.items():
        definition = runtime_settings.BY_KEY.get(key)
        if definition is None:
            errors.append(f"Unknown setting: {key}")
        elif (issue := runtime_settings.problem(definition, value)) is not None:
            errors.append(issue)
    return errors


async def save_settings(
    services: Services, changes: Mapping[str, str], *, user_id: str, ip: str | None
) -> SaveResult:
    """Save `changes` (dotted key → text) if every one is valid; else save none of them.

    Secrets are sealed with ENCRYPTION_KEY before they reach the table.
    """
    errors = check_changes(changes)
    if errors or not changes:
        return SaveResult([], errors)
    key_text = services.settings.encryption_key
    stored = {
        key: seal(value, key_text) if runtime_settings.BY_KEY[key].sensitive else value
        for key, value in changes.items()
    }
    if key_text is None and any(runtime_settings.BY_KEY[key].sensitive for key in changes):
        log.warning("ENCRYPTION_KEY is not set: secret settings are stored unencrypted")
    async with services.db.transaction() as tx:
        await rows.save_all(tx, stored, user_id=user_id)
    updated = list(changes)
    await audit(services.db, AUDIT_ACTION, user_id=user_id, ip=ip, target_type="setting",
                metadata={"keys": updated})  # fmt: skip
    try:
        with trio.fail_after(RELOAD_TIMEOUT_S):
            await services.live.reload()  # this process answers with the new values at once
    except (DbError, trio.TooSlowError) as exc:
        log.warning("Saved settings not reloaded here yet: %s", exc)
    await services.events.publish(control_event(SETTINGS_CHANGED, ""))
    return SaveResult(updated, [])

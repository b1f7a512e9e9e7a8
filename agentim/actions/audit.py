"""Audit rows (api.md §13): written after the action; a failure is logged, never fatal."""

from __future__ import annotations

import json
import logging
from typing import Any

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.store.audit import insert_audit
from agentim.store.db import Conn, DbError

log = logging.getLogger("Audit")


async def audit(
    conn: Conn,
    action: str,
    *,
    user_id: str | None,
    ip: str | None,
    target_id: str | None = None,
    target_type: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Record one audit row; `conn` is the pool (fire-and-forget semantics) or a transaction."""
    try:
        await insert_audit(
            conn,
            audit_id=new_id(),
            user_id=user_id,
            action=action,
            target_id=target_id,
            target_type=target_type,
            ip_address=ip,
            now=iso_now(),
            metadata=json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
            if metadata is not None
            else None,
        )
    except DbError as exc:
        log.warning("Failed to write audit row %s: %s", action, exc)

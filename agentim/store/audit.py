"""SQL for the audit log (table `audit_log`, as the seed guide queries it)."""

from __future__ import annotations

from agentim.store.db import Conn


async def insert_audit(
    conn: Conn,
    *,
    audit_id: str,
    user_id: str | None,
    action: str,
    target_id: str | None,
    target_type: str | None,
    metadata: str | None,
    ip_address: str | None,
    now: str,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (id, user_id, action, target_id, target_type, metadata, "
        "ip_address, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        audit_id,
        user_id,
        action,
        target_id,
        target_type,
        metadata,
        ip_address,
        now,
    )

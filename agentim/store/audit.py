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


async def delete_older_than(conn: Conn, cutoff: str, *, limit: int) -> int:
    """Delete up to `limit` audit rows created at or before `cutoff` (text timestamps compare in
    order, §0.3); how many were deleted."""
    rows = await conn.fetch(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at <= $1 "
        "ORDER BY created_at LIMIT $2) RETURNING id",
        cutoff, limit,
    )  # fmt: skip
    return len(rows)

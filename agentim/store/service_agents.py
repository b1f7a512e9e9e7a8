"""SQL for service agents (head-gap A3, C2; migration 0012).

A service agent is a `service_agents` row plus an `agents` row of the same id on a gateway row
of its own, written and removed together, so it is a room member like any agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from agentim.store.db import Conn, Row

# The columns a service agent is shown with (config_encrypted is never among them).
COLUMNS: Final = (
    "id, name, type, category, description, status, avatar_url, created_by_id, created_at, "
    "updated_at"
)
GATEWAY_NAME: Final = "Service agents"  # the carrier gateway rows' name
GATEWAY_HOST: Final = "agentim-hub"
AGENT_TYPE: Final = "generic"  # the reference's agent types have no "service" one
CONNECTION_TYPE: Final = "api"
UNIQUE_NAME: Final = "service_agents_name_creator_idx"


def agent_status(status: str) -> str:
    """The `agents.status` an active (answering) or other service agent shows."""
    return "online" if status == "active" else "offline"


async def insert(
    tx: Conn, *, agent_id: str, gateway_id: str, fields: Mapping[str, Any], config_sealed: str,
    user_id: str, now: str,
) -> Row:  # fmt: skip
    """The three rows of a new service agent (run in a transaction); unique-name errors raise."""
    row = await tx.fetchrow(
        f"INSERT INTO service_agents (id, name, type, category, description, status, "
        f"config_encrypted, created_by_id, created_at, updated_at) "
        f"VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $8) RETURNING {COLUMNS}",
        agent_id, fields["name"], fields["type"], fields["category"], fields.get("description"),
        config_sealed, user_id, now,
    )  # fmt: skip
    assert row is not None
    await tx.execute(
        "INSERT INTO gateways (id, user_id, name, hostname, connected_at, created_at, ephemeral) "
        "VALUES ($1, $2, $3, $4, $5, $5, true)",
        gateway_id, user_id, GATEWAY_NAME, GATEWAY_HOST, now,
    )  # fmt: skip
    await tx.execute(
        "INSERT INTO agents (id, name, type, status, visibility, gateway_id, connection_type, "
        "last_seen_at, created_at, updated_at) VALUES ($1, $2, $3, 'online', 'all', $4, $5, "
        "$6, $6, $6)",
        agent_id, fields["name"], AGENT_TYPE, gateway_id, CONNECTION_TYPE, now,
    )  # fmt: skip
    return row


async def list_all(conn: Conn) -> list[Row]:
    return await conn.fetch(f"SELECT {COLUMNS} FROM service_agents ORDER BY created_at, id")


async def get(conn: Conn, agent_id: str, *, for_update: bool = False) -> Row | None:
    """The row with `config_encrypted`, or None."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {COLUMNS}, config_encrypted FROM service_agents WHERE id = $1{lock}", agent_id
    )


async def update(tx: Conn, agent_id: str, changes: Mapping[str, Any], now: str) -> Row | None:
    """Set the given columns (snake_case names) and keep the agent row's name and status in
    step; returns the new row."""
    names = list(changes)
    sets = ", ".join(f"{name} = ${index}" for index, name in enumerate(names, start=3))
    row = await tx.fetchrow(
        f"UPDATE service_agents SET updated_at = $2{', ' if sets else ''}{sets} WHERE id = $1 "
        f"RETURNING {COLUMNS}",
        agent_id, now, *(changes[name] for name in names),
    )  # fmt: skip
    if row is not None:
        await tx.execute(
            "UPDATE agents SET name = $2, status = $3, updated_at = $4 WHERE id = $1",
            agent_id, row["name"], agent_status(row["status"]), now,
        )  # fmt: skip
    return row


async def set_status(conn: Conn, agent_id: str, status: str, now: str) -> None:
    await update(conn, agent_id, {"status": status}, now)


async def delete(tx: Conn, agent_id: str) -> list[str] | None:
    """Remove the service agent, its agent row and its carrier gateway.

    Returns:
        The rooms the agent was a member of, or None when there was no such service agent.
    """
    deleted = await tx.fetchval("DELETE FROM service_agents WHERE id = $1 RETURNING id", agent_id)
    if deleted is None:
        return None
    rooms = await tx.fetch(
        "DELETE FROM room_members WHERE member_id = $1 AND member_type = 'agent' "
        "RETURNING room_id",
        agent_id,
    )  # fmt: skip
    gateway_id = await tx.fetchval("SELECT gateway_id FROM agents WHERE id = $1", agent_id)
    await tx.execute("DELETE FROM agents WHERE id = $1", agent_id)
    if gateway_id is not None:
        await tx.execute("DELETE FROM gateways WHERE id = $1 AND ephemeral", gateway_id)
    return list(dict.fromkeys(row["room_id"] for row in rooms))


async def ids_among(conn: Conn, agent_ids: Sequence[str]) -> set[str]:
    """Which of the agents are service agents."""
    if not agent_ids:
        return set()
    rows = await conn.fetch(
        "SELECT id FROM service_agents WHERE id = ANY($1::text[])", list(agent_ids)
    )
    return {row["id"] for row in rows}

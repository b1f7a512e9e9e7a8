"""Shared bits of the /api/routers tests: a router body, a create call, audit rows."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import RunningHub, User

# TEST-NET-3 is not a private range in api.md §10.5, and a literal needs no DNS.
PUBLIC_BASE_URL = "https://203.0.113.10/v1"
API_KEY = "sk-live-secret-key-WXYZ"


def router_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Router",
        "llmBaseUrl": PUBLIC_BASE_URL,
        "llmApiKey": API_KEY,
        "llmModel": "gpt-4o-mini",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


async def create_router(client: httpx.AsyncClient, user: User, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/routers", json=router_body(**overrides), headers=user.headers
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def audit_rows(hub: RunningHub, action: str, target_id: str) -> list[dict[str, Any]]:
    rows = await hub.services.db.fetch(
        "SELECT user_id, target_type, metadata, ip_address FROM audit_log "
        "WHERE action = $1 AND target_id = $2",
        action, target_id,
    )  # fmt: skip
    return [dict(row) for row in rows]


async def stored_key(hub: RunningHub, router_id: str) -> str:
    return str(
        await hub.services.db.fetchval("SELECT llm_api_key FROM routers WHERE id = $1", router_id)
    )

"""Router writes (api.md §10.3): create, update and delete, each audited.

API keys are sealed before they reach the store (§10.6) and only leave it masked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from agentim.actions.audit import audit
from agentim.auth.crypto import mask_api_key, open_secret, seal
from agentim.errors import conflict, forbidden, not_found
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.routing.ssrf import check_llm_base_url
from agentim.services import Services
from agentim.store import ai_routers as store
from agentim.store.db import Conn
from agentim.store.users import get_role

log = logging.getLogger("Routers")

Row = Mapping[str, Any]

# Wire field → column for the fields an update may carry (the key is sealed separately).
_UPDATE_COLUMNS: Final = {
    "name": "name",
    "description": "description",
    "llmBaseUrl": "llm_base_url",
    "llmModel": "llm_model",
    "maxChainDepth": "max_chain_depth",
    "rateLimitWindow": "rate_limit_window",
    "rateLimitMax": "rate_limit_max",
}
NAME_TAKEN: Final = "A router with this name already exists"
_GLOBAL_ONLY: Final = ("visibility", "visibilityList")  # ignored on personal routers


def router_json(row: Row, encryption_key: str | None) -> dict[str, Any]:
    """The router object of api.md §10.1; the key is masked (`••••` + its last 2 characters)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "scope": row["scope"],
        "createdById": row["created_by_id"],
        "llmBaseUrl": row["llm_base_url"],
        "llmApiKey": mask_api_key(open_secret(row["llm_api_key"], encryption_key)),
        "llmModel": row["llm_model"],
        "maxChainDepth": row["max_chain_depth"],
        "rateLimitWindow": row["rate_limit_window"],
        "rateLimitMax": row["rate_limit_max"],
        "visibility": row["visibility"],
        "visibilityList": store.parse_visibility_list(row["visibility_list"]),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


async def is_admin(conn: Conn, user_id: str) -> bool:
    """The role is read from the database on every call (api.md §2.7)."""
    return await get_role(conn, user_id) == "admin"


def _json_list(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def _sealed(services: Services, api_key: str) -> str:
    key = services.settings.encryption_key
    if key is None:
        log.warning("ENCRYPTION_KEY is not set: storing the router API key in plaintext")
    return seal(api_key, key)


async def create_router(
    services: Services, *, user_id: str, ip: str | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Create a router from validated `createRouterSchema` fields (defaults applied).

    Raises:
        AgentImError: 400 for a base URL the SSRF guard refuses (checked first), 403 when a
            non-admin asks for a global router, 409 when the caller already has a router of
            that name.
    """
    settings = services.settings
    await check_llm_base_url(
        fields["llmBaseUrl"], allow_private=settings.router_allow_private_networks
    )
    if fields["scope"] == "global" and not await is_admin(services.db, user_id):
        raise forbidden("Admin access required to create global routers")
    async with services.db.transaction() as tx:
        await _claim_name(tx, user_id, fields["name"], None)
        row = await _insert(services, tx, user_id, fields)
    await audit(
        services.db, "router_create", user_id=user_id, ip=ip, target_id=row["id"],
        target_type="router",
    )  # fmt: skip
    return router_json(row, settings.encryption_key)


async def _claim_name(tx: Conn, created_by_id: str, name: str, router_id: str | None) -> None:
    """409 when the creator already has another router of that name (head-gap A31)."""
    await store.lock_creator_names(tx, created_by_id)
    if await store.router_name_taken(tx, created_by_id=created_by_id, name=name,
                                     except_id=router_id):  # fmt: skip
        raise conflict(NAME_TAKEN)


async def _insert(services: Services, tx: Conn, user_id: str, fields: Mapping[str, Any]) -> Row:
    return await store.insert_router(
        tx, router_id=new_id(), name=fields["name"],
        description=fields.get("description"), scope=fields["scope"], created_by_id=user_id,
        llm_base_url=fields["llmBaseUrl"], llm_api_key=_sealed(services, fields["llmApiKey"]),
        llm_model=fields["llmModel"], max_chain_depth=fields["maxChainDepth"],
        rate_limit_window=fields["rateLimitWindow"], rate_limit_max=fields["rateLimitMax"],
        visibility=fields["visibility"], visibility_list=_json_list(fields["visibilityList"]),
        now=iso_now(),
    )  # fmt: skip


async def _owned_router(services: Services, router_id: str, user_id: str, verb: str) -> Row:
    """The router if the caller created it or is an admin: else 404, then 403."""
    row = await store.get_router(services.db, router_id)
    if row is None:
        raise not_found("Router not found")
    if row["created_by_id"] != user_id and not await is_admin(services.db, user_id):
        raise forbidden(f"Only the router owner or admin can {verb}")
    return row


def _column_changes(services: Services, row: Row, changes: Mapping[str, Any]) -> dict[str, Any]:
    columns = {_UPDATE_COLUMNS[k]: v for k, v in changes.items() if k in _UPDATE_COLUMNS}
    if "llmApiKey" in changes:
        columns["llm_api_key"] = _sealed(services, changes["llmApiKey"])
    if row["scope"] == "global":
        if "visibility" in changes:
            columns["visibility"] = changes["visibility"]
        if "visibilityList" in changes:
            columns["visibility_list"] = _json_list(changes["visibilityList"])
    return columns


async def update_router(
    services: Services, *, user_id: str, ip: str | None, router_id: str,
    changes: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Apply validated `updateRouterSchema` fields; the scope never changes.

    Raises:
        AgentImError: 404 `Router not found`, 403 unless creator or admin, then 400 when a new
            base URL is refused by the SSRF guard, 409 when the new name is taken among the
            creator's routers.
    """
    row = await _owned_router(services, router_id, user_id, "update")
    settings = services.settings
    if "llmBaseUrl" in changes:
        await check_llm_base_url(
            changes["llmBaseUrl"], allow_private=settings.router_allow_private_networks
        )
    async with services.db.transaction() as tx:
        if "name" in changes:  # unique among the router's creator's routers, not the caller's
            await _claim_name(tx, row["created_by_id"], changes["name"], router_id)
        updated = await store.update_router(
            tx, router_id, _column_changes(services, row, changes), iso_now()
        )
    if updated is None:
        raise not_found("Router not found")
    await audit(
        services.db, "router_update", user_id=user_id, ip=ip, target_id=router_id,
        target_type="router",
    )  # fmt: skip
    return router_json(updated, settings.encryption_key)


async def delete_router(
    services: Services, *, user_id: str, ip: str | None, router_id: str
) -> None:
    """Delete a router; rooms using it lose it through the FK (no event, api.md §10.3)."""
    row = await _owned_router(services, router_id, user_id, "delete")
    if not await store.delete_router(services.db, router_id):
        raise not_found("Router not found")
    await audit(
        services.db, "router_delete", user_id=user_id, ip=ip, target_id=router_id,
        target_type="router", metadata={"name": row["name"]},
    )  # fmt: skip

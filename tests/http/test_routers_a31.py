"""/api/routers as AgentIM 631a1ad has it (head-gap A31): one name per creator (409), a list
for whitelist and blacklist routers, and the key shown as `••••` + its last two characters."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import RunningHub, signed_in_user
from tests.http.routers_support import create_router, router_body

TAKEN = {"ok": False, "error": "A router with this name already exists"}


async def test_a_creator_cannot_have_two_routers_of_one_name(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    await create_router(client, alice, name="Triage")
    again = await client.post(
        "/api/routers", json=router_body(name="Triage"), headers=alice.headers
    )
    assert (again.status_code, again.json()) == (409, TAKEN)
    await create_router(client, bob, name="Triage")  # another creator: fine
    await create_router(client, alice, name="triage")  # names are compared exactly
    count = await hub.services.db.fetchval(
        "SELECT count(*) FROM routers WHERE created_by_id = $1", alice.id
    )
    assert count == 2


async def test_a_rename_onto_a_taken_name_is_refused(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    alice = await signed_in_user(hub)
    admin = await signed_in_user(hub, role="admin")
    await create_router(client, alice, name="One")
    two = await create_router(client, alice, name="Two")
    path = f"/api/routers/{two['id']}"
    for caller in (alice, admin):  # the creator's names count, whoever renames
        response = await client.put(path, json={"name": "One"}, headers=caller.headers)
        assert (response.status_code, response.json()) == (409, TAKEN)
    same = await client.put(path, json={"name": "Two", "llmModel": "m2"}, headers=alice.headers)
    assert same.status_code == 200 and same.json()["data"]["llmModel"] == "m2"
    assert (
        await hub.services.db.fetchval("SELECT name FROM routers WHERE id = $1", two["id"]) == "Two"
    )


async def test_the_name_index_exists(hub: RunningHub) -> None:
    found = await hub.services.db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'routers_name_creator_idx'"
    )
    assert found is not None and "UNIQUE" in found


@pytest.mark.parametrize("visibility", ["whitelist", "blacklist"])
async def test_a_listed_visibility_needs_a_list(
    hub: RunningHub, client: httpx.AsyncClient, visibility: str
) -> None:
    admin = await signed_in_user(hub, role="admin")
    expected = {
        "ok": False, "error": "Validation failed",
        "fields": [{"field": "visibilityList", "message": "validation.visibilityListRequired"}],
    }  # fmt: skip
    for extra in ({}, {"visibilityList": []}):
        body = router_body(scope="global", visibility=visibility, **extra)
        response = await client.post("/api/routers", json=body, headers=admin.headers)
        assert (response.status_code, response.json()) == (400, expected)
    assert await hub.services.db.fetchval("SELECT count(*) FROM routers WHERE created_by_id = $1",
                                          admin.id) == 0  # fmt: skip
    router = await create_router(
        client, admin, scope="global", visibility=visibility, visibilityList=[admin.id]
    )
    path = f"/api/routers/{router['id']}"
    emptied = await client.put(
        path, json={"visibility": visibility, "visibilityList": []}, headers=admin.headers
    )
    assert (emptied.status_code, emptied.json()) == (400, expected)
    # the update rule: without a list in the body the stored one stays
    kept = await client.put(path, json={"visibility": visibility}, headers=admin.headers)
    assert kept.status_code == 200 and kept.json()["data"]["visibilityList"] == [admin.id]


@pytest.mark.parametrize(
    ("key", "shown"),
    [("12345678", "••••"), ("123456789", "••••89"), ("sk-abcdefghijkl-XY", "••••XY")],
)
async def test_the_key_mask(
    hub: RunningHub, client: httpx.AsyncClient, key: str, shown: str
) -> None:
    user = await signed_in_user(hub)
    router = await create_router(client, user, llmApiKey=key)
    assert router["llmApiKey"] == shown
    listed = (await client.get("/api/routers", headers=user.headers)).json()["data"]
    assert [r["llmApiKey"] for r in listed if r["id"] == router["id"]] == [shown]

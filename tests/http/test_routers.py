"""/api/routers CRUD (api.md §10.1-10.3): validation, visibility, masks, encryption, audit."""

from __future__ import annotations

import logging

import attrs
import httpx
import pytest
import trio

from agentim.actions import routers
from agentim.auth.crypto import open_secret
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.http.routers_support import (
    API_KEY,
    PUBLIC_BASE_URL,
    audit_rows,
    create_router,
    router_body,
    stored_key,
)

ROUTER_FIELDS = [
    "id", "name", "description", "scope", "createdById", "llmBaseUrl", "llmApiKey", "llmModel",
    "maxChainDepth", "rateLimitWindow", "rateLimitMax", "visibility", "visibilityList",
    "createdAt", "updatedAt",
]  # fmt: skip


async def test_create_personal_router(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(10):
        response = await client.post("/api/routers", json=router_body(), headers=user.headers)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert '"llmApiKey":"••••YZ"' in response.text  # compact, not ASCII-escaped
    router = response.json()["data"]
    assert list(router) == ROUTER_FIELDS
    assert router | {"id": None, "createdAt": None, "updatedAt": None} == {
        "id": None, "name": "Router", "description": None, "scope": "personal",
        "createdById": user.id, "llmBaseUrl": PUBLIC_BASE_URL, "llmApiKey": "••••YZ",
        "llmModel": "gpt-4o-mini", "maxChainDepth": 5, "rateLimitWindow": 60,
        "rateLimitMax": 20, "visibility": "all", "visibilityList": [], "createdAt": None,
        "updatedAt": None,
    }  # fmt: skip
    assert router["createdAt"] == router["updatedAt"]


async def test_api_key_is_stored_encrypted(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    router = await create_router(client, user)
    stored = await stored_key(hub, router["id"])
    assert stored.startswith("enc:")
    assert API_KEY not in stored
    assert open_secret(stored, hub.services.settings.encryption_key) == API_KEY


async def test_create_is_audited(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    router = await create_router(client, user)
    [row] = await audit_rows(hub, "router_create", router["id"])
    assert row["user_id"] == user.id
    assert row["target_type"] == "router"
    assert row["metadata"] is None
    assert row["ip_address"]


async def test_create_stores_every_given_field(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    router = await create_router(
        client, user, name="<b>Raw</b>", description="d", maxChainDepth=9, rateLimitWindow=120,
        rateLimitMax=3, visibility="whitelist", visibilityList=["u1", "u2"],
    )  # fmt: skip
    assert router["name"] == "<b>Raw</b>"  # no HTML sanitising for routers
    assert (router["description"], router["maxChainDepth"]) == ("d", 9)
    assert (router["rateLimitWindow"], router["rateLimitMax"]) == (120, 3)
    assert (router["visibility"], router["visibilityList"]) == ("whitelist", ["u1", "u2"])
    text = await hub.services.db.fetchval(
        "SELECT visibility_list FROM routers WHERE id = $1", router["id"]
    )
    assert text == '["u1","u2"]'


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        (
            {"name": None, "llmBaseUrl": None, "llmApiKey": None, "llmModel": None},
            [{"field": f, "message": "Required"}
             for f in ("name", "llmBaseUrl", "llmApiKey", "llmModel")],
        ),
        ({"llmBaseUrl": "ftp://example.com"},
         [{"field": "llmBaseUrl", "message": "Must be an HTTP(S) URL"}]),
        ({"llmBaseUrl": "not a url"},
         [{"field": "llmBaseUrl", "message": "Invalid url"},
          {"field": "llmBaseUrl", "message": "Must be an HTTP(S) URL"}]),
        ({"llmBaseUrl": "https://203.0.113.10/" + "a" * 500},
         [{"field": "llmBaseUrl", "message": "String must contain at most 500 character(s)"}]),
        ({"llmApiKey": "   "},
         [{"field": "llmApiKey", "message": "API key cannot be only whitespace"}]),
        ({"llmModel": " \t"},
         [{"field": "llmModel", "message": "Model cannot be only whitespace"}]),
        ({"name": " "}, [{"field": "name", "message": "Name cannot be only whitespace"}]),
        ({"maxChainDepth": 0},
         [{"field": "maxChainDepth", "message": "Number must be greater than or equal to 1"}]),
        ({"rateLimitWindow": 1.5},
         [{"field": "rateLimitWindow", "message": "Expected integer, received float"}]),
        ({"scope": "team"},
         [{"field": "scope",
           "message": "Invalid enum value. Expected 'global' | 'personal', received 'team'"}]),
        ({"visibilityList": ["ok", 3]},
         [{"field": "visibilityList.1", "message": "Expected string, received number"}]),
    ],
)  # fmt: skip
async def test_create_validation(
    hub: RunningHub, client: httpx.AsyncClient, overrides: dict[str, object],
    fields: list[dict[str, str]],
) -> None:  # fmt: skip
    user = await signed_in_user(hub)
    response = await client.post(
        "/api/routers", json=router_body(**overrides), headers=user.headers
    )
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Validation failed", "fields": fields}


async def test_bad_json_and_non_object_bodies(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    response = await client.post("/api/routers", content=b"{", headers=user.headers)
    assert (response.status_code, response.json()["error"]) == (400, "Invalid JSON body")
    response = await client.post("/api/routers", json=[], headers=user.headers)
    assert response.json()["fields"] == [
        {"field": "(root)", "message": "Expected object, received array"}
    ]


async def test_global_routers_need_an_admin(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    response = await client.post(
        "/api/routers", json=router_body(scope="global"), headers=user.headers
    )
    assert response.status_code == 403
    assert response.json() == {
        "ok": False,
        "error": "Admin access required to create global routers",
    }
    admin = await signed_in_user(hub, role="admin")
    assert (await create_router(client, admin, scope="global"))["scope"] == "global"


async def test_ssrf_check_comes_before_the_admin_check(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    body = router_body(scope="global", llmBaseUrl="http://10.0.0.1/v1")
    response = await client.post("/api/routers", json=body, headers=user.headers)
    assert response.status_code == 400
    assert response.json()["error"] == "LLM base URL must not point to internal or private networks"


async def test_auth_and_path_ids(hub: RunningHub, client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/routers")).status_code == 401
    assert (await client.get("/api/routers/abc")).json()["error"] == "Unauthorized"
    user = await signed_in_user(hub)
    response = await client.get("/api/routers/bad.id", headers=user.headers)
    assert response.json() == {"ok": False, "error": "Invalid parameter: id"}
    response = await client.post("/api/routers/" + "x" * 31 + "/test", headers=user.headers)
    assert response.json() == {"ok": False, "error": "Invalid parameter: id"}
    response = await client.get("/api/routers/abc/unknown", headers=user.headers)
    assert (response.status_code, response.text) == (404, "404 Not Found")
    response = await client.get("/api/routers/missing", headers=user.headers)
    assert response.json() == {"ok": False, "error": "Router not found"}


# Visibility (§10.2) --------------------------------------------------------------------------


async def test_visibility_in_list_and_get(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await signed_in_user(hub, role="admin")
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    everyone = await create_router(client, admin, scope="global", name="all")
    only_alice = await create_router(
        client, admin, scope="global", name="only", visibility="whitelist",
        visibilityList=[alice.id],
    )  # fmt: skip
    not_alice = await create_router(
        client, admin, scope="global", name="not", visibility="blacklist",
        visibilityList=[alice.id],
    )  # fmt: skip
    alice_own = await create_router(client, alice, name="mine")
    bob_own = await create_router(client, bob, name="bob's")
    ours = {r["id"] for r in (everyone, only_alice, not_alice, alice_own, bob_own)}

    async def listed(user_headers: dict[str, str]) -> list[str]:
        response = await client.get("/api/routers", headers=user_headers)
        assert response.status_code == 200
        return [r["id"] for r in response.json()["data"] if r["id"] in ours]

    assert await listed(alice.headers) == [alice_own["id"], everyone["id"], only_alice["id"]]
    assert await listed(bob.headers) == [bob_own["id"], everyone["id"], not_alice["id"]]
    assert set(await listed(admin.headers)) == ours

    async def status(user_headers: dict[str, str], router_id: str) -> int:
        return (await client.get(f"/api/routers/{router_id}", headers=user_headers)).status_code

    assert await status(alice.headers, only_alice["id"]) == 200
    assert await status(bob.headers, only_alice["id"]) == 404
    assert await status(alice.headers, not_alice["id"]) == 404
    assert await status(bob.headers, alice_own["id"]) == 404
    assert await status(admin.headers, alice_own["id"]) == 200
    response = await client.get(f"/api/routers/{alice_own['id']}", headers=alice.headers)
    assert response.json() == {"ok": True, "data": alice_own}


async def test_a_global_routers_creator_gets_no_special_treatment(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await signed_in_user(hub, role="admin")
    router = await create_router(
        client, admin, scope="global", visibility="whitelist", visibilityList=["someone-else"]
    )
    await hub.services.db.execute("UPDATE users SET role = 'user' WHERE id = $1", admin.id)
    response = await client.get(f"/api/routers/{router['id']}", headers=admin.headers)
    assert response.status_code == 404  # the role is read on every call, not from the token


async def test_unknown_visibility_hides_a_global_router(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin, user = await signed_in_user(hub, role="admin"), await signed_in_user(hub)
    router = await create_router(client, admin, scope="global")
    await hub.services.db.execute(
        "UPDATE routers SET visibility = 'team' WHERE id = $1", router["id"]
    )
    assert (
        await client.get(f"/api/routers/{router['id']}", headers=user.headers)
    ).status_code == 404


async def test_mask_of_short_and_unreadable_keys(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    short = await create_router(client, user, llmApiKey="abcd")
    assert short["llmApiKey"] == "••••"
    await hub.services.db.execute(
        "UPDATE routers SET llm_api_key = 'enc:00:11:22', visibility_list = 'not json' "
        "WHERE id = $1",
        short["id"],
    )  # fmt: skip
    data = (await client.get(f"/api/routers/{short['id']}", headers=user.headers)).json()["data"]
    assert (data["llmApiKey"], data["visibilityList"]) == ("••••", [])


# Update (§10.3) ------------------------------------------------------------------------------


async def test_owner_updates_and_the_key_is_re_encrypted(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    router = await create_router(client, user, description="old")
    before = await stored_key(hub, router["id"])
    await trio.sleep(0.002)  # a distinct updatedAt
    changes = {"name": "Renamed", "llmApiKey": "sk-new-key-9876", "description": None,
               "scope": "global", "maxChainDepth": 3, "visibility": "blacklist",
               "visibilityList": ["someone"]}  # fmt: skip
    response = await client.put(f"/api/routers/{router['id']}", json=changes, headers=user.headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert list(data) == ROUTER_FIELDS
    assert (data["name"], data["description"], data["maxChainDepth"]) == ("Renamed", None, 3)
    assert data["llmApiKey"] == "••••76"
    assert data["scope"] == "personal"  # the scope never changes
    assert (data["visibility"], data["visibilityList"]) == ("all", [])  # ignored: personal
    assert data["updatedAt"] > router["updatedAt"]
    assert data["createdAt"] == router["createdAt"]
    after = await stored_key(hub, router["id"])
    assert after.startswith("enc:") and after != before and "sk-new-key-9876" not in after
    [row] = await audit_rows(hub, "router_update", router["id"])
    assert (row["user_id"], row["target_type"], row["metadata"]) == (user.id, "router", None)


async def test_global_router_visibility_is_updated(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await signed_in_user(hub, role="admin")
    router = await create_router(client, admin, scope="global")
    changes = {"visibility": "whitelist", "visibilityList": ["a", "b"]}
    response = await client.put(f"/api/routers/{router['id']}", json=changes, headers=admin.headers)
    data = response.json()["data"]
    assert (data["visibility"], data["visibilityList"]) == ("whitelist", ["a", "b"])


async def test_update_order_of_checks(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    admin = await signed_in_user(hub, role="admin")
    router = await create_router(client, owner)
    url = f"/api/routers/{router['id']}"
    bad = {"maxChainDepth": 0}
    assert (
        await client.put("/api/routers/missing", json=bad, headers=owner.headers)
    ).status_code == 400
    response = await client.put("/api/routers/missing", json={}, headers=owner.headers)
    assert (response.status_code, response.json()["error"]) == (404, "Router not found")
    private = {"llmBaseUrl": "http://127.0.0.1:8080"}
    response = await client.put(url, json=private, headers=other.headers)
    assert response.json() == {"ok": False, "error": "Only the router owner or admin can update"}
    response = await client.put(url, json=private, headers=owner.headers)
    assert response.status_code == 400
    assert response.json()["error"] == "LLM base URL must not point to internal or private networks"
    response = await client.put(url, json={"name": "by admin"}, headers=admin.headers)
    assert (response.status_code, response.json()["data"]["name"]) == (200, "by admin")


# Delete (§10.3) ------------------------------------------------------------------------------


async def test_delete(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    router = await create_router(client, owner, name="Doomed")
    room_id = await create_room(hub, owner, broadcast=True)
    db = hub.services.db
    await db.execute("UPDATE rooms SET router_id = $2 WHERE id = $1", room_id, router["id"])
    url = f"/api/routers/{router['id']}"
    response = await client.delete(url, headers=other.headers)
    assert response.json() == {"ok": False, "error": "Only the router owner or admin can delete"}
    response = await client.delete(url, headers=owner.headers)
    assert (response.status_code, response.text) == (200, '{"ok":true}')
    assert await db.fetchval("SELECT count(*) FROM routers WHERE id = $1", router["id"]) == 0
    assert await db.fetchval("SELECT router_id FROM rooms WHERE id = $1", room_id) is None
    [row] = await audit_rows(hub, "router_delete", router["id"])
    assert (row["user_id"], row["metadata"]) == (owner.id, '{"name":"Doomed"}')
    response = await client.delete(url, headers=owner.headers)
    assert response.json() == {"ok": False, "error": "Router not found"}


async def test_admin_deletes_any_router(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, admin = await signed_in_user(hub), await signed_in_user(hub, role="admin")
    router = await create_router(client, owner)
    response = await client.delete(f"/api/routers/{router['id']}", headers=admin.headers)
    assert response.status_code == 200


# Legacy plaintext keys (§10.6) -------------------------------------------------------------


async def test_legacy_plaintext_keys_are_read_as_is(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    router = await create_router(client, user)
    await hub.services.db.execute(
        "UPDATE routers SET llm_api_key = 'sk-legacy-plain-1234' WHERE id = $1", router["id"]
    )
    data = (await client.get(f"/api/routers/{router['id']}", headers=user.headers)).json()["data"]
    assert data["llmApiKey"] == "••••34"


async def test_without_encryption_key_new_keys_are_plaintext(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    # serve() always has a key (D3 generates one outside production), so call the action.
    user = await signed_in_user(hub)
    svc = attrs.evolve(
        hub.services, settings=attrs.evolve(hub.services.settings, encryption_key=None)
    )
    fields = {**router_body(), "scope": "personal", "maxChainDepth": 5, "rateLimitWindow": 60,
              "rateLimitMax": 20, "visibility": "all", "visibilityList": []}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="Routers"):
        router = await routers.create_router(svc, user_id=user.id, ip=None, fields=fields)
    assert router["llmApiKey"] == "••••YZ"
    assert await stored_key(hub, router["id"]) == API_KEY
    assert any("plaintext" in r.getMessage() for r in caplog.records if r.name == "Routers")

"""/api/service-agents (head-gap A3): admin CRUD, validation texts, the provider list, the
validate call against a local fake provider, config encrypted at rest and masked on read."""

from __future__ import annotations

from typing import Any

import attrs
import httpx

from agentim.auth.crypto import open_secret
from tests.conftest import start_hub
from tests.fake_provider import running_provider
from tests.helpers import RunningHub, User, signed_in_user

KEY = "sk-test-1234567890abcdef"


async def _admin(hub: RunningHub) -> User:
    return await signed_in_user(hub, role="admin")


def _body(name: str = "helper", base_url: str = "https://llm.example.com/v1") -> dict[str, Any]:
    return {"name": name, "type": "openai-chat", "description": "answers",
            "config": {"baseUrl": base_url, "apiKey": KEY, "model": "gpt-x"}}  # fmt: skip


async def test_crud_masks_and_encrypts(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    created = await client.post("/api/service-agents", json=_body(), headers=admin.headers)
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["name"] == "helper" and data["category"] == "chat" and data["status"] == "active"
    assert data["createdById"] == admin.id and "config" not in data
    assert "configEncrypted" not in data
    agent_id = data["id"]

    stored = await hub.services.db.fetchval(
        "SELECT config_encrypted FROM service_agents WHERE id = $1", agent_id
    )
    assert KEY not in stored and stored.startswith("enc:")
    assert KEY in (open_secret(stored, hub.services.settings.encryption_key) or "")

    one = (await client.get(f"/api/service-agents/{agent_id}", headers=admin.headers)).json()
    assert one["data"]["config"]["apiKey"] == "sk-t••••••••"
    assert one["data"]["config"]["maxTokens"] == 4096  # the provider's default was filled in

    listed = (await client.get("/api/service-agents", headers=admin.headers)).json()["data"]
    [row] = [row for row in listed if row["id"] == agent_id]
    assert row["name"] == "helper" and "config" not in row

    # it is an agent like any other: an `agents` row of its own, online, visible to all
    agent = await hub.services.db.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)
    assert agent["name"] == "helper" and agent["status"] == "online"
    assert agent["visibility"] == "all" and agent["connection_type"] == "api"

    renamed = await client.put(
        f"/api/service-agents/{agent_id}",
        json={"name": "helper2", "status": "inactive", "config": {"model": "gpt-y"}},
        headers=admin.headers,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["name"] == "helper2"
    one = (await client.get(f"/api/service-agents/{agent_id}", headers=admin.headers)).json()
    assert one["data"]["config"]["model"] == "gpt-y"
    assert one["data"]["config"]["apiKey"] == "sk-t••••••••"  # merged, the key kept
    agent = await hub.services.db.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)
    assert agent["name"] == "helper2" and agent["status"] == "offline"

    deleted = await client.delete(f"/api/service-agents/{agent_id}", headers=admin.headers)
    assert deleted.status_code == 200 and deleted.json() == {"ok": True}
    gone = await client.get(f"/api/service-agents/{agent_id}", headers=admin.headers)
    assert gone.status_code == 404
    assert gone.json() == {"ok": False, "error": "Service agent not found"}
    assert await hub.services.db.fetchval("SELECT count(*) FROM agents WHERE id = $1",
                                          agent_id) == 0  # fmt: skip

    actions = await hub.services.db.fetch(
        "SELECT action FROM audit_log WHERE target_id = $1 ORDER BY created_at", agent_id
    )
    assert [row["action"] for row in actions] == [
        "admin_service_agent_create", "admin_service_agent_update", "admin_service_agent_delete"
    ]  # fmt: skip


async def test_validation_texts(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    missing = await client.post(
        "/api/service-agents", json={"name": "  ", "type": "openai-chat", "config": {}},
        headers=admin.headers,
    )  # fmt: skip
    assert missing.status_code == 400
    assert missing.json() == {"ok": False, "error": "Validation failed", "fields": [
        {"field": "name", "message": "validation.nameWhitespace"}]}  # fmt: skip

    no_key = await client.post(
        "/api/service-agents", json={"name": "a", "config": {"model": "m"}}, headers=admin.headers
    )
    assert no_key.json()["fields"] == [
        {"field": "config.apiKey", "message": "validation.serviceAgentApiKeyRequired"}
    ]

    bad_config = _body()
    bad_config["config"].update(baseUrl="not a url", maxTokens=0)
    bad = await client.post("/api/service-agents", json=bad_config, headers=admin.headers)
    assert bad.status_code == 400
    assert bad.json() == {"ok": False, "error": "Invalid provider config", "fields": [
        {"field": "config.baseUrl", "message": "Invalid url"},
        {"field": "config.maxTokens", "message": "Number must be greater than or equal to 1"},
    ]}  # fmt: skip

    dangerous = await client.post(
        "/api/service-agents", json={"name": "a", "config": {"constructor": 1, "apiKey": "k"}},
        headers=admin.headers,
    )  # fmt: skip
    assert dangerous.json()["fields"] == [
        {"field": "config", "message": "validation.configDangerousKey"}
    ]

    first = await client.post("/api/service-agents", json=_body("dup"), headers=admin.headers)
    assert first.status_code == 201
    again = await client.post("/api/service-agents", json=_body("dup"), headers=admin.headers)
    assert again.status_code == 409
    assert again.json() == {"ok": False, "error": "A service agent with this name already exists"}
    count = "SELECT count(*) FROM service_agents WHERE created_by_id = $1"
    assert await hub.services.db.fetchval(count, admin.id) == 1
    assert await hub.services.db.fetchval("SELECT count(*) FROM agents WHERE name = 'dup'") == 1


async def test_admin_only(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    for method, path in (("GET", "/api/service-agents"), ("GET", "/api/service-agents/providers"),
                         ("POST", "/api/service-agents")):  # fmt: skip
        response = await client.request(method, path, json=_body(), headers=user.headers)
        assert response.status_code == 403
        assert response.json() == {"ok": False, "error": "Admin access required"}
    assert (await client.get("/api/service-agents")).status_code == 401


async def test_providers_schema(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    providers = (await client.get("/api/service-agents/providers", headers=admin.headers)).json()
    assert [p["type"] for p in providers["data"]] == [
        "openai-chat", "openai-image", "elevenlabs", "perplexity", "runway", "meshy"
    ]  # fmt: skip
    chat = next(p for p in providers["data"] if p["type"] == "openai-chat")
    assert chat["displayName"] == "OpenAI Chat" and chat["category"] == "chat"
    schema = chat["configSchema"]
    assert schema["required"] == ["baseUrl", "apiKey", "model"]
    assert schema["properties"]["maxTokens"] == {"type": "integer", "minimum": 1,
                                                 "maximum": 100000, "default": 4096}  # fmt: skip
    assert schema["properties"]["systemPrompt"] == {"type": "string", "maxLength": 10000}


async def test_validate_against_fake_provider(
    bridge: None, nursery: Any, settings: Any, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, router_allow_private_networks=True),
                          redis_prefix)  # fmt: skip
    async with running_provider() as fake, httpx.AsyncClient(base_url=hub.url) as client:
        admin = await _admin(hub)
        body = _body(base_url=fake.base_url)
        agent_id = (await client.post("/api/service-agents", json=body,
                                      headers=admin.headers)).json()["data"]["id"]  # fmt: skip
        result = await client.post(f"/api/service-agents/{agent_id}/validate",
                                   headers=admin.headers)  # fmt: skip
        assert result.json() == {"ok": True, "data": {"valid": True}}
        assert fake.requests[-1].path == "/v1/models"
        assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_validate_refuses_private_address(hub: RunningHub, client: httpx.AsyncClient) -> None:
    """ROUTER_ALLOW_PRIVATE_NETWORKS=false (the default): loopback is never contacted."""
    async with running_provider() as fake:
        admin = await _admin(hub)
        agent_id = (await client.post("/api/service-agents", json=_body(base_url=fake.base_url),
                                      headers=admin.headers)).json()["data"]["id"]  # fmt: skip
        result = await client.post(f"/api/service-agents/{agent_id}/validate",
                                   headers=admin.headers)  # fmt: skip
        assert result.json() == {
            "ok": True,
            "data": {
                "valid": False,
                "error": "Base URL points to a private network (SSRF blocked)",
            },
        }
        assert fake.requests == []

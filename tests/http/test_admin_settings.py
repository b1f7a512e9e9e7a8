"""GET/PUT /api/admin/settings (head-gap A1, C1, config row D12) and GET /api/admin/metrics (A2)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from agentim.auth.crypto import open_secret
from agentim.runtime_settings import DEFINITIONS
from tests.helpers import RunningHub, User, signed_in_user
from tests.ws.wsclient import signed_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 3000  # 3008 bytes


@pytest.fixture
async def hub(hub: RunningHub) -> AsyncIterator[RunningHub]:
    """The test database is shared by the run: no saved setting outlives its test."""
    await hub.services.db.execute("DELETE FROM settings")
    yield hub
    await hub.services.db.execute("DELETE FROM settings")


async def _admin(hub: RunningHub) -> User:
    return await signed_in_user(hub, role="admin")


async def _put(client: httpx.AsyncClient, user: User, changes: object) -> httpx.Response:
    with trio.fail_after(10):
        return await client.put(
            "/api/admin/settings", json={"changes": changes}, headers=user.headers
        )


def _items(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for items in body["data"].values() for item in items}


async def test_get_lists_every_setting_by_group_with_its_source(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await _admin(hub)
    response = await client.get("/api/admin/settings", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert list(body["data"]) == [
        "general", "security", "storage", "rateLimit", "connections", "aiRouter",
        "pushNotifications", "maintenance",
    ]  # fmt: skip
    items = _items(body)
    assert list(items) == [d.key for d in DEFINITIONS]
    assert items["upload.maxFileSize"] == {
        "key": "upload.maxFileSize", "value": "10485760", "type": "number", "sensitive": False,
        "min": 1024, "max": 104857600, "labelKey": "adminSettings.uploadMaxFileSize",
        "descKey": "adminSettings.uploadMaxFileSizeDesc", "source": "default",
    }  # fmt: skip
    assert items["log.level"]["enumValues"] == ["debug", "info", "warn", "error", "fatal"]
    assert (items["log.level"]["value"], items["log.level"]["source"]) == ("info", "env")
    assert items["cleanup.tokenInterval"]["value"] == "3600000"  # milliseconds, as the page says
    assert items["router.llm.apiKey"]["value"] == ""  # nothing set: nothing to mask
    assert items["totp.issuer"] == {**items["totp.issuer"], "value": "AgentIM", "source": "default"}


async def test_put_saves_applies_and_audits(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin, user = await _admin(hub), await signed_in_user(hub)
    changes = {"upload.maxFileSize": "2048", "rateLimit.client.max": 3, "trust.proxy": False}
    response = await _put(client, admin, changes)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "data": {"updated": list(changes)}}
    items = _items((await client.get("/api/admin/settings", headers=admin.headers)).json())
    assert [(items[k]["value"], items[k]["source"]) for k in changes] == [
        ("2048", "db"), ("3", "db"), ("false", "db")
    ]  # fmt: skip
    rows = await hub.services.db.fetch("SELECT key, value, updated_by FROM settings ORDER BY key")
    assert [tuple(r) for r in rows] == [
        ("rateLimit.client.max", "3", admin.id),
        ("trust.proxy", "false", admin.id),
        ("upload.maxFileSize", "2048", admin.id),
    ]
    (audit,) = await hub.services.db.fetch(
        "SELECT user_id, target_type, metadata FROM audit_log WHERE action = $1 AND user_id = $2",
        "admin_setting_update",
        admin.id,
    )
    assert (audit["user_id"], audit["target_type"]) == (admin.id, "setting")
    assert json.loads(audit["metadata"]) == {"keys": list(changes)}

    # The new upload limit holds at once, with the reference's text.
    upload = await client.post(
        "/api/upload", files={"file": ("a.png", PNG, "image/png")}, headers=user.headers
    )
    assert upload.status_code == 400
    assert upload.json() == {"ok": False, "error": "File too large. Maximum size is 0MB"}
    # So does the client message rate: the 4th frame in the window is refused.
    async with signed_in(hub, user) as ws:
        for _ in range(4):
            await ws.send({"type": "client:typing", "roomId": "not-joined"})
        error = await ws.receive_type("server:error")
    assert error["code"] == "RATE_LIMITED"


async def test_put_refuses_bad_values_and_saves_none(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await _admin(hub)
    changes = {
        "upload.maxFileSize": "10",
        "rateLimit.agent.max": "many",
        "ws.maxTotalConnections": "200000",
        "log.level": "verbose",
        "trust.proxy": "yes",
        "cors.origin": "*",
        "nope.key": "1",
        "rateLimit.client.window": "20",  # valid, yet not saved: the request is refused whole
    }
    response = await _put(client, admin, changes)
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error": "upload.maxFileSize: minimum is 1024; rateLimit.agent.max: must be a number; "
        "ws.maxTotalConnections: maximum is 100000; "
        "log.level: must be one of debug, info, warn, error, fatal; "
        'trust.proxy: must be "true" or "false"; '
        'cors.origin: wildcard "*" is not allowed \u2014 specify explicit origins; '
        "Unknown setting: nope.key",
        "data": {"updated": []},
    }
    bad_origin = await _put(client, admin, {"cors.origin": "https://a.example, ftp://b"})
    assert bad_origin.json()["error"] == (
        'cors.origin: "ftp://b" is not a valid HTTP(S) origin (e.g. https://app.example.com)'
    )
    assert [tuple(r) for r in await hub.services.db.fetch("SELECT * FROM settings")] == []
    assert hub.services.live.current.client_rate_limit_window == 10
    for body in ({}, {"changes": None}, {"changes": "x"}, []):
        missing = await client.put("/api/admin/settings", json=body, headers=admin.headers)
        assert (missing.status_code, missing.json()) == (
            400, {"ok": False, "error": 'Missing "changes" object'}
        )  # fmt: skip


async def test_secrets_are_sealed_at_rest_and_masked_on_read(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await _admin(hub)
    secret = "sk-live-0123456789abcdef"
    response = await _put(client, admin, {"router.llm.apiKey": secret, "router.llm.model": "m1"})
    assert response.status_code == 200
    stored = await hub.services.db.fetchval(
        "SELECT value FROM settings WHERE key = 'router.llm.apiKey'"
    )
    assert stored.startswith("enc:") and secret not in stored
    assert open_secret(stored, hub.services.settings.encryption_key) == secret
    model = await hub.services.db.fetchval("SELECT value FROM settings WHERE key = $1",
                                           "router.llm.model")  # fmt: skip
    assert model == "m1"  # not a secret: stored as is
    items = _items((await client.get("/api/admin/settings", headers=admin.headers)).json())
    assert (
        items["router.llm.apiKey"]["value"]
        == "sk-l\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022"
    )
    assert items["router.llm.apiKey"]["sensitive"] is True
    assert hub.services.live.value("router.llm.apiKey") == secret  # in clear for the hub only


async def test_admin_only(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    refused = [
        await client.get("/api/admin/settings", headers=user.headers),
        await client.put(
            "/api/admin/settings",
            json={"changes": {"upload.maxFileSize": "2048"}},
            headers=user.headers,
        ),
    ]
    for response in refused:
        assert (response.status_code, response.json()) == (
            403, {"ok": False, "error": "Admin access required"}
        )  # fmt: skip
    metrics = await client.get("/api/admin/metrics", headers=user.headers)
    assert (metrics.status_code, metrics.json()) == (403, {"ok": False, "error": "Forbidden"})
    for path in ("/api/admin/settings", "/api/admin/metrics"):
        anonymous = await client.get(path)
        assert (anonymous.status_code, anonymous.json()) == (
            401, {"ok": False, "error": "Unauthorized"}
        )  # fmt: skip
    assert await hub.services.db.fetchval("SELECT count(*) FROM settings") == 0


async def test_admin_metrics_reads_the_prometheus_counters(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin, user = await _admin(hub), await signed_in_user(hub)
    assert (await client.get("/api/health")).status_code == 200  # one timed request
    async with signed_in(hub, user):
        response = await client.get("/api/admin/metrics", headers=admin.headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert list(data) == [
        "connections", "process", "infrastructure", "activity", "performance", "timestamp"
    ]  # fmt: skip
    assert data["connections"] == {
        "clients": 1, "gateways": 0, "onlineUsers": 1, "connectedAgents": 0
    }  # fmt: skip
    assert data["process"]["rssBytes"] >= data["process"]["heapUsedBytes"] > 0
    assert data["infrastructure"] == {"redisEnabled": True}
    counters = data["activity"]["messagesTotal"]
    inbound = 'agentim_ws_messages_total{direction="in"}'
    assert counters[inbound] >= 1  # the client's auth frame
    prometheus = (await client.get("/api/metrics")).text.splitlines()
    assert f"{inbound} {counters[inbound]:g}" in prometheus  # the same counter
    http = data["performance"]["httpRequest"]["_"]
    assert http["count"] >= 1 and len(http["buckets"]) == len(http["counts"]) == 11
    assert set(http) == {"buckets", "counts", "sum", "count", "avg", "p50", "p95", "p99"}

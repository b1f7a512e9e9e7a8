"""GET /api/health's `system` figures (DIFFERENCES D19): shown to the hub's own host (a loopback
peer with no forwarding header) and to admins; hidden from a caller behind a proxy."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import RunningHub, signed_in_user


async def test_a_local_caller_sees_system(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/health")).json()
    assert list(body) == ["ok", "timestamp", "checks", "system", "services"]


@pytest.mark.parametrize(
    "header",
    [{"X-Forwarded-For": "203.0.113.7"}, {"X-Real-IP": "203.0.113.7"},
     {"Forwarded": "for=203.0.113.7"}],
)  # fmt: skip
async def test_a_proxied_caller_does_not(
    hub: RunningHub, client: httpx.AsyncClient, header: dict[str, str]
) -> None:
    user = await signed_in_user(hub)
    for headers in (header, {**header, **user.headers},
                    {**header, "Authorization": "Bearer junk"}):  # fmt: skip
        response = await client.get("/api/health", headers=headers)
        assert response.status_code == 200
        body = response.json()
        assert list(body) == ["ok", "timestamp", "checks", "services"]
        assert "memoryMB" not in response.text and "pid" not in response.text


async def test_an_admin_behind_the_proxy_does(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await signed_in_user(hub, role="admin")
    headers = {"X-Forwarded-For": "203.0.113.7", **admin.headers}
    body = (await client.get("/api/health", headers=headers)).json()
    assert set(body["system"]) >= {"memoryMB", "uptimeSeconds", "openSockets", "pid"}

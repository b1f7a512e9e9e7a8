"""Runtime settings saved on one hub process hold on another without a restart (A1, D12, D15)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from tests.e2e.conftest import SpawnHub
from tests.helpers import RunningHub, create_user, login
from tests.ws.wsclient import connect

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 3000  # 3008 bytes: under the default limit, over 2 KiB


@pytest.fixture
async def hub(hub: RunningHub) -> AsyncIterator[RunningHub]:
    """The test database is shared by the run: no saved setting outlives its test."""
    await hub.services.db.execute("DELETE FROM settings")
    yield hub
    await hub.services.db.execute("DELETE FROM settings")


async def _upload(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post(
        "/api/upload",
        files={"file": ("a.png", PNG, "image/png")},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_setting_saved_on_a_holds_on_b(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as http_b,
    ):
        admin = await login(http_a, await create_user(hub, role="admin"))
        user = await login(http_b, await create_user(hub))
        before = await _upload(http_b, user.token)
        assert before.status_code == 200, before.text

        changes = {"upload.maxFileSize": "2048", "rateLimit.client.max": "3"}
        saved = await http_a.put(
            "/api/admin/settings", json={"changes": changes}, headers=admin.headers
        )
        assert saved.json() == {"ok": True, "data": {"updated": list(changes)}}

        with trio.fail_after(5):  # the control event crosses Redis: milliseconds
            while (refused := await _upload(http_b, user.token)).status_code == 200:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert (refused.status_code, refused.json()) == (
            400, {"ok": False, "error": "File too large. Maximum size is 0MB"}
        )  # fmt: skip
        async with connect(b.ws_url) as ws:
            assert (await ws.auth(user))["ok"] is True
            for _ in range(4):  # the 4th in the window is over the new limit of 3
                await ws.send({"type": "client:typing", "roomId": "not-joined"})
            error = await ws.receive_type("server:error")
        assert (error["code"], error["message"]) == (
            "RATE_LIMITED", "Too many messages, please slow down"
        )  # fmt: skip

        settings_on_b = await http_b.get("/api/admin/settings", headers=admin.headers)
        size = {i["key"]: i for i in settings_on_b.json()["data"]["storage"]}["upload.maxFileSize"]
        assert (size["value"], size["source"]) == ("2048", "db")

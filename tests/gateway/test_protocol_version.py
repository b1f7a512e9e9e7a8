"""631a1ad's handshake additions (head-gap B1, B26, E13): `protocolVersion` on both auth
messages, `ephemeral` and `deviceInfo.agentimVersion` on `gateway:auth`, and the close of an
unauthenticated gateway that sends anything but auth or ping."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.gateway_helpers import DEVICE, connect_gateway, signed_in_gateway
from tests.helpers import RunningHub, User, signed_in_user
from tests.ws.wsclient import connect


async def gateway_row(hub: RunningHub, gateway_id: str) -> dict[str, Any] | None:
    row = await hub.services.db.fetchrow("SELECT * FROM gateways WHERE id = $1", gateway_id)
    return dict(row) if row is not None else None


def gateway_auth(user: User, gateway_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "gateway:auth", "token": user.token, "gatewayId": gateway_id,
            "deviceInfo": DEVICE, **extra}  # fmt: skip


@pytest.mark.parametrize("version", [{}, {"protocolVersion": "1"}, {"protocolVersion": ""}])
async def test_current_or_absent_versions_are_accepted(
    hub: RunningHub, version: dict[str, str]
) -> None:
    user = await signed_in_user(hub)
    async with connect(hub) as client:
        await client.send({"type": "client:auth", "token": user.token, **version})
        assert await client.receive() == {"type": "server:auth_result", "ok": True,
                                          "userId": user.id}  # fmt: skip
    async with connect_gateway(hub) as gateway:
        await gateway.send(gateway_auth(user, gateway.gateway_id, **version))
        assert await gateway.receive() == {"type": "server:gateway_auth_result", "ok": True}


async def test_a_client_with_another_version_gets_mismatch_then_close(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    async with connect(hub) as client:
        await client.send({"type": "client:auth", "token": user.token, "protocolVersion": "2"})
        assert await client.receive() == {
            "type": "server:error", "code": "PROTOCOL_VERSION_MISMATCH",
            "message": "Protocol version mismatch: client=2, server=1. Please update your client.",
        }  # fmt: skip
        reason = await client.closed()
    assert (reason.code, reason.reason) == (1008, "Protocol version mismatch")
    assert "Client protocol version mismatch: client=2, server=1" in caplog.text


async def test_a_client_version_is_checked_after_the_token(hub: RunningHub) -> None:
    """631a1ad's order: a bad token is answered as before, the socket stays open."""
    async with connect(hub) as client:
        await client.send({"type": "client:auth", "token": "nope", "protocolVersion": "2"})
        assert await client.receive() == {"type": "server:auth_result", "ok": False,
                                          "error": "Invalid token"}  # fmt: skip
        await client.send({"type": "client:ping", "ts": 5})
        assert await client.receive() == {"type": "server:pong", "ts": 5}


async def test_a_gateway_with_another_version_gets_mismatch_then_close(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    async with connect_gateway(hub) as gateway:
        await gateway.send(gateway_auth(user, gateway.gateway_id, protocolVersion="7"))
        assert await gateway.receive() == {
            "type": "server:error", "code": "PROTOCOL_VERSION_MISMATCH",
            "message": "Protocol version mismatch: gateway=7, server=1. "
                       "Please update your gateway.",
        }  # fmt: skip
        reason = await gateway.closed()
        assert (reason.code, reason.reason) == (1008, "Protocol version mismatch")
        assert await gateway_row(hub, gateway.gateway_id) is None  # refused before the upsert
    assert f"gateway=7, server=1, gateway id {gateway.gateway_id}" in caplog.text


async def test_ephemeral_and_agentim_version_are_stored(hub: RunningHub) -> None:
    user = await signed_in_user(hub)
    async with connect_gateway(hub) as gateway:
        device = {**DEVICE, "agentimVersion": "0.1.0"}
        await gateway.send({**gateway_auth(user, gateway.gateway_id, protocolVersion="1"),
                            "deviceInfo": device, "ephemeral": True})  # fmt: skip
        assert (await gateway.receive())["ok"] is True
        row = await gateway_row(hub, gateway.gateway_id)
        assert row is not None
        assert (row["ephemeral"], row["agentim_version"]) == (True, "0.1.0")
    async with signed_in_gateway(hub, user) as plain:  # an older gateway: neither field
        row = await gateway_row(hub, plain.gateway_id)
        assert row is not None
        assert (row["ephemeral"], row["agentim_version"]) == (False, None)


async def test_a_wrongly_typed_ephemeral_refuses_the_auth_frame(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    async with connect_gateway(hub) as gateway:
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.send(gateway_auth(user, gateway.gateway_id, ephemeral="yes"))
            await gateway.sync()
    logged = "Gateway sent invalid message format: Expected boolean, received string"
    assert logged in caplog.text


async def test_an_unauthenticated_gateway_frame_closes_the_socket(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect_gateway(hub) as gateway:
        await gateway.sync()  # ping is allowed before auth
        await gateway.send(json.dumps({"type": "gateway:nope"}))  # invalid: only dropped
        await gateway.sync()
        await gateway.send({"type": "gateway:unregister_agent", "agentId": "x"})
        reason = await gateway.closed()
    assert (reason.code, reason.reason) == (1008, "Not authenticated")
    assert "Unauthenticated gateway attempted to send message, closing connection" in caplog.text

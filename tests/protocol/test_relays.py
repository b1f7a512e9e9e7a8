"""Decoding the relay messages as zod does (protocol/relays.py through decode_client and
decode_gateway): unknown keys dropped, defaults applied, zod's first issue for a bad frame."""

from __future__ import annotations

from typing import Any

import pytest

from agentim.protocol import relays
from agentim.protocol.client import decode_client
from agentim.protocol.gateway import Invalid, decode_gateway


def _client(frame: dict[str, Any]) -> Any:
    return decode_client(frame, max_content=100_000)


def test_agent_command_defaults_args_and_bounds_the_command() -> None:
    base = {"type": "client:agent_command", "agentId": "a", "roomId": "r", "command": "model"}
    assert _client(base) == relays.ClientAgentCommand("a", "r", "model", "")
    assert _client({**base, "command": "x" * 101}) is None
    assert _client({**base, "args": "y" * 10_001}) is None
    assert _client({**base, "args": None}) is None  # optional means absent, not null


@pytest.mark.parametrize(
    ("request_", "decoded"),
    [
        ({"kind": "status", "path": "ignored"}, {"kind": "status"}),
        ({"kind": "tree"}, {"kind": "tree"}),
        ({"kind": "tree", "path": "src"}, {"kind": "tree", "path": "src"}),
        ({"kind": "file", "path": "a.py"}, {"kind": "file", "path": "a.py"}),
        ({"kind": "file"}, None),
        ({"kind": "file", "path": ""}, None),
        ({"kind": "diff"}, None),
        ("status", None),
    ],
)
def test_workspace_requests(request_: Any, decoded: dict[str, Any] | None) -> None:
    message = _client({"type": "client:request_workspace", "roomId": "r", "agentId": "a",
                       "request": request_})  # fmt: skip
    assert (message.request if message is not None else None) == decoded


def test_add_credential_defaults_to_api_mode_and_hides_the_key() -> None:
    message = _client({"type": "client:add_gateway_credential", "gatewayId": "g",
                       "agentType": "codex", "name": "n", "apiKey": "sk-hidden"})  # fmt: skip
    assert isinstance(message, relays.ClientAddGatewayCredential)
    assert (message.mode, message.api_key) == ("api", "sk-hidden")
    assert "sk-hidden" not in repr(message)
    assert _client({"type": "client:add_gateway_credential", "gatewayId": "g",
                    "agentType": "codex", "name": "n", "mode": "oauth"}) is None  # fmt: skip


def test_gateway_answers_are_cleaned_and_bad_ones_named() -> None:
    answer = decode_gateway({
        "type": "gateway:credential_list", "requestId": "q", "agentType": "codex",
        "credentials": [{"id": "c", "name": "n", "mode": "api", "hasApiKey": True,
                         "isDefault": False, "createdAt": "t", "secret": "dropped"}],
    })  # fmt: skip
    assert isinstance(answer, relays.GatewayCredentialList)
    assert answer.credentials == [{"id": "c", "name": "n", "mode": "api", "hasApiKey": True,
                                   "hasOAuthData": False, "isDefault": False,
                                   "createdAt": "t"}]  # fmt: skip
    assert decode_gateway({"type": "gateway:agent_command_result", "agentId": "a",
                           "roomId": "r", "command": "c", "success": "yes"}) == Invalid(
        "Expected boolean, received string")  # fmt: skip
    assert decode_gateway({"type": "gateway:agent_info", "agentId": "a",
                           "slashCommands": [], "mcpServers": [],
                           "sessionCostUSD": -1}) == Invalid(
        "Number must be greater than or equal to 0")  # fmt: skip
    assert decode_gateway({"type": "gateway:workspace_response", "agentId": "a",
                           "requestId": "q", "response": {"kind": "diff"}}) == Invalid(
        "Invalid discriminator value. Expected 'status' | 'tree' | 'file' | 'error'")  # fmt: skip
    oauth = decode_gateway({"type": "gateway:oauth_url", "requestId": "q",
                            "authUrl": "https://x/?state=s", "autoCallback": True})  # fmt: skip
    assert oauth == relays.GatewayOAuthUrl("q", "https://x/?state=s", True)
    assert "state=s" not in repr(oauth)


def test_every_relay_type_is_registered_in_both_dispatch_tables() -> None:
    from agentim.protocol import client, gateway

    assert set(relays.CLIENT_DECODERS) <= set(client._DECODERS)
    assert set(relays.GATEWAY_DECODERS) <= set(gateway._DECODERS)
    assert set(relays.GATEWAY_TYPES.values()) <= set(gateway._TYPES.values())

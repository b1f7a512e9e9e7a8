"""docs/WEBSOCKET.md against the code: every message type, error text and close code it lists
exists, and every message type the hub speaks is documented."""

from __future__ import annotations

import re

from agentim.errors import ErrorCode
from agentim.protocol import client as client_proto, gateway as gateway_proto
from agentim.ws import client_session, session as ws_session
from tests.cli.procs import ROOT

DOC = (ROOT / "docs" / "WEBSOCKET.md").read_text()
SOURCE = "".join(p.read_text() for p in (ROOT / "agentim").rglob("*.py"))


def documented(prefix: str) -> set[str]:
    return set(re.findall(rf"`({prefix}:\w+)`", DOC))


def test_every_incoming_type_is_documented_and_decoded() -> None:
    assert documented("client") == set(client_proto._DECODERS)
    assert documented("gateway") == set(gateway_proto._DECODERS)


def test_every_server_type_is_documented_and_sent() -> None:
    sent = set(re.findall(r'"(server:\w+)"', SOURCE))
    assert documented("server") == sent


def test_error_table_matches_the_texts_sent() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+?) \|", DOC, re.M)
    table = {(code, text.strip()) for code, text in rows}
    for code, text in client_proto.ERROR_TEXTS.items():
        assert (code.value, text) in table, code
    for text in (client_proto.DEPTH_TEXT, client_proto.COLLECTION_TEXT):
        assert ("JSON_TOO_DEEP", text) in table
    assert {code for code, _ in table} <= {c.value for c in ErrorCode}
    for _, text in table:
        assert text.replace("`<n>`", "").split(" (")[0] in SOURCE, text


def test_close_codes_match_the_sessions() -> None:
    for code, reason in (
        ws_session.AUTH_TIMEOUT,
        ws_session.PING_TIMEOUT,
        ws_session.SLOW_CONSUMER,
        (1008, client_session.TOO_MANY_ATTEMPTS),
        (1008, "Session revoked"),
        (1001, "Server shutting down"),
    ):
        assert f"| {code} | `{reason}` |" in DOC, (code, reason)

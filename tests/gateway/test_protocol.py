"""gateway:* decoding (realtime.md §2.4, D17) and the stream buffers: pure, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from agentim.protocol import gateway as proto
from agentim.routing.streams import StreamBuffers

CHUNK = {"type": "text", "content": "hi"}


def test_decodes_every_type_and_drops_unknown_keys() -> None:
    auth = proto.decode_gateway(
        {
            "type": "gateway:auth",
            "token": "t",
            "gatewayId": "g",
            "extra": 1,
            "deviceInfo": {"hostname": "h", "platform": "p", "arch": "a", "nodeVersion": ""},
        }
    )
    assert auth == proto.GatewayAuth("t", "g", proto.DeviceInfo("h", "p", "a", ""))
    register = proto.decode_gateway(
        {
            "type": "gateway:register_agent",
            "agent": {"id": "a", "name": "n", "type": "codex", "capabilities": ["x"], "junk": True},
        }
    )
    assert register == proto.GatewayRegisterAgent(proto.AgentInfo("a", "n", "codex", None, ["x"]))
    chunk = proto.decode_gateway(
        {
            "type": "gateway:message_chunk",
            "roomId": "r",
            "agentId": "a",
            "messageId": "m",
            "chunk": {**CHUNK, "seq": 3},
        }
    )
    assert chunk == proto.GatewayMessageChunk("r", "a", "m", CHUNK)
    complete = proto.decode_gateway(
        {
            "type": "gateway:message_complete",
            "roomId": "r",
            "agentId": "a",
            "messageId": "m",
            "fullContent": "",
            "chunks": [CHUNK],
            "conversationId": "c",
            "depth": 2,
        }
    )
    assert complete == proto.GatewayMessageComplete("r", "a", "m", "", [CHUNK], "c", 2)
    assert proto.decode_gateway(
        {"type": "gateway:task_update", "taskId": "t", "status": "failed"}
    ) == proto.GatewayTaskUpdate("t", "failed", None)
    permission = proto.decode_gateway(
        {
            "type": "gateway:permission_request",
            "requestId": "q",
            "agentId": "a",
            "roomId": "r",
            "toolName": "Bash",
            "toolInput": {"c": 1},
        }
    )
    assert permission == proto.GatewayPermissionRequest(
        "q", "a", "r", "Bash", {"c": 1}, proto.DEFAULT_PERMISSION_TIMEOUT_MS
    )
    assert proto.decode_gateway({"type": "gateway:ping", "ts": 1.5}) == proto.GatewayPing(1.5)


@pytest.mark.parametrize(
    ("frame", "issue"),
    [
        ({"type": "gateway:ping"}, "Required"),
        ({"type": "gateway:ping", "ts": True}, "Expected number, received boolean"),
        ({"type": "gateway:agent_status", "agentId": "a", "status": "sleepy"},
         "Invalid enum value. Expected 'online' | 'offline' | 'busy' | 'error', "
         "received 'sleepy'"),
        ({"type": "gateway:message_complete", "roomId": "r", "agentId": "a", "messageId": "",
          "fullContent": "x"}, "String must contain at least 1 character(s)"),
        ({"type": "gateway:message_chunk", "roomId": "r", "agentId": "a", "messageId": "m"},
         "Required"),
        ({"type": "gateway:unregister_agent", "agentId": None},
         "Expected string, received null"),
        ({"type": "gateway:permission_request", "requestId": "q", "agentId": "a", "roomId": "r",
          "toolName": "t", "timeoutMs": 999}, "Number must be greater than or equal to 1000"),
        ({"type": "gateway:permission_request", "requestId": "q", "agentId": "a", "roomId": "r",
          "toolName": "t", "timeoutMs": 1500.5}, "Expected integer, received float"),
    ],
)  # fmt: skip
def test_invalid_frames_report_zods_first_issue(frame: dict[str, Any], issue: str) -> None:
    assert proto.decode_gateway(frame) == proto.Invalid(issue)


COMPLETE = {"type": "gateway:message_complete", "roomId": "r", "agentId": "a", "messageId": "m",
            "fullContent": "x"}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "dropped"),
    [
        ({"depth": -1}, "depth: Number must be greater than or equal to 0"),
        ({"depth": 1.5}, "depth: Expected integer, received float"),
        ({"conversationId": "c" * 101}, "conversationId: String must contain at most 100"),
        ({"targetAgentName": 7}, "targetAgentName: Expected string, received number"),
    ],
)
def test_bad_routing_fields_leave_the_reply_unrouted_not_dropped(
    extra: dict[str, Any], dropped: str
) -> None:
    """D25: the reply stays; a bad field it would be routed by stops only the routing."""
    message = proto.decode_gateway({**COMPLETE, **extra})
    assert isinstance(message, proto.GatewayMessageComplete)
    assert message.full_content == "x" and not message.routable
    [issue] = message.dropped
    assert issue.startswith(dropped)


def test_bad_chunks_are_left_out_one_by_one() -> None:
    ok = {"type": "workspace_status", "content": "{}", "metadata": {"workingDirectory": "/w"}}
    message = proto.decode_gateway({**COMPLETE, "chunks": [{"type": "nope", "content": ""}, ok,
                                                           {"type": "text"}]})  # fmt: skip
    assert isinstance(message, proto.GatewayMessageComplete)
    assert message.chunks == [ok] and message.routable
    assert message.dropped == (
        "chunks[0]: Invalid enum value. Expected 'text' | 'thinking' | 'tool_use' | "
        "'tool_result' | 'error' | 'workspace_status', received 'nope'",
        "chunks[2]: Required",
    )
    whole = proto.decode_gateway({**COMPLETE, "chunks": {"not": "a list"}})
    assert isinstance(whole, proto.GatewayMessageComplete) and whole.chunks is None
    big = {"type": "text", "content": "x" * (proto.MAX_CHUNK_CHARS + 1)}
    chunk = proto.decode_gateway({"type": "gateway:message_chunk", "roomId": "r", "agentId": "a",
                                  "messageId": "m", "chunk": big})  # fmt: skip
    assert chunk == proto.GatewayMessageChunk(
        "r", "a", "m", None, "String must contain at most 1000000 character(s)", too_large=True
    )


def test_chunk_metadata_bounds() -> None:
    at_limit = {f"k{i}": i for i in range(proto.MAX_CHUNK_METADATA_KEYS)}
    assert proto.parse_chunk({"type": "text", "content": "", "metadata": at_limit})
    # 100,000 characters of JSON text in all: {"v":"…"} is 8 characters around the value
    assert proto.parse_chunk({"type": "text", "content": "", "metadata": {"v": "é" * 99_992}})
    for metadata in ({**at_limit, "one": 1}, {"v": "é" * 99_993}):
        chunk = proto.decode_gateway({"type": "gateway:message_chunk", "roomId": "r",
                                      "agentId": "a", "messageId": "m",
                                      "chunk": {"type": "text", "content": "",
                                                "metadata": metadata}})  # fmt: skip
        assert isinstance(chunk, proto.GatewayMessageChunk) and chunk.chunk is None


def test_permission_timeout_is_capped() -> None:
    message = proto.decode_gateway(
        {
            "type": "gateway:permission_request",
            "requestId": "q",
            "agentId": "a",
            "roomId": "r",
            "toolName": "t",
            "timeoutMs": 10**12,
        }
    )
    assert isinstance(message, proto.GatewayPermissionRequest)
    assert message.timeout_ms == proto.MAX_PERMISSION_TIMEOUT_MS == 300_000


@given(st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8)))
def test_decode_never_raises(frame: dict[str, Any]) -> None:
    for kind in ("gateway:auth", "gateway:message_complete", "gateway:permission_request"):
        proto.decode_gateway({**frame, "type": kind})


def test_stream_buffers_bound_size_and_count() -> None:
    buffers = StreamBuffers(max_bytes=10, max_streams=2)
    first = buffers.open(("a", "r", "m1"), 0.0)
    assert first is not None
    assert buffers.add(first, {"type": "text", "content": "héllo"}, 1.0)  # 6 bytes
    assert not buffers.add(first, {"type": "text", "content": "12345"}, 2.0)  # 11 > 10
    assert buffers.add(first, {"type": "thinking", "content": "1234"}, 2.0)
    assert first.text() == "héllo" and first.size == 10
    assert buffers.open(("a", "r", "m2"), 3.0) is not None
    assert buffers.open(("a", "r", "m3"), 3.0) is None  # two open already
    assert buffers.end(first.key) is first and buffers.is_ended(first.key)
    assert [s.message_id for s in buffers.idle(100.0, 50.0)] == ["m2"]
    assert buffers.drain() == [] and len(buffers) == 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(st.dictionaries(st.text(max_size=10), _JSON, max_size=60))
def test_a_small_frame_skips_measuring_metadata_without_changing_the_outcome(
    metadata: dict[str, Any],
) -> None:
    """The metadata JSON of a frame of n characters is at most 2n UTF-16 units long."""
    frame = {
        "type": "gateway:message_complete",
        "roomId": "r",
        "agentId": "a",
        "messageId": "m",
        "fullContent": "",
        "chunks": [{**CHUNK, "metadata": metadata}],
    }
    text = json.dumps(frame)  # as a gateway would send it: escapes and all
    measured = proto.decode_gateway(frame)
    if len(text) <= proto.SMALL_FRAME_CHARS:
        assert proto.decode_gateway(frame, frame_chars=len(text)) == measured

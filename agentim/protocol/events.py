"""Event: what crosses Redis pub/sub between hub processes (DIFFERENCES D15).

The frame is encoded once by the publisher; every process hands the same bytes to its sockets.
Wire form: one JSON header line, a newline, then the frame's JSON text.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import attrs

from agentim.protocol.envelope import dumps


class Target(StrEnum):
    ROOM = "room"  # client sockets joined to a room
    USER = "user"  # every client socket of a user
    AGENT = "agent"  # the gateway socket bound to an agent
    ALL_CLIENTS = "all"  # every authenticated client socket
    CONTROL = "control"  # no frame to forward as is: a hub-level instruction (see Hub.control)


@attrs.frozen
class Event:
    target: Target
    target_id: str
    frame: str  # the server:* message as compact JSON text ("" for pure control events)
    droppable: bool = False  # may be skipped for a slow consumer (typing)
    exclude: str | None = None  # a socket id not to deliver to (typing's sender)
    control: dict[str, Any] | None = None
    # Frames under one key are not sent twice in a row to a socket (the socket's last one under
    # the key is compared): today's web client asks for agent info again whenever its agent store
    # changes, so answering an unchanged `server:agent_info` would make it ask forever.
    repeat_key: str | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The decoded frame (tests and control handlers; the hot path never decodes)."""
        return json.loads(self.frame) if self.frame else {}


def frame_event(
    target: Target,
    target_id: str,
    message: dict[str, Any],
    *,
    droppable: bool = False,
    exclude: str | None = None,
    repeat_key: str | None = None,
) -> Event:
    return Event(target, target_id, dumps(message), droppable, exclude, repeat_key=repeat_key)


def control_event(action: str, target_id: str, **data: Any) -> Event:
    return Event(Target.CONTROL, target_id, "", control={"action": action, **data})


def encode_event(event: Event) -> bytes:
    header: dict[str, Any] = {"t": event.target.value, "i": event.target_id, "d": event.droppable}
    if event.exclude:
        header["x"] = event.exclude
    if event.control is not None:
        header["c"] = event.control
    if event.repeat_key is not None:
        header["k"] = event.repeat_key
    return (dumps(header) + "\n" + event.frame).encode()


def decode_event(payload: bytes) -> Event:
    head, _, frame = payload.decode().partition("\n")
    header = json.loads(head)
    return Event(
        Target(header["t"]),
        header["i"],
        frame,
        bool(header.get("d")),
        header.get("x"),
        header.get("c"),
        header.get("k"),
    )

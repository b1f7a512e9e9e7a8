"""Every server frame the hub sends to clients passes what today's AgentIM web client (631a1ad)
accepts (head-gap E15): frames produced by a real hub over real sockets and HTTP, checked with
our restatement of the client's rules (tests/protocol/server_frame_rules.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from agentim.protocol.ids import new_id
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.protocol.server_frame_rules import NOT_IN_CLIENT_UNION, SERVER_FRAMES, check_frame
from tests.ws.wsclient import Client, connect, signed_in

TIMEOUT_S = 20.0

ROOM = {"id": "r1", "name": "Reviews", "type": "group", "broadcastMode": False,
        "routerId": None, "createdById": "u1", "createdAt": "t", "updatedAt": "t"}  # fmt: skip
MEMBER = {"roomId": "r1", "memberId": "u1", "memberType": "user", "role": "owner",
          "notificationPref": "all", "joinedAt": "t"}  # fmt: skip
MESSAGE = {"id": "m1", "roomId": "r1", "senderId": "u1", "senderType": "user",
           "senderName": "ada", "type": "text", "content": "hi", "mentions": [],
           "createdAt": "t", "updatedAt": "t"}  # fmt: skip
TASK = {"id": "t1", "roomId": "r1", "title": "x", "description": "", "status": "pending",
        "createdById": "u1", "createdAt": "t", "updatedAt": "t"}  # fmt: skip
AGENT = {"id": "a1", "name": "coder", "type": "claude-code", "status": "online"}


@pytest.mark.parametrize(
    ("frame", "accepted"),
    [
        ({"type": "server:room_update", "room": ROOM, "members": [MEMBER]}, True),
        ({"type": "server:room_update", "room": {**ROOM, "systemPrompt": None}}, False),
        ({"type": "server:room_update", "room": ROOM,
          "members": [{**MEMBER, "roleDescription": None}]}, False),
        ({"type": "server:room_update", "room": ROOM, "members": [{**MEMBER, "pinnedAt": None}]},
         False),
        ({"type": "server:message_edited", "message": MESSAGE}, True),
        ({"type": "server:message_edited", "message": {**MESSAGE, "replyToId": None}}, False),
        ({"type": "server:task_update", "task": TASK, "deleted": True}, True),
        ({"type": "server:task_update", "task": {**TASK, "assigneeId": None}}, False),
        ({"type": "server:task_update", "task": {**TASK, "status": "done"}}, False),
        ({"type": "server:agent_status", "agent": AGENT}, True),
        ({"type": "server:agent_status", "agent": {**AGENT, "type": "cursor"}}, False),
        ({"type": "server:agent_status", "agent": {**AGENT, "slashCommands": None}}, False),
        ({"type": "server:agent_status", "agent": {**AGENT, "slashCommands": [
            {"name": "review", "description": "", "usage": "/review", "source": "mcp"}]}},
         False),
        ({"type": "server:message_chunk", "roomId": "r", "agentId": "a", "agentName": "n",
          "messageId": "m", "chunk": {"type": "text", "content": "x", "metadata": None}}, False),
        ({"type": "server:permission_request", "requestId": "p", "agentId": "a",
          "agentName": "n", "roomId": "r", "toolName": "Bash", "toolInput": ["ls"],
          "expiresAt": "t"}, False),
        ({"type": "server:pong", "ts": "1"}, False),
        ({"type": "server:agents_changed"}, True),
        ({"type": "server:hello"}, False),
    ],
)  # fmt: skip
def test_the_rules_catch_what_the_client_drops(frame: dict[str, Any], accepted: bool) -> None:
    assert (check_frame(frame) == []) is accepted, check_frame(frame)


class Collector:
    """Reads every frame a client socket gets, in the background, for later checks."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.frames: list[dict[str, Any]] = []

    async def run(self) -> None:
        try:
            while True:
                self.frames.append(json.loads(await self.client.ws.get_message()))
        except trio_websocket.ConnectionClosed:
            return  # the test is over

    def types(self) -> set[str]:
        return {frame["type"] for frame in self.frames}


async def _until(done: Callable[[], bool]) -> None:
    with trio.fail_after(TIMEOUT_S):
        while not done():  # noqa: ASYNC110 (frames arrive on sockets read by other tasks)
            await trio.sleep(0.02)


async def test_every_frame_type_the_hub_sends_passes_the_client_rules(
    hub: RunningHub, client: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    owner, guest = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(guest,))
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with (
        signed_in(hub, owner) as alice,
        connect(hub) as bob,
        signed_in_gateway(hub, owner) as gateway,
    ):
        watchers = [Collector(alice), Collector(bob)]
        await alice.join(room_id)
        for watcher in watchers:
            nursery.start_soon(watcher.run)

        async def http(method: str, url: str, body: Any = None, *, as_guest: bool = False) -> Any:
            user = guest if as_guest else owner
            answer = await client.request(method, url, headers=user.headers, json=body)
            assert answer.status_code < 300, answer.text
            return answer.json().get("data")

        await bob.send({"type": "client:auth", "token": "junk"})  # auth_result ok:false
        await bob.send({"type": "client:auth", "token": guest.token})
        await bob.send({"type": "client:join_room", "roomId": room_id})
        await bob.send({"type": "client:ping", "ts": 1})
        await bob.send({"type": "client:no_such_thing"})  # server:error
        await _until(lambda: "server:pong" in watchers[1].types())

        await gateway.register(agent_id, name, slashCommands=[
            {"name": "review", "description": "Review", "usage": "/review", "source": "skill"}
        ], model="opus")  # fmt: skip
        await add_agent_to_room(hub, room_id, agent_id)
        await gateway.register(agent_id, name)  # agent_status to the room, nothing reported
        await bob.send({"type": "client:typing", "roomId": room_id})
        await alice.send({"type": "client:send_message", "roomId": room_id,
                          "content": f"@{name} hi"})  # fmt: skip
        delivery = await gateway.receive_type("server:send_to_agent")
        await gateway.stream_reply(room_id, agent_id, delivery["messageId"], ["a ", "b"])
        await gateway.send({"type": "gateway:terminal_data", "agentId": agent_id, "data": "$ ls"})
        await gateway.send({"type": "gateway:permission_request", "requestId": new_id(),
                            "agentId": agent_id, "roomId": room_id, "toolName": "Bash",
                            "toolInput": {"command": "ls"}, "timeoutMs": 1000})  # fmt: skip
        await _until(lambda: "server:new_message" in watchers[0].types())
        sent = next(f for f in watchers[0].frames if f["type"] == "server:new_message")
        message_id = sent["message"]["id"]

        await http("PUT", f"/api/messages/{message_id}", {"content": "edited"})
        await http("POST", f"/api/messages/{message_id}/reactions", {"emoji": "👍"})
        await http("POST", f"/api/messages/rooms/{room_id}/read")
        await http("POST", f"/api/tasks/rooms/{room_id}", {"title": "Ship it"})
        await http("PUT", f"/api/rooms/{room_id}", {"name": "Renamed"})
        await http("DELETE", f"/api/messages/{message_id}")
        await http("DELETE", f"/api/rooms/{room_id}/members/{guest.id}")  # bob: room_removed
        await gateway.sync()
        async with signed_in_gateway(hub, owner):  # agents_changed to alice
            pass

        expected = set(SERVER_FRAMES) | set(NOT_IN_CLIENT_UNION)
        seen = set[str]()

        def all_seen() -> bool:
            seen.clear()
            seen.update(*(w.types() for w in watchers))
            return seen >= expected

        with trio.move_on_after(TIMEOUT_S):
            await _until(all_seen)
        assert expected - seen == set(), "not produced by this scenario"
    frames = [frame for watcher in watchers for frame in watcher.frames]
    problems = {f["type"]: check_frame(f) for f in frames if check_frame(f)}
    assert problems == {}
    assert seen - expected == set(), "a frame type the rules do not know yet"


async def test_the_old_null_fields_are_left_out_of_frames(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    """The frames head-gap E15 saw dropped, field by field."""
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    async with signed_in(hub, owner) as alice:
        await alice.join(room_id)
        await alice.send({"type": "client:send_message", "roomId": room_id, "content": "x"})
        message_id = (await alice.receive_type("server:new_message"))["message"]["id"]
        calls: list[Callable[[], Awaitable[httpx.Response]]] = [
            lambda: client.put(f"/api/messages/{message_id}", headers=owner.headers,
                               json={"content": "y"}),
            lambda: client.put(f"/api/rooms/{room_id}", headers=owner.headers,
                               json={"systemPrompt": None}),
            lambda: client.post(f"/api/tasks/rooms/{room_id}", headers=owner.headers,
                                json={"title": "t"}),
        ]  # fmt: skip
        for call in calls:
            assert (await call()).status_code < 300
        edited = (await alice.receive_type("server:message_edited"))["message"]
        room = await alice.receive_type("server:room_update")
        task = (await alice.receive_type("server:task_update"))["task"]
    assert "replyToId" not in edited
    assert "systemPrompt" not in room["room"]
    assert all("roleDescription" not in m and "pinnedAt" not in m for m in room["members"])
    assert not {"assigneeId", "assigneeType", "result", "dueDate"} & set(task)

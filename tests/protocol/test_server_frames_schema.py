"""Every server frame the hub sends to clients passes what today's AgentIM web client (631a1ad)
accepts (head-gap E15): frames produced by a real hub over real sockets and HTTP, checked with
our restatement of the client's rules (tests/protocol/server_frame_rules.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx
import pytest
import trio
import trio_websocket

from agentim.protocol.ids import new_id
from tests.gateway_helpers import (
    Gateway,
    add_agent_to_room,
    agent_name,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.protocol.server_frame_rules import (
    CLIENT_ONLY,
    GATEWAY_BOUND,
    NOT_IN_CLIENT_UNION,
    SERVER_FRAMES,
    builder_types,
    check_frame,
    client_bound_types,
)
from tests.ws.wsclient import Client, connect, signed_in

TIMEOUT_S = 20.0
# What each real-hub scenario below produces; together, every type the hub can send a client.
CORE_TYPES: Final = frozenset({
    "server:auth_result", "server:new_message", "server:message_chunk",
    "server:message_complete", "server:message_edited", "server:message_deleted",
    "server:typing", "server:agent_status", "server:task_update", "server:room_update",
    "server:room_removed", "server:terminal_data", "server:read_receipt", "server:presence",
    "server:reaction_update", "server:permission_request", "server:permission_request_expired",
    "server:pong", "server:error", "server:agents_changed", "server:room_cleared",
})  # fmt: skip
RELAY_TYPES: Final = frozenset({
    "server:agent_command_result", "server:agent_info", "server:workspace_response",
    "server:spawn_result", "server:gateway_credential_list",
    "server:gateway_credential_result", "server:gateway_oauth_url",
    "server:gateway_oauth_result", "server:room_rewound", "server:new_message",
    "server:message_complete", "server:permission_request", "server:agent_status",
})  # fmt: skip

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
FULL_AGENT = {**AGENT, "gatewayId": "g1", "createdAt": "t", "updatedAt": "t"}
CREDENTIAL = {"id": "c1", "name": "Work", "mode": "api", "hasApiKey": True, "isDefault": True,
              "createdAt": "t"}  # fmt: skip
REWOUND = {"type": "server:room_rewound", "roomId": "r", "messageId": "m",
           "removedMessageIds": ["m"], "messageContent": ""}  # fmt: skip
SPAWNED = {"type": "server:spawn_result", "requestId": "q", "gatewayId": "g", "success": True}
OAUTH_URL = {"type": "server:gateway_oauth_url", "gatewayId": "g", "requestId": "q",
             "authUrl": "https://x"}  # fmt: skip


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
        ({"type": "server:agent_info", "agent": FULL_AGENT}, True),
        ({"type": "server:agent_info", "agent": AGENT}, False),  # no gatewayId, createdAt
        ({"type": "server:agent_info", "agent": {**FULL_AGENT, "workingDirectory": None}}, False),
        ({"type": "server:agent_info", "agent": {**FULL_AGENT, "lastSeenAt": None}}, False),
        ({"type": "server:agent_info", "agent": {**FULL_AGENT, "connectionType": None}}, False),
        ({"type": "server:agent_info", "agent": {**FULL_AGENT, "visibility": "shared"}}, False),
        ({"type": "server:agent_info", "agent": {**FULL_AGENT, "sessionCostUSD": -1}}, False),
        ({"type": "server:agent_info", "agent": {**FULL_AGENT, "deviceInfo": {"hostname": "h"}}},
         False),
        ({"type": "server:agent_command_result", "agentId": "a", "roomId": "r", "command": "c",
          "success": True, "message": None}, False),
        ({"type": "server:workspace_response", "agentId": "a", "requestId": "q",
          "response": {"kind": "status", "data": None}}, True),
        ({"type": "server:workspace_response", "agentId": "a", "requestId": "q",
          "response": {"data": {}}}, False),
        (REWOUND, True),
        ({**REWOUND, "removedMessageIds": []}, False),
        ({**REWOUND, "roomId": ""}, False),
        (SPAWNED, True),
        ({**SPAWNED, "credentials": [{"id": "c", "name": "n", "mode": "oauth",
                                      "isDefault": False}]}, False),
        ({"type": "server:gateway_credential_list", "gatewayId": "g", "agentType": "codex",
          "credentials": [CREDENTIAL]}, True),
        ({"type": "server:gateway_credential_list", "gatewayId": "g", "agentType": "codex",
          "credentials": [CREDENTIAL] * 101}, False),
        ({"type": "server:gateway_credential_result", "requestId": "q", "success": False,
          "error": None}, False),
        (OAUTH_URL, True),
        ({**OAUTH_URL, "authUrl": "x" * 4097}, False),
        ({"type": "server:gateway_oauth_result", "requestId": "q", "success": True}, False),
        ({"type": "server:room_cleared", "roomId": "r", "clearedAt": "t"}, True),
        ({"type": "server:message_chunk", "roomId": "r", "agentId": "a", "agentName": "n",
          "messageId": "m", "chunk": {"type": "workspace_status", "content": "{}",
                                      "metadata": {"k": "v" * 100_000}}}, False),
    ],
)  # fmt: skip
def test_the_rules_catch_what_the_client_drops(frame: dict[str, Any], accepted: bool) -> None:
    assert (check_frame(frame) == []) is accepted, check_frame(frame)


def test_every_type_the_hub_can_send_a_client_has_rules_and_a_scenario() -> None:
    """A new builder fails here until its type is classified, restated and produced."""
    known = set(SERVER_FRAMES) | set(NOT_IN_CLIENT_UNION) | GATEWAY_BOUND
    assert builder_types() - known == set(), "a server:* type with no rule in this file"
    assert builder_types() >= GATEWAY_BOUND, "a gateway-bound type the hub no longer builds"
    assert client_bound_types() == CORE_TYPES | RELAY_TYPES, "a type no scenario produces"
    assert not CLIENT_ONLY & builder_types()


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
        await http("PUT", f"/api/rooms/{room_id}/clear")  # alice: room_cleared
        await http("DELETE", f"/api/rooms/{room_id}/members/{guest.id}")  # bob: room_removed
        await gateway.sync()
        async with signed_in_gateway(hub, owner):  # agents_changed to alice
            pass

        expected = set(CORE_TYPES)
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
    assert seen - expected == set(), "a frame type this scenario does not expect"


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


def _with(frames: list[dict[str, Any]], kind: str, test: Callable[[dict[str, Any]], bool]) -> bool:
    return any(f["type"] == kind and test(f) for f in frames)


def _said(frame: dict[str, Any], text: str) -> bool:
    return text in frame["message"]["content"]


def _system(frame: dict[str, Any]) -> bool:
    return frame["message"]["senderType"] == "system"


async def _relays(
    http: httpx.AsyncClient, gateway: Gateway, owner: User, alice: Client,
    bob: Client, room_id: str, agent_id: str,
) -> None:  # fmt: skip
    """Every relay both ways: commands, info, workspace, spawn, credentials, OAuth."""
    target = {"agentId": agent_id, "roomId": room_id}
    await bob.send({"type": "client:agent_command", **target, "command": "model", "args": "x"})
    await gateway.receive_type("server:agent_command")
    result = {"type": "gateway:agent_command_result", **target, "command": "model"}
    await gateway.send({**result, "success": True, "message": "ok"})  # to bob, who asked
    await gateway.send({**result, "success": False})  # nobody waits: to the room
    await bob.send({"type": "client:query_agent_info", **target})
    await gateway.receive_type("server:query_agent_info")
    await gateway.send({"type": "gateway:agent_info", **target, "slashCommands": [],
                        "mcpServers": ["fs"], "model": "opus", "sessionCostUSD": 0.5,
                        "planMode": True, "permissionLevel": "interactive",
                        "availableModelInfo": [{"value": "opus", "displayName": "Opus"}],
                        "availableModels": ["opus"], "thinkingMode": "on"})  # fmt: skip
    await bob.send({"type": "client:request_workspace", **target, "request": {"kind": "tree"}})
    asked = await gateway.receive_type("server:request_workspace")
    await gateway.send({"type": "gateway:workspace_response", "agentId": agent_id,
                        "requestId": asked["requestId"],
                        "response": {"kind": "tree", "path": ".", "entries": [
                            {"name": "a.py", "type": "file", "size": 3}]}})  # fmt: skip
    spawn = {"gatewayId": gateway.gateway_id, "agentType": "codex", "name": "helper"}
    answer = await http.post("/api/agents/spawn", headers=owner.headers, json=spawn)
    assert answer.status_code == 200, answer.text
    request_id = (await gateway.receive_type("server:spawn_agent"))["requestId"]
    await gateway.send({"type": "gateway:spawn_result", "requestId": request_id,
                        "success": False, "error": "CREDENTIAL_SELECTION_REQUIRED",
                        "credentials": [{"id": "c1", "name": "Work", "mode": "subscription",
                                         "isDefault": True}]})  # fmt: skip
    await _credentials(gateway, alice)


async def _credentials(gateway: Gateway, alice: Client) -> None:
    on = {"gatewayId": gateway.gateway_id, "agentType": "claude-code"}
    await alice.send({"type": "client:list_gateway_credentials", **on})
    request_id = (await gateway.receive_type("server:list_credentials"))["requestId"]
    await gateway.send(
        {
            "type": "gateway:credential_list",
            "requestId": request_id,
            "agentType": "claude-code",
            "credentials": [
                {
                    "id": "c1",
                    "name": "Work",
                    "mode": "api",
                    "hasApiKey": True,
                    "isDefault": True,
                    "createdAt": "2026-01-01T00:00:00.000Z",
                }
            ],
        }
    )
    await alice.send({"type": "client:add_gateway_credential", **on, "name": "Home",
                      "apiKey": "sk-test"})  # fmt: skip
    request_id = (await gateway.receive_type("server:add_credential"))["requestId"]
    await gateway.send(
        {
            "type": "gateway:credential_result",
            "requestId": request_id,
            "success": True,
            "credential": {"id": "c2", "name": "Home"},
        }
    )
    await alice.send({"type": "client:start_gateway_oauth", **on, "credentialName": "Sub"})
    request_id = (await gateway.receive_type("server:start_oauth"))["requestId"]
    await gateway.send({"type": "gateway:oauth_url", "requestId": request_id,
                        "authUrl": "https://auth.example/authorize?state=s"})  # fmt: skip
    await alice.send(
        {
            "type": "client:complete_gateway_oauth",
            "gatewayId": gateway.gateway_id,
            "requestId": request_id,
            "callbackUrl": "http://localhost/cb?code=c",
        }
    )
    await gateway.receive_type("server:complete_oauth")
    await gateway.send(
        {
            "type": "gateway:oauth_result",
            "requestId": request_id,
            "success": True,
            "credential": {"id": "c3", "name": "Sub"},
        }
    )


async def test_every_relay_and_gateway_protocol_frame_passes_the_client_rules(
    hub: RunningHub, client: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    """The frames the relays and the gateway-protocol work added (issue 14), on real sockets."""
    owner, guest = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(guest,))
    (a, a_name), (b, b_name) = [(f"agent-{new_id(8)}", agent_name()) for _ in range(2)]
    gone, gone_name = f"agent-{new_id(8)}", agent_name()
    async with signed_in_gateway(hub, owner) as old:  # an agent whose gateway went away
        await old.register(gone, gone_name, capabilities=["rewind"])
    await wait_disconnected(hub, old.gateway_id)
    async with (
        signed_in(hub, owner) as alice,
        signed_in(hub, guest) as bob,
        signed_in_gateway(hub, owner) as gateway,
    ):
        watchers = [Collector(alice), Collector(bob)]
        for agent in (a, b, gone):
            await add_agent_to_room(hub, room_id, agent)
        await alice.join(room_id)
        await bob.join(room_id)
        for watcher in watchers:
            nursery.start_soon(watcher.run)
        await gateway.register(b, b_name, capabilities=["rewind"])
        await gateway.register(a, a_name, capabilities=["rewind"], model="opus",
                               mcpServers=["fs"], slashCommands=[
            {"name": "review", "description": "Review", "usage": "/review", "source": "builtin"}
        ])  # fmt: skip
        await _relays(client, gateway, owner, alice, bob, room_id, a)
        await bob.send({"type": "client:query_agent_info", "agentId": gone})  # from the database
        await bob.send(
            {
                "type": "client:request_workspace",
                "agentId": gone,
                "roomId": room_id,
                "request": {"kind": "status"},
            }
        )  # offline: an error answer
        await bob.send(
            {"type": "client:send_message", "roomId": room_id, "content": f"@{gone_name} hello?"}
        )  # offline notice to the room
        await gateway.send({"type": "gateway:agent_status", "agentId": a, "status": "busy",
                            "queueDepth": 2})  # fmt: skip
        await gateway.sync()  # the backlog is recorded before the messages meet it
        for text in ("one", "two"):  # the second meets the backlog: the busy notice
            await alice.send({"type": "client:send_message", "roomId": room_id,
                              "content": f"@{a_name} {text}"})  # fmt: skip
            if text == "one":
                delivery = await gateway.receive_type("server:send_to_agent")
        await gateway.chunk(room_id, a, delivery["messageId"], "{}", kind="workspace_status")
        await gateway.send({"type": "gateway:message_complete", "roomId": room_id, "agentId": a,
                            "messageId": delivery["messageId"], "fullContent": "please check",
                            "conversationId": new_id(), "depth": 0, "targetAgentName": b_name,
                            "chunks": [{"type": "text", "content": "please check"},
                                       {"type": "workspace_status", "content": "{}",
                                        "metadata": {"workingDirectory": "/w"}}]})  # fmt: skip
        request_id = new_id()
        await gateway.send({"type": "gateway:permission_request", "requestId": request_id,
                            "agentId": a, "roomId": room_id, "toolName": "Bash",
                            "toolInput": {"command": "ls"}, "timeoutMs": 60_000})  # fmt: skip
        await _until(lambda: "server:permission_request" in watchers[1].types())
        async with signed_in(hub, owner) as late:  # a joining client gets the pending request
            await late.send({"type": "client:join_room", "roomId": room_id})
            pending = await late.receive_type("server:permission_request")
        assert (pending["requestId"], check_frame(pending)) == (request_id, [])
        await bob.send({"type": "client:permission_response", "requestId": request_id,
                        "decision": "allowAlways"})  # fmt: skip
        assert (await gateway.receive_type("server:permission_response"))["decision"] == (
            "allowAlways")  # fmt: skip
        await bob.send({"type": "client:send_message", "roomId": room_id, "content": "rewind"})
        await _until(lambda: _with(watchers[1].frames, "server:new_message",
                                   lambda f: f["message"]["content"] == "rewind"))  # fmt: skip
        rewind_to = next(f["message"]["id"] for f in watchers[1].frames
                         if f["type"] == "server:new_message"
                         and f["message"]["content"] == "rewind")  # fmt: skip
        await bob.send({"type": "client:rewind_room", "roomId": room_id, "messageId": rewind_to})
        await gateway.receive_type("server:rewind_agent")

        frames: list[dict[str, Any]] = []

        def all_seen() -> bool:
            frames[:] = [frame for watcher in watchers for frame in watcher.frames]
            types = {f["type"] for f in frames}
            return types >= RELAY_TYPES and _variants(frames, a, gone, b_name) == []

        with trio.move_on_after(TIMEOUT_S):
            await _until(all_seen)
    assert RELAY_TYPES - {f["type"] for f in frames} == set(), "not produced by this scenario"
    problems = [(f["type"], check_frame(f)) for f in frames if check_frame(f)]
    assert problems == [], str(problems)
    assert _variants(frames, a, gone, b_name) == [], "a variant issue 14 added was not checked"
    assert {f["type"] for f in frames} - RELAY_TYPES <= CORE_TYPES


def _variants(frames: list[dict[str, Any]], a: str, gone: str, b_name: str) -> list[str]:
    """The frame variants issue 14 added that the relay scenario must have produced (and so
    checked); the names of those missing."""
    infos = {(f["agent"]["id"], f["agent"]["status"])
             for f in frames if f["type"] == "server:agent_info"}  # fmt: skip
    answers = sorted(f["response"]["kind"] for f in frames
                     if f["type"] == "server:workspace_response")  # fmt: skip
    checks = {
        "agent_info online and offline": infos >= {(a, "online"), (gone, "offline")},
        "offline notice": _with(frames, "server:new_message",
                                lambda f: _system(f) and _said(f, "offline")),
        "busy notice": _with(frames, "server:new_message",
                             lambda f: _system(f) and _said(f, "is busy")),
        "targeted reply with workspace_status": _with(
            frames, "server:message_complete",
            lambda f: f["message"].get("metadata") == {"targetAgentName": b_name}
            and f["message"]["chunks"][-1]["type"] == "workspace_status"),
        "workspace_status chunk": _with(frames, "server:message_chunk",
                                        lambda f: f["chunk"]["type"] == "workspace_status"),
        "agent_status with live fields": _with(
            frames, "server:agent_status",
            lambda f: {"slashCommands", "mcpServers", "model"} <= set(f["agent"])),
        "workspace answers tree and error": answers == ["error", "tree"],
        "command result to sender and room": sum(
            f["type"] == "server:agent_command_result" for f in frames) >= 3,
    }  # fmt: skip
    return [name for name, ok in checks.items() if not ok]

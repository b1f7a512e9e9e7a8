"""Issue 15 item 7: `pg_ctl restart -m fast` of the hub's own PostgreSQL under chat load.

Sends that fail while PostgreSQL is away get the protocol's `Failed to send message` (never the
generic internal error), no broken connection is reused or terminated after its release (the
two asyncpg complaints never reach the log), nothing is logged at level 50 or above, and chat
works again after the restart without restarting the hub.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import trio
import trio_websocket

from tests.chaos.conftest import ChaosSpawn, PostgresServer, admin_http, new_user
from tests.helpers import User
from tests.ws.wsclient import Client

SCENARIO_S = 120.0
SENDERS = 4
RATE_PER_SENDER = 20.0  # messages/s per socket: 80 msg/s in all
BEFORE_S = 1.5  # load before the restart
AFTER_S = 4.0  # load after pg_ctl returned (the server accepts connections again)
DRAIN_S = 15.0  # every send answered (echo or error) within this after the load stops
FAILED_SEND = {"type": "server:error", "code": "INTERNAL_ERROR",
               "message": "Failed to send message"}  # fmt: skip
NEVER_LOGGED = (
    "another operation",  # "cannot switch to state 12; another operation (2) is in progress"
    "has been released back to the pool",  # "cannot call Connection.terminate(): ..."
)
LOST = "PostgreSQL unavailable, statements fail until it is back: "
BACK = "PostgreSQL available again after "
TAIL = 20  # the last sends of each socket, all after the restart, must all succeed


@attrs.define
class Sender:
    user: User
    client: Client
    sent: list[str] = attrs.field(factory=list)  # contents, in send order
    echoed: set[str] = attrs.field(factory=set)
    errors: list[dict[str, Any]] = attrs.field(factory=list)
    stopped: bool = False
    answered: trio.Event = attrs.field(factory=trio.Event)  # stopped, and every send answered

    def outcomes(self) -> int:
        return len(self.echoed) + len(self.errors)

    async def send_until(self, stop: trio.Event, room_id: str) -> None:
        """Paced sends (one every 1/RATE_PER_SENDER s) until `stop` is set."""
        while not stop.is_set():
            content = f"{self.user.username}-{len(self.sent)}"
            self.sent.append(content)
            await self.client.send(
                {"type": "client:send_message", "roomId": room_id, "content": content}
            )
            await trio.sleep(1 / RATE_PER_SENDER)
        self.stopped = True
        self._check_answered()

    def _check_answered(self) -> None:
        if self.stopped and self.outcomes() >= len(self.sent):
            self.answered.set()

    async def read(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Sort every frame into this socket's echoes and errors."""
        task_status.started()
        while True:
            frame = json.loads(await self.client.ws.get_message())
            if frame["type"] == "server:new_message":
                message = frame["message"]
                if message["senderId"] == self.user.id:
                    self.echoed.add(message["content"])
            elif frame["type"] == "server:error":
                self.errors.append(frame)
            self._check_answered()


async def _room(http: httpx.AsyncClient, owner: User, members: list[User]) -> str:
    response = await http.post(
        "/api/rooms", headers={"Authorization": f"Bearer {owner.token}"},
        json={"name": "chaos", "memberIds": [m.id for m in members]},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def test_chat_under_load_across_a_fast_postgres_restart(
    chaos_hub: ChaosSpawn, own_postgres: PostgresServer
) -> None:
    with trio.fail_after(SCENARIO_S):
        hub = await chaos_hub(CLIENT_RATE_LIMIT_MAX="1000")  # 100 msg/s per user allowed
        http = await admin_http(hub)
        try:
            users = [await new_user(http) for _ in range(SENDERS)]
            room_id = await _room(http, users[0], users[1:])
        finally:
            await http.aclose()
        async with trio.open_nursery() as nursery:
            senders = []
            for user in users:
                ws = await trio_websocket.connect_websocket_url(nursery, f"{hub.ws_url}/ws/client")
                client = Client(ws)
                assert (await client.auth(user))["ok"] is True
                await client.join(room_id)
                senders.append(Sender(user, client))
            for sender in senders:
                await nursery.start(sender.read)
            stop = trio.Event()
            for sender in senders:
                nursery.start_soon(sender.send_until, stop, room_id)
            await trio.sleep(BEFORE_S)
            await own_postgres.restart_fast()
            await trio.sleep(AFTER_S)
            stop.set()
            with trio.fail_after(DRAIN_S):
                for sender in senders:
                    await sender.answered.wait()
            nursery.cancel_scope.cancel()

    assert hub.process.returncode is None  # no hub restart
    failed = [e for s in senders for e in s.errors]
    assert all(error == FAILED_SEND for error in failed), failed
    for sender in senders:
        assert sender.outcomes() == len(sender.sent)  # one answer per send
        assert set(sender.sent[-TAIL:]) <= sender.echoed, "chat did not recover"
    assert await hub.terminate() == 0  # every log line is out
    logged = [r for r in hub.log_records() if any(t in json.dumps(r) for t in NEVER_LOGGED)]
    assert logged == []
    assert hub.fatal_lines() == []
    outage = [r["msg"] for r in hub.log_records() if r["name"] == "DB" and r["level"] == 40]
    assert outage and outage[0].startswith(LOST), outage  # what docs/TROUBLESHOOTING.md shows
    assert outage[-1].startswith(BACK), outage
    assert sum(m.startswith(LOST) for m in outage) == sum(m.startswith(BACK) for m in outage)

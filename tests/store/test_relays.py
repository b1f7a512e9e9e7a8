"""SQL and Redis of the relays: the command-role check inside the message insert (one and many),
room access for agent relays, the rewind delete, the gateway binding's liveness."""

from __future__ import annotations

import pytest

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.store import relays
from agentim.store.gateways import GatewayKv
from agentim.store.messages import NewMessage, insert_user_message, insert_user_messages
from tests.helpers import RunningHub, create_room, create_user


def _message(room_id: str, content: str) -> NewMessage:
    return NewMessage(new_id(), room_id, content, None, [], iso_now())


@pytest.mark.parametrize(
    ("required", "owner_may", "member_may"),
    [("member", True, True), ("admin", True, False), ("owner", True, False)],
)
async def test_the_insert_says_whether_the_sender_may_command_agents(
    hub: RunningHub, required: str, owner_may: bool, member_may: bool
) -> None:
    db = hub.services.db
    owner, member = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    await db.execute("UPDATE rooms SET agent_command_role = $2 WHERE id = $1", room_id, required)
    for user, may in ((owner, owner_may), (member, member_may)):
        one = _message(room_id, "one")
        single = await insert_user_message(
            db, message_id=one.message_id, room_id=room_id, user_id=user.id,
            username=user.username, content="one", reply_to_id=None, mentions=[],
            attachment_ids=[], now=one.now,
        )  # fmt: skip
        many = await insert_user_messages(db, user_id=user.id, username=user.username,
                                          messages=[_message(room_id, "a"),
                                                    _message(room_id, "b")])  # fmt: skip
        assert [single.may_command, *(o.may_command for o in many)] == [may, may, may]
        assert single.inserted and all(o.inserted for o in many)


async def test_an_admin_member_and_the_creator_without_a_row(hub: RunningHub) -> None:
    db = hub.services.db
    owner, admin = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, owner, members=(admin,))
    await db.execute("UPDATE room_members SET role = 'admin' WHERE member_id = $1", admin.id)
    await db.execute("DELETE FROM room_members WHERE member_id = $1", owner.id)
    await db.execute("UPDATE rooms SET agent_command_role = 'admin' WHERE id = $1", room_id)
    access = await relays.command_access(db, room_id, owner.id, "agent-x")
    assert access is not None
    assert (access["required"], access["role"], access["agent_member"]) == ("admin", "owner", False)
    access = await relays.command_access(db, room_id, admin.id, "agent-x")
    assert access is not None and access["role"] == "admin"
    assert await relays.command_access(db, "no-room", admin.id, "agent-x") is None


async def test_delete_messages_from_takes_that_one_and_every_later_one(hub: RunningHub) -> None:
    db = hub.services.db
    owner = await create_user(hub)
    room_id, other_room = await create_room(hub, owner), await create_room(hub, owner)
    stamps = [f"2026-01-01T00:00:0{i}.000Z" for i in range(4)]
    ids = [new_id() for _ in stamps]
    for message_id, stamp in zip(ids, stamps, strict=True):
        await db.execute(
            "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content, "
            "created_at) VALUES ($1, $2, $3, 'user', 'u', 'x', $4)",
            message_id, room_id, owner.id, stamp,
        )  # fmt: skip
    await db.execute(
        "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content, "
        "created_at) VALUES ($1, $2, $3, 'user', 'u', 'x', $4)",
        "elsewhere", other_room, owner.id, stamps[3],
    )  # fmt: skip
    async with db.transaction() as tx:
        removed, urls = await relays.delete_messages_from(tx, room_id, stamps[1])
    assert (removed, urls) == (ids[1:], [])
    left = await db.fetch("SELECT id FROM messages WHERE room_id = ANY($1)", [room_id, other_room])
    assert {r["id"] for r in left} == {ids[0], "elsewhere"}


async def test_a_gateway_binding_counts_only_while_its_process_lives(hub: RunningHub) -> None:
    kv = hub.services.kv
    relay_kv, gateway_id = GatewayKv(kv), f"gw-{new_id(8)}"
    await relay_kv.bind_gateway(gateway_id, "proc-dead")
    assert await relay_kv.gateway_process(gateway_id) is None  # no heartbeat: a crashed process
    await kv.set("presence:hub:proc-live", "1", ex=30)
    await relay_kv.bind_gateway(gateway_id, "proc-live")
    assert await relay_kv.gateway_process(gateway_id) == "proc-live"
    await relay_kv.unbind_gateway(gateway_id, "proc-other")  # not ours: kept
    assert await relay_kv.gateway_process(gateway_id) == "proc-live"
    await relay_kv.unbind_gateway(gateway_id, "proc-live")
    assert await kv.get(f"gw:proc:{gateway_id}") is None

"""send_message, the WebSocket send path (realtime.md §3.1 steps 2-5), on real PostgreSQL."""

from __future__ import annotations

import pytest
import trio

from agentim.actions.messages import send_message
from agentim.errors import AgentImError, ErrorCode
from agentim.protocol.events import Target
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, create_user


async def _send(hub: RunningHub, user: User, room_id: str, content: str = "hello", **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"reply_to_id": None, "attachment_ids": []}
    args.update(kw)
    with trio.fail_after(10):
        return await send_message(
            hub.services, user_id=user.id, username=user.username, room_id=room_id,
            content=content, **args,  # type: ignore[arg-type]
        )  # fmt: skip


async def _upload(hub: RunningHub, owner: User, *, message_id: str | None = None) -> str:
    attachment_id = new_id()
    await hub.services.db.execute(
        "INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url, "
        "uploaded_by, created_at) VALUES ($1, $2, 'a.png', 'image/png', 42, $3, $4, $5)",
        attachment_id, message_id, f"/uploads/{attachment_id}.png", owner.id, iso_now(),
    )  # fmt: skip
    return attachment_id


async def test_member_message_is_stored_and_broadcast_to_the_room(hub: RunningHub) -> None:
    alice, bob = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    hub.services.events.captured = []

    message = await _send(hub, bob, room_id, "hi @alice and @bob-2, @alice again")

    assert list(message) == ["id", "roomId", "senderId", "senderType", "senderName", "type",
                             "content", "mentions", "createdAt"]  # fmt: skip
    assert message["roomId"] == room_id
    assert (message["senderId"], message["senderName"]) == (bob.id, bob.username)
    assert (message["senderType"], message["type"]) == ("user", "text")
    assert message["mentions"] == ["alice", "bob-2"]
    row = await hub.services.db.fetchrow("SELECT * FROM messages WHERE id = $1", message["id"])
    assert row is not None
    assert row["content"] == "hi @alice and @bob-2, @alice again"
    assert row["mentions"] == '["alice","bob-2"]'
    assert (row["sender_name"], row["reply_to_id"], row["chunks"]) == (bob.username, None, None)
    assert row["created_at"] == message["createdAt"]
    [event] = hub.services.events.captured
    assert (event.target, event.target_id) == (Target.ROOM, room_id)
    assert event.message == {"type": "server:new_message", "message": message}
    assert hub.services.metrics.messages_total.values[(("type", "text"),)] >= 1


async def test_content_is_sanitised_before_mentions_are_parsed(hub: RunningHub) -> None:
    alice = await create_user(hub)
    room_id = await create_room(hub, alice)
    raw = '<script>alert("@x")</script>**bold** a < b <img src="javascript:y" onerror=z> @ok'

    message = await _send(hub, alice, room_id, raw, reply_to_id="not-checked")

    assert message["content"] == '**bold** a < b <img src=""> @ok'
    assert message["mentions"] == ["ok"]
    assert message["replyToId"] == "not-checked"
    stored = await hub.services.db.fetchval(
        "SELECT content FROM messages WHERE id = $1", message["id"]
    )
    assert stored == message["content"]


async def test_unknown_room_is_room_not_found_and_nothing_is_published(hub: RunningHub) -> None:
    alice = await create_user(hub)
    hub.services.events.captured = []
    with pytest.raises(AgentImError) as caught:
        await _send(hub, alice, new_id())
    assert (caught.value.status, caught.value.message) == (404, "Room not found")
    assert caught.value.code is ErrorCode.ROOM_NOT_FOUND
    assert hub.services.events.captured == []


async def test_non_member_is_refused_and_nothing_is_stored(hub: RunningHub) -> None:
    alice, mallory = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice)
    hub.services.events.captured = []
    with pytest.raises(AgentImError) as caught:
        await _send(hub, mallory, room_id)
    assert caught.value.status == 403
    assert caught.value.message == "You are not a member of this room"
    assert caught.value.code is ErrorCode.NOT_A_MEMBER
    assert hub.services.events.captured == []
    count = await hub.services.db.fetchval(
        "SELECT count(*) FROM messages WHERE room_id = $1", room_id
    )
    assert count == 0


async def test_agent_member_row_with_the_users_id_does_not_count(hub: RunningHub) -> None:
    alice, bob = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice)
    await hub.services.db.execute(
        "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
        "VALUES ($1, $2, 'agent', 'member', $3)",
        room_id, bob.id, iso_now(),
    )  # fmt: skip
    with pytest.raises(AgentImError) as caught:
        await _send(hub, bob, room_id)
    assert caught.value.code is ErrorCode.NOT_A_MEMBER


async def test_creator_without_a_member_row_may_send(hub: RunningHub) -> None:
    alice = await create_user(hub)
    room_id = await create_room(hub, alice)
    await hub.services.db.execute("DELETE FROM room_members WHERE room_id = $1", room_id)
    message = await _send(hub, alice, room_id)
    assert message["roomId"] == room_id


async def test_only_the_senders_unlinked_uploads_are_attached(hub: RunningHub) -> None:
    alice, bob = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    earlier = await _send(hub, alice, room_id, "earlier")
    own = await _upload(hub, alice)
    foreign = await _upload(hub, bob)
    linked = await _upload(hub, alice, message_id=earlier["id"])
    hub.services.events.captured = []

    message = await _send(
        hub, alice, room_id, "files", attachment_ids=[own, foreign, linked, "missing"]
    )

    assert list(message)[-2:] == ["attachments", "createdAt"]
    assert message["attachments"] == [{
        "id": own, "messageId": message["id"], "filename": "a.png", "mimeType": "image/png",
        "size": 42, "url": f"/uploads/{own}.png",
    }]  # fmt: skip
    rows = await hub.services.db.fetch(
        "SELECT id, message_id FROM message_attachments WHERE id = ANY($1::text[])",
        [own, foreign, linked],
    )
    assert {r["id"]: r["message_id"] for r in rows} == {
        own: message["id"],
        foreign: None,
        linked: earlier["id"],
    }
    [event] = hub.services.events.captured
    assert event.message["message"] == message


async def test_refused_send_links_no_attachment(hub: RunningHub) -> None:
    alice, mallory = await create_user(hub), await create_user(hub)
    room_id = await create_room(hub, alice)
    upload = await _upload(hub, mallory)
    with pytest.raises(AgentImError):
        await _send(hub, mallory, room_id, attachment_ids=[upload])
    linked = await hub.services.db.fetchval(
        "SELECT message_id FROM message_attachments WHERE id = $1", upload
    )
    assert linked is None

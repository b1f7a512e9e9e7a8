"""room_context_events (realtime.md §3.9) and the router access check (api.md §6.11)."""

from __future__ import annotations

from agentim.actions.room_context import room_context_events
from agentim.protocol.events import Target
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.store.ai_routers import access_router_for_room
from tests.helpers import RunningHub, create_room, create_user
from tests.http.test_rooms import add_agent_member, insert_agent, insert_router


async def test_context_lists_members_in_table_order_and_skips_missing_records(
    hub: RunningHub,
) -> None:
    alice = await create_user(hub, display_name="Alice A")
    room_id = await create_room(hub, alice, name="Ops")
    first = await insert_agent(hub, alice, name="first", capabilities="not json")
    second = await insert_agent(hub, alice, name="second", capabilities='["review"]')
    await add_agent_member(hub, room_id, first, "lead")
    await add_agent_member(hub, room_id, new_id(), "gone")  # no agent row: skipped
    await add_agent_member(hub, room_id, second, None)
    await hub.services.db.execute(
        "INSERT INTO room_members (room_id, member_id, member_type, joined_at) "
        "VALUES ($1, $2, 'user', $3)",
        room_id, new_id(), iso_now(),
    )  # fmt: skip

    events = await room_context_events(hub.services.db, room_id)

    assert [(e.target, e.target_id) for e in events] == [
        (Target.AGENT, first), (Target.AGENT, second)
    ]  # fmt: skip
    context = events[0].message["context"]
    assert events[1].message == {"type": "server:room_context", "agentId": second,
                                 "context": context}  # fmt: skip
    assert context == {
        "roomId": room_id, "roomName": "Ops",
        "members": [
            {"id": alice.id, "name": "Alice A", "type": "user"},
            {"id": first, "name": "first", "type": "agent", "agentType": "claude-code",
             "roleDescription": "lead", "status": "online"},
            {"id": second, "name": "second", "type": "agent", "agentType": "claude-code",
             "capabilities": ["review"], "status": "online"},
        ],
        "recentMessages": [],
    }  # fmt: skip
    only = await room_context_events(hub.services.db, room_id, agent_id=second)
    assert [e.target_id for e in only] == [second]


async def test_context_carries_the_system_prompt_and_is_empty_for_missing_rooms(
    hub: RunningHub,
) -> None:
    alice = await create_user(hub)
    room_id = await create_room(hub, alice)
    agent_id = await insert_agent(hub, alice)
    await add_agent_member(hub, room_id, agent_id, "x")
    await hub.services.db.execute(
        "UPDATE rooms SET system_prompt = 'be kind' WHERE id = $1", room_id
    )
    [event] = await room_context_events(hub.services.db, room_id)
    assert event.message["context"]["systemPrompt"] == "be kind"
    assert list(event.message["context"]) == [
        "roomId", "roomName", "systemPrompt", "members", "recentMessages"
    ]  # fmt: skip
    assert await room_context_events(hub.services.db, new_id()) == []


async def test_router_access_for_unknown_users_and_routers(hub: RunningHub) -> None:
    alice = await create_user(hub)
    router_id = await insert_router(hub, alice, scope="global", visibility="nobody")
    db = hub.services.db
    assert await access_router_for_room(db, new_id(), alice.id) == "Router not found"
    assert await access_router_for_room(db, router_id, new_id()) == "User not found"
    assert await access_router_for_room(db, router_id, alice.id) == "Router not accessible"


async def test_context_carries_the_last_twenty_messages_cut_to_500_characters(
    hub: RunningHub,
) -> None:
    """head-gap B30: 631a1ad's `recentMessages`, oldest first."""
    alice = await create_user(hub, display_name="Alice A")
    room_id = await create_room(hub, alice)
    agent_id = await insert_agent(hub, alice)
    await add_agent_member(hub, room_id, agent_id, None)
    for i in range(22):
        sender = ("agent", "coder") if i % 2 else ("user", "alice")
        await hub.services.db.execute(
            "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content, "
            "created_at) VALUES ($1, $2, 'x', $3, $4, $5, $6)",
            new_id(), room_id, *sender, f"{i} " + "é" * (600 if i == 21 else 3),
            f"2025-01-01T12:00:{i:02d}.000Z",
        )  # fmt: skip
    [event] = await room_context_events(hub.services.db, room_id)
    recent = event.message["context"]["recentMessages"]
    assert len(recent) == 20
    assert recent[0] == {"senderName": "alice", "senderType": "user", "content": "2 ééé",
                         "createdAt": "2025-01-01T12:00:02.000Z"}  # fmt: skip
    assert recent[-1]["content"] == "21 " + "é" * 497
    assert [r["senderType"] for r in recent[:2]] == ["user", "agent"]

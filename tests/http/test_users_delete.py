"""DELETE /api/users/:id (api.md §5.7, §17.28): the hand-made cascade, files, revocation."""

from __future__ import annotations

import httpx
import trio

from agentim.protocol.events import Target
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, create_user, login, signed_in_user


async def _message(hub: RunningHub, room_id: str, sender: User) -> str:
    message_id = new_id()
    await hub.services.db.execute(
        "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, content, "
        "created_at) VALUES ($1, $2, $3, 'user', $4, 'hi', $5)",
        message_id,
        room_id,
        sender.id,
        sender.username,
        iso_now(),
    )
    return message_id


async def _attachment(hub: RunningHub, owner: User, message_id: str | None, ext: str) -> str:
    attachment_id = new_id()
    name = f"{attachment_id}{ext}"
    await hub.services.db.execute(
        "INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url, "
        "uploaded_by, created_at) VALUES ($1, $2, 'f', 'text/plain', 1, $3, $4, $5)",
        attachment_id,
        message_id,
        f"/uploads/{name}",
        owner.id,
        iso_now(),
    )
    await trio.Path(hub.services.settings.upload_dir / name).write_text("x")
    return name


async def _task(hub: RunningHub, room_id: str, creator: User, assignee: User | None) -> str:
    task_id, now = new_id(), iso_now()
    await hub.services.db.execute(
        "INSERT INTO tasks (id, room_id, title, created_by_id, assignee_id, assignee_type, "
        "created_at, updated_at) VALUES ($1, $2, 't', $3, $4, $5, $6, $6)",
        task_id,
        room_id,
        creator.id,
        assignee.id if assignee else None,
        "user" if assignee else None,
        now,
    )
    return task_id


async def _exists(hub: RunningHub, table: str, column: str, value: str) -> bool:
    return bool(
        await hub.services.db.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = $1)", value
        )
    )


async def test_delete_user_removes_their_world(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await signed_in_user(hub, role="admin")
    victim = await login(client, await create_user(hub))
    other = await create_user(hub)
    upload_dir = hub.services.settings.upload_dir
    own_room = await create_room(hub, victim, members=(other,))
    other_room = await create_room(hub, other, members=(victim,))
    in_own_room = await _attachment(hub, other, await _message(hub, own_room, other), ".txt")
    victims_message = await _message(hub, other_room, victim)
    linked_elsewhere = await _attachment(hub, victim, victims_message, ".txt")
    orphan = await _attachment(hub, victim, None, ".png")
    await trio.Path(upload_dir / f"avatar_{victim.id}.png").write_text("x")
    await trio.Path(upload_dir / "avatar_someoneelse.png").write_text("x")
    task_elsewhere = await _task(hub, other_room, victim, None)
    assigned = await _task(hub, other_room, other, victim)
    hub.services.events.captured = []

    with trio.fail_after(10):
        response = await client.delete(f"/api/users/{victim.id}", headers=admin.headers)

    assert (response.status_code, response.text) == (200, '{"ok":true}')
    db = hub.services.db
    assert not await _exists(hub, "users", "id", victim.id)
    assert not await _exists(hub, "rooms", "id", own_room)
    assert await _exists(hub, "rooms", "id", other_room)
    assert not await _exists(hub, "tasks", "id", task_elsewhere)
    assignment = await db.fetchrow(
        "SELECT assignee_id, assignee_type FROM tasks WHERE id = $1", assigned
    )
    assert dict(assignment or {}) == {"assignee_id": None, "assignee_type": None}
    assert not await _exists(hub, "room_members", "member_id", victim.id)
    assert not await _exists(hub, "refresh_tokens", "user_id", victim.id)
    # the victim's message in another room stays (no FK), its attachment loses uploaded_by
    assert await _exists(hub, "messages", "id", victims_message)
    assert (
        await db.fetchval(
            "SELECT uploaded_by FROM message_attachments WHERE message_id = $1", victims_message
        )
        is None
    )
    remaining = {p.name for p in await trio.Path(upload_dir).iterdir()}
    assert in_own_room not in remaining
    assert orphan not in remaining
    assert f"avatar_{victim.id}.png" not in remaining
    assert {linked_elsewhere, "avatar_someoneelse.png"} <= remaining
    revoked = await client.get("/api/users/me", headers=victim.headers)
    assert revoked.json()["error"] == "Token revoked"
    assert [(e.target, e.target_id) for e in hub.services.events.captured] == [
        (Target.CONTROL, victim.id)
    ]
    rows = await db.fetch(
        "SELECT user_id, target_type, metadata, ip_address FROM audit_log "
        "WHERE action = 'admin_user_delete' AND target_id = $1",
        victim.id,
    )
    assert [dict(r) for r in rows] == [
        {
            "user_id": admin.id,
            "target_type": "user",
            "metadata": f'{{"username":"{victim.username}"}}',
            "ip_address": "127.0.0.1",
        }
    ]


async def test_seed_admin_actions_query_finds_admin_rows(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    """The operator guide's `al.action LIKE 'admin_%'` query (D21)."""
    admin = await signed_in_user(hub, role="admin")
    target = await create_user(hub)
    await client.put(f"/api/users/{target.id}", headers=admin.headers, json={"role": "admin"})
    await client.delete(f"/api/users/{target.id}", headers=admin.headers)
    rows = await hub.services.db.fetch(
        "SELECT al.*, u.username FROM audit_log al JOIN users u ON u.id = al.user_id "
        "WHERE al.action LIKE 'admin_%' AND al.user_id = $1 ORDER BY al.created_at DESC LIMIT 50",
        admin.id,
    )
    assert sorted(r["action"] for r in rows) == ["admin_user_delete", "admin_user_update"]
    assert {r["username"] for r in rows} == {admin.username}


async def test_delete_errors(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await signed_in_user(hub, role="admin")
    itself = await client.delete(f"/api/users/{admin.id}", headers=admin.headers)
    assert (itself.status_code, itself.json()) == (
        400,
        {"ok": False, "error": "Cannot delete yourself"},
    )
    missing = await client.delete("/api/users/nobody", headers=admin.headers)
    assert (missing.status_code, missing.json()) == (404, {"ok": False, "error": "User not found"})
    assert await _exists(hub, "users", "id", admin.id)

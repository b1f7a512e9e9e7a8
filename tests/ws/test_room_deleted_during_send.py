"""A room deleted while a message is being stored in it: the sender gets ROOM_NOT_FOUND, as a
moment later, and nothing is logged as an error (the chaos fuzz corpus found this race: a
REST room delete between the send statement's room check and its insert)."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import signed_in

# Stands in for the delete landing mid-statement: the insert fails exactly as PostgreSQL fails it.
RACE = """
CREATE FUNCTION room_vanishes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING CONSTRAINT = 'messages_room_id_rooms_id_fk',
        MESSAGE = 'insert or update on table "messages" violates foreign key constraint '
                  '"messages_room_id_rooms_id_fk"';
END $$;
CREATE TRIGGER room_vanishes BEFORE INSERT ON messages FOR EACH ROW
    WHEN (NEW.room_id = '{room_id}') EXECUTE FUNCTION room_vanishes();
"""
UNDO = "DROP TRIGGER room_vanishes ON messages; DROP FUNCTION room_vanishes();"


async def test_a_room_deleted_mid_send_answers_room_not_found(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in_user(hub)
    room_id = await create_room(hub, user)
    await hub.services.db.execute(RACE.format(room_id=room_id))
    try:
        async with signed_in(hub, user) as ws:
            await ws.join(room_id)
            with caplog.at_level(logging.INFO):
                await ws.send({"type": "client:send_message", "roomId": room_id, "content": "hi"})
                error = await ws.receive_type("server:error")
    finally:
        await hub.services.db.execute(UNDO)
    assert error == {"type": "server:error", "code": "ROOM_NOT_FOUND", "message": "Room not found"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

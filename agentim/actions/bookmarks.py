"""Bookmark writes (head-gap A8): add one to a message the caller can read, delete one's own."""

from __future__ import annotations

from typing import Any, Final

from agentim.errors import bad_request, conflict, forbidden, not_found
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import bookmarks as store
from agentim.store.messages import get_message_for_member

MAX_PER_USER: Final = 500


def bookmark_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "userId": row["user_id"], "messageId": row["message_id"],
            "note": row["note"] or "", "createdAt": row["created_at"]}  # fmt: skip


async def add_bookmark(
    services: Services, *, user_id: str, message_id: str, note: str
) -> dict[str, Any]:
    """Bookmark a message in a room of the caller's (at most MAX_PER_USER per user).

    A message the caller cleared from their history counts as not found.
    """
    async with services.db.transaction() as tx:
        message = await get_message_for_member(tx, message_id, user_id)
        if message is None or await store.is_cleared_for(tx, message_id, user_id):
            raise not_found("Message not found")
        if not message["is_member"]:
            raise forbidden("Not a member of this room")
        if await store.lock_and_count(tx, user_id) >= MAX_PER_USER:
            raise bad_request("Maximum bookmarks reached")
        row = await store.insert_bookmark(
            tx, bookmark_id=new_id(), user_id=user_id, message_id=message_id, note=note,
            now=iso_now(),
        )  # fmt: skip
        if row is None:
            raise conflict("Bookmark already exists")
    return bookmark_json(row)


async def delete_bookmark(services: Services, *, user_id: str, bookmark_id: str) -> None:
    """Delete one of the caller's bookmarks; another user's is not found."""
    if not await store.delete_bookmark(services.db, bookmark_id, user_id):
        raise not_found("Bookmark not found")

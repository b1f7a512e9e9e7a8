"""/api/bookmarks (head-gap A8): the caller's saved messages; parse → actions / store → envelope."""

from __future__ import annotations

from typing import Any, Final

from quart import Blueprint, Response, request

from agentim.actions import bookmarks as actions
from agentim.http._request import check_ids, json_body, ok, principal, require_auth, services
from agentim.http.not_found import add_not_found_routes, authenticated_with_ids
from agentim.http.validate import Str, parse_dict
from agentim.settings import parse_js_int
from agentim.store import bookmarks as store
from agentim.store.db import Row

blueprint = Blueprint("bookmarks", __name__)

LIMIT_DEFAULT: Final = 50
LIMIT_MAX: Final = 100
CREATE_BOOKMARK: Final = {
    "messageId": Str(min=1, max=100),
    "note": Str(max=500, default=""),
}


def _limit() -> int:
    """`?limit` as parseInt reads it; junk or 0 → 50, then 1..100."""
    limit = parse_js_int(request.args.get("limit"), LIMIT_DEFAULT, -(2**31), 2**31)
    return max(1, min(limit or LIMIT_DEFAULT, LIMIT_MAX))


def _item(row: Row) -> dict[str, Any]:
    return {
        **actions.bookmark_json(row),
        "message": {"roomId": row["room_id"], "senderName": row["sender_name"],
                    "content": row["content"], "createdAt": row["message_created_at"]},
    }  # fmt: skip


@blueprint.get("/api/bookmarks")
@require_auth
async def list_bookmarks() -> Response:
    """Newest first; `?cursor` is the last bookmark's createdAt seen."""
    limit = _limit()
    rows = await store.list_bookmarks(
        services().db, principal().user_id, before=request.args.get("cursor") or None,
        limit=limit + 1,
    )  # fmt: skip
    items = [_item(row) for row in rows[:limit]]
    page: dict[str, Any] = {"items": items}
    if len(rows) > limit:
        page["nextCursor"] = items[-1]["createdAt"]
    page["hasMore"] = len(rows) > limit
    return ok(page)


@blueprint.post("/api/bookmarks")
@require_auth
async def add_bookmark() -> Response:
    body = parse_dict(CREATE_BOOKMARK, await json_body())
    bookmark = await actions.add_bookmark(
        services(), user_id=principal().user_id, message_id=body["messageId"], note=body["note"]
    )
    return ok(bookmark, 201)


@blueprint.delete("/api/bookmarks/<id>")
@require_auth
@check_ids("id")
async def delete_bookmark(id: str) -> Response:
    await actions.delete_bookmark(services(), user_id=principal().user_id, bookmark_id=id)
    return ok({"id": id})


add_not_found_routes(blueprint, "/api/bookmarks", authenticated_with_ids("id"))

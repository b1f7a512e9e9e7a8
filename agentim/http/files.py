"""GET /uploads/<file> (api.md §11.4 with DIFFERENCES D10): uploaded files, for those allowed.

Only names of the shape we mint reach the blob store (`filetypes.is_upload_name`); the local
store opens them with O_NOFOLLOW as regular files, so no request can read outside UPLOAD_DIR,
and the S3 store keys objects by the same names.
Refusals: 401 (no or bad token, as on /api), 400 `Invalid file name`, 403 `Forbidden`
(the file exists but belongs to someone else's rooms), plain-text 404 (no such file).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType

from quart import Blueprint, Response, request
from quart.wrappers.response import ResponseBody
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from agentim.auth.tokens import Principal
from agentim.errors import bad_request, forbidden, unauthorized
from agentim.http._request import authenticate_token, services
from agentim.http.pipeline import plain_not_found
from agentim.protocol.filetypes import avatar_owner, is_inline, is_upload_name, served_type
from agentim.store.blobs import BlobStore
from agentim.store.uploads import access_attachment

blueprint = Blueprint("files", __name__)


def _credential() -> str | None:
    """The Bearer header, else `?token=` (api.md §11.4)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :]
    return request.args.get("token")


async def _authenticate() -> Principal:
    """D10: a valid, unrevoked access token; the same 401 texts as the API (api.md §2.6)."""
    token = _credential()
    if token is None:
        raise unauthorized("Unauthorized")
    return await authenticate_token(token)


async def _may_read(name: str, user_id: str) -> bool | None:
    """D10: avatars are for any signed-in user; attachments for the uploader and room members.

    Returns None when the name is no file we know (answered like a missing file).
    """
    stem = name.split(".", 1)[0]
    allowed = await access_attachment(services().db, stem, f"/uploads/{name}", user_id)
    if allowed is None and avatar_owner(name) is not None:
        return True
    return allowed


class UploadBody(ResponseBody):
    """A stored object, read from the blob store only when sent (never for HEAD)."""

    def __init__(self, blobs: BlobStore, name: str, size: int, *, send: bool) -> None:
        self._blobs = blobs
        self._name = name
        self._send = send
        self.size = size
        self.begin = 0
        self.end = size
        self._chunks: AsyncGenerator[bytes, None] | None = None

    async def __aenter__(self) -> UploadBody:
        if self._send:
            self._chunks = self._blobs.read(self._name, self.begin, self.end)
        return self

    async def __aexit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._chunks is not None:
            await self._chunks.aclose()

    def __aiter__(self) -> UploadBody:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            raise StopAsyncIteration
        return await anext(self._chunks)

    async def make_conditional(self, begin: int, end: int | None) -> int:
        """A Range request: quart validates the header, we keep to the object's bounds."""
        self.begin, self.end = begin, self.size if end is None else min(end, self.size)
        if self.begin >= self.end or abs(self.begin) > self.size:
            raise RequestedRangeNotSatisfiable()
        return self.size


@blueprint.route("/uploads/<path:name>", methods=["GET", "HEAD"], merge_slashes=False)
async def serve_upload(name: str) -> Response:
    user = await _authenticate()
    if not is_upload_name(name):
        raise bad_request("Invalid file name")
    allowed = await _may_read(name, user.user_id)
    if allowed is False:
        raise forbidden("Forbidden")
    blobs = services().blobs
    size = await blobs.size(name)
    if allowed is None or size is None:
        return plain_not_found()
    body = UploadBody(blobs, name, size, send=request.method != "HEAD")
    response = Response(body, content_type=served_type(name))
    response.content_length = size
    return await response.make_conditional(request, accept_ranges=True, complete_length=size)


@blueprint.after_request
async def _disposition(response: Response) -> Response:
    """Every answer on this path, 404s and errors included, carries the §11.4 headers."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not is_inline(response.headers.get("Content-Type", "")):
        response.headers["Content-Disposition"] = "attachment"
    return response

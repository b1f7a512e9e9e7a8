"""GET /uploads/<file> (api.md §11.4 with DECISIONS D10): uploaded files, for those allowed.

Only names of the shape we mint reach the disk (`filetypes.is_upload_name`), and the file is
opened with O_NOFOLLOW as a regular file, so no request can read outside UPLOAD_DIR.
Refusals: 401 (no or bad token, as on /api), 400 `Invalid file name`, 403 `Forbidden`
(the file exists but belongs to someone else's rooms), plain-text 404 (no such file).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import trio
from quart import Blueprint, Response, request
from quart.wrappers.response import ResponseBody
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from agentim.auth.tokens import Principal
from agentim.errors import bad_request, forbidden, unauthorized
from agentim.http._request import authenticate_token, services
from agentim.http.pipeline import plain_not_found
from agentim.protocol.filetypes import avatar_owner, is_inline, is_upload_name, served_type
from agentim.store.uploads import access_attachment

blueprint = Blueprint("files", __name__)

CHUNK_BYTES: Final = 64 * 1024  # one worker-thread read per chunk sent
OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


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


def _regular_size(path: Path) -> int | None:
    """The size of a regular file at `path` itself (a symlink is not followed), or None."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class UploadBody(ResponseBody):
    """A stored file, opened only when sent (never for HEAD), O_NOFOLLOW, read in worker threads."""

    def __init__(self, path: Path, size: int, *, send: bool) -> None:
        self._path = path
        self._send = send
        self.size = size
        self.begin = 0
        self.end = size
        self._position = 0
        self._file: Any = None  # trio's async wrapper of the raw file

    async def __aenter__(self) -> UploadBody:
        if self._send:
            self._file = trio.wrap_file(await trio.to_thread.run_sync(_open_regular, self._path))
            await self._file.seek(self.begin)
            self._position = self.begin
        return self

    async def __aexit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            await self._file.aclose()

    def __aiter__(self) -> UploadBody:
        return self

    async def __anext__(self) -> bytes:
        if self._file is None or self._position >= self.end:
            raise StopAsyncIteration
        chunk: bytes = await self._file.read(min(CHUNK_BYTES, self.end - self._position))
        if not chunk:
            raise StopAsyncIteration
        self._position += len(chunk)
        return chunk

    async def make_conditional(self, begin: int, end: int | None) -> int:
        """A Range request: quart validates the header, we keep to the file's bounds."""
        self.begin, self.end = begin, self.size if end is None else min(end, self.size)
        if self.begin >= self.end or abs(self.begin) > self.size:
            raise RequestedRangeNotSatisfiable()
        return self.size


def _open_regular(path: Path) -> Any:
    fd = os.open(path, OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(str(path))
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


@blueprint.route("/uploads/<path:name>", methods=["GET", "HEAD"], merge_slashes=False)
async def serve_upload(name: str) -> Response:
    user = await _authenticate()
    if not is_upload_name(name):
        raise bad_request("Invalid file name")
    allowed = await _may_read(name, user.user_id)
    if allowed is False:
        raise forbidden("Forbidden")
    path = Path(services().settings.upload_dir) / name
    size = await trio.to_thread.run_sync(_regular_size, path)
    if allowed is None or size is None:
        return plain_not_found()
    body = UploadBody(path, size, send=request.method != "HEAD")
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

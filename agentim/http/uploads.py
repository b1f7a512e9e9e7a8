"""POST /api/upload and /api/upload/avatar (api.md §11.1-11.2): a streamed multipart read.

The body is read chunk by chunk (the pipeline caps it at 12 MiB: more is a 413); only the
`file` part is kept, and a part past its size limit stops being collected at once.
"""

from __future__ import annotations

import math
from typing import Final

import attrs
import trio
from quart import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from agentim.actions import uploads
from agentim.errors import bad_request
from agentim.http._request import (
    client_ip,
    enforce_rate_limit,
    ok,
    principal,
    rate_limit,
    require_auth,
    services,
)
from agentim.http.not_found import add_not_found_routes, authenticated
from agentim.http.pipeline import body_limit
from agentim.protocol.filetypes import UNTYPED_PART
from agentim.settings import AVATAR_LIMIT_BYTES, UPLOAD_BODY_LIMIT_BYTES

blueprint = Blueprint("uploads", __name__)

FILE_FIELD: Final = "file"
NO_FILE: Final = "No file provided"
MALFORMED: Final = "Malformed multipart body"  # the reference answered 500 here
MAX_PARTS: Final = 1000  # quart's MAX_FORM_PARTS default; more is a 413


@attrs.frozen
class FilePart:
    filename: str
    mime_type: str  # the part's Content-Type, lower-cased, parameters kept (api.md §17.19)
    data: bytes


class PartTooLarge(Exception):
    """The `file` part grew past its limit; the rest of the body is not kept."""


class FilePartReader:
    """Feed body chunks; keeps the last part named `file` (api.md §11.1: the last one wins).

    Raises ValueError on a malformed or truncated body and PartTooLarge past `max_bytes`.
    """

    def __init__(self, boundary: bytes, max_bytes: int) -> None:
        self._decoder = MultipartDecoder(boundary, max_parts=MAX_PARTS)
        self._max_bytes = max_bytes
        self._current: File | Field | None = None
        self._buffer = bytearray()
        self.last: File | Field | None = None
        self.last_data = b""
        self.complete = False

    def feed(self, chunk: bytes | None) -> None:
        """A chunk of the body, or None at its end."""
        self._decoder.receive_data(chunk)
        while not isinstance(event := self._decoder.next_event(), NeedData):
            if isinstance(event, Epilogue):
                self.complete = True
                return
            self._on_event(event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, File | Field):
            self._current = event if event.name == FILE_FIELD else None
            self._buffer = bytearray()
        elif isinstance(event, Data) and self._current is not None:
            if isinstance(self._current, File):
                self._buffer += event.data
                if len(self._buffer) > self._max_bytes:
                    raise PartTooLarge
            if not event.more_data:
                self.last, self.last_data = self._current, bytes(self._buffer)
                self._buffer = bytearray()

    def result(self) -> FilePart | None:
        if not isinstance(self.last, File):
            return None  # no `file` part, or a plain field under that name
        declared = self.last.headers.get("content-type")
        mime = declared.lower() if declared else UNTYPED_PART
        return FilePart(self.last.filename, mime, self.last_data)


async def read_file_part(*, max_bytes: int, too_large: str) -> FilePart:
    """Stream the request body through FilePartReader, within the body timeout.

    Raises:
        AgentImError: 400 for no file, a malformed body or a part over `max_bytes`.
        RequestEntityTooLarge: the body passed the pipeline's cap (answered 413).
    """
    boundary = request.mimetype_params.get("boundary", "")
    if request.mimetype != "multipart/form-data" or not boundary:
        raise bad_request(NO_FILE)
    reader = FilePartReader(boundary.encode("latin-1"), max_bytes)
    timeout = math.inf if request.body_timeout is None else request.body_timeout
    with trio.move_on_after(timeout) as scope:
        await _consume(reader, too_large)
    if scope.cancelled_caught:
        raise RequestTimeout()
    part = reader.result()
    if part is None or (not part.filename and not part.data):  # an empty browser file input
        raise bad_request(NO_FILE)
    return part


class BodyMeter:
    """Counts body bytes as they arrive: quart caps only what sits unread in its buffer."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.received = 0

    def count(self, chunk: bytes) -> bytes:
        self.received += len(chunk)
        if self.received > self.cap:
            raise RequestEntityTooLarge()  # answered 413 by the pipeline's handler
        return chunk


async def _consume(reader: FilePartReader, too_large: str) -> None:
    meter = BodyMeter(body_limit(request.path) or UPLOAD_BODY_LIMIT_BYTES)
    try:
        async for chunk in request.body:
            reader.feed(meter.count(chunk))
        reader.feed(None)
    except ValueError:
        raise bad_request(MALFORMED) from None
    except PartTooLarge:
        pass
    else:
        return
    async for chunk in request.body:  # read the rest (up to the cap) unkept, so the client hears us
        meter.count(chunk)
    raise bad_request(too_large)


@blueprint.post("/api/upload")
@require_auth
@rate_limit("upload")
async def upload_attachment() -> Response:
    settings = services().live.current
    too_large = uploads.file_too_large(settings)
    part = await read_file_part(max_bytes=settings.max_file_size, too_large=too_large)
    data = await uploads.save_attachment(
        services(), user_id=principal().user_id, ip=client_ip(), filename=part.filename,
        mime_type=part.mime_type, data=part.data,
    )  # fmt: skip
    return ok(data)


@blueprint.post("/api/upload/avatar")
@require_auth
@rate_limit("upload")
async def upload_avatar() -> Response:
    part = await read_file_part(max_bytes=AVATAR_LIMIT_BYTES, too_large=uploads.AVATAR_TOO_LARGE)
    url = await uploads.save_avatar(
        services(), user_id=principal().user_id, mime_type=part.mime_type, data=part.data
    )
    return ok({"avatarUrl": url})


async def _upload_path_guard(rest: str) -> None:
    """Any other path under /api/upload is authenticated and counted (§2.4)."""
    await authenticated(rest)
    await enforce_rate_limit("upload")


add_not_found_routes(blueprint, "/api/upload", _upload_path_guard)

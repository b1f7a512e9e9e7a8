"""Uploads (api.md §11): check, write the bytes to the blob store by id, then record them.

Every check runs before anything is written, so refused input leaves no file and no row. The
bytes go to `services.blobs` (UPLOAD_DIR or an S3 bucket, store/blobs.py), never touched on
the event loop. A client's file name is stored for display only; objects are named by ids we
mint.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import trio

from agentim.actions.audit import audit
from agentim.errors import bad_request, not_found
from agentim.protocol.filetypes import (
    AVATAR_EXTENSIONS,
    AVATAR_TYPES,
    attachment_name,
    avatar_name,
    clean_filename,
    content_matches,
    extension_for,
    is_upload_name,
    js_round_mib,
)
from agentim.protocol.ids import is_valid_path_id, new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.settings import AVATAR_LIMIT_BYTES, Settings
from agentim.store import uploads as store, users
from agentim.store.blobs import BlobStore

log = logging.getLogger("Upload")

CONTENT_MISMATCH: Final = "File content does not match declared type"
AVATAR_TOO_LARGE: Final = "Avatar too large. Maximum size is 2MB"
AVATAR_TYPE_REFUSED: Final = "Only JPEG, PNG, GIF and WebP images are allowed"
EMPTY_FILE: Final = "File is empty"  # the "clear error"; the reference stored empty files
CLEANUP_GRACE_S: Final = 5.0  # removing a half-written file survives cancellation this long


def file_too_large(settings: Settings) -> str:
    return f"File too large. Maximum size is {js_round_mib(settings.max_file_size)}MB"


def type_refused(mime: str) -> str:
    # The issue (and the seed's heading) fix the wire text; the spec's quoted-type variant loses.
    return "File type is not allowed"


def check_attachment(settings: Settings, mime: str, data: bytes) -> None:
    """api.md §11.1 checks, in order: empty, size, declared type, content.

    Raises:
        AgentImError: 400 with the check's text.
    """
    if not data:
        raise bad_request(EMPTY_FILE)
    if len(data) > settings.max_file_size:
        raise bad_request(file_too_large(settings))
    if mime not in settings.allowed_mime_types:
        raise bad_request(type_refused(mime))
    if not content_matches(mime, data):
        raise bad_request(CONTENT_MISMATCH)


def check_avatar(mime: str, data: bytes) -> None:
    """api.md §11.2 checks, in order: empty, size, image type, content."""
    if not data:
        raise bad_request(EMPTY_FILE)
    if len(data) > AVATAR_LIMIT_BYTES:
        raise bad_request(AVATAR_TOO_LARGE)
    if mime not in AVATAR_TYPES:
        raise bad_request(AVATAR_TYPE_REFUSED)
    if not content_matches(mime, data):
        raise bad_request(CONTENT_MISMATCH)


async def save_attachment(
    services: Services, *, user_id: str, ip: str, filename: str, mime_type: str, data: bytes
) -> dict[str, Any]:
    """Store a message attachment: the object `<id><ext>`, its unlinked row, an audit row.

    Returns:
        `{id, filename, mimeType, size, url}` (api.md §11.1).

    Raises:
        AgentImError: 400 when a check of `check_attachment` fails; nothing is written then.
            503 `Storage unavailable` when the S3 bucket does not answer.
    """
    check_attachment(services.live.current, mime_type, data)
    attachment_id, shown = new_id(), clean_filename(filename)
    name = attachment_name(attachment_id, mime_type)
    url = f"/uploads/{name}"
    await services.blobs.write(name, data, mime_type)
    try:
        await store.insert_attachment(
            services.db, attachment_id=attachment_id, filename=shown, mime_type=mime_type,
            size=len(data), url=url, uploaded_by=user_id, now=iso_now(),
        )  # fmt: skip
    except BaseException:
        with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
            await services.blobs.delete(name)
        raise
    await audit(
        services.db, "file_upload", user_id=user_id, ip=ip, target_id=attachment_id,
        target_type="file", metadata={"filename": shown, "mimeType": mime_type, "size": len(data)},
    )  # fmt: skip
    return {"id": attachment_id, "filename": shown, "mimeType": mime_type, "size": len(data),
            "url": url}  # fmt: skip


async def save_avatar(services: Services, *, user_id: str, mime_type: str, data: bytes) -> str:
    """Store `avatar_<userId><ext>`, remove the user's other avatar objects, set `avatar_url`.

    Returns:
        The avatar URL, the same on every re-upload of one type (api.md §11.2).

    Raises:
        AgentImError: 400 when a check fails; 404 `User not found` for a deleted account.
    """
    check_avatar(mime_type, data)
    if not is_valid_path_id(user_id) or await users.get_user(services.db, user_id) is None:
        raise not_found("User not found")
    ext = extension_for(mime_type)
    for other in AVATAR_EXTENSIONS:
        if other != ext:
            await services.blobs.delete(avatar_name(user_id, other))
    name = avatar_name(user_id, ext)
    await services.blobs.write(name, data, mime_type)  # readers see the old or new one whole
    url = f"/uploads/{name}"
    if await users.update_user(services.db, user_id, {"avatar_url": url}, iso_now()) is None:
        await services.blobs.delete(name)  # the account went while we wrote
        raise not_found("User not found")
    return url


async def remove_upload_file(blobs: BlobStore, url: str) -> bool:
    """Delete the object behind an `/uploads/<name>` URL.

    Returns:
        True when it is gone (removed now, already missing, or not a name of ours, which is
        skipped rather than resolved outside the store); False on any storage error.
    """
    name = url.rsplit("/", 1)[-1]
    if not is_upload_name(name):
        log.warning("Skipping file outside the upload directory: %s", url)
        return True
    return await blobs.delete(name)

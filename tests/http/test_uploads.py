"""POST /api/upload and /api/upload/avatar over real HTTP, PostgreSQL and disk (api.md §11.1-11.3).

Refused input is checked with what a user would find afterwards: no file in UPLOAD_DIR and no
attachment row.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, User, signed_in_user

TIMEOUT_S = 30
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(32))
GIF = b"GIF89a" + bytes(16)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(16)
PDF = b"%PDF-1.7\n" + bytes(8)
MIB = 1024 * 1024


def uploaded(hub: RunningHub) -> list[str]:
    """Names in UPLOAD_DIR (the test's own directory)."""
    return sorted(os.listdir(hub.services.settings.upload_dir))


async def attachment_rows(hub: RunningHub, user: User) -> list[dict[str, object]]:
    rows = await hub.services.db.fetch(
        "SELECT * FROM message_attachments WHERE uploaded_by = $1", user.id
    )
    return [dict(row) for row in rows]


async def post_file(
    client: httpx.AsyncClient, user: User, content: bytes, mime: str | None,
    filename: str = "photo.png", path: str = "/api/upload",
) -> httpx.Response:  # fmt: skip
    part = (filename, content) if mime is None else (filename, content, mime)
    with trio.fail_after(TIMEOUT_S):
        return await client.post(path, files={"file": part}, headers=user.headers)


def multipart(parts: list[tuple[str, str]], boundary: str = "XyZ") -> bytes:
    """A multipart body from (headers, payload) pairs, each header block CRLF-separated."""
    out = b""
    for headers, payload in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + payload.encode("latin-1") + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def file_part(name: str = "file", filename: str = "a.txt", mime: str = "text/plain") -> str:
    disposition = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'
    return f"{disposition}\r\nContent-Type: {mime}"


async def post_raw(
    client: httpx.AsyncClient, user: User, body: bytes | AsyncIterator[bytes],
    content_type: str = "multipart/form-data; boundary=XyZ",
) -> httpx.Response:  # fmt: skip
    headers = {**user.headers, "Content-Type": content_type}
    with trio.fail_after(TIMEOUT_S):
        return await client.post("/api/upload", content=body, headers=headers)


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def test_png_upload_is_stored_by_id_recorded_and_audited(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)

    response = await post_file(client, user, PNG, "image/png", filename="holiday.png")

    assert response.status_code == 200
    data = response.json()["data"]
    assert list(data) == ["id", "filename", "mimeType", "size", "url"]
    assert data["filename"] == "holiday.png"
    assert (data["mimeType"], data["size"]) == ("image/png", len(PNG))
    assert data["url"] == f"/uploads/{data['id']}.png"
    assert uploaded(hub) == [f"{data['id']}.png"]
    stored = Path(hub.services.settings.upload_dir) / f"{data['id']}.png"
    assert stored.read_bytes() == PNG
    [row] = await attachment_rows(hub, user)
    assert row["id"] == data["id"]
    assert (row["message_id"], row["url"], row["size"]) == (None, data["url"], len(PNG))
    audit = await hub.services.db.fetchrow(
        "SELECT * FROM audit_log WHERE action = 'file_upload' AND target_id = $1", data["id"]
    )
    assert audit is not None
    assert (audit["user_id"], audit["target_type"]) == (user.id, "file")
    assert json.loads(audit["metadata"]) == {
        "filename": "holiday.png", "mimeType": "image/png", "size": len(PNG)
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content", "mime"),
    [
        (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp"), (PDF, "application/pdf"),
        (b"a,b\n1,2\n", "text/csv"), (b"# Title\n", "text/markdown"),
        (b'{"a":1}', "application/json"),
        (b"PK\x03\x04rest", "application/zip"), (b"\x1f\x8brest", "application/gzip"),
        ("h\u00e9llo".encode(), "TEXT/PLAIN"),
    ],
)  # fmt: skip
async def test_every_default_type_with_matching_content_is_accepted(
    hub: RunningHub, client: httpx.AsyncClient, content: bytes, mime: str
) -> None:
    user = await signed_in_user(hub)
    response = await post_file(client, user, content, mime, filename="f")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["mimeType"] == mime.lower()


async def test_jpeg_declared_as_png_is_refused_and_nothing_is_kept(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    response = await post_file(client, user, JPEG, "image/png", filename="renamed.png")
    assert error_of(response) == (400, "File content does not match declared type")
    assert uploaded(hub) == []
    assert await attachment_rows(hub, user) == []


@pytest.mark.parametrize(
    "content",
    [b"nul\x00inside", b"\xff\xfe not utf-8", b"\xed\xa0\x80 surrogate"],
)
async def test_text_that_is_not_clean_utf8_does_not_match(
    hub: RunningHub, client: httpx.AsyncClient, content: bytes
) -> None:
    user = await signed_in_user(hub)
    response = await post_file(client, user, content, "text/plain", filename="notes.txt")
    assert error_of(response) == (400, "File content does not match declared type")


@pytest.mark.parametrize(
    "mime", ["image/svg+xml", "text/html", "text/plain; charset=utf-8", "application/x-msdownload"]
)
async def test_a_type_outside_the_allow_list_is_refused(
    hub: RunningHub, client: httpx.AsyncClient, mime: str
) -> None:
    user = await signed_in_user(hub)
    response = await post_file(client, user, b"<svg/>", mime, filename="x.svg")
    assert error_of(response) == (400, "File type is not allowed")
    assert "File type" in response.json()["error"]
    assert "is not allowed" in response.json()["error"]
    assert uploaded(hub) == []


async def test_a_part_without_content_type_counts_as_plain_text(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    body = multipart([('Content-Disposition: form-data; name="file"; filename="n.txt"', "hi")])
    response = await post_raw(client, user, body)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["mimeType"] == "text/plain"
    assert response.json()["data"]["url"].endswith(".txt")


async def test_allowed_mime_types_replaces_the_default_list(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    custom = attrs.evolve(settings, allowed_mime_types=("application/pdf",))
    hub = await start_hub(nursery, custom, redis_prefix)
    user = await signed_in_user(hub)
    async with httpx.AsyncClient(base_url=hub.url) as client:
        refused = await post_file(client, user, PNG, "image/png")
        accepted = await post_file(client, user, PDF, "application/pdf", filename="a.pdf")
    assert error_of(refused) == (400, "File type is not allowed")
    assert accepted.status_code == 200
    assert uploaded(hub) == [accepted.json()["data"]["url"].rsplit("/", 1)[1]]


async def test_the_file_name_is_cleaned_for_display_and_never_used_as_a_path(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    body = multipart([(file_part(filename="../../etc/pa\x07ss\twd"), "x")])
    response = await post_raw(client, user, body)
    data = response.json()["data"]
    assert response.status_code == 200
    assert data["filename"] == "../../etc/passwd"
    assert uploaded(hub) == [f"{data['id']}.txt"]
    encoded = "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%00b%C3%A9.txt"
    response = await post_raw(client, user, multipart([(encoded, "x")]))
    assert response.json()["data"]["filename"] == "ab\u00e9.txt"


async def test_the_last_file_part_wins(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    body = multipart(
        [(file_part(filename="first.txt"), "one"), (file_part(filename="second.txt"), "two")]
    )
    response = await post_raw(client, user, body)
    assert response.json()["data"]["filename"] == "second.txt"
    assert response.json()["data"]["size"] == 3


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"file":"x"}', "application/json"),
        (multipart([('Content-Disposition: form-data; name="other"; filename="a.txt"', "x")]),
         "multipart/form-data; boundary=XyZ"),
        (multipart([('Content-Disposition: form-data; name="file"', "not a file")]),
         "multipart/form-data; boundary=XyZ"),
        (multipart([(file_part(filename=""), "")]), "multipart/form-data; boundary=XyZ"),
        (b"--XyZ\r\n", "multipart/form-data"),
    ],
    ids=["json", "other-field", "file-is-a-plain-field", "empty-browser-input", "no-boundary"],
)  # fmt: skip
async def test_a_request_without_a_file_part_is_told_so(
    hub: RunningHub, client: httpx.AsyncClient, body: bytes, content_type: str
) -> None:
    user = await signed_in_user(hub)
    response = await post_raw(client, user, body, content_type)
    assert error_of(response) == (400, "No file provided")
    assert uploaded(hub) == []


async def test_an_empty_file_is_refused(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    response = await post_file(client, user, b"", "text/plain", filename="empty.txt")
    assert error_of(response) == (400, "File is empty")
    assert uploaded(hub) == []
    assert await attachment_rows(hub, user) == []


async def test_a_truncated_multipart_body_is_refused(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    whole = multipart([(file_part(), "the whole text")])
    response = await post_raw(client, user, whole[: len(whole) // 2 + 10])
    assert error_of(response) == (400, "Malformed multipart body")
    assert uploaded(hub) == []
    assert await attachment_rows(hub, user) == []


async def _streamed_file(size: int, mime: str = "text/plain") -> AsyncIterator[bytes]:
    """A multipart body sent chunked (no Content-Length), its file part `size` bytes of 'a'."""
    yield f"--XyZ\r\n{file_part(mime=mime)}\r\n\r\n".encode()
    chunk = b"a" * (256 * 1024)
    for _ in range(size // len(chunk)):
        yield chunk
    yield b"a" * (size % len(chunk))
    yield b"\r\n--XyZ--\r\n"


async def test_max_file_size_holds_for_a_streamed_11_mb_body(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    response = await post_raw(client, user, _streamed_file(11 * MIB))
    assert error_of(response) == (400, "File too large. Maximum size is 10MB")
    assert uploaded(hub) == []
    assert await attachment_rows(hub, user) == []


async def test_a_file_of_exactly_max_file_size_is_accepted(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    response = await post_raw(client, user, _streamed_file(10 * MIB))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["size"] == 10 * MIB


async def test_a_streamed_body_over_12_mib_is_413(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    """With MAX_FILE_SIZE above the body cap, the 12 MiB cap answers first."""
    hub = await start_hub(nursery, attrs.evolve(settings, max_file_size=50 * MIB), redis_prefix)
    user = await signed_in_user(hub)
    async with httpx.AsyncClient(base_url=hub.url) as client:
        response = await post_raw(client, user, _streamed_file(13 * MIB))
    assert response.status_code == 413
    assert response.json() == {"ok": False, "error": ""}
    assert uploaded(hub) == []


async def test_a_content_length_over_12_mib_is_413_before_the_body_is_read(
    hub: RunningHub,
) -> None:
    """The client announces 13 MiB and sends a few bytes: the answer comes anyway."""
    user = await signed_in_user(hub)
    head = (
        "POST /api/upload HTTP/1.1\r\nHost: hub\r\n"
        f"Authorization: Bearer {user.token}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {13 * MIB}\r\n\r\n--XyZ\r\n"
    )
    with trio.fail_after(TIMEOUT_S):
        stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
        async with stream:
            await stream.send_all(head.encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert uploaded(hub) == []


async def test_upload_needs_a_valid_access_token(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    response = await client.post("/api/upload", files={"file": ("a.png", PNG, "image/png")})
    assert error_of(response) == (401, "Unauthorized")
    user = await signed_in_user(hub)
    refresh = hub.services.tokens.issue(user.id, user.username, "refresh")
    response = await client.post(
        "/api/upload", files={"file": ("a.png", PNG, "image/png")},
        headers={"Authorization": f"Bearer {refresh}"},
    )  # fmt: skip
    assert error_of(response) == (401, "Invalid token type")
    assert uploaded(hub) == []


async def test_unknown_paths_under_upload_need_auth_then_404(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/upload/other")).status_code == 401
    user = await signed_in_user(hub)
    response = await client.get("/api/upload/other", headers=user.headers)
    assert (response.status_code, response.text) == (404, "404 Not Found")


# --- avatars (api.md §11.2) ---------------------------------------------------------------


async def test_avatar_upload_sets_the_url_and_replaces_other_avatar_files(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    upload_dir = Path(hub.services.settings.upload_dir)
    (upload_dir / f"avatar_{user.id}x.png").write_bytes(PNG)  # a neighbour's id, one char longer

    first = await post_file(client, user, PNG, "image/png", path="/api/upload/avatar")
    assert first.status_code == 200
    assert first.json() == {"ok": True, "data": {"avatarUrl": f"/uploads/avatar_{user.id}.png"}}
    second = await post_file(client, user, JPEG, "image/jpeg", path="/api/upload/avatar")

    assert second.json()["data"] == {"avatarUrl": f"/uploads/avatar_{user.id}.jpg"}
    assert uploaded(hub) == sorted([f"avatar_{user.id}.jpg", f"avatar_{user.id}x.png"])
    assert (upload_dir / f"avatar_{user.id}.jpg").read_bytes() == JPEG
    url = await hub.services.db.fetchval("SELECT avatar_url FROM users WHERE id = $1", user.id)
    assert url == f"/uploads/avatar_{user.id}.jpg"
    assert await attachment_rows(hub, user) == []


@pytest.mark.parametrize(
    ("content", "mime", "error"),
    [
        (PNG + bytes(2 * MIB), "image/png", "Avatar too large. Maximum size is 2MB"),
        (PDF, "application/pdf", "Only JPEG, PNG, GIF and WebP images are allowed"),
        (JPEG, "image/png", "File content does not match declared type"),
        (b"", "image/png", "File is empty"),
    ],
)
async def test_bad_avatars_are_refused_and_the_profile_is_unchanged(
    hub: RunningHub, client: httpx.AsyncClient, content: bytes, mime: str, error: str
) -> None:
    user = await signed_in_user(hub)
    response = await post_file(client, user, content, mime, path="/api/upload/avatar")
    assert error_of(response) == (400, error)
    assert uploaded(hub) == []
    assert (
        await hub.services.db.fetchval("SELECT avatar_url FROM users WHERE id = $1", user.id)
        is None
    )

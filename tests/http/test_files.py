"""GET /uploads/<file> (api.md §11.4, DIFFERENCES D10): who may read a file, how it is served,
and that no request path reaches outside UPLOAD_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import trio

from agentim.actions.messages import send_message
from agentim.protocol.client import decode_client
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, signed_in_user

TIMEOUT_S = 20
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


async def upload(
    client: httpx.AsyncClient, user: User, content: bytes = PNG, mime: str = "image/png",
    filename: str = "a.png",
) -> dict[str, str]:  # fmt: skip
    with trio.fail_after(TIMEOUT_S):
        response = await client.post(
            "/api/upload", files={"file": (filename, content, mime)}, headers=user.headers
        )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def fetch(
    client: httpx.AsyncClient, url: str, user: User | None, extra: dict[str, str] | None = None
) -> httpx.Response:
    headers = {**(user.headers if user is not None else {}), **(extra or {})}
    with trio.fail_after(TIMEOUT_S):
        return await client.get(url, headers=headers)


async def raw_get(hub: RunningHub, target: str, user: User) -> tuple[int, bytes]:
    """Send the request line exactly as written (httpx would normalise `..` and `%2F`)."""
    request = (
        f"GET {target} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {user.token}\r\n"
        "Connection: close\r\n\r\n"
    )
    with trio.fail_after(TIMEOUT_S):
        stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
        async with stream:
            await stream.send_all(request.encode())
            answer = b""
            while chunk := await stream.receive_some(65536):
                answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def upload_dir(hub: RunningHub) -> Path:
    return Path(hub.services.settings.upload_dir)


async def test_the_uploader_reads_an_image_inline(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user)

    response = await fetch(client, data["url"], user)

    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(PNG))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in response.headers


async def test_the_token_may_come_as_a_query_parameter(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user)
    response = await fetch(client, f"{data['url']}?token={user.token}", None)
    assert (response.status_code, response.content) == (200, PNG)


@pytest.mark.parametrize(
    ("content", "mime", "served"),
    [
        (b"a,b\n", "text/csv", "text/csv; charset=utf-8"),
        (b"notes", "text/plain", "text/plain; charset=utf-8"),
        (b"# md", "text/markdown", "application/octet-stream"),
        (b"%PDF-1.4", "application/pdf", "application/pdf"),
        (b'{"a":1}', "application/json", "application/json"),
    ],
)
async def test_other_types_are_served_as_attachments(
    hub: RunningHub, client: httpx.AsyncClient, content: bytes, mime: str, served: str
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user, content, mime, filename="f")
    response = await fetch(client, data["url"], user)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == served
    assert response.headers["content-disposition"] == "attachment"


async def test_a_range_request_gets_206_and_head_gets_no_body(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user)
    ranged = await fetch(client, data["url"], user, {"Range": "bytes=2-5"})
    assert ranged.status_code == 206
    assert ranged.content == PNG[2:6]
    assert ranged.headers["content-range"] == f"bytes 2-5/{len(PNG)}"
    with trio.fail_after(TIMEOUT_S):
        head = await client.head(data["url"], headers=user.headers)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(PNG))


async def test_credentials_are_checked_like_the_api(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user)
    refresh = hub.services.tokens.issue(user.id, user.username, "refresh")

    missing = await fetch(client, data["url"], None)
    broken = await fetch(client, f"{data['url']}?token=not-a-jwt", None)
    wrong_kind = await fetch(client, f"{data['url']}?token={refresh}", None)

    assert (missing.status_code, missing.text) == (401, '{"ok":false,"error":"Unauthorized"}')
    assert missing.headers["content-disposition"] == "attachment"
    assert broken.json() == {"ok": False, "error": "Invalid or expired token"}
    assert wrong_kind.json() == {"ok": False, "error": "Invalid token type"}


async def test_a_revoked_token_cannot_read_files(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user)
    await hub.services.kv.set(f"revoked:{user.id}", str(2**50), ex=60)  # cut-off in the future
    response = await fetch(client, data["url"], user)
    assert (response.status_code, response.json()["error"]) == (401, "Token revoked")


async def test_an_unsent_upload_is_private_to_its_uploader(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, stranger = await signed_in_user(hub), await signed_in_user(hub)
    data = await upload(client, owner)
    response = await fetch(client, data["url"], stranger)
    assert response.status_code == 403
    assert response.text == '{"ok":false,"error":"Forbidden"}'


async def test_an_attachment_is_in_the_room_history_and_readable_only_by_members(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, member, outsider = [await signed_in_user(hub) for _ in range(3)]
    room_id = await create_room(hub, owner, members=(member,))
    data = await upload(client, member, filename="diagram.png")
    with trio.fail_after(TIMEOUT_S):
        await send_message(
            hub.services, user_id=member.id, username=member.username, room_id=room_id,
            content="see attached", reply_to_id=None, attachment_ids=[data["id"]],
        )  # fmt: skip

    history = await fetch(client, f"/api/messages/rooms/{room_id}", owner)
    [message] = history.json()["data"]["items"]
    assert message["attachments"] == [
        {"id": data["id"], "messageId": message["id"], "filename": "diagram.png",
         "mimeType": "image/png", "size": len(PNG), "url": data["url"]}
    ]  # fmt: skip
    for reader in (owner, member):
        response = await fetch(client, data["url"], reader)
        assert (response.status_code, response.content) == (200, PNG)
    refused = await fetch(client, data["url"], outsider)
    assert (refused.status_code, refused.json()) == (403, {"ok": False, "error": "Forbidden"})


async def test_avatars_are_readable_by_any_signed_in_user(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    with trio.fail_after(TIMEOUT_S):
        response = await client.post(
            "/api/upload/avatar", files={"file": ("me.png", PNG, "image/png")},
            headers=owner.headers,
        )  # fmt: skip
    url = response.json()["data"]["avatarUrl"]
    seen = await fetch(client, url, other)
    assert (seen.status_code, seen.content) == (200, PNG)
    assert (await fetch(client, url, None)).status_code == 401


async def test_a_known_file_missing_on_disk_is_the_plain_404(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    data = await upload(client, user)
    (upload_dir(hub) / data["url"].rsplit("/", 1)[1]).unlink()
    for url in (data["url"], f"/uploads/{new_id()}.png", f"/uploads/avatar_{user.id}.png"):
        response = await fetch(client, url, user)
        assert (response.status_code, response.text) == (404, "404 Not Found")
        assert response.headers["content-type"] == "text/plain; charset=UTF-8"
        assert response.headers["content-disposition"] == "attachment"


@pytest.mark.parametrize(
    "target",
    [
        "/uploads/../secret.txt",
        "/uploads/..%2Fsecret.txt",
        "/uploads/%2e%2e%2fsecret.txt",
        "/uploads/x/../../secret.txt",
        "/uploads/..%5Csecret.txt",
        "/uploads/%2Fetc%2Fpasswd",
        "/uploads//etc/passwd",
        "/uploads/.hidden",
        "/uploads/a%00.png",
    ],
    ids=["dotdot", "encoded-slash", "encoded-dots", "nested-dotdot", "backslash",
         "encoded-absolute", "absolute", "dotfile", "nul"],
)  # fmt: skip
async def test_path_traversal_is_refused(hub: RunningHub, target: str) -> None:
    user = await signed_in_user(hub)
    secret = upload_dir(hub).parent / "secret.txt"
    secret.write_bytes(b"top secret")
    os.makedirs(upload_dir(hub), exist_ok=True)

    status, body = await raw_get(hub, target, user)

    assert status in (400, 404)
    assert b"top secret" not in body
    assert b"root:" not in body


async def test_a_symlink_in_the_upload_dir_is_never_followed(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    secret = upload_dir(hub).parent / "secret.txt"
    secret.write_bytes(b"top secret")
    attachment_id = new_id()
    (upload_dir(hub) / f"{attachment_id}.txt").symlink_to(secret)
    (upload_dir(hub) / f"avatar_{user.id}.png").symlink_to(secret)
    await hub.services.db.execute(
        "INSERT INTO message_attachments (id, filename, mime_type, size, url, uploaded_by, "
        "created_at) VALUES ($1, 's.txt', 'text/plain', 10, $2, $3, $4)",
        attachment_id, f"/uploads/{attachment_id}.txt", user.id, iso_now(),
    )  # fmt: skip

    for url in (f"/uploads/{attachment_id}.txt", f"/uploads/avatar_{user.id}.png"):
        response = await fetch(client, url, user)
        assert (response.status_code, response.text) == (404, "404 Not Found")


async def test_only_the_senders_own_unsent_uploads_are_attached(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    own, foreign = await upload(client, member), await upload(client, owner)
    hub.services.events.captured = []

    with trio.fail_after(TIMEOUT_S):
        first = await send_message(
            hub.services, user_id=member.id, username=member.username, room_id=room_id,
            content="one", reply_to_id=None, attachment_ids=[own["id"], foreign["id"], new_id()],
        )  # fmt: skip
        again = await send_message(
            hub.services, user_id=member.id, username=member.username, room_id=room_id,
            content="two", reply_to_id=None, attachment_ids=[own["id"]],
        )  # fmt: skip

    assert [a["id"] for a in first["attachments"]] == [own["id"]]
    assert "attachments" not in again  # already attached to the first message
    [event, _] = hub.services.events.captured
    assert event.message["message"]["attachments"][0]["messageId"] == first["id"]
    assert (await fetch(client, foreign["url"], member)).status_code == 403
    frame = {"type": "client:send_message", "roomId": room_id, "content": "x"}
    assert decode_client({**frame, "attachmentIds": ["a"] * 20}, max_content=100) is not None
    assert decode_client({**frame, "attachmentIds": ["a"] * 21}, max_content=100) is None

"""STORAGE_PROVIDER=s3: uploads, avatars, file serving, deletion and orphan cleanup against a
local S3-compatible server (moto's server mode, a separate process started here), with the
same access rules as on the local disk (DIFFERENCES D10)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import boto3
import httpx
import pytest
import trio

from agentim.actions.messages import send_message
from agentim.jobs import cleanup_orphans_once
from agentim.settings import Settings, problems
from tests.conftest import start_hub
from tests.helpers import RunningHub, User, create_room, signed_in_user

TIMEOUT_S = 20
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(32))
KEY_ID, SECRET = "test-key-id", "test-secret-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the local S3 server did not start")


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    process, url = _start_moto()
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def bucket(s3_server: str) -> Any:
    """A fresh bucket per test, as boto3 sees it (what an operator's console would show)."""
    resource = boto3.resource(
        "s3", endpoint_url=s3_server, region_name="us-east-1",
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
    )  # fmt: skip
    created = resource.create_bucket(Bucket=f"uploads-{time.monotonic_ns()}")
    yield created
    created.objects.all().delete()
    created.delete()


def s3_settings(settings: Settings, endpoint: str, bucket_name: str) -> Settings:
    return attrs.evolve(
        settings, storage_provider="s3", s3_bucket=bucket_name, s3_endpoint=endpoint,
        s3_region="auto", s3_access_key_id=KEY_ID, s3_secret_access_key=SECRET,
    )  # fmt: skip


@pytest.fixture
async def s3_hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    s3_server: str, bucket: Any,
) -> RunningHub:  # fmt: skip
    return await start_hub(nursery, s3_settings(settings, s3_server, bucket.name), redis_prefix)


@pytest.fixture
async def client(s3_hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=s3_hub.url, timeout=30) as http:
        yield http


def objects(bucket: Any) -> dict[str, bytes]:
    return {o.key: o.get()["Body"].read() for o in bucket.objects.all()}


async def post_file(
    client: httpx.AsyncClient, user: User, content: bytes, mime: str, path: str = "/api/upload"
) -> httpx.Response:
    with trio.fail_after(TIMEOUT_S):
        return await client.post(path, files={"file": ("a", content, mime)}, headers=user.headers)


async def attach(hub: RunningHub, member: User, room_id: str, attachment_id: str) -> str:
    with trio.fail_after(TIMEOUT_S):
        sent = await send_message(
            hub.services, user_id=member.id, username=member.username, room_id=room_id,
            content="see attached", reply_to_id=None, attachment_ids=[attachment_id],
        )  # fmt: skip
    return str(sent["id"])


async def test_an_upload_lands_in_the_bucket_and_is_served_to_room_members_only(
    s3_hub: RunningHub, client: httpx.AsyncClient, bucket: Any
) -> None:
    owner, member, outsider = [await signed_in_user(s3_hub) for _ in range(3)]
    room_id = await create_room(s3_hub, owner, members=(member,))
    upload = await post_file(client, member, PNG, "image/png")
    assert upload.status_code == 200, upload.text
    data = upload.json()["data"]
    name = data["url"].rsplit("/", 1)[1]
    assert objects(bucket) == {name: PNG}
    assert not any(s3_hub.services.settings.upload_dir.glob("*"))  # nothing on the local disk
    await attach(s3_hub, member, room_id, data["id"])

    for reader in (owner, member):
        served = await client.get(data["url"], headers=reader.headers)
        assert (served.status_code, served.content) == (200, PNG)
        assert served.headers["content-type"] == "image/png"
    ranged = await client.get(data["url"], headers={**owner.headers, "Range": "bytes=2-5"})
    assert (ranged.status_code, ranged.content) == (206, PNG[2:6])
    assert ranged.headers["content-range"] == f"bytes 2-5/{len(PNG)}"
    head = await client.head(data["url"], headers=owner.headers)
    assert (head.status_code, head.content, head.headers["content-length"]) == (
        200, b"", str(len(PNG)),
    )  # fmt: skip
    refused = await client.get(data["url"], headers=outsider.headers)
    assert (refused.status_code, refused.json()) == (403, {"ok": False, "error": "Forbidden"})
    anonymous = await client.get(data["url"])
    assert anonymous.status_code == 401


async def test_a_file_missing_from_the_bucket_is_a_plain_404(
    s3_hub: RunningHub, client: httpx.AsyncClient, bucket: Any
) -> None:
    user = await signed_in_user(s3_hub)
    data = (await post_file(client, user, PNG, "image/png")).json()["data"]
    bucket.Object(data["url"].rsplit("/", 1)[1]).delete()
    gone = await client.get(data["url"], headers=user.headers)
    assert (gone.status_code, gone.headers["content-type"]) == (404, "text/plain; charset=UTF-8")


async def test_avatars_replace_each_other_in_the_bucket_and_go_with_their_user(
    s3_hub: RunningHub, client: httpx.AsyncClient, bucket: Any
) -> None:
    user, viewer = await signed_in_user(s3_hub), await signed_in_user(s3_hub)
    neighbour = f"avatar_{user.id}x.png"  # a longer id that starts with this user's id
    bucket.put_object(Key=neighbour, Body=PNG)
    first = await post_file(client, user, PNG, "image/png", path="/api/upload/avatar")
    second = await post_file(client, user, JPEG, "image/jpeg", path="/api/upload/avatar")
    assert first.status_code == second.status_code == 200
    url = second.json()["data"]["avatarUrl"]
    assert url == f"/uploads/avatar_{user.id}.jpg"
    assert objects(bucket) == {f"avatar_{user.id}.jpg": JPEG, neighbour: PNG}
    served = await client.get(url, headers=viewer.headers)
    assert (served.status_code, served.content) == (200, JPEG)

    admin = await signed_in_user(s3_hub, role="admin")
    deleted = await client.delete(f"/api/users/{user.id}", headers=admin.headers)
    assert deleted.status_code == 200, deleted.text
    assert objects(bucket) == {neighbour: PNG}


async def test_deleting_a_message_deletes_its_objects(
    s3_hub: RunningHub, client: httpx.AsyncClient, bucket: Any
) -> None:
    owner = await signed_in_user(s3_hub)
    room_id = await create_room(s3_hub, owner)
    data = (await post_file(client, owner, PNG, "image/png")).json()["data"]
    message_id = await attach(s3_hub, owner, room_id, data["id"])
    assert len(objects(bucket)) == 1
    response = await client.delete(f"/api/messages/{message_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert objects(bucket) == {}


async def test_the_orphan_sweeper_removes_old_unlinked_objects_only(
    s3_hub: RunningHub, client: httpx.AsyncClient, bucket: Any
) -> None:
    owner = await signed_in_user(s3_hub)
    old, recent = [
        (await post_file(client, owner, PNG, "image/png")).json()["data"] for _ in range(2)
    ]
    await s3_hub.services.db.execute(
        "UPDATE message_attachments SET created_at = $1 WHERE id = $2",
        "2020-01-01T00:00:00.000Z", old["id"],
    )  # fmt: skip
    assert await cleanup_orphans_once(s3_hub.services) == 1
    assert list(objects(bucket)) == [recent["url"].rsplit("/", 1)[1]]
    assert await s3_hub.services.db.fetchval(
        "SELECT count(*) FROM message_attachments WHERE id = $1", old["id"]
    ) == 0  # fmt: skip


async def test_an_unreachable_bucket_fails_uploads_with_503_and_the_health_check(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    process, url = _start_moto()
    try:
        bucket = boto3.resource(
            "s3", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        ).create_bucket(Bucket="going-away")  # fmt: skip
        hub = await start_hub(nursery, s3_settings(settings, url, bucket.name), redis_prefix)
        user = await signed_in_user(hub)
    finally:
        process.kill()
        process.wait(timeout=10)
    async with httpx.AsyncClient(base_url=hub.url, timeout=60) as client:
        refused = await post_file(client, user, PNG, "image/png")
        health = await client.get("/api/health")
    assert (refused.status_code, refused.json()) == (
        503, {"ok": False, "error": "Storage unavailable"},
    )  # fmt: skip
    assert await hub.services.db.fetchval(
        "SELECT count(*) FROM message_attachments WHERE uploaded_by = $1", user.id
    ) == 0  # fmt: skip
    assert health.json()["checks"]["filesystem"] is False


def test_s3_without_credentials_is_a_configuration_error(settings: Settings) -> None:
    incomplete = attrs.evolve(settings, storage_provider="s3", s3_bucket="b")
    assert "STORAGE_PROVIDER=s3 requires: S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY" in problems(
        incomplete
    )


def test_the_storage_settings_come_from_the_reference_names_and_an_alias() -> None:
    reference = Settings.from_env(
        {"STORAGE_PROVIDER": "s3", "S3_BUCKET": "b", "S3_ENDPOINT": "http://minio:9000",
         "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s", "S3_FORCE_PATH_STYLE": "false"}
    )  # fmt: skip
    assert (reference.storage_provider, reference.s3_region, reference.s3_force_path_style) == (
        "s3", "auto", False,
    )  # fmt: skip
    assert "s3_secret_access_key='***'" in repr(reference)
    assert Settings.from_env({"STORAGE": "S3"}).storage_provider == "s3"
    assert Settings.from_env({}).storage_provider == "local"

"""Uploads in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, Ceph …), via boto3.

boto3 is the maintained S3 client; its calls block, so each one runs in a worker thread
(`trio.to_thread`, abandoned on cancel, at most MAX_PARALLEL_CALLS at a time) with botocore's
own connect and read timeouts. Objects are keyed by the names we mint, at the bucket's root
(as AgentIM's S3 adapter keys them), so a bucket written by AgentIM serves here unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final, TypeVar

import attrs
import trio

from agentim.errors import AgentImError
from agentim.store.blobs import CHUNK_BYTES

log = logging.getLogger("Upload")

T = TypeVar("T")

MAX_PARALLEL_CALLS: Final = 16  # worker threads talking to the bucket at once
CONNECT_TIMEOUT_S: Final = 5.0
READ_TIMEOUT_S: Final = 30.0
MISSING_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})


@attrs.frozen
class S3Config:
    bucket: str
    region: str = "auto"
    endpoint: str | None = None
    access_key_id: str = attrs.field(default="", repr=False)
    secret_access_key: str = attrs.field(default="", repr=False)
    # Path-style URLs (`endpoint/bucket/key`) are what local and self-hosted servers speak;
    # None: path style exactly when an endpoint is set, as AgentIM decides it.
    force_path_style: bool | None = None


def storage_unavailable() -> AgentImError:
    return AgentImError(503, "Storage unavailable")


def make_client(config: S3Config) -> Any:
    """A boto3 S3 client (boto3 is imported here: only STORAGE_PROVIDER=s3 pays for it)."""
    import boto3
    from botocore.config import Config

    path_style = (
        config.endpoint is not None
        if config.force_path_style is None
        else (config.force_path_style)
    )
    region = config.region
    if region == "auto" and config.endpoint is None:
        region = "us-east-1"  # "auto" names no AWS region; R2 and friends come with an endpoint
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint,
        region_name=region,
        aws_access_key_id=config.access_key_id or None,
        aws_secret_access_key=config.secret_access_key or None,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if path_style else "auto"},
        ),
    )


class S3BlobStore:
    """The BlobStore of store/blobs.py over one bucket."""

    def __init__(self, config: S3Config, client: Any | None = None) -> None:
        self.bucket = config.bucket
        self._client = client if client is not None else make_client(config)
        self._limiter = trio.CapacityLimiter(MAX_PARALLEL_CALLS)

    async def write(self, name: str, data: bytes, content_type: str) -> None:
        await self._call(
            lambda: self._client.put_object(
                Bucket=self.bucket, Key=name, Body=data, ContentType=content_type
            )
        )

    async def delete(self, name: str) -> bool:
        try:
            await self._call(lambda: self._client.delete_object(Bucket=self.bucket, Key=name))
        except AgentImError:
            log.warning("Failed to delete file %s: storage unavailable", name)
            return False
        return True

    async def size(self, name: str) -> int | None:
        try:
            head = await self._call(
                lambda: self._client.head_object(Bucket=self.bucket, Key=name), missing_ok=True
            )
        except FileNotFoundError:
            return None
        return int(head["ContentLength"])

    async def read(self, name: str, begin: int, end: int) -> AsyncGenerator[bytes, None]:
        if end <= begin:
            return
        answer = await self._call(
            lambda: self._client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={begin}-{end - 1}"
            ),
            missing_ok=True,
        )
        body = answer["Body"]
        try:
            while chunk := await self._call(lambda: body.read(CHUNK_BYTES)):
                yield chunk
        finally:
            body.close()

    async def names_with_prefix(self, prefix: str) -> list[str]:
        def list_all() -> list[str]:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

        try:
            return await self._call(list_all)
        except AgentImError:
            return []

    async def writable(self) -> bool:
        try:
            await self._call(lambda: self._client.head_bucket(Bucket=self.bucket))
        except (AgentImError, FileNotFoundError):
            return False
        return True

    async def _call(self, fn: Callable[[], T], *, missing_ok: bool = False) -> T:
        """Run one blocking boto3 call in a worker thread; storage faults become a 503."""
        from botocore.exceptions import BotoCoreError, ClientError  # loaded by make_client already

        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter, abandon_on_cancel=True)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if missing_ok and code in MISSING_CODES:
                raise FileNotFoundError(code) from None
            log.warning("S3 %s failed: %s", self.bucket, code or exc)
            raise storage_unavailable() from None
        except BotoCoreError as exc:
            log.warning("S3 %s unreachable: %s", self.bucket, type(exc).__name__)
            raise storage_unavailable() from None

"""Where uploaded bytes live: one interface, a local-disk store and (store/s3_blobs.py) S3.

Every name handed to a store is one we minted (`protocol.filetypes.is_upload_name`), so a
store never resolves a client's path. The rows that say who may read a file stay in
PostgreSQL (store/uploads.py); a store only keeps bytes. `STORAGE_PROVIDER` chooses the store
once at start-up (`open_blob_store`).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Final, Protocol

import trio

from agentim.protocol.ids import new_id

log = logging.getLogger("Upload")

CHUNK_BYTES: Final = 64 * 1024  # one worker-thread read per chunk sent
OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
CLEANUP_GRACE_S: Final = 5.0  # removing a half-written file survives cancellation this long


class BlobStore(Protocol):
    """Bytes by name. Writers see a whole object or none; deletes of missing names succeed."""

    async def write(self, name: str, data: bytes, content_type: str) -> None:
        """Store `data` under `name`, replacing any object of that name whole."""

    async def delete(self, name: str) -> bool:
        """Remove `name`; True when it is gone (now or before), False on a storage error."""

    async def size(self, name: str) -> int | None:
        """The stored size, or None when there is no such object."""

    def read(self, name: str, begin: int, end: int) -> AsyncGenerator[bytes, None]:
        """Bytes `begin` to `end` (exclusive) in chunks; FileNotFoundError if it is gone."""

    async def names_with_prefix(self, prefix: str) -> list[str]:
        """Every stored name starting with `prefix` (a user's avatars)."""

    async def writable(self) -> bool:
        """Whether the store answers and accepts writes (the health check)."""


class LocalBlobStore:
    """Files in UPLOAD_DIR, written beside the target then renamed over it, read O_NOFOLLOW."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def write(self, name: str, data: bytes, content_type: str) -> None:
        target = trio.Path(self.directory) / name
        temp = target.with_name(f".{name}.{new_id(8)}.tmp")  # a dot name is never served
        try:
            await temp.write_bytes(data)
            await temp.replace(target)
        except BaseException:
            with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
                await self._unlink(temp)
            raise

    async def delete(self, name: str) -> bool:
        return await self._unlink(trio.Path(self.directory) / name)

    async def size(self, name: str) -> int | None:
        return await trio.to_thread.run_sync(_regular_size, self.directory / name)

    async def read(self, name: str, begin: int, end: int) -> AsyncGenerator[bytes, None]:
        raw = await trio.to_thread.run_sync(_open_regular, self.directory / name)
        file = trio.wrap_file(raw)
        try:
            await file.seek(begin)
            position = begin
            while position < end:
                chunk: bytes = await file.read(min(CHUNK_BYTES, end - position))
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
        finally:
            raw.close()  # a regular file's close does not block; safe under cancellation

    async def names_with_prefix(self, prefix: str) -> list[str]:
        return await trio.to_thread.run_sync(_listdir_prefix, self.directory, prefix)

    async def writable(self) -> bool:
        return await trio.to_thread.run_sync(_writable, self.directory)

    @staticmethod
    async def _unlink(path: trio.Path) -> bool:
        try:
            await path.unlink()
        except FileNotFoundError:
            return True
        except OSError as exc:
            log.warning("Failed to delete file %s: %s", path.name, exc)
            return False
        return True


def _regular_size(path: Path) -> int | None:
    """The size of a regular file at `path` itself (a symlink is not followed), or None."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _open_regular(path: Path) -> Any:
    fd = os.open(path, OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(str(path))
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _listdir_prefix(directory: Path, prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.startswith(prefix))
    except OSError:
        return []


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)

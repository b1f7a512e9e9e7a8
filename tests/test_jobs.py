"""The sweepers of jobs.py on real PostgreSQL and disk: orphan uploads (api.md §11.5) and
expired refresh tokens, one pass at a time and as the hub's scheduled tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from agentim.jobs import cleanup_orphans_once, cleanup_tokens_once, run_orphan_cleanup
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now, to_iso
from agentim.settings import Settings
from agentim.store import revocations
from agentim.store.db import Database, DbError, Row
from tests.conftest import start_hub
from tests.helpers import RunningHub, User, create_room, create_user

TIMEOUT_S = 20


def ago(**delta: float) -> str:
    return to_iso(datetime.now(UTC) - timedelta(**delta))


async def insert_upload(
    hub: RunningHub, owner: User, *, created_at: str, message_id: str | None = None,
    on_disk: bool = True,
) -> Path:  # fmt: skip
    """An attachment row and (unless `on_disk` is False) its file; returns the file's path."""
    attachment_id = new_id()
    name = f"{attachment_id}.txt"
    path = Path(hub.services.settings.upload_dir) / name
    if on_disk:
        path.write_bytes(b"data")
    await hub.services.db.execute(
        "INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url, "
        "uploaded_by, created_at) VALUES ($1, $2, 'a.txt', 'text/plain', 4, $3, $4, $5)",
        attachment_id, message_id, f"/uploads/{name}", owner.id, created_at,
    )  # fmt: skip
    return path


async def insert_message(hub: RunningHub, owner: User, room_id: str) -> str:
    message_id = new_id()
    await hub.services.db.execute(
        "INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, type, content, "
        "created_at) VALUES ($1, $2, $3, 'user', $4, 'text', 'hi', $5)",
        message_id, room_id, owner.id, owner.username, ago(hours=3),
    )  # fmt: skip
    return message_id


async def row_exists(hub: RunningHub, path: Path) -> bool:
    return bool(
        await hub.services.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM message_attachments WHERE url = $1)",
            f"/uploads/{path.name}",
        )
    )


async def test_an_old_orphan_goes_while_recent_and_attached_files_stay(hub: RunningHub) -> None:
    owner = await create_user(hub)
    room_id = await create_room(hub, owner)
    old_orphan = await insert_upload(hub, owner, created_at=ago(hours=1, minutes=1))
    recent = await insert_upload(hub, owner, created_at=ago(minutes=59))
    attached = await insert_upload(
        hub, owner, created_at=ago(hours=5), message_id=await insert_message(hub, owner, room_id)
    )
    already_gone = await insert_upload(hub, owner, created_at=ago(hours=2), on_disk=False)

    with trio.fail_after(TIMEOUT_S):
        removed = await cleanup_orphans_once(hub.services)

    assert removed >= 2  # other tests' old orphans in the shared database may go too
    assert not old_orphan.exists()
    assert not await row_exists(hub, old_orphan)
    assert not await row_exists(hub, already_gone)
    for kept in (recent, attached):
        assert kept.read_bytes() == b"data"
        assert await row_exists(hub, kept)


async def test_an_orphan_whose_file_cannot_be_deleted_keeps_its_row(hub: RunningHub) -> None:
    owner = await create_user(hub)
    stuck = await insert_upload(hub, owner, created_at=ago(hours=2), on_disk=False)
    stuck.mkdir()  # unlink() of a directory fails with an error other than "missing"
    (stuck / "inside").write_bytes(b"x")

    with trio.fail_after(TIMEOUT_S):
        await cleanup_orphans_once(hub.services)

    assert await row_exists(hub, stuck)
    assert stuck.is_dir()


async def test_the_scheduled_cleanup_removes_an_old_orphan(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    """The hub's own sweeper, its interval shortened: the first pass comes within the interval."""
    hub = await start_hub(
        nursery, attrs.evolve(settings, orphan_file_check_interval_s=0.2), redis_prefix
    )
    owner = await create_user(hub)
    orphan = await insert_upload(hub, owner, created_at=ago(hours=2))
    kept = await insert_upload(hub, owner, created_at=iso_now())

    with trio.fail_after(TIMEOUT_S):
        while orphan.exists() or await row_exists(hub, orphan):  # noqa: ASYNC110 (another task's effect)
            await trio.sleep(0.05)

    assert kept.exists()
    assert await row_exists(hub, kept)


class FlakyDb:
    """The hub's database, except that the first `fetch` fails as a lost connection would."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.failures = 1

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        if self.failures:
            self.failures -= 1
            raise DbError(None, "connection lost")
        return await self._db.fetch(query, *args)

    def transaction(self) -> Any:
        return self._db.transaction()


async def test_a_failing_pass_is_logged_and_the_next_one_runs(
    hub: RunningHub, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await create_user(hub)
    orphan = await insert_upload(hub, owner, created_at=ago(hours=2))
    flaky = FlakyDb(hub.services.db)
    services = attrs.evolve(
        hub.services, db=flaky,  # type: ignore[arg-type]
        settings=attrs.evolve(hub.services.settings, orphan_file_check_interval_s=0.1),
    )  # fmt: skip

    await nursery.start(run_orphan_cleanup, services)
    with trio.fail_after(TIMEOUT_S):
        while orphan.exists():  # noqa: ASYNC110 (the sweeper's effect on disk)
            await trio.sleep(0.05)

    assert flaky.failures == 0
    assert "Scheduled orphan file cleanup failed" in caplog.text


async def insert_refresh_token(hub: RunningHub, owner: User, expires_at: str) -> str:
    token_id = new_id()
    await hub.services.db.execute(
        "INSERT INTO refresh_tokens (id, user_id, token_hash, family_id, expires_at, created_at) "
        "VALUES ($1, $2, $3, $1, $4, $5)",
        token_id, owner.id, new_id(), expires_at, iso_now(),
    )  # fmt: skip
    return token_id


async def test_expired_refresh_tokens_are_deleted_and_live_ones_kept(hub: RunningHub) -> None:
    owner = await create_user(hub)
    expired = await insert_refresh_token(hub, owner, ago(seconds=1))
    live = await insert_refresh_token(hub, owner, to_iso(datetime.now(UTC) + timedelta(days=7)))

    with trio.fail_after(TIMEOUT_S):
        deleted = await cleanup_tokens_once(hub.services)

    assert deleted >= 1
    remaining = await hub.services.db.fetch(
        "SELECT id FROM refresh_tokens WHERE user_id = $1", owner.id
    )
    assert [row["id"] for row in remaining] == [live]
    assert expired not in [row["id"] for row in remaining]


async def test_the_scheduled_token_cleanup_runs_every_interval(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(
        nursery, attrs.evolve(settings, token_cleanup_interval_s=0.2), redis_prefix
    )
    owner = await create_user(hub)
    await insert_refresh_token(hub, owner, ago(minutes=5))

    with trio.fail_after(TIMEOUT_S):
        while await hub.services.db.fetchval(  # noqa: ASYNC110 (the sweeper's effect)
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1", owner.id
        ):
            await trio.sleep(0.05)


async def test_expired_revocations_are_deleted_and_live_ones_kept(hub: RunningHub) -> None:
    expired_user, live_user = await create_user(hub), await create_user(hub)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    # a cut-off whose every token has expired (an hour ago, 900 s lifetime), and a fresh one
    await revocations.record_cutoff(hub.services.db, expired_user.id, now_ms - 3_600_000, 900)
    await revocations.record_cutoff(hub.services.db, live_user.id, now_ms, 900)

    with trio.fail_after(TIMEOUT_S):
        await cleanup_tokens_once(hub.services)

    rows = await hub.services.db.fetch(
        "SELECT user_id FROM revoked_tokens WHERE user_id = ANY($1::text[])",
        [expired_user.id, live_user.id],
    )
    assert [row["user_id"] for row in rows] == [live_user.id]
    found = await revocations.get_cutoff(hub.services.db, live_user.id)
    assert found is not None
    assert found[0] == now_ms  # exact to the millisecond (D7)
    assert 890 <= found[1] <= 900
    # an older cut-off (a slower process's revocation) never moves it back
    await revocations.record_cutoff(hub.services.db, live_user.id, now_ms - 5, 900)
    assert (await revocations.get_cutoff(hub.services.db, live_user.id) or (0,))[0] == now_ms

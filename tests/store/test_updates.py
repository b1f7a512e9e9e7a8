"""store/updates.update_columns: the one dynamic UPDATE used by users, routers and tasks."""

from __future__ import annotations

import pytest
import trio

from agentim.store import users
from agentim.store.updates import update_columns
from tests.helpers import RunningHub, create_user


async def test_sets_only_the_given_columns_and_updated_at(hub: RunningHub) -> None:
    user = await create_user(hub, display_name="Before")
    db = hub.services.db
    with trio.fail_after(20):
        row = await users.update_user(db, user.id, {"display_name": "After"}, "2030-01-01 00:00:00")
        missing = await users.update_user(db, "no-such-user", {"display_name": "X"}, "2030")
        again = await db.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    assert row is not None and again is not None
    assert (row["display_name"], str(row["updated_at"])) == ("After", "2030-01-01 00:00:00")
    assert again["username"] == user.username and again["role"] == "user"
    assert missing is None


async def test_refuses_a_column_outside_the_allow_list(hub: RunningHub) -> None:
    user = await create_user(hub)
    with trio.fail_after(20), pytest.raises(ValueError, match="not updatable: \\['role'\\]"):
        await update_columns(hub.services.db, "users", user.id, {"role": "admin"},
                             updatable={"display_name"}, now="2030")  # fmt: skip
    with trio.fail_after(20):
        row = await hub.services.db.fetchrow("SELECT role FROM users WHERE id = $1", user.id)
    assert row is not None and row["role"] == "user"

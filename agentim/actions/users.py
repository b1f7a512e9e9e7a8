"""Profile, password and admin user management (api.md §5), with their audit rows (§13, D21).

Password changes, admin resets and deletions end the target's sessions everywhere (D7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentim.actions.audit import audit
from agentim.actions.auth import end_sessions
from agentim.actions.messages import remove_upload_files
from agentim.errors import bad_request, conflict, not_found
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import users
from agentim.store.db import UNIQUE_VIOLATION, DbError, Row


async def update_profile(services: Services, user_id: str, changes: Mapping[str, Any]) -> Row:
    """Set display_name / avatar_url (already clean) and always `updated_at`; no audit."""
    row = await users.update_user(services.db, user_id, changes, iso_now())
    if row is None:
        raise not_found("User not found")
    return row


async def change_password(
    services: Services, user_id: str, *, current: str, new: str, ip: str
) -> None:
    """The caller's own change: wrong `current` is a 400 and does not count toward lockout."""
    row = await users.get_user(services.db, user_id)
    if row is None:
        raise not_found("User not found")
    if row["password_hash"] is None:  # an OAuth-only user (actions/oauth.py)
        raise bad_request("No password set for this account")
    if not await services.passwords.verify(current, row["password_hash"]):
        raise bad_request("Current password is incorrect")
    digest = await services.passwords.hash(new)
    await users.update_user(services.db, user_id, {"password_hash": digest}, iso_now())
    await end_sessions(services, user_id)
    await audit(services.db, "password_change", user_id=user_id, ip=ip)


async def create_user(
    services: Services,
    *,
    admin_id: str,
    username: str,
    password: str,
    display_name: str,
    role: str,
    ip: str,
) -> Row:
    """Raises: AgentImError 409 `Username already taken` (case-sensitive names)."""
    user_id, digest = new_id(), await services.passwords.hash(password)
    try:
        await users.insert_user(
            services.db,
            user_id=user_id,
            username=username,
            password_hash=digest,
            display_name=display_name,
            role=role,
            now=iso_now(),
        )
    except DbError as exc:
        if exc.sqlstate == UNIQUE_VIOLATION:
            raise conflict("Username already taken") from None
        raise
    await audit(
        services.db,
        "admin_user_create",
        user_id=admin_id,
        ip=ip,
        target_id=user_id,
        target_type="user",
    )
    return await _reload(services, user_id)


async def admin_update_user(
    services: Services,
    *,
    admin_id: str,
    target_id: str,
    changes: Mapping[str, Any],
    password: str | None,
    ip: str,
) -> Row:
    """Apply an admin's update; a new password also ends the target's sessions.

    Raises:
        AgentImError: 404 `User not found`, 400 `Cannot demote yourself`.
    """
    if await users.get_user(services.db, target_id) is None:
        raise not_found("User not found")
    if target_id == admin_id and changes.get("role", "admin") != "admin":
        raise bad_request("Cannot demote yourself")
    columns = dict(changes)
    if password is not None:
        columns["password_hash"] = await services.passwords.hash(password)
    row = await users.update_user(services.db, target_id, columns, iso_now())
    if row is None:  # deleted meanwhile
        raise not_found("User not found")
    if password is not None:
        await end_sessions(services, target_id)
    await audit(
        services.db,
        "admin_user_update",
        user_id=admin_id,
        ip=ip,
        target_id=target_id,
        target_type="user",
    )
    return row


async def delete_user(services: Services, *, admin_id: str, target_id: str, ip: str) -> None:
    """api.md §5.7: remove the user with their rooms and uploads, then unlink their files.

    Raises:
        AgentImError: 400 `Cannot delete yourself` (checked first), 404 `User not found`.
    """
    if target_id == admin_id:
        raise bad_request("Cannot delete yourself")
    target = await users.get_user(services.db, target_id)
    if target is None:
        raise not_found("User not found")
    urls = await users.list_user_file_urls(services.db, target_id)  # before the rows go
    async with services.db.transaction() as tx:
        deleted = await users.delete_user_and_content(tx, target_id)
    if not deleted:
        raise not_found("User not found")
    await end_sessions(services, target_id)
    avatars = await services.blobs.names_with_prefix(f"avatar_{target_id}.")
    await remove_upload_files(services.blobs, [*urls, *avatars])
    await audit(
        services.db,
        "admin_user_delete",
        user_id=admin_id,
        ip=ip,
        target_id=target_id,
        target_type="user",
        metadata={"username": target["username"]},
    )


async def _reload(services: Services, user_id: str) -> Row:
    row = await users.get_user(services.db, user_id)
    if row is None:
        raise not_found("User not found")
    return row

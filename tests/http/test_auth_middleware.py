"""The access-token check every U/A route runs (api.md §2.6) and the admin check (§2.7)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.helpers import RunningHub, User, create_user, signed_in_user

ME = "/api/users/me"


def _claims(user: User, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user.id,
        "username": user.username,
        "type": "access",
        "iss": "agentim",
        "aud": "agentim",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def _get(client: httpx.AsyncClient, authorization: str | None) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await client.get(ME, headers=headers)


async def test_reference_shaped_token_is_accepted(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    """A token as the reference signs it (no iatMs, no typ header) still works."""
    user = await create_user(hub)
    token = jwt.encode(_claims(user), TEST_JWT_SECRET, algorithm="HS256")
    assert (await _get(client, f"Bearer {token}")).status_code == 200


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda u: None, "Unauthorized"),
        (lambda u: "Basic abc", "Unauthorized"),
        (lambda u: "bearer " + jwt.encode(_claims(u), TEST_JWT_SECRET), "Unauthorized"),
        (lambda u: "Bearer not.a.jwt", "Invalid or expired token"),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u), "another-secret-of-enough-length-0123456"),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u, exp=int(time.time()) - 1), TEST_JWT_SECRET),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u, iss="other"), TEST_JWT_SECRET),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u, aud="other"), TEST_JWT_SECRET),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u, username=None), TEST_JWT_SECRET),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u, type="session"), TEST_JWT_SECRET),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u), TEST_JWT_SECRET, algorithm="HS512"),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u), None, algorithm="none"),
            "Invalid or expired token",
        ),
        (
            lambda u: "Bearer " + jwt.encode(_claims(u, type="refresh"), TEST_JWT_SECRET),
            "Invalid token type",
        ),
    ],
    ids=[
        "missing",
        "basic",
        "lowercase-bearer",
        "malformed",
        "other-secret",
        "expired",
        "wrong-iss",
        "wrong-aud",
        "no-username",
        "unknown-type",
        "hs512",
        "alg-none",
        "refresh-token",
    ],
)
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case
async def test_rejected_credentials(
    hub: RunningHub, client: httpx.AsyncClient, make: object, error: str
) -> None:
    user = await create_user(hub)
    response = await _get(client, make(user))  # type: ignore[operator]
    assert response.status_code == 401
    assert response.text == f'{{"ok":false,"error":"{error}"}}'
    assert "www-authenticate" not in response.headers


async def test_revocation_cuts_between_tokens_by_issue_time(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    """D7: exact to the millisecond, where the reference's whole-second iat is not."""
    user = await create_user(hub)
    cutoff = int(time.time() * 1000)
    await hub.services.kv.set(f"revoked:{user.id}", str(cutoff), ex=60)
    tokens = hub.services.tokens
    at_cutoff = tokens.issue(user.id, user.username, "access", now_ms=cutoff)
    just_after = tokens.issue(user.id, user.username, "access", now_ms=cutoff + 1)
    assert (await _get(client, f"Bearer {at_cutoff}")).json()["error"] == "Token revoked"
    assert (await _get(client, f"Bearer {just_after}")).status_code == 200


async def test_token_of_a_deleted_user_passes_auth_but_me_is_404(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    await hub.services.db.execute("DELETE FROM users WHERE id = $1", user.id)
    response = await client.get(ME, headers=user.headers)
    assert (response.status_code, response.json()) == (
        404,
        {"ok": False, "error": "User not found"},
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("PUT", "/api/users/someone"),
        ("DELETE", "/api/users/someone"),
    ],
)
async def test_non_admin_gets_403_on_admin_routes(
    hub: RunningHub, client: httpx.AsyncClient, method: str, path: str
) -> None:
    user = await signed_in_user(hub)
    response = await client.request(method, path, headers=user.headers, json={})
    assert (response.status_code, response.json()) == (
        403,
        {"ok": False, "error": "Admin access required"},
    )


async def test_admin_status_is_read_from_the_database_each_call(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await signed_in_user(hub, role="admin")
    assert (await client.get("/api/users", headers=admin.headers)).status_code == 200
    await hub.services.db.execute("UPDATE users SET role = 'user' WHERE id = $1", admin.id)
    assert (await client.get("/api/users", headers=admin.headers)).status_code == 403
    await hub.services.db.execute("DELETE FROM users WHERE id = $1", admin.id)
    assert (await client.get("/api/users", headers=admin.headers)).status_code == 403


@pytest.mark.parametrize("bad", ["a" * 31, "bad.id", "b%20c", "%C3%A9"])
async def test_path_ids_are_checked_after_auth_before_admin(
    hub: RunningHub, client: httpx.AsyncClient, bad: str
) -> None:
    user = await signed_in_user(hub)  # not an admin: the id check answers first
    for method in ("PUT", "DELETE"):
        response = await client.request(method, f"/api/users/{bad}", headers=user.headers)
        assert (response.status_code, response.json()) == (
            400,
            {"ok": False, "error": "Invalid parameter: id"},
        )
        anonymous = await client.request(method, f"/api/users/{bad}")
        assert anonymous.status_code == 401

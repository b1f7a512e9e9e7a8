"""TOTP two-factor login (head-gap A4, A25) over real HTTP, PostgreSQL and Redis: setup,
confirmation, login step two with a code or a one-time backup code, lockout, disabling."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import httpx
import pyotp
import trio

from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, User, create_user, signed_in_user

WRONG_CODE = {"ok": False, "error": "Invalid TOTP code"}


def _code(secret: str, *, steps_ahead: int = 0) -> str:
    """The code an authenticator shows `steps_ahead` 30-second steps from now (the hub accepts
    one step of drift either way)."""
    return pyotp.TOTP(secret).at(time.time(), counter_offset=steps_ahead)


async def _row(hub: RunningHub, user: User) -> dict[str, Any]:
    row = await hub.services.db.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    assert row is not None
    return dict(row)


async def _audit_actions(hub: RunningHub, user: User) -> list[tuple[str, Any]]:
    rows = await hub.services.db.fetch(
        "SELECT action, metadata FROM audit_log WHERE user_id = $1 ORDER BY created_at, id",
        user.id,
    )
    return [(r["action"], json.loads(r["metadata"]) if r["metadata"] else None) for r in rows]


async def _enable(client: httpx.AsyncClient, user: User) -> tuple[str, list[str]]:
    """Set 2FA up through the API; returns the secret and the backup codes."""
    setup = await client.post("/api/auth/setup-totp", headers=user.headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["data"]["secret"]
    confirm = await client.post(
        "/api/auth/verify-totp-setup", headers=user.headers, json={"code": _code(secret)}
    )
    assert confirm.status_code == 200, confirm.text
    return secret, confirm.json()["data"]["backupCodes"]


async def _challenge(client: httpx.AsyncClient, user: User) -> str:
    response = await client.post(
        "/api/auth/login", json={"username": user.username, "password": user.password}
    )
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers
    body = response.json()
    assert body == {
        "ok": True,
        "data": {"totpRequired": True, "totpToken": body["data"]["totpToken"]},
    }
    return str(body["data"]["totpToken"])


async def _verify(client: httpx.AsyncClient, token: str, code: str) -> httpx.Response:
    return await client.post("/api/auth/verify-totp", json={"totpToken": token, "code": code})


async def test_setup_and_confirm_store_the_secret_sealed_and_show_in_me(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(30):
        me = await client.get("/api/users/me", headers=user.headers)
        assert me.json()["data"]["totpEnabled"] is False
        setup = await client.post("/api/auth/setup-totp", headers=user.headers)
        assert setup.status_code == 200
        data = setup.json()["data"]
        assert set(data) == {"secret", "uri"}
        secret = data["secret"]
        assert len(secret) == 32 and pyotp.TOTP(secret).now().isdigit()
        uri = urlsplit(data["uri"])
        assert (uri.scheme, uri.netloc, unquote(uri.path)) == (
            "otpauth", "totp", f"/AgentIM:{user.username}"
        )  # fmt: skip
        assert parse_qs(uri.query) == {"secret": [secret], "issuer": ["AgentIM"]}

        row = await _row(hub, user)
        assert row["totp_secret"].startswith("enc:") and secret not in row["totp_secret"]
        assert (row["totp_enabled"], row["totp_backup_codes"]) == (False, None)

        wrong = await client.post(
            "/api/auth/verify-totp-setup", headers=user.headers, json={"code": "000000"}
        )
        if _code(secret) != "000000":
            assert (wrong.status_code, wrong.json()) == (400, WRONG_CODE)
        confirm = await client.post(
            "/api/auth/verify-totp-setup", headers=user.headers, json={"code": _code(secret)}
        )
        assert confirm.status_code == 200
        codes = confirm.json()["data"]["backupCodes"]
        me = await client.get("/api/users/me", headers=user.headers)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) == 8 and int(code, 16) >= 0 for code in codes)
    assert me.json()["data"]["totpEnabled"] is True
    row = await _row(hub, user)
    assert row["totp_enabled"] is True
    hashes = json.loads(row["totp_backup_codes"])
    assert len(hashes) == 10 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
    assert not any(code in row["totp_backup_codes"] for code in codes)
    assert secret not in row["totp_secret"]
    actions = [a for a, _ in await _audit_actions(hub, user)]
    assert actions == ["totp_setup", "totp_enabled"]


async def test_issuer_comes_from_totp_issuer(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, totp_issuer="Acme Hub"), redis_prefix)
    user = await signed_in_user(hub)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
        with trio.fail_after(30):
            setup = await client.post("/api/auth/setup-totp", headers=user.headers)
    uri = urlsplit(setup.json()["data"]["uri"])
    assert unquote(uri.path) == f"/Acme Hub:{user.username}"
    assert parse_qs(uri.query)["issuer"] == ["Acme Hub"]


async def test_login_needs_a_second_step_and_a_code_signs_in_once(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(30):
        secret, _ = await _enable(client, user)
        token = await _challenge(client, user)
        # the challenge is no access token
        me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert (me.status_code, me.json()) == (401, {"ok": False, "error": "Invalid token type"})
        refresh = await client.post("/api/auth/refresh", json={"refreshToken": token})
        assert refresh.status_code == 401
        # the setup code's time step is spent: the next step's code signs in
        code = _code(secret, steps_ahead=1)
        response = await _verify(client, token, code)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["user"] == {
            "id": user.id,
            "username": user.username,
            "displayName": user.username,
            "avatarUrl": None,
            "role": "user",
            "totpEnabled": True,
        }
        assert response.headers["set-cookie"].startswith(f"agentim_rt={data['refreshToken']};")
        me = await client.get(
            "/api/users/me", headers={"Authorization": f"Bearer {data['accessToken']}"}
        )
        assert me.status_code == 200
        # the same code again (same challenge, or a new one) is refused
        again = await _verify(client, token, code)
        assert (again.status_code, again.json()) == (401, WRONG_CODE)
        again = await _verify(client, await _challenge(client, user), code)
        assert (again.status_code, again.json()) == (401, WRONG_CODE)
    assert [a for a, _ in await _audit_actions(hub, user)][-4:] == [
        "totp_enabled", "login", "totp_verify_failed", "totp_verify_failed"
    ]  # fmt: skip


async def test_a_backup_code_signs_in_once(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(60):
        _, codes = await _enable(client, user)
        token = await _challenge(client, user)
        first = await _verify(client, token, f" {codes[3].upper()} ")  # as typed by a person
        assert first.status_code == 200, first.text
        assert set(first.json()["data"]) == {"user", "accessToken", "refreshToken"}
        row = await _row(hub, user)
        assert len(json.loads(row["totp_backup_codes"])) == 9
        reused = await _verify(client, await _challenge(client, user), codes[3])
        assert (reused.status_code, reused.json()) == (401, WRONG_CODE)
        other = await _verify(client, await _challenge(client, user), codes[7])
        assert other.status_code == 200
    assert len(json.loads((await _row(hub, user))["totp_backup_codes"])) == 8


async def test_wrong_codes_share_the_password_lockout(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(60):
        secret, _ = await _enable(client, user)
        token = await _challenge(client, user)
        good = _code(secret, steps_ahead=1)
        bad = "999999" if good != "999999" else "111111"
        for _ in range(4):
            assert (await _verify(client, token, bad)).json() == WRONG_CODE
        # a right password does not reset the count while the second step is pending
        token = await _challenge(client, user)
        assert (await _row(hub, user))["failed_login_attempts"] == 4
        wrong = await _verify(client, token, "deadbeef")  # backup-shaped, unknown
        assert (wrong.status_code, wrong.json()) == (401, WRONG_CODE)
        row = await _row(hub, user)
        assert row["failed_login_attempts"] == 5 and row["locked_until"] is not None
        # locked: the right code is refused like a wrong one, and so is the password
        locked = await _verify(client, token, good)
        assert (locked.status_code, locked.json()) == (401, WRONG_CODE)
        login = await client.post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
        assert (login.status_code, login.json()) == (
            401, {"ok": False, "error": "Invalid credentials"}
        )  # fmt: skip
        # once the lock has passed, the code is still unspent and signs in, clearing the count
        await hub.services.db.execute(
            "UPDATE users SET locked_until = '2000-01-01T00:00:00.000Z' WHERE id = $1", user.id
        )
        response = await _verify(client, await _challenge(client, user), good)
        assert response.status_code == 200, response.text
    row = await _row(hub, user)
    assert (row["failed_login_attempts"], row["locked_until"]) == (0, None)
    failures = [m for a, m in await _audit_actions(hub, user) if a == "totp_verify_failed"]
    assert failures == [{"attempts": n} for n in range(1, 6)] + [{"locked": True}]


async def test_bad_challenges_are_refused(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(30):
        secret, _ = await _enable(client, user)
        code = _code(secret, steps_ahead=1)
        tokens = hub.services.tokens
        six_minutes_ago = int(time.time() * 1000) - 360_000
        expired = tokens.issue(user.id, user.username, "totp_challenge", now_ms=six_minutes_ago)
        cases = [
            (expired, "Invalid or expired TOTP token"),
            ("not-a-jwt", "Invalid or expired TOTP token"),
            (user.token, "Invalid token type"),
        ]
        for token, error in cases:
            response = await _verify(client, token, code)
            assert (response.status_code, response.json()) == (401, {"ok": False, "error": error})
        # a challenge issued before "log out everywhere" (or a password change) is void
        stale = await _challenge(client, user)
        logout_all = await client.post("/api/auth/logout-all", headers=user.headers)
        assert logout_all.status_code == 200
        response = await _verify(client, stale, code)
        assert (response.status_code, response.json()) == (
            401, {"ok": False, "error": "Invalid or expired TOTP token"}
        )  # fmt: skip
        plain = await create_user(hub)
        challenge = tokens.issue(plain.id, plain.username, "totp_challenge")
        response = await _verify(client, challenge, code)
        assert response.json() == {"ok": False, "error": "Invalid TOTP state"}
        # none of that spent the code
        assert (await _verify(client, await _challenge(client, user), code)).status_code == 200
    assert (await _row(hub, user))["failed_login_attempts"] == 0


async def test_bad_input(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(30):
        none = await client.post(
            "/api/auth/verify-totp-setup", headers=user.headers, json={"code": "123456"}
        )
        assert (none.status_code, none.json()) == (
            400, {"ok": False, "error": "No TOTP setup in progress"}
        )  # fmt: skip
        cases: list[tuple[str, dict[str, Any], list[dict[str, str]]]] = [
            (
                "/api/auth/verify-totp-setup",
                {"code": "12345"},
                [
                    {"field": "code", "message": "String must contain exactly 6 character(s)"},
                    {"field": "code", "message": "Invalid"},
                ],
            ),
            ("/api/auth/verify-totp-setup", {"code": "12345a"}, [
                {"field": "code", "message": "Invalid"}
            ]),
            ("/api/auth/verify-totp-setup", {"code": 123456}, [
                {"field": "code", "message": "Expected string, received number"}
            ]),
            ("/api/auth/verify-totp", {}, [
                {"field": "totpToken", "message": "Required"},
                {"field": "code", "message": "Required"},
            ]),
            ("/api/auth/verify-totp", {"totpToken": "x", "code": "1" * 21}, [
                {"field": "code", "message": "String must contain at most 20 character(s)"}
            ]),
            ("/api/auth/disable-totp", {"password": ""}, [
                {"field": "password", "message": "String must contain at least 1 character(s)"}
            ]),
        ]  # fmt: skip
        for path, body, fields in cases:
            response = await client.post(path, headers=user.headers, json=body)
            assert response.status_code == 400, path
            assert response.json() == {"ok": False, "error": "Validation failed", "fields": fields}
        unauthenticated = await client.post("/api/auth/setup-totp")
        assert unauthenticated.status_code == 401


async def test_disable_needs_the_password_and_clears_everything(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    with trio.fail_after(30):
        not_on = await client.post(
            "/api/auth/disable-totp", headers=user.headers, json={"password": user.password}
        )
        assert (not_on.status_code, not_on.json()) == (
            400, {"ok": False, "error": "2FA is not enabled"}
        )  # fmt: skip
        await _enable(client, user)
        for path in ("/api/auth/setup-totp", "/api/auth/verify-totp-setup"):
            response = await client.post(path, headers=user.headers, json={"code": "123456"})
            assert (response.status_code, response.json()) == (
                400, {"ok": False, "error": "2FA is already enabled"}
            )  # fmt: skip
        wrong = await client.post(
            "/api/auth/disable-totp", headers=user.headers, json={"password": "not-it"}
        )
        assert (wrong.status_code, wrong.json()) == (
            401,
            {"ok": False, "error": "Invalid password"},
        )
        assert (await _row(hub, user))["totp_enabled"] is True
        done = await client.post(
            "/api/auth/disable-totp", headers=user.headers, json={"password": user.password}
        )
        assert (done.status_code, done.json()) == (200, {"ok": True})
        row = await _row(hub, user)
        assert (row["totp_enabled"], row["totp_secret"], row["totp_backup_codes"]) == (
            False, None, None
        )  # fmt: skip
        login = await client.post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
        assert set(login.json()["data"]) == {"user", "accessToken", "refreshToken"}
        assert login.json()["data"]["user"]["totpEnabled"] is False
    assert [a for a, _ in await _audit_actions(hub, user)][-2:] == ["totp_disabled", "login"]

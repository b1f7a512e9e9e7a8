"""auth/access.verify_access: the one token check behind /api, /uploads and both sockets."""

from __future__ import annotations

import httpx
import pytest
import trio

from agentim.auth.access import AccessProblem, AccessRefused, verify_access
from tests.helpers import RunningHub, create_user, login


async def _problem(hub: RunningHub, token: str) -> AccessProblem | None:
    svc = hub.services
    try:
        await verify_access(svc.tokens, svc.kv, svc.db, token)
    except AccessRefused as exc:
        return exc.problem
    return None


async def test_each_refusal_has_its_problem(hub: RunningHub) -> None:
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=hub.url) as http:
            user = await login(http, await create_user(hub))
            svc = hub.services
            principal = await verify_access(svc.tokens, svc.kv, svc.db, user.token)
            assert principal.user_id == user.id
            refresh = svc.tokens.issue(user.id, user.username, "refresh")
            assert await _problem(hub, "not.a.token") is AccessProblem.INVALID
            assert await _problem(hub, "") is AccessProblem.INVALID
            assert await _problem(hub, refresh) is AccessProblem.WRONG_TYPE
            out = await http.post("/api/auth/logout", headers=user.headers)
            assert out.status_code == 200
            assert await _problem(hub, user.token) is AccessProblem.REVOKED


@pytest.mark.parametrize("path", ["/api/users/me", "/uploads/x.png"])
async def test_http_edges_answer_the_same_texts(hub: RunningHub, path: str) -> None:
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=hub.url) as http:
            user = await login(http, await create_user(hub))
            refresh = hub.services.tokens.issue(user.id, user.username, "refresh")
            texts = []
            for token in ("junk", refresh):
                response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401
                texts.append(response.json()["error"])
    assert texts == ["Invalid or expired token", "Invalid token type"]

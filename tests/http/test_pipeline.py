"""The request pipeline of api.md §2: headers, CORS, request ids, body limits, 404s."""

from __future__ import annotations

import attrs
import httpx
import trio

from agentim.settings import Settings
from tests.conftest import start_hub

SECURITY = {
    "cross-origin-opener-policy": "same-origin",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=15552000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "x-xss-protection": "0",
    "origin-agent-cluster": "?1",
    "x-permitted-cross-domain-policies": "none",
}


async def test_security_headers_on_success_and_error(client: httpx.AsyncClient) -> None:
    for path in ("/api/health", "/nope"):
        response = await client.get(path)
        for name, value in SECURITY.items():
            assert response.headers[name] == value
        assert "x-powered-by" not in response.headers
        assert "content-security-policy" not in response.headers  # production only


async def test_cors_for_the_configured_origin_only(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/api/health", headers={"Origin": "http://localhost:5173"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["vary"] == "Origin"
    other = await client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


async def test_preflight_is_answered_without_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/rooms",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert response.status_code == 204 and response.content == b""
    assert response.headers["access-control-allow-methods"] == "GET,HEAD,PUT,POST,DELETE,PATCH"
    assert response.headers["access-control-allow-headers"] == "content-type,authorization"
    assert response.headers["vary"] == "Origin, Access-Control-Request-Headers"
    assert "x-request-id" not in response.headers


async def test_request_ids_are_echoed_cut_or_minted(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/api/health", headers={"X-Request-ID": "abc"})
    assert echoed.headers["x-request-id"] == "abc"
    cut = await client.get("/api/health", headers={"X-Request-ID": "x" * 50})
    assert cut.headers["x-request-id"] == "x" * 32
    minted = await client.get("/api/health")
    assert len(minted.headers["x-request-id"]) == 12


async def test_unknown_routes_answer_plain_text(client: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/api/nope"), ("POST", "/api/health")):
        response = await client.request(method, path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "text/plain; charset=UTF-8"
        assert response.text == "404 Not Found"


async def test_oversized_json_bodies_get_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/anything", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == {"ok": False, "error": ""}  # development text (api.md §2.5)


async def test_production_adds_csp_and_hides_413_detail(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, env="production"), redis_prefix)
    async with httpx.AsyncClient(base_url=hub.url) as client:
        response = await client.get("/api/health")
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert response.headers["permissions-policy"].startswith("camera=()")
        too_big = await client.post("/api/x", content=b"x" * (1024 * 1024 + 10))
        assert too_big.json() == {"ok": False, "error": "Internal server error"}
        assert too_big.headers["x-ratelimit-limit"] == "120"


async def test_spa_fallback_serves_index_outside_api(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str, tmp_path: object
) -> None:
    web = settings.data_dir.parent / "web"
    web.mkdir()
    (web / "index.html").write_text("<html>app</html>")
    (web / "app.js").write_text("console.log(1)")
    hub = await start_hub(nursery, attrs.evolve(settings, web_dir=web), redis_prefix)
    async with httpx.AsyncClient(base_url=hub.url) as client:
        assert (await client.get("/app.js")).text == "console.log(1)"
        assert (await client.get("/rooms/abc")).text == "<html>app</html>"
        api = await client.get("/api/unknown")
        assert api.status_code == 404 and api.text == "404 Not Found"

"""CORS_ORIGIN as a comma-separated list of exact origins (head-gap config row D10)."""

from __future__ import annotations

import attrs
import httpx
import trio

from agentim.settings import Settings, problems
from tests.conftest import start_hub

ORIGINS = "https://chat.example.com, https://admin.example.com"


async def test_each_listed_origin_is_allowed_and_no_other(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, cors_origin=ORIGINS), redis_prefix)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
        for origin in ("https://chat.example.com", "https://admin.example.com"):
            response = await client.get("/api/health", headers={"Origin": origin})
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["vary"] == "Origin"
        for origin in (
            "https://evil.example",
            "https://chat.example.com, https://admin.example.com",
        ):
            response = await client.get("/api/health", headers={"Origin": origin})
            assert "access-control-allow-origin" not in response.headers


def test_the_list_is_parsed_and_each_origin_checked() -> None:
    env = {"AGENTIM_ENV": "production", "JWT_SECRET": "x" * 32, "ENCRYPTION_KEY": "k" * 32,
           "DATABASE_URL": "postgresql://u@db/a", "REDIS_URL": "redis://r:6379/0"}  # fmt: skip
    good = Settings.from_env({**env, "CORS_ORIGIN": ORIGINS + ","})
    assert good.cors_origins == ("https://chat.example.com", "https://admin.example.com")
    assert problems(good) == []
    bad = Settings.from_env(
        {**env, "CORS_ORIGIN": "https://chat.example.com,https://x.example/app"}
    )
    assert problems(bad) == [
        "CORS_ORIGIN must be an exact origin such as https://your-domain.com "
        "(no wildcard, no trailing slash, no path)"
    ]
    empty = Settings.from_env({**env, "CORS_ORIGIN": " , "})
    assert problems(empty) == ["CORS_ORIGIN must be set in production"]

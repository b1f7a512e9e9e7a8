"""Settings.from_env: AgentIM names, JS parseInt clamping, production validation texts."""

from __future__ import annotations

from hypothesis import given, strategies as st

from agentim.settings import (
    DEFAULT_MIME_TYPES,
    Settings,
    cors_origin_problem,
    parse_duration_s,
    parse_js_int,
    problems,
)

STRONG = {
    "AGENTIM_ENV": "production",
    "JWT_SECRET": "x" * 32,
    "ENCRYPTION_KEY": "k" * 32,
    "DATABASE_URL": "postgresql://u@db/agentim",
    "REDIS_URL": "redis://:pw@redis:6379/0",
    "CORS_ORIGIN": "https://chat.example.com",
    "ADMIN_PASSWORD": "Str0ngPassword",
}


def test_defaults_match_the_reference_and_decisions() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert (settings.port, settings.host) == (3000, "0.0.0.0")
    assert settings.ws_auth_timeout_s == 10.0 and settings.ws_ping_interval_s == 30.0
    assert settings.client_rate_limit_window == 10 and settings.client_rate_limit_max == 30
    assert settings.max_client_frame_bytes == 128 * 1024
    assert settings.bcrypt_rounds == 12 and settings.log_level == "debug"
    assert settings.allowed_mime_types == DEFAULT_MIME_TYPES
    assert settings.cors_origin == "http://localhost:5173"
    assert settings.database_url is None and settings.redis_url is None  # embedded default


def test_agentim_env_falls_back_to_node_env() -> None:
    assert Settings.from_env({"NODE_ENV": "production"}).env == "production"
    assert Settings.from_env({"NODE_ENV": "production", "AGENTIM_ENV": "test"}).env == "test"
    assert Settings.from_env({"AGENTIM_ENV": "production"}).log_level == "info"


def test_integers_parse_like_parseint_then_clamp() -> None:
    env = {
        "PORT": "12abc",
        "MAX_AGENT_CHAIN_DEPTH": "1000",
        "CLIENT_RATE_LIMIT_MAX": "junk",
        "WS_PING_INTERVAL_MS": "5000",
        "ORPHAN_FILE_CHECK_INTERVAL": "10",
    }
    settings = Settings.from_env(env)
    assert settings.port == 12
    assert settings.max_agent_chain_depth == 100
    assert settings.client_rate_limit_max == 30
    assert settings.ws_ping_interval_s == 5.0
    assert settings.orphan_file_check_interval_s == 60.0  # minimum 60000 ms


@given(st.text(max_size=12), st.integers(-5, 5), st.integers(5, 50))
def test_parse_js_int_always_lands_in_range(raw: str, default: int, hi: int) -> None:
    assert -5 <= parse_js_int(raw, default, -5, hi) <= hi


def test_allowed_mime_types_replace_the_default_list() -> None:
    settings = Settings.from_env({"ALLOWED_MIME_TYPES": "image/png, Text/Plain"})
    assert settings.allowed_mime_types == ("image/png", "text/plain")


def test_durations_follow_jose_and_the_strict_rules() -> None:
    assert parse_duration_s("15m", 1) == 900
    assert parse_duration_s("2 hours", 1) == 7200
    assert parse_duration_s("1w", 1) == 604800
    settings = Settings.from_env({"JWT_REFRESH_EXPIRY": "2w", "JWT_ACCESS_EXPIRY": "30s"})
    assert settings.refresh_ttl_s == 1209600
    assert settings.refresh_store_ttl_s == 7 * 86400  # cookie/DB fall back (api.md §4.2)
    assert settings.revocation_ttl_s == 30


def test_a_strong_production_configuration_has_no_problems() -> None:
    assert problems(Settings.from_env(STRONG)) == []


def test_production_problems_use_the_seed_texts() -> None:
    found = problems(
        Settings.from_env(
            {"AGENTIM_ENV": "production", "JWT_SECRET": "short", "ADMIN_PASSWORD": "weak"}
        )
    )
    assert "JWT_SECRET must be at least 32 characters long" in found
    assert "ENCRYPTION_KEY is required" in found
    assert "DATABASE_URL is required in production" in found
    assert "REDIS_URL is required in production" in found
    assert "CORS_ORIGIN must be set in production" in found
    assert any(text.startswith("ADMIN_PASSWORD does not meet complexity") for text in found)


def test_cors_origin_must_be_exact() -> None:
    assert cors_origin_problem("https://chat.example.com") is None
    assert cors_origin_problem("http://localhost:5173") is None
    for bad in (
        "*",
        "https://chat.example.com/",
        "https://chat.example.com/app",
        "chat.example.com",
    ):
        assert cors_origin_problem(bad) is not None


def test_redis_url_forms() -> None:
    for url in (
        "redis://:pw@h:6379/2",
        "rediss://h:6380",
        "unix:///run/redis.sock",
        "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0",
    ):
        assert problems(Settings.from_env({**STRONG, "REDIS_URL": url})) == []
    assert problems(Settings.from_env({**STRONG, "REDIS_URL": "http://x"}))


def test_repr_hides_secrets() -> None:
    text = repr(Settings.from_env(STRONG))
    assert "x" * 32 not in text and "Str0ngPassword" not in text and "pw@" not in text


def test_the_crash_reclaim_bound_is_configurable_and_clamped() -> None:
    default = Settings.from_env({})
    assert (default.hub_liveness_ttl_s, default.hub_reclaim_interval_s) == (30.0, 10.0)
    fast = Settings.from_env({"HUB_LIVENESS_TTL_MS": "1500", "HUB_RECLAIM_INTERVAL_MS": "300"})
    assert (fast.hub_liveness_ttl_s, fast.hub_reclaim_interval_s) == (1.5, 0.3)
    wild = Settings.from_env({"HUB_LIVENESS_TTL_MS": "5", "HUB_RECLAIM_INTERVAL_MS": "junk"})
    assert (wild.hub_liveness_ttl_s, wild.hub_reclaim_interval_s) == (1.0, 10.0)


def test_gateway_cleanup_settings() -> None:
    default = Settings.from_env({})
    assert (default.gateway_cleanup_interval_s, default.gateway_max_offline_days) == (86400.0, 30)
    env = {"GATEWAY_CLEANUP_INTERVAL": "1000", "GATEWAY_MAX_OFFLINE_DAYS": "0"}
    clamped = Settings.from_env(env)
    assert (clamped.gateway_cleanup_interval_s, clamped.gateway_max_offline_days) == (60.0, 1)
    env = {"GATEWAY_CLEANUP_INTERVAL": "7200000", "GATEWAY_MAX_OFFLINE_DAYS": "7"}
    assert Settings.from_env(env).gateway_cleanup_interval_s == 7200.0
    assert Settings.from_env(env).gateway_max_offline_days == 7


def test_totp_issuer_defaults_to_agentim() -> None:
    assert Settings.from_env({}).totp_issuer == "AgentIM"
    assert Settings.from_env({"TOTP_ISSUER": ""}).totp_issuer == "AgentIM"
    assert Settings.from_env({"TOTP_ISSUER": "Acme Hub"}).totp_issuer == "Acme Hub"

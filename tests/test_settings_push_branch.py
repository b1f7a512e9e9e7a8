"""Settings of issue 21 items 7-8: VAPID_*, AUDIT_LOG_*, ROUTER_LLM_*, and the reference's
frame-size names as aliases (head-gap config rows D4, D6, D7, D8)."""

from __future__ import annotations

from agentim.settings import Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.vapid_public_key, s.vapid_private_key) == (None, None)
    assert s.vapid_subject == "mailto:noreply@agentim.app"
    assert s.push_allow_private_networks is False
    assert (s.audit_log_retention_days, s.audit_log_cleanup_interval_s) == (90, 86400.0)
    assert (s.router_llm_timeout_s, s.router_llm_max_agents) == (15.0, 20)
    assert (s.max_client_frame_bytes, s.max_gateway_frame_bytes) == (131072, 11534336)


def test_values_parse_and_clamp() -> None:
    s = Settings.from_env({
        "VAPID_PUBLIC_KEY": " pub ", "VAPID_PRIVATE_KEY": "s3cr3t", "VAPID_SUBJECT": "mailto:a@b.c",
        "PUSH_ALLOW_PRIVATE_NETWORKS": "true", "AUDIT_LOG_RETENTION_DAYS": "0",
        "AUDIT_LOG_CLEANUP_INTERVAL": "5", "ROUTER_LLM_TIMEOUT_MS": "2500",
        "ROUTER_LLM_MAX_AGENTS": "junk",
    })  # fmt: skip
    assert (s.vapid_public_key, s.vapid_private_key, s.vapid_subject) == (
        "pub", "s3cr3t", "mailto:a@b.c",
    )  # fmt: skip
    assert s.push_allow_private_networks is True
    assert (s.audit_log_retention_days, s.audit_log_cleanup_interval_s) == (1, 60.0)
    assert (s.router_llm_timeout_s, s.router_llm_max_agents) == (2.5, 20)
    assert Settings.from_env({"ROUTER_LLM_TIMEOUT_MS": "10"}).router_llm_timeout_s == 1.0
    assert "s3cr3t" not in repr(s)


def test_frame_size_aliases_and_the_hubs_names_win() -> None:
    aliases = {"MAX_WS_MESSAGE_SIZE": "65536", "MAX_GATEWAY_MESSAGE_SIZE": "262144"}
    s = Settings.from_env(aliases)
    assert (s.max_client_frame_bytes, s.max_gateway_frame_bytes) == (65536, 262144)
    both = Settings.from_env(
        {**aliases, "MAX_CLIENT_FRAME_BYTES": "200000", "MAX_GATEWAY_FRAME_BYTES": "300000"}
    )
    assert (both.max_client_frame_bytes, both.max_gateway_frame_bytes) == (200000, 300000)
    empty = Settings.from_env({**aliases, "MAX_CLIENT_FRAME_BYTES": ""})
    assert empty.max_client_frame_bytes == 65536  # an empty name counts as unset

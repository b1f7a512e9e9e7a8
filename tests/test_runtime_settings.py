"""runtime_settings: the admin page's registry, checks and the layering over Settings (pure)."""

from __future__ import annotations

import math

import pytest

from agentim.runtime_settings import BY_KEY, js_number, js_string, layered, listing, problem
from agentim.settings import Settings


@pytest.mark.parametrize(
    ("text", "number"),
    [("", 0.0), (" 12 ", 12.0), ("1e3", 1000.0), ("0x10", 16.0), ("-Infinity", -math.inf),
     ("10.5", 10.5)],
)  # fmt: skip
def test_js_number_reads_like_javascript(text: str, number: float) -> None:
    assert js_number(text) == number


@pytest.mark.parametrize("text", ["abc", "1,000", "12px", "0x", "NaN"])
def test_js_number_nan(text: str) -> None:
    assert math.isnan(js_number(text))


def test_js_string_of_json_values() -> None:
    assert [js_string(v) for v in (True, None, 30, 30.0, 2.5, [1, None], {}, "x")] == [
        "true", "null", "30", "30", "2.5", "1,", "[object Object]", "x"
    ]  # fmt: skip


def test_number_bounds_and_blank() -> None:
    size = BY_KEY["upload.maxFileSize"]
    assert problem(size, "1024") is None
    assert problem(size, "") == "upload.maxFileSize: minimum is 1024"  # Number("") is 0
    assert problem(size, "104857601") == "upload.maxFileSize: maximum is 104857600"


def test_layered_lays_saved_values_over_the_startup_settings() -> None:
    base = Settings.from_env({"MAX_FILE_SIZE": "5000", "CLIENT_RATE_LIMIT_MAX": "7"})
    live = layered(base, {"upload.maxFileSize": "2048", "cleanup.tokenInterval": "120000",
                          "trust.proxy": "true", "oauth.github.clientId": "",
                          "push.vapidSubject": "mailto:x@y"})  # fmt: skip
    assert (live.max_file_size, live.client_rate_limit_max) == (2048, 7)
    assert (live.token_cleanup_interval_s, live.trust_proxy) == (120.0, True)
    assert live.oauth_github_client_id is None
    assert base.max_file_size == 5000  # the startup settings never change
    assert layered(base, {}) is base


def test_listing_tells_env_from_default_and_masks_secrets() -> None:
    base = Settings.from_env({"MAX_FILE_SIZE": "5000", "OAUTH_GITHUB_CLIENT_SECRET": "abcdefgh"})
    items = {i["key"]: i for group in listing(base, {}).values() for i in group}
    assert (items["upload.maxFileSize"]["value"], items["upload.maxFileSize"]["source"]) == (
        "5000", "env"
    )  # fmt: skip
    assert items["rateLimit.agent.max"]["source"] == "default"
    assert items["oauth.github.clientSecret"]["value"] == "abcd" + "\u2022" * 8
    saved = {i["key"]: i for group in listing(base, {"sentry.dsn": "x"}).values() for i in group}
    assert (saved["sentry.dsn"]["value"], saved["sentry.dsn"]["source"]) == ("x", "db")

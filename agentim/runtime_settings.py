"""Runtime settings (head-gap A1, config row D12): what an administrator may change while the hub
runs, as the AgentIM 631a1ad admin page lists them. Pure: no I/O.

Each definition names its dotted key, its group on the admin page, how its text is checked and,
where the hub has the knob, the `Settings` field it overrides. `layered(base, values)` is the
one place database values are laid over the startup `Settings`; consumers read the result
through `routing.live_settings.LiveSettings`, never a copy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

from agentim.settings import Settings

SettingType = Literal["string", "number", "boolean", "enum"]
# How a setting's text becomes its Settings field: as is; "" as None; a whole number;
# milliseconds as seconds (the hub's intervals are seconds); "true"/"false".
Kind = Literal["str", "opt_str", "int", "ms", "bool"]
SECRET_MASK: Final = "\u2022" * 8  # shown after the first four characters of a secret


@attrs.frozen(kw_only=True)
class Definition:
    key: str
    group: str
    type: SettingType
    default: str
    label: str  # the i18n name after `adminSettings.` (its description adds `Desc`)
    env_key: str | None = None
    sensitive: bool = False
    enum_values: tuple[str, ...] | None = None
    min: int | None = None
    max: int | None = None
    field: str | None = None  # the Settings attribute it overrides; None: stored only
    kind: Kind = "str"

    @property
    def applies(self) -> bool:
        """Whether this hub has the knob (a Settings field of that name exists)."""
        return self.field is not None and self.field in attrs.fields_dict(Settings)


# fmt: off
def _num(key: str, group: str, default: int, env: str, lo: int, hi: int, label: str,
         field: str | None, kind: Kind = "int") -> Definition:
    return Definition(key=key, group=group, type="number", default=str(default), env_key=env,
                      min=lo, max=hi, label=label, field=field, kind=kind)


def _text(key: str, group: str, default: str, env: str | None, label: str, field: str | None,
          *, sensitive: bool = False, kind: Kind = "opt_str") -> Definition:
    return Definition(key=key, group=group, type="string", default=default, env_key=env,
                      label=label, field=field, sensitive=sensitive, kind=kind)
# fmt: on


# The reference's registry, in its order (the admin page shows groups and keys in this order).
# Fields that do not exist in Settings yet (TOTP, OAuth login, push, S3, audit retention, the
# router LLM, WS message sizes) are named as the features adding them are expected to name
# them; until then the value is stored and shown but changes nothing.
# fmt: off
DEFINITIONS: Final[tuple[Definition, ...]] = (
    _text("cors.origin", "general", "http://localhost:5173", "CORS_ORIGIN", "corsOrigin",
          "cors_origin", kind="str"),
    Definition(key="log.level", group="general", type="enum", default="info", env_key="LOG_LEVEL",
               enum_values=("debug", "info", "warn", "error", "fatal"), label="logLevel",
               field="log_level"),
    Definition(key="metrics.authEnabled", group="general", type="boolean", default="false",
               env_key="METRICS_AUTH_ENABLED", label="metricsAuthEnabled",
               field="metrics_auth_enabled", kind="bool"),
    _text("jwt.accessExpiry", "security", "15m", "JWT_ACCESS_EXPIRY", "jwtAccessExpiry",
          "jwt_access_expiry", kind="str"),
    _text("jwt.refreshExpiry", "security", "7d", "JWT_REFRESH_EXPIRY", "jwtRefreshExpiry",
          "jwt_refresh_expiry", kind="str"),
    Definition(key="trust.proxy", group="security", type="boolean", default="false",
               env_key="TRUST_PROXY", label="trustProxy", field="trust_proxy",
               kind="bool"),
    _text("oauth.github.clientId", "security", "", "OAUTH_GITHUB_CLIENT_ID",
          "oauthGithubClientId", "oauth_github_client_id"),
    _text("oauth.github.clientSecret", "security", "", "OAUTH_GITHUB_CLIENT_SECRET",
          "oauthGithubClientSecret", "oauth_github_client_secret", sensitive=True),
    _text("oauth.google.clientId", "security", "", "OAUTH_GOOGLE_CLIENT_ID",
          "oauthGoogleClientId", "oauth_google_client_id"),
    _text("oauth.google.clientSecret", "security", "", "OAUTH_GOOGLE_CLIENT_SECRET",
          "oauthGoogleClientSecret", "oauth_google_client_secret", sensitive=True),
    _text("totp.issuer", "security", "AgentIM", "TOTP_ISSUER", "totpIssuer", "totp_issuer",
          kind="str"),
    _num("upload.maxFileSize", "storage", 10485760, "MAX_FILE_SIZE", 1024, 104857600,
         "uploadMaxFileSize", "max_file_size"),
    Definition(key="storage.provider", group="storage", type="enum", default="local",
               env_key="STORAGE_PROVIDER", enum_values=("local", "s3"), label="storageProvider",
               field="storage_provider"),
    _text("storage.s3.bucket", "storage", "", "S3_BUCKET", "s3Bucket", "s3_bucket"),
    _text("storage.s3.region", "storage", "auto", "S3_REGION", "s3Region", "s3_region",
          kind="str"),
    _text("storage.s3.endpoint", "storage", "", "S3_ENDPOINT", "s3Endpoint", "s3_endpoint"),
    _text("storage.s3.accessKeyId", "storage", "", "S3_ACCESS_KEY_ID", "s3AccessKeyId",
          "s3_access_key_id", sensitive=True),
    _text("storage.s3.secretAccessKey", "storage", "", "S3_SECRET_ACCESS_KEY",
          "s3SecretAccessKey", "s3_secret_access_key", sensitive=True),
    _num("rateLimit.client.window", "rateLimit", 10, "CLIENT_RATE_LIMIT_WINDOW", 1, 300,
         "clientRateLimitWindow", "client_rate_limit_window"),
    _num("rateLimit.client.max", "rateLimit", 30, "CLIENT_RATE_LIMIT_MAX", 1, 1000,
         "clientRateLimitMax", "client_rate_limit_max"),
    _num("rateLimit.agent.window", "rateLimit", 60, "AGENT_RATE_LIMIT_WINDOW", 1, 3600,
         "agentRateLimitWindow", "agent_rate_limit_window"),
    _num("rateLimit.agent.max", "rateLimit", 20, "AGENT_RATE_LIMIT_MAX", 1, 1000,
         "agentRateLimitMax", "agent_rate_limit_max"),
    _num("ws.maxConnectionsPerUser", "connections", 10, "MAX_WS_CONNECTIONS_PER_USER", 1, 100,
         "maxConnectionsPerUser", "max_ws_connections_per_user"),
    _num("ws.maxTotalConnections", "connections", 5000, "MAX_TOTAL_WS_CONNECTIONS", 10, 100000,
         "maxTotalConnections", "max_total_ws_connections"),
    _num("ws.maxGatewaysPerUser", "connections", 20, "MAX_GATEWAYS_PER_USER", 1, 100,
         "maxGatewaysPerUser", "max_gateways_per_user"),
    # The hub's frame caps are its own (D20: 128 KiB client frames, 11 MiB gateway frames);
    # these two reference knobs are stored and shown only.
    _num("ws.maxMessageSize", "connections", 65536, "MAX_WS_MESSAGE_SIZE", 1024, 1048576,
         "maxMessageSize", None),
    _num("ws.gatewayMessageSize", "connections", 262144, "MAX_GATEWAY_MESSAGE_SIZE", 1024,
         10485760, "gatewayMessageSize", None),
    _text("router.llm.baseUrl", "aiRouter", "", "ROUTER_LLM_BASE_URL", "routerLlmBaseUrl",
          "router_llm_base_url"),
    _text("router.llm.apiKey", "aiRouter", "", "ROUTER_LLM_API_KEY", "routerLlmApiKey",
          "router_llm_api_key", sensitive=True),
    _text("router.llm.model", "aiRouter", "", "ROUTER_LLM_MODEL", "routerLlmModel",
          "router_llm_model"),
    _num("router.llm.timeout", "aiRouter", 15000, "ROUTER_LLM_TIMEOUT_MS", 1000, 120000,
         "routerLlmTimeout", "router_llm_timeout_s", kind="ms"),
    _num("router.maxChainDepth", "aiRouter", 5, "MAX_AGENT_CHAIN_DEPTH", 1, 100,
         "maxChainDepth", "max_agent_chain_depth"),
    _text("push.vapidPublicKey", "pushNotifications", "", None, "vapidPublicKey",
          "vapid_public_key"),
    _text("push.vapidPrivateKey", "pushNotifications", "", None, "vapidPrivateKey",
          "vapid_private_key", sensitive=True),
    _text("push.vapidSubject", "pushNotifications", "mailto:noreply@agentim.app", None,
          "vapidSubject", "vapid_subject", kind="str"),
    _num("cleanup.orphanFileInterval", "maintenance", 3600000, "ORPHAN_FILE_CHECK_INTERVAL",
         60000, 86400000, "orphanFileInterval", "orphan_file_check_interval_s",
         kind="ms"),
    _num("cleanup.tokenInterval", "maintenance", 3600000, "TOKEN_CLEANUP_INTERVAL", 60000,
         86400000, "tokenInterval", "token_cleanup_interval_s", kind="ms"),
    _num("cleanup.auditRetentionDays", "maintenance", 90, "AUDIT_LOG_RETENTION_DAYS", 1, 3650,
         "auditRetentionDays", "audit_log_retention_days"),
    _num("cleanup.auditInterval", "maintenance", 86400000, "AUDIT_LOG_CLEANUP_INTERVAL", 60000,
         86400000, "auditCleanupInterval", "audit_log_cleanup_interval_s",
         kind="ms"),
    _num("cleanup.gatewayInterval", "maintenance", 86400000, "GATEWAY_CLEANUP_INTERVAL", 60000,
         86400000, "gatewayCleanupInterval", "gateway_cleanup_interval_s",
         kind="ms"),
    _num("cleanup.gatewayMaxOfflineDays", "maintenance", 30, "GATEWAY_MAX_OFFLINE_DAYS", 1, 365,
         "gatewayMaxOfflineDays", "gateway_max_offline_days"),
    _text("sentry.dsn", "maintenance", "", "SENTRY_DSN", "sentryDsn", "sentry_dsn"),
)
# fmt: on
BY_KEY: Final = {definition.key: definition for definition in DEFINITIONS}

_JS_DECIMAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity")
_JS_RADIX: Final = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")
_JS_SPACE: Final = " \t\n\r\v\f\u00a0\ufeff\u2028\u2029"


def js_number(text: str) -> float:
    """JavaScript's Number(text): blank is 0, decimal or 0x/0o/0b literals, else NaN."""
    stripped = text.strip(_JS_SPACE)
    if not stripped:
        return 0.0
    if _JS_RADIX.fullmatch(stripped):
        return float(int(stripped, 0))
    if _JS_DECIMAL.fullmatch(stripped):
        return float(stripped.replace("Infinity", "inf"))
    return math.nan


def js_string(value: object) -> str:
    """JavaScript's String(value) for what a JSON body can hold."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def _is_origin(text: str) -> bool:
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a bad port raises
    except ValueError:
        return False
    return valid and parts.path in ("", "/")


def problem(definition: Definition, value: str) -> str | None:
    """Why `value` cannot be saved for `definition` (the reference's texts), or None."""
    key = definition.key
    if definition.type == "number":
        number = js_number(value)
        if math.isnan(number):
            return f"{key}: must be a number"
        if definition.min is not None and number < definition.min:
            return f"{key}: minimum is {definition.min}"
        if definition.max is not None and number > definition.max:
            return f"{key}: maximum is {definition.max}"
    if definition.type == "boolean" and value not in ("true", "false"):
        return f'{key}: must be "true" or "false"'
    if definition.enum_values is not None and value not in definition.enum_values:
        return f"{key}: must be one of {', '.join(definition.enum_values)}"
    if key == "cors.origin" and value:
        if value == "*":
            return f'{key}: wildcard "*" is not allowed \u2014 specify explicit origins'
        for origin in (part.strip() for part in value.split(",")):
            if origin and not _is_origin(origin):
                return (
                    f'{key}: "{origin}" is not a valid HTTP(S) origin '
                    "(e.g. https://app.example.com)"
                )
    return None


def _field_value(definition: Definition, text: str) -> object:
    if definition.kind == "int":
        return int(js_number(text))
    if definition.kind == "ms":
        return js_number(text) / 1000
    if definition.kind == "bool":
        return text == "true"
    if definition.kind == "opt_str":
        return text or None
    return text


def _field_text(definition: Definition, value: object) -> str:
    if definition.kind == "bool":
        return "true" if value else "false"
    if definition.kind == "ms" and isinstance(value, int | float):
        return str(round(value * 1000))
    return "" if value is None else str(value)


def layered(base: Settings, values: Mapping[str, str]) -> Settings:
    """`base` with every stored value that this hub has a field for laid over it."""
    changes = {
        definition.field: _field_value(definition, values[definition.key])
        for definition in DEFINITIONS
        if definition.key in values and definition.applies and definition.field is not None
    }
    evolve: Callable[..., Settings] = attrs.evolve  # field types vary: checked per kind above
    return evolve(base, **changes) if changes else base


def startup_text(
    definition: Definition, base: Settings, defaults: Settings
) -> tuple[str, Literal["env", "default"]]:
    """The value the process started with, and whether the environment chose it (`defaults`:
    the settings of an empty environment)."""
    if not definition.applies or definition.field is None:
        return definition.default, "default"
    value = getattr(base, definition.field)
    source: Literal["env", "default"] = (
        "default" if value == getattr(defaults, definition.field) else "env"
    )
    return _field_text(definition, value), source


def masked(value: str) -> str:
    """A secret as the admin page shows it: its first four characters, then dots."""
    return value[:4] + SECRET_MASK if value else value


def listing(base: Settings, values: Mapping[str, str]) -> dict[str, list[dict[str, object]]]:
    """GET /api/admin/settings `data`: every setting by group, secrets masked."""
    groups: dict[str, list[dict[str, object]]] = {}
    defaults = Settings.from_env({"AGENTIM_ENV": base.env})
    for definition in DEFINITIONS:
        if definition.key in values:
            value, source = values[definition.key], "db"
        else:
            value, source = startup_text(definition, base, defaults)
        if definition.sensitive:
            value = masked(value)
        item: dict[str, object] = {
            "key": definition.key,
            "value": value,
            "type": definition.type,
            "sensitive": definition.sensitive,
        }
        if definition.enum_values is not None:
            item["enumValues"] = list(definition.enum_values)
        if definition.min is not None:
            item["min"] = definition.min
        if definition.max is not None:
            item["max"] = definition.max
        item["labelKey"] = f"adminSettings.{definition.label}"
        item["descKey"] = f"adminSettings.{definition.label}Desc"
        item["source"] = source
        groups.setdefault(definition.group, []).append(item)
    return groups

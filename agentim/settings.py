"""The hub's configuration: one frozen Settings built once from the environment.

`Settings.from_env` is pure (a mapping in, a value out); `cli.py` is the only caller that
passes the real environment. Env names and units are AgentIM's; seconds are derived here once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import attrs

ENVIRONMENTS: Final = ("production", "development", "test")
LOG_LEVELS: Final = ("fatal", "error", "warn", "info", "debug", "trace")
DEFAULT_JWT_SECRET: Final = "dev-secret-change-me"
DEFAULT_MIME_TYPES: Final = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
    "application/zip",
    "application/x-zip-compressed",
    "application/gzip",
)
REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")
API_BODY_LIMIT_BYTES: Final = 1024 * 1024  # api.md §2.5
UPLOAD_BODY_LIMIT_BYTES: Final = 12 * 1024 * 1024  # api.md §2.5
AVATAR_LIMIT_BYTES: Final = 2 * 1024 * 1024
SHUTDOWN_GRACE_S: Final = (
    5.0  # in-flight work gets this long; the whole exit stays under 10 s (D14)
)

_DURATION_UNITS: Final = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
_STRICT_TTL_RE: Final = re.compile(r"^(\d+)\s*([smhd])$")
_INT_RE: Final = re.compile(r"^\s*([+-]?\d+)")


def parse_js_int(value: str | None, default: int, lo: int, hi: int) -> int:
    """JavaScript parseInt semantics: unset, empty or junk → default; then clamp to lo..hi."""
    match = _INT_RE.match(value or "")
    number = int(match.group(1)) if match else default
    return max(lo, min(hi, number))


def parse_duration_s(value: str, default_s: int) -> int:
    """A jose-style duration (`15m`, `7d`, `2 hours`) in whole seconds; junk → default."""
    match = _DURATION_RE.match(value)
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        return default_s
    seconds = int(float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])
    return seconds if seconds >= 1 else default_s


def parse_strict_ttl_s(value: str, default_s: int) -> int:
    """The stricter `<n>[smhd]` rule the reference uses for DB expiry and the cookie (§4.2)."""
    match = _STRICT_TTL_RE.match(value)
    if not match:
        return default_s
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _nonempty(value: str | None) -> str | None:
    return value if value else None


def _optional_flag(value: str | None) -> bool | None:
    return None if value is None or value.strip() == "" else _flag(value, False)


def _storage_provider(env: Mapping[str, str]) -> str:
    """AgentIM's STORAGE_PROVIDER, or STORAGE as a shorter alias; anything but s3 is local."""
    raw = (env.get("STORAGE_PROVIDER") or env.get("STORAGE") or "local").strip().lower()
    return "s3" if raw == "s3" else "local"


def _environment(env: Mapping[str, str]) -> str:
    raw = (env.get("AGENTIM_ENV") or env.get("NODE_ENV") or "development").strip().lower()
    return raw if raw in ENVIRONMENTS else "development"


def _log_level(env: Mapping[str, str], environment: str) -> str:
    default = "info" if environment == "production" else "debug"
    raw = (env.get("LOG_LEVEL") or "").strip().lower()
    if raw == "warning":
        raw = "warn"
    return raw if raw in LOG_LEVELS else default


def _mime_types(value: str | None) -> tuple[str, ...]:
    if not value or not value.strip():
        return DEFAULT_MIME_TYPES
    return tuple(item.strip().lower() for item in value.split(",") if item.strip())


def _secret_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


@attrs.frozen(kw_only=True)
class Settings:
    """Every knob of the hub. Secrets are redacted in repr()."""

    env: str = "development"
    host: str = "0.0.0.0"
    port: int = 3000
    data_dir: Path = Path("data")
    database_url: str | None = attrs.field(default=None, repr=_secret_repr)
    redis_url: str | None = attrs.field(default=None, repr=_secret_repr)
    redis_key_prefix: str = ""  # tests and shared Redis servers; operators normally leave it empty
    run_migrations: bool = True
    db_pool_size: int = 20
    jwt_secret: str | None = attrs.field(default=None, repr=_secret_repr)
    jwt_secret_previous: str | None = attrs.field(default=None, repr=_secret_repr)
    jwt_access_expiry: str = "15m"
    jwt_refresh_expiry: str = "7d"
    cors_origin: str = "http://localhost:5173"
    admin_username: str = "admin"
    admin_password: str | None = attrs.field(default=None, repr=_secret_repr)
    encryption_key: str | None = attrs.field(default=None, repr=_secret_repr)
    # OAuth clients (config D2): a provider is listed by /api/auth/oauth/providers once both its
    # id and secret are set (http/oauth.py serves the sign-in, link and unlink flows).
    oauth_github_client_id: str | None = None
    oauth_github_client_secret: str | None = attrs.field(default=None, repr=_secret_repr)
    oauth_google_client_id: str | None = None
    oauth_google_client_secret: str | None = attrs.field(default=None, repr=_secret_repr)
    # OAUTH_TEST_PROVIDER_URL: tests only. With AGENTIM_ENV=test, the providers' authorize, token
    # and user-info endpoints are taken under this base URL instead (auth/oauth.py, test_endpoints);
    # in any other environment it is ignored.
    oauth_test_provider_url: str | None = None
    bcrypt_rounds: int = 12
    upload_dir: Path = Path("uploads")
    web_dir: Path | None = None
    max_file_size: int = 10 * 1024 * 1024
    allowed_mime_types: tuple[str, ...] = DEFAULT_MIME_TYPES
    trust_proxy: bool = False
    trust_proxy_hops: int = 1
    log_level: str = "debug"
    sentry_dsn: str | None = None
    metrics_auth_enabled: bool = True
    router_allow_private_networks: bool = False
    max_agent_chain_depth: int = 5
    agent_rate_limit_window: int = 60
    agent_rate_limit_max: int = 20
    client_rate_limit_window: int = 10
    client_rate_limit_max: int = 30
    max_ws_connections_per_user: int = 10
    max_total_ws_connections: int = 5000
    max_gateways_per_user: int = 20
    orphan_file_check_interval_s: float = 3600.0
    token_cleanup_interval_s: float = 3600.0
    gateway_cleanup_interval_s: float = 86400.0  # config row D5: a pass a day
    gateway_max_offline_days: int = 30  # gateways offline longer than this are deleted
    ws_auth_timeout_s: float = 10.0
    ws_ping_interval_s: float = 30.0
    # A hub process is taken for dead once its liveness key has not been renewed for this long
    # (it beats every third of it); what it owned is then reclaimed by a live process within
    # hub_reclaim_interval_s (docs/WEBSOCKET.md "Crashed processes").
    hub_liveness_ttl_s: float = 30.0
    hub_reclaim_interval_s: float = 10.0
    ws_outbox_frames: int = 2048  # per socket; a slower consumer is closed (STYLE §5.11)
    max_client_frame_bytes: int = 128 * 1024  # D20
    max_gateway_frame_bytes: int = 11 * 1024 * 1024  # D20
    max_agent_message_bytes: int = 10 * 1024 * 1024  # D20, the seed's 10MB
    max_message_length: int = 100_000  # D20, user content in UTF-16 units
    # Where upload bytes live (AgentIM's STORAGE_PROVIDER): "local" (upload_dir) or "s3".
    storage_provider: str = "local"
    s3_bucket: str = ""
    s3_region: str = "auto"
    s3_endpoint: str | None = None
    s3_access_key_id: str = attrs.field(default="", repr=_secret_repr)
    s3_secret_access_key: str = attrs.field(default="", repr=_secret_repr)
    s3_force_path_style: bool | None = None  # None: path style when an endpoint is set
    # --- issue 21 items 7-8 (push branch) ---
    # Web Push (head-gap A15, config D4): VAPID keys from VAPID_* or, when unset, generated once
    # into the data directory's secrets file (agentim/devsecrets.py ensure_vapid_keys).
    vapid_public_key: str | None = None
    vapid_private_key: str | None = attrs.field(default=None, repr=_secret_repr)
    vapid_subject: str = "mailto:noreply@agentim.app"
    push_queue_size: int = 1000  # messages waiting for their pushes; more are dropped (logged)
    push_concurrency: int = 8  # push-service requests in flight per process
    push_timeout_s: float = 10.0  # one push-service request, connect to answer
    push_allow_private_networks: bool = False  # tests: a local push endpoint
    audit_log_retention_days: int = 90  # config D6
    audit_log_cleanup_interval_s: float = 86400.0
    router_llm_timeout_s: float = 15.0  # config D7
    router_llm_max_agents: int = 20
    # TOTP two-factor login (head-gap A4, config D3): the issuer named in otpauth URIs.
    totp_issuer: str = "AgentIM"
    # --- service agents (head-gap A3) ---
    service_agent_timeout_s: float = 120.0  # one reply, from the provider call to its last chunk
    service_agent_poll_interval_s: float = 10.0  # a polled job's status (video), as the reference

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_test(self) -> bool:
        return self.env == "test"

    @property
    def oauth_providers(self) -> list[str]:
        """Providers with both a client id and a secret, in the reference's order."""
        pairs = (
            ("github", self.oauth_github_client_id, self.oauth_github_client_secret),
            ("google", self.oauth_google_client_id, self.oauth_google_client_secret),
        )
        return [name for name, client_id, secret in pairs if client_id and secret]

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """CORS_ORIGIN as a comma-separated list of exact origins (config D10)."""
        return tuple(part.strip() for part in self.cors_origin.split(",") if part.strip())

    @property
    def access_ttl_s(self) -> int:
        return parse_duration_s(self.jwt_access_expiry, 900)

    @property
    def refresh_ttl_s(self) -> int:
        return parse_duration_s(self.jwt_refresh_expiry, 7 * 86400)

    @property
    def refresh_store_ttl_s(self) -> int:
        """DB expiry and cookie Max-Age (api.md §4.2 stricter rule)."""
        return parse_strict_ttl_s(self.jwt_refresh_expiry, 7 * 86400)

    @property
    def revocation_ttl_s(self) -> int:
        """TTL of `revoked:<userId>` (api.md §4.4): case-insensitive `<n>[smhd]`, else 900."""
        ttl = parse_strict_ttl_s(self.jwt_access_expiry.strip().lower(), 900)
        return ttl if ttl >= 1 else 900

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        environment = _environment(env)
        production = environment == "production"
        cors_default = "" if production else "http://localhost:5173"
        web_dir = _nonempty(env.get("WEB_DIR"))
        settings = cls(
            env=environment,
            host=env.get("HOST", "0.0.0.0") or "0.0.0.0",
            port=parse_js_int(env.get("PORT"), 3000, 1, 65535),
            data_dir=Path(env.get("DATA_DIR") or "data"),
            database_url=_nonempty(env.get("DATABASE_URL")),
            redis_url=_nonempty(env.get("REDIS_URL")),
            redis_key_prefix=env.get("REDIS_KEY_PREFIX", ""),
            run_migrations=_flag(env.get("RUN_MIGRATIONS"), True),
            db_pool_size=parse_js_int(env.get("DB_POOL_SIZE"), 20, 2, 200),
            jwt_secret=_nonempty(env.get("JWT_SECRET")),
            jwt_secret_previous=_nonempty(env.get("JWT_SECRET_PREVIOUS")),
            jwt_access_expiry=env.get("JWT_ACCESS_EXPIRY") or "15m",
            jwt_refresh_expiry=env.get("JWT_REFRESH_EXPIRY") or "7d",
            cors_origin=env.get("CORS_ORIGIN", cors_default),
            admin_username=env.get("ADMIN_USERNAME") or "admin",
            admin_password=_nonempty(env.get("ADMIN_PASSWORD")),
            encryption_key=_nonempty(env.get("ENCRYPTION_KEY")),
            oauth_github_client_id=_nonempty(env.get("OAUTH_GITHUB_CLIENT_ID")),
            oauth_github_client_secret=_nonempty(env.get("OAUTH_GITHUB_CLIENT_SECRET")),
            oauth_google_client_id=_nonempty(env.get("OAUTH_GOOGLE_CLIENT_ID")),
            oauth_google_client_secret=_nonempty(env.get("OAUTH_GOOGLE_CLIENT_SECRET")),
            oauth_test_provider_url=_nonempty(env.get("OAUTH_TEST_PROVIDER_URL")),
            bcrypt_rounds=parse_js_int(env.get("BCRYPT_ROUNDS"), 12, 4, 16),
            upload_dir=Path(env.get("UPLOAD_DIR") or "uploads"),
            web_dir=Path(web_dir) if web_dir else None,
            max_file_size=parse_js_int(env.get("MAX_FILE_SIZE"), 10485760, 1, 2**40),
            allowed_mime_types=_mime_types(env.get("ALLOWED_MIME_TYPES")),
            trust_proxy=env.get("TRUST_PROXY") == "true",
            trust_proxy_hops=parse_js_int(env.get("TRUST_PROXY_HOPS"), 1, 1, 10),
            log_level=_log_level(env, environment),
            sentry_dsn=_nonempty(env.get("SENTRY_DSN")),
            metrics_auth_enabled=_flag(env.get("METRICS_AUTH_ENABLED"), True),
            router_allow_private_networks=_flag(env.get("ROUTER_ALLOW_PRIVATE_NETWORKS"), False),
            max_agent_chain_depth=parse_js_int(env.get("MAX_AGENT_CHAIN_DEPTH"), 5, 1, 100),
            agent_rate_limit_window=parse_js_int(env.get("AGENT_RATE_LIMIT_WINDOW"), 60, 1, 3600),
            agent_rate_limit_max=parse_js_int(env.get("AGENT_RATE_LIMIT_MAX"), 20, 1, 1000),
            client_rate_limit_window=parse_js_int(env.get("CLIENT_RATE_LIMIT_WINDOW"), 10, 1, 300),
            client_rate_limit_max=parse_js_int(env.get("CLIENT_RATE_LIMIT_MAX"), 30, 1, 1000),
            max_ws_connections_per_user=parse_js_int(
                env.get("MAX_WS_CONNECTIONS_PER_USER"), 10, 1, 100
            ),
            max_total_ws_connections=parse_js_int(
                env.get("MAX_TOTAL_WS_CONNECTIONS"), 5000, 10, 100000
            ),
            max_gateways_per_user=parse_js_int(env.get("MAX_GATEWAYS_PER_USER"), 20, 1, 100),
            orphan_file_check_interval_s=parse_js_int(
                env.get("ORPHAN_FILE_CHECK_INTERVAL"), 3600000, 60000, 2**40
            )
            / 1000,
            token_cleanup_interval_s=parse_js_int(
                env.get("TOKEN_CLEANUP_INTERVAL"), 3600000, 60000, 2**40
            )
            / 1000,
            gateway_cleanup_interval_s=parse_js_int(
                env.get("GATEWAY_CLEANUP_INTERVAL"), 86400000, 60000, 2**40
            )
            / 1000,
            gateway_max_offline_days=parse_js_int(
                env.get("GATEWAY_MAX_OFFLINE_DAYS"), 30, 1, 100_000
            ),
            ws_auth_timeout_s=parse_js_int(env.get("WS_AUTH_TIMEOUT_MS"), 10000, 100, 600000)
            / 1000,
            ws_ping_interval_s=parse_js_int(env.get("WS_PING_INTERVAL_MS"), 30000, 1000, 3600000)
            / 1000,
            hub_liveness_ttl_s=parse_js_int(env.get("HUB_LIVENESS_TTL_MS"), 30000, 1000, 600000)
            / 1000,
            hub_reclaim_interval_s=parse_js_int(
                env.get("HUB_RECLAIM_INTERVAL_MS"), 10000, 100, 600000
            )
            / 1000,
            ws_outbox_frames=parse_js_int(env.get("WS_OUTBOX_FRAMES"), 2048, 16, 1_000_000),
            max_client_frame_bytes=parse_js_int(
                _either(env, "MAX_CLIENT_FRAME_BYTES", "MAX_WS_MESSAGE_SIZE"), 131072, 1024, 2**26
            ),
            max_gateway_frame_bytes=parse_js_int(
                _either(env, "MAX_GATEWAY_FRAME_BYTES", "MAX_GATEWAY_MESSAGE_SIZE"),
                11534336,
                1024,
                2**28,
            ),
            max_agent_message_bytes=parse_js_int(
                env.get("MAX_AGENT_MESSAGE_BYTES"), 10485760, 1024, 256 * 1024 * 1024
            ),
            max_message_length=parse_js_int(env.get("MAX_MESSAGE_LENGTH"), 100000, 1, 10_000_000),
            storage_provider=_storage_provider(env),
            s3_bucket=env.get("S3_BUCKET") or "",
            s3_region=env.get("S3_REGION") or "auto",
            s3_endpoint=_nonempty(env.get("S3_ENDPOINT")),
            s3_access_key_id=env.get("S3_ACCESS_KEY_ID") or "",
            s3_secret_access_key=env.get("S3_SECRET_ACCESS_KEY") or "",
            s3_force_path_style=_optional_flag(env.get("S3_FORCE_PATH_STYLE")),
            totp_issuer=env.get("TOTP_ISSUER") or "AgentIM",
            # --- service agents (head-gap A3) ---
            service_agent_timeout_s=parse_js_int(
                env.get("SERVICE_AGENT_TIMEOUT_MS"), 120000, 1000, 3600000
            )
            / 1000,
        )
        return _with_push_branch_fields(settings, env)


def _either(env: Mapping[str, str], name: str, alias: str) -> str | None:
    """The hub's own name when set and not empty, else AgentIM's name for it (config D8)."""
    return env.get(name) or env.get(alias)


def _with_push_branch_fields(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Web Push, audit retention and router-LLM limits (issue 21 items 7-8)."""
    return attrs.evolve(
        settings,
        vapid_public_key=_nonempty((env.get("VAPID_PUBLIC_KEY") or "").strip()),
        vapid_private_key=_nonempty((env.get("VAPID_PRIVATE_KEY") or "").strip()),
        vapid_subject=(env.get("VAPID_SUBJECT") or "").strip() or "mailto:noreply@agentim.app",
        push_allow_private_networks=_flag(env.get("PUSH_ALLOW_PRIVATE_NETWORKS"), False),
        audit_log_retention_days=parse_js_int(env.get("AUDIT_LOG_RETENTION_DAYS"), 90, 1, 100_000),
        audit_log_cleanup_interval_s=parse_js_int(
            env.get("AUDIT_LOG_CLEANUP_INTERVAL"), 86400000, 60000, 2**40
        )
        / 1000,
        router_llm_timeout_s=parse_js_int(env.get("ROUTER_LLM_TIMEOUT_MS"), 15000, 1000, 120000)
        / 1000,
        router_llm_max_agents=parse_js_int(env.get("ROUTER_LLM_MAX_AGENTS"), 20, 1, 1000),
    )


_PASSWORD_CLASSES: Final = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"))


def is_strong_password(password: str) -> bool:
    """The admin seeding rule (api.md §4.11): ≥8 characters with lower, upper and digit."""
    return len(password) >= 8 and all(rx.search(password) for rx in _PASSWORD_CLASSES)


def cors_origin_problem(origin: str) -> str | None:
    """Why CORS_ORIGIN is not an exact origin, or None."""
    if not origin:
        return "CORS_ORIGIN must be set in production"
    parts = urlsplit(origin)
    exact = (
        "*" not in origin
        and parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.path == ""
        and not parts.query
        and not parts.fragment
    )
    if exact:
        return None
    return (
        "CORS_ORIGIN must be an exact origin such as https://your-domain.com "
        "(no wildcard, no trailing slash, no path)"
    )


def redis_url_problem(url: str) -> str | None:
    scheme = urlsplit(url).scheme
    if scheme in REDIS_SCHEMES:
        return None
    return (
        "REDIS_URL must use redis://, rediss://, unix:// or redis+sentinel:// "
        f"(got {scheme or 'no scheme'}://)"
    )


def storage_problem(settings: Settings) -> str | None:
    """What STORAGE_PROVIDER=s3 lacks; fatal in every environment (nowhere to put uploads)."""
    if settings.storage_provider != "s3":
        return None
    missing = [
        name
        for name, value in (
            ("S3_BUCKET", settings.s3_bucket),
            ("S3_ACCESS_KEY_ID", settings.s3_access_key_id),
            ("S3_SECRET_ACCESS_KEY", settings.s3_secret_access_key),
        )
        if not value
    ]
    return f"STORAGE_PROVIDER=s3 requires: {', '.join(missing)}" if missing else None


def problems(settings: Settings) -> list[str]:
    """Every configuration problem; in production each is fatal (api.md §16.2)."""
    found: list[str] = []
    if settings.redis_url is not None and (issue := redis_url_problem(settings.redis_url)):
        found.append(issue)
    if issue := storage_problem(settings):
        found.append(issue)
    if not settings.is_production:
        return found
    secret = settings.jwt_secret or ""
    if secret == DEFAULT_JWT_SECRET or len(secret) < 32:
        found.append("JWT_SECRET must be at least 32 characters long")
    if not settings.encryption_key:
        found.append("ENCRYPTION_KEY is required")
    elif len(settings.encryption_key) < 32:
        found.append("ENCRYPTION_KEY must be at least 32 characters long")
    if not settings.database_url:
        found.append("DATABASE_URL is required in production")
    if not settings.redis_url:
        found.append("REDIS_URL is required in production")
    origins = settings.cors_origins or ("",)
    found.extend(issue for o in origins if (issue := cors_origin_problem(o)) is not None)
    if settings.admin_password is not None and not is_strong_password(settings.admin_password):
        found.append(
            "ADMIN_PASSWORD does not meet complexity requirements "
            "(at least 8 characters with a lowercase letter, an uppercase letter and a digit)"
        )
    return found

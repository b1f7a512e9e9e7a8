"""OAuth 2.0 clients for GitHub and Google sign-in (head-gap A5): the authorize URL, the code
exchange and the profile fetch, as AgentIM 631a1ad does them.

The protocol work (authorize URL, token request, Bearer header) is Authlib's httpx integration
(`AsyncOAuth2Client`: an httpx client, so it runs on trio through anyio). Every exchange runs
under one deadline (`EXCHANGE_TIMEOUT_S`) and httpx's own timeouts; redirects are not followed.

The provider endpoints are fixed constants (never user input, so no SSRF check applies). Tests
replace them with a fake provider on loopback: `endpoints(provider, test_base_url)` with the
OAUTH_TEST_PROVIDER_URL setting, which `Settings` honours only when AGENTIM_ENV=test (see
`provider_endpoints`). Under that base URL the fake serves `/<provider>/authorize`,
`/<provider>/token`, `/<provider>/user` and, for GitHub, `/github/emails`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import httpx
import httpx2
import trio

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` package and warns when it falls back to `httpx`, which is
    # what the hub uses everywhere else; the httpx integration itself is unchanged.
    import authlib.deprecate  # sets its own "always" filter, which the next line overrides

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.common.errors import AuthlibBaseError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from agentim.settings import Settings

log = logging.getLogger("OAuth")

Provider = Literal["github", "google"]
PROVIDERS: Final[tuple[Provider, ...]] = ("github", "google")
EXCHANGE_TIMEOUT_S: Final = 15.0  # code exchange plus profile fetch, all requests together
REQUEST_TIMEOUT_S: Final = 10.0  # httpx's connect/read/write/pool timeout for each request


@attrs.frozen
class Endpoints:
    authorize_url: str
    token_url: str
    user_url: str
    emails_url: str | None  # GitHub only: the verified e-mail addresses
    scopes: tuple[str, ...]
    authorize_extra: tuple[tuple[str, str], ...] = ()


GITHUB: Final = Endpoints(
    authorize_url="https://github.com/login/oauth/authorize",
    token_url="https://github.com/login/oauth/access_token",
    user_url="https://api.github.com/user",
    emails_url="https://api.github.com/user/emails",
    scopes=("read:user", "user:email"),
)
GOOGLE: Final = Endpoints(
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    user_url="https://www.googleapis.com/oauth2/v2/userinfo",
    emails_url=None,
    scopes=("openid", "email", "profile"),
    # Google returns a refresh token only with offline access and a consent prompt.
    authorize_extra=(("access_type", "offline"), ("prompt", "consent")),
)
_REAL: Final[Mapping[Provider, Endpoints]] = {"github": GITHUB, "google": GOOGLE}


def endpoints(provider: Provider, test_base_url: str | None = None) -> Endpoints:
    """The provider's endpoints, or those of a fake provider under `test_base_url`."""
    real = _REAL[provider]
    if test_base_url is None:
        return real
    base = f"{test_base_url.rstrip('/')}/{provider}"
    return attrs.evolve(
        real,
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        user_url=f"{base}/user",
        emails_url=f"{base}/emails" if real.emails_url else None,
    )


def provider_endpoints(settings: Settings, provider: Provider) -> Endpoints:
    """OAUTH_TEST_PROVIDER_URL counts only when AGENTIM_ENV=test."""
    test_base = settings.oauth_test_provider_url if settings.is_test else None
    return endpoints(provider, test_base)


def credentials(settings: Settings, provider: Provider) -> tuple[str, str] | None:
    """The client id and secret, or None when the provider is not configured."""
    pair = {
        "github": (settings.oauth_github_client_id, settings.oauth_github_client_secret),
        "google": (settings.oauth_google_client_id, settings.oauth_google_client_secret),
    }[provider]
    client_id, secret = pair
    return (client_id, secret) if client_id and secret else None


@attrs.frozen
class Profile:
    """What a provider says about the signed-in account; the tokens are in clear here."""

    provider_account_id: str
    email: str | None
    display_name: str | None
    avatar_url: str | None
    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(default=None, repr=False)


class OAuthFailed(Exception):
    """The exchange or the profile fetch failed; the message names no secret."""


def _client(client_id: str, secret: str, ends: Endpoints, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        scope=" ".join(ends.scopes),
        redirect_uri=redirect_uri,
        # As the reference: id and secret in the form body (both providers accept it).
        token_endpoint_auth_method="client_secret_post",
        timeout=REQUEST_TIMEOUT_S,  # a number: Authlib runs on httpx or httpx2, whichever it finds
        follow_redirects=False,
        trust_env=False,
    )


def authorization_url(client_id: str, ends: Endpoints, *, state: str, redirect_uri: str) -> str:
    """Where the browser is sent to sign in with the provider."""
    client = _client(client_id, "", ends, redirect_uri)
    url, _ = client.create_authorization_url(
        ends.authorize_url, state=state, **dict(ends.authorize_extra)
    )
    return str(url)


async def fetch_profile(
    provider: Provider, client_id: str, secret: str, ends: Endpoints, *, code: str,
    redirect_uri: str,
) -> Profile:  # fmt: skip
    """Exchange `code` for tokens and read the account's profile.

    Raises:
        OAuthFailed: the provider refused, answered something unusable or took longer than
            EXCHANGE_TIMEOUT_S.
    """
    try:
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            async with _client(client_id, secret, ends, redirect_uri) as client:
                token = await client.fetch_token(
                    ends.token_url, code=code, grant_type="authorization_code"
                )
                user = await _get_json(client, ends.user_url)
                emails = await _github_emails(client, ends.emails_url)
    except trio.TooSlowError:
        raise OAuthFailed(f"{provider} did not answer within {EXCHANGE_TIMEOUT_S:g}s") from None
    except (AuthlibBaseError, httpx.HTTPError, httpx2.HTTPError, ValueError) as exc:
        raise OAuthFailed(f"{provider}: {type(exc).__name__}: {exc}") from None
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthFailed(f"{provider}: no access token in the token response")
    refresh = token.get("refresh_token")
    refresh_token = refresh if isinstance(refresh, str) and refresh else None
    parse = parse_github if provider == "github" else parse_google
    return parse(user, emails, access_token, refresh_token)


async def _get_json(client: AsyncOAuth2Client, url: str) -> Any:
    response = await client.get(url, headers={"Accept": "application/json"})
    if response.status_code != 200:
        raise OAuthFailed(f"profile request answered {response.status_code}")
    return response.json()


async def _github_emails(client: AsyncOAuth2Client, url: str | None) -> Any:
    """GitHub's e-mail list; a failure leaves the e-mail unknown, as in the reference."""
    if url is None:
        return None
    response = await client.get(url, headers={"Accept": "application/json"})
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _account_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise OAuthFailed("the profile has no account id")
    return str(value)


def parse_github(user: Any, emails: Any, access_token: str, refresh_token: str | None) -> Profile:
    """GitHub's /user and /user/emails: the primary verified address, else any verified one."""
    if not isinstance(user, dict):
        raise OAuthFailed("the profile is not an object")
    email = None
    if isinstance(emails, list):
        verified = [
            e for e in emails if isinstance(e, dict) and e.get("verified") is True
            and isinstance(e.get("email"), str)
        ]  # fmt: skip
        primary = [e for e in verified if e.get("primary") is True]
        chosen = primary or verified
        email = chosen[0]["email"] if chosen else None
    return Profile(
        provider_account_id=_account_id(user.get("id")),
        email=email,
        display_name=_opt_str(user, "name") or _opt_str(user, "login"),
        avatar_url=_opt_str(user, "avatar_url"),
        access_token=access_token,
        refresh_token=refresh_token,
    )


def parse_google(user: Any, emails: Any, access_token: str, refresh_token: str | None) -> Profile:
    """Google's v2 userinfo."""
    del emails
    if not isinstance(user, dict):
        raise OAuthFailed("the profile is not an object")
    return Profile(
        provider_account_id=_account_id(user.get("id")),
        email=_opt_str(user, "email"),
        display_name=_opt_str(user, "name"),
        avatar_url=_opt_str(user, "picture"),
        access_token=access_token,
        refresh_token=refresh_token,
    )

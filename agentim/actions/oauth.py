"""OAuth sign-in, linking and unlinking (head-gap A5, A6), as AgentIM 631a1ad.

A flow starts with a one-time `state`: kept in Redis as `oauth_state:<state>` for ten minutes
(naming the provider and, for a link, the signed-in user) and in the browser's
`agentim_oauth_state` cookie. The callback needs both: the Redis entry is consumed first, then
the cookie must hold the same value.

A provider account already linked signs in its user; an unknown one creates a new user without a
password (never linked by e-mail: a provider may not have verified it). A link attaches the
provider account to the user who started the flow.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Final, Literal

import attrs

from agentim.actions.audit import audit
from agentim.actions.auth import TokenPair, start_session
from agentim.auth import crypto, oauth as provider_api
from agentim.auth.oauth import OAuthFailed, Profile, Provider
from agentim.errors import AgentImError, bad_request, not_found
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import oauth_accounts, users
from agentim.store.db import UNIQUE_VIOLATION, DbError
from agentim.store.kv import KvUnavailable

log = logging.getLogger("OAuth")

STATE_PREFIX: Final = "oauth_state:"
STATE_TTL_S: Final = 600  # as the reference: ten minutes to come back from the provider
STATE_BYTES: Final = 24  # 32 URL-safe characters
USERNAME_BASE_MAX: Final = 40
USERNAME_SEQUENTIAL_TRIES: Final = 100
LAST_METHOD: Final = "Cannot unlink last authentication method"
TOO_MANY_PENDING: Final = "Too many pending OAuth requests, try again later"


def parse_provider(name: str) -> Provider:
    """400 `Invalid provider` for anything but github and google."""
    for provider in provider_api.PROVIDERS:
        if name == provider:
            return provider
    raise bad_request("Invalid provider")


def configured(services: Services, provider: Provider) -> tuple[str, str]:
    pair = provider_api.credentials(services.live.current, provider)
    if pair is None:
        raise bad_request("Provider not configured")
    return pair


async def begin(
    services: Services, provider: Provider, *, redirect_uri: str, link_user_id: str | None = None
) -> tuple[str, str]:
    """Store a fresh state; returns (state, the provider's authorize URL)."""
    client_id, _ = configured(services, provider)
    state = secrets.token_urlsafe(STATE_BYTES)
    entry: dict[str, str] = {"provider": provider}
    if link_user_id is not None:
        entry["linkUserId"] = link_user_id
    await _keep_state(services, state, json.dumps(entry))
    ends = provider_api.provider_endpoints(services.live.current, provider)
    url = provider_api.authorization_url(client_id, ends, state=state, redirect_uri=redirect_uri)
    return state, url


async def _keep_state(services: Services, state: str, entry: str) -> None:
    """In Redis; while Redis is unreachable, in this process (429 past its bound)."""
    try:
        await services.kv.set(STATE_PREFIX + state, entry, ex=STATE_TTL_S)
    except KvUnavailable:
        log.warning("Redis unavailable for the OAuth state; keeping it in this process")
        if not services.oauth_states.put(state, entry, STATE_TTL_S):
            raise AgentImError(429, TOO_MANY_PENDING) from None


async def begin_link(
    services: Services, provider: Provider, user_id: str, *, redirect_uri: str
) -> tuple[str, str]:
    """As `begin`, for a signed-in user; 400 `Already linked` if the provider already is."""
    configured(services, provider)
    if await oauth_accounts.get_for_user(services.db, user_id, provider) is not None:
        raise bad_request("Already linked")
    return await begin(services, provider, redirect_uri=redirect_uri, link_user_id=user_id)


@attrs.frozen
class Outcome:
    """How a callback ended: `error` is the code the browser is redirected with."""

    kind: Literal["login", "linked", "error"]
    provider: str
    error: str = ""
    tokens: TokenPair | None = None
    linking: bool = False  # the error happened in a link flow (the browser goes to Settings)


def _failed(provider: str, code: str, *, linking: bool = False) -> Outcome:
    return Outcome("error", provider, error=code, linking=linking)


async def _consume_state(services: Services, state: str, provider: str) -> dict[str, str] | None:
    try:
        raw = await services.kv.getdel(STATE_PREFIX + state)
    except KvUnavailable:
        raw = None
    if raw is None:  # perhaps kept here while Redis was unreachable
        raw = services.oauth_states.take(state)
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("provider") != provider:
        return None
    return {k: v for k, v in entry.items() if isinstance(v, str)}


async def finish(
    services: Services, provider: Provider, *, code: str, state: str, cookie_state: str | None,
    redirect_uri: str, ip: str,
) -> Outcome:  # fmt: skip
    """The callback after the state checks of the caller: exchange, then sign in or link."""
    entry = await _consume_state(services, state, provider)
    if entry is None:
        return _failed(provider, "invalid_state")
    if cookie_state != state:
        return _failed(provider, "state_mismatch")
    link_user_id = entry.get("linkUserId")
    pair = provider_api.credentials(services.live.current, provider)
    if pair is None:
        return _failed(provider, "oauth_failed", linking=link_user_id is not None)
    ends = provider_api.provider_endpoints(services.live.current, provider)
    try:
        profile = await provider_api.fetch_profile(
            provider, *pair, ends, code=code, redirect_uri=redirect_uri
        )
    except OAuthFailed as exc:
        log.error("OAuth callback error for %s: %s", provider, exc)
        return _failed(provider, "oauth_failed", linking=link_user_id is not None)
    if link_user_id is not None:
        return await _link(services, provider, link_user_id, profile, ip=ip)
    return await _sign_in(services, provider, profile, ip=ip)


def _sealed(services: Services, profile: Profile) -> dict[str, str | None]:
    key = services.settings.encryption_key
    return {
        "email": profile.email,
        "display_name": profile.display_name,
        "avatar_url": profile.avatar_url,
        "access_token": crypto.seal(profile.access_token, key),
        "refresh_token": crypto.seal(profile.refresh_token, key) if profile.refresh_token else None,
    }


async def _sign_in(services: Services, provider: Provider, profile: Profile, *, ip: str) -> Outcome:
    now = iso_now()
    linked = await oauth_accounts.get_by_provider_account(
        services.db, provider, profile.provider_account_id
    )
    if linked is not None:
        user = await users.get_user(services.db, linked["user_id"])
        if user is None:
            return _failed(provider, "user_not_found")
        user_id, username = user["id"], user["username"]
        await oauth_accounts.update_profile(
            services.db, linked["id"], _sealed(services, profile), now
        )
    else:
        try:
            user_id, username = await _create_user(services, provider, profile, now)
        except DbError as exc:  # the same account, or username, taken by a racing sign-in
            if exc.sqlstate != UNIQUE_VIOLATION:
                raise
            log.warning("OAuth sign-in for %s raced with another; refused", provider)
            return _failed(provider, "oauth_failed")
    tokens = await start_session(services, user_id, username)
    await audit(services.db, "login", user_id=user_id, ip=ip, metadata={"via": f"oauth:{provider}"})
    return Outcome("login", provider, tokens=tokens)


async def _create_user(
    services: Services, provider: Provider, profile: Profile, now: str
) -> tuple[str, str]:
    user_id = new_id()
    username = await unique_username(services, profile.display_name or profile.email or provider)
    async with services.db.transaction() as tx:
        await oauth_accounts.insert_oauth_user(
            tx,
            user_id=user_id,
            username=username,
            display_name=profile.display_name or username,
            avatar_url=profile.avatar_url,
            now=now,
        )
        await oauth_accounts.insert_account(
            tx,
            account_id=new_id(),
            user_id=user_id,
            provider=provider,
            provider_account_id=profile.provider_account_id,
            profile=_sealed(services, profile),
            now=now,
        )
    log.info("New user %s created by %s sign-in", username, provider)
    return user_id, username


def username_base(source: str) -> str:
    """The e-mail's local part (or the name) without anything but [a-zA-Z0-9_], lower case."""
    base = re.sub(r"[^a-zA-Z0-9_]", "", source.split("@")[0]).lower()[:USERNAME_BASE_MAX]
    return base or "user"


async def unique_username(services: Services, source: str) -> str:
    """`base`, `base1`, `base2` …, then `base_<random>`, as the reference."""
    base = username_base(source)
    candidate = base
    for attempt in range(1, USERNAME_SEQUENTIAL_TRIES + 2):
        if not await oauth_accounts.username_taken(services.db, candidate):
            return candidate
        candidate = f"{base}{attempt}"
    return f"{base}_{new_id()[:6]}"


async def _link(
    services: Services, provider: Provider, user_id: str, profile: Profile, *, ip: str
) -> Outcome:
    now = iso_now()
    if await users.get_user(services.db, user_id) is None:
        return _failed(provider, "user_not_found", linking=True)
    owner = await oauth_accounts.get_by_provider_account(
        services.db, provider, profile.provider_account_id
    )
    if owner is not None and owner["user_id"] != user_id:
        return _failed(provider, "already_linked", linking=True)
    if owner is not None:
        await oauth_accounts.update_profile(
            services.db, owner["id"], _sealed(services, profile), now
        )
        return Outcome("linked", provider, linking=True)
    if await oauth_accounts.get_for_user(services.db, user_id, provider) is not None:
        return _failed(provider, "already_linked", linking=True)
    try:
        await oauth_accounts.insert_account(
            services.db,
            account_id=new_id(),
            user_id=user_id,
            provider=provider,
            provider_account_id=profile.provider_account_id,
            profile=_sealed(services, profile),
            now=now,
        )
    except DbError as exc:
        if exc.sqlstate != UNIQUE_VIOLATION:
            raise
        return _failed(provider, "already_linked", linking=True)
    await audit(services.db, "oauth_link", user_id=user_id, ip=ip, metadata={"provider": provider})
    return Outcome("linked", provider, linking=True)


async def unlink(services: Services, user_id: str, provider: Provider, *, ip: str) -> None:
    """Remove the user's link to `provider`.

    Raises:
        AgentImError: 404 `User not found`; 400 `Cannot unlink last authentication method` for a
            user without a password and at most one link; 404 `Not linked`.
    """
    async with services.db.transaction() as tx:
        user = await oauth_accounts.lock_user(tx, user_id)
        if user is None:
            raise not_found("User not found")
        if user["password_hash"] is None and await oauth_accounts.count_for_user(tx, user_id) <= 1:
            raise bad_request(LAST_METHOD)
        if await oauth_accounts.delete_for_user(tx, user_id, provider) == 0:
            raise AgentImError(404, "Not linked")
    await audit(
        services.db, "oauth_unlink", user_id=user_id, ip=ip, metadata={"provider": provider}
    )


async def linked_accounts(services: Services, user_id: str) -> list[dict[str, object]]:
    rows = await oauth_accounts.list_for_user(services.db, user_id)
    return [
        {
            "id": row["id"],
            "provider": row["provider"],
            "providerAccountId": row["provider_account_id"],
            "email": row["email"],
            "displayName": row["display_name"],
            "avatarUrl": row["avatar_url"],
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
        }
        for row in rows
    ]

"""/api/auth TOTP routes (head-gap A4): setup, confirm, disable, and login step two.

Login step two spends the `auth` budget (20/min per IP) as /login does; the three signed-in
routes spend only the `api` budget, as the reference's. The web client draws the QR code
itself from `uri`, so no image is sent.
"""

from __future__ import annotations

import re
from typing import Any, Final

import attrs
from quart import Blueprint, Response

from agentim.actions import totp
from agentim.auth.totp import DIGITS
from agentim.http._request import (
    client_ip,
    json_body,
    ok,
    principal,
    rate_limit,
    require_auth,
    services,
)
from agentim.http.auth import signed_in_response
from agentim.http.docs import documented
from agentim.http.validate import MISSING, Issue, Rule, Str, parse_dict
from agentim.protocol.jsontypes import type_name
from agentim.protocol.textrules import utf16_len

blueprint = Blueprint("totp", __name__)

_CODE_SHAPE: Final = re.compile(rf"[0-9]{{{DIGITS}}}")


@attrs.frozen(kw_only=True)
class TotpCode(Rule):
    """Exactly six ASCII digits; both problems are reported, length first (as zod does)."""

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, str):
            issues.append((path, f"Expected string, received {type_name(value)}"))
            return MISSING
        before = len(issues)
        if utf16_len(value) != DIGITS:
            issues.append((path, f"String must contain exactly {DIGITS} character(s)"))
        if not _CODE_SHAPE.fullmatch(value):
            issues.append((path, "Invalid"))
        return value if len(issues) == before else MISSING

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[0-9]{6}$"}


SETUP_SCHEMA: Final[dict[str, Rule]] = {"code": TotpCode()}
VERIFY_SCHEMA: Final[dict[str, Rule]] = {
    "totpToken": Str(min=1, max=2000),
    "code": Str(min=1, max=20),
}
DISABLE_SCHEMA: Final[dict[str, Rule]] = {"password": Str(min=1)}


@blueprint.post("/api/auth/verify-totp")
@rate_limit("auth")
@documented(body=VERIFY_SCHEMA)
async def verify_totp() -> Response:
    """Login step two: the challenge from /auth/login and a TOTP or backup code."""
    fields = parse_dict(VERIFY_SCHEMA, await json_body())
    signed = await totp.verify_login(
        services(), fields["totpToken"], fields["code"], ip=client_ip()
    )
    return signed_in_response(signed)


@blueprint.post("/api/auth/setup-totp")
@require_auth
async def setup_totp() -> Response:
    """Start 2FA setup: a new secret and its otpauth URI."""
    return ok(await totp.begin_setup(services(), principal().user_id, ip=client_ip()))


@blueprint.post("/api/auth/verify-totp-setup")
@require_auth
@documented(body=SETUP_SCHEMA)
async def verify_totp_setup() -> Response:
    """Confirm 2FA setup with a code; answers the ten backup codes."""
    fields = parse_dict(SETUP_SCHEMA, await json_body())
    user_id = principal().user_id
    codes = await totp.confirm_setup(services(), user_id, fields["code"], ip=client_ip())
    return ok({"backupCodes": codes})


@blueprint.post("/api/auth/disable-totp")
@require_auth
@documented(body=DISABLE_SCHEMA)
async def disable_totp() -> Response:
    """Turn 2FA off (needs the account password)."""
    fields = parse_dict(DISABLE_SCHEMA, await json_body())
    await totp.disable(services(), principal().user_id, fields["password"], ip=client_ip())
    return ok()

"""Unknown paths under a blueprint's prefix: the reference's router-level middleware (auth,
limiters, the path-id check) runs before its plain-text 404 (api.md §2.8, §2.10)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from quart import Blueprint, Response

from agentim.errors import AgentImError
from agentim.http._request import authenticate_header
from agentim.http.pipeline import plain_not_found
from agentim.protocol.ids import is_valid_path_id

ANY_METHOD: Final = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
Guard = Callable[[str], Awaitable[None]]


def add_not_found_routes(blueprint: Blueprint, prefix: str, guard: Guard) -> None:
    """`<prefix>/` and `<prefix>/<anything>` answer the plain 404 once `guard(rest)` passed."""

    async def unknown_path(rest: str = "") -> Response:
        await guard(rest)
        return plain_not_found()

    blueprint.add_url_rule(
        f"{prefix}/", "unknown_path", unknown_path, methods=ANY_METHOD, defaults={"rest": ""},
        strict_slashes=False,
    )  # fmt: skip
    blueprint.add_url_rule(
        f"{prefix}/<path:rest>", "unknown_path", unknown_path, methods=ANY_METHOD
    )


async def authenticated(rest: str) -> None:
    del rest
    await authenticate_header()


def authenticated_with_ids(*names: str) -> Guard:
    """Authenticate, then check the leading path segments as ids: `names` pairs each checked
    position with its parameter name ("" skips a fixed word such as `rooms`)."""

    async def guard(rest: str) -> None:
        await authenticate_header()
        for name, segment in zip(names, rest.split("/"), strict=False):
            if name and segment and not is_valid_path_id(segment):
                raise AgentImError(400, f"Invalid parameter: {name}")

    return guard

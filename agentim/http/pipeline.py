"""The request pipeline of api.md §2: headers, CORS, request ids, logging, API limits, body caps.

Order per request: CORS preflight (answered here) → request id → `api` rate limit → body limit →
route (auth, ids, route limiter) → handler; security headers go on every response.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from quart import Quart, Response, g, request
from quart_trio.wrappers.request import TrioRequest
from werkzeug.datastructures import MultiDict

from agentim.errors import AgentImError
from agentim.http._request import enforce_rate_limit, json_response, refuse_unstorable, services
from agentim.protocol.ids import new_request_id
from agentim.settings import API_BODY_LIMIT_BYTES, UPLOAD_BODY_LIMIT_BYTES

log = logging.getLogger("HTTP")

SECURITY_HEADERS: Final = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Origin-Agent-Cluster": "?1",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=15552000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-DNS-Prefetch-Control": "off",
    "X-Download-Options": "noopen",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Permitted-Cross-Domain-Policies": "none",
    "X-XSS-Protection": "0",
}
PRODUCTION_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; worker-src 'self'; "
        "manifest-src 'self'; upgrade-insecure-requests"
    ),
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
PREFLIGHT_METHODS: Final = "GET,HEAD,PUT,POST,DELETE,PATCH"
REQUEST_ID_MAX: Final = 32


def body_limit(path: str) -> int | None:
    if path == "/api/upload" or path.startswith("/api/upload/"):
        return UPLOAD_BODY_LIMIT_BYTES
    if path.startswith("/api/"):
        return API_BODY_LIMIT_BYTES
    return None


def too_large_message() -> str:
    return "Internal server error" if services().settings.is_production else ""


async def _before() -> Response | None:
    if request.method == "OPTIONS":
        return _preflight()
    g.started = time.perf_counter()
    g.request_id = (request.headers.get("X-Request-ID") or "")[:REQUEST_ID_MAX] or new_request_id()
    if not request.path.startswith("/api/"):
        request.body._max_content_length = None  # /uploads and the SPA: no body limit
        return None
    await enforce_rate_limit("api")
    limit = body_limit(request.path)
    request.body._max_content_length = limit
    if limit is not None and (request.content_length or 0) > limit:
        raise AgentImError(413, too_large_message())
    return None


def _preflight() -> Response:
    response = Response("", status=204)
    response.headers["Access-Control-Allow-Methods"] = PREFLIGHT_METHODS
    asked = request.headers.get("Access-Control-Request-Headers")
    if asked:
        response.headers["Access-Control-Allow-Headers"] = asked
    response.headers["Vary"] = "Origin, Access-Control-Request-Headers"
    g.preflight = True
    return response


def _apply_cors(response: Response) -> None:
    allowed = services().live.current.cors_origin
    origin = request.headers.get("Origin")
    if allowed == "*":
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin and origin in services().live.current.cors_origins:  # a list (config D10)
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    if allowed != "*" and not getattr(g, "preflight", False):
        response.headers["Vary"] = "Origin"


def _apply_security(response: Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if services().settings.is_production:
        for name, value in PRODUCTION_HEADERS.items():
            response.headers[name] = value
    response.headers.pop("X-Powered-By", None)


async def _after(response: Response) -> Response:
    _apply_security(response)
    _apply_cors(response)
    if getattr(g, "preflight", False):
        return response
    for name, value in getattr(g, "rate_headers", {}).items():
        response.headers.setdefault(name, value)
    request_id = getattr(g, "request_id", None) or new_request_id()
    response.headers["X-Request-ID"] = request_id
    _record(response, request_id)
    return response


def _record(response: Response, request_id: str) -> None:
    elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
    metrics = services().metrics
    metrics.http_duration.observe(elapsed)
    if response.status_code >= 400 and request.path.startswith("/api/"):
        metrics.api_errors_total.inc(status=str(response.status_code))
    log.info(
        "%s %s %d %dms",
        request.method,
        request.path,
        response.status_code,
        round(elapsed * 1000),
        extra={"requestId": request_id},
    )


class CheckedRequest(TrioRequest):
    """A request whose query string is checked where a handler first reads it (so after its
    auth): a NUL in a parameter (`?cursor=%00`) is 400 `Validation failed`, never a query that
    PostgreSQL refuses. (Invalid UTF-8 in a query is decoded to U+FFFD; NUL is what remains.)"""

    @property
    def args(self) -> MultiDict[str, str]:
        args = super().args
        for name, value in args.items(multi=True):
            refuse_unstorable({name: value})  # the field named is the parameter
        return args


def plain_not_found() -> Response:
    return Response("404 Not Found", status=404, content_type="text/plain; charset=UTF-8")


def install(app: Quart) -> None:
    """Register the pipeline hooks, the checked request class and the error mapping."""
    app.request_class = CheckedRequest
    app.before_request(_before)
    app.after_request(_after)

    @app.errorhandler(AgentImError)
    async def _agentim_error(error: AgentImError) -> Response:
        body = {"ok": False, "error": error.message, **error.extra}
        return json_response(body, error.status, error.headers)

    @app.errorhandler(404)
    @app.errorhandler(405)
    async def _not_found(_error: Exception) -> Response:
        return plain_not_found()

    @app.errorhandler(413)
    async def _too_large(_error: Exception) -> Response:
        return json_response({"ok": False, "error": too_large_message()}, 413)

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        log.error("Unhandled error on %s %s", request.method, request.path, exc_info=error)
        production = services().settings.is_production
        message = "Internal server error" if production else (str(error) or type(error).__name__)
        status = getattr(error, "code", 500)
        return json_response(
            {"ok": False, "error": message},
            status if isinstance(status, int) and 400 <= status < 600 else 500,
        )

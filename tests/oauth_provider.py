"""A fake OAuth provider on loopback for the OAuth tests (and, run as a script, for a browser
check): GitHub- and Google-shaped authorize, token and user-info endpoints under
`/<provider>/…`, as auth/oauth.py expects with OAUTH_TEST_PROVIDER_URL.

A plain trio TCP server speaking HTTP/1.1 through h11 (httpx's own parser); one request per
connection. The account a sign-in returns is whatever `provider.accounts[<provider>]` holds when
the browser reaches the authorize endpoint.

    python -m tests.oauth_provider PORT   # serves until interrupted, for a manual check
"""

from __future__ import annotations

import json
import secrets
import sys
from functools import partial
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs
import h11
import trio

CLIENT_ID: Final = "fake-client-id"
CLIENT_SECRET: Final = "fake-client-secret"
MAX_REQUEST_BYTES: Final = 64 * 1024
READ_TIMEOUT_S: Final = 10


@attrs.define
class Grant:
    provider: str
    account: dict[str, Any]
    redirect_uri: str
    client_id: str


@attrs.define
class FakeProvider:
    url: str = ""
    accounts: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    codes: dict[str, Grant] = attrs.field(factory=dict)
    tokens: dict[str, Grant] = attrs.field(factory=dict)
    authorize_queries: list[dict[str, str]] = attrs.field(factory=list)
    token_forms: list[dict[str, str]] = attrs.field(factory=list)

    def route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[
        int, dict[str, str], bytes
    ]:  # fmt: skip
        parts = urlsplit(target)
        provider, _, endpoint = parts.path.strip("/").partition("/")
        query = dict(parse_qsl(parts.query))
        if method == "GET" and endpoint == "authorize":
            return self._authorize(provider, query)
        if method == "POST" and endpoint == "token":
            return self._token(provider, dict(parse_qsl(body.decode())))
        if method == "GET" and endpoint in ("user", "emails"):
            return self._profile(provider, endpoint, headers.get("authorization", ""))
        return _json(404, {"error": "not_found"})

    def _authorize(self, provider: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.authorize_queries.append(query)
        account = self.accounts.get(provider)
        if account is None or query.get("response_type") != "code":
            return _json(400, {"error": "invalid_request"})
        code = secrets.token_urlsafe(12)
        self.codes[code] = Grant(provider, account, query["redirect_uri"], query["client_id"])
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"location": location}, b""

    def _token(self, provider: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.token_forms.append(form)
        grant = self.codes.pop(form.get("code", ""), None)
        if (
            grant is None or grant.provider != provider
            or form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant.redirect_uri
        ):  # fmt: skip
            return _json(400, {"error": "bad_verification_code"})
        token = secrets.token_urlsafe(16)
        self.tokens[token] = grant
        answer = {"access_token": token, "token_type": "bearer", "scope": "x"}
        if provider == "google":
            answer["refresh_token"] = "refresh-" + token
        return _json(200, answer)

    def _profile(
        self, provider: str, endpoint: str, authorization: str
    ) -> tuple[int, dict[str, str], bytes]:
        grant = self.tokens.get(authorization.removeprefix("Bearer "))
        if grant is None or grant.provider != provider:
            return _json(401, {"message": "Bad credentials"})
        if endpoint == "emails":
            return _json(200, grant.account.get("_emails", []))
        return _json(200, {k: v for k, v in grant.account.items() if not k.startswith("_")})


def _json(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(payload).encode()


async def _read_request(
    stream: trio.SocketStream, conn: h11.Connection
) -> tuple[h11.Request, bytes]:
    request: h11.Request | None = None
    body = b""
    with trio.fail_after(READ_TIMEOUT_S):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(MAX_REQUEST_BYTES)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    if request is None:
        raise ValueError("no request")
    return request, body


async def _serve_one(provider: FakeProvider, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        request, body = await _read_request(stream, conn)
    except (ValueError, h11.RemoteProtocolError, trio.TooSlowError, trio.BrokenResourceError):
        await stream.aclose()
        return
    headers = {k.decode().lower(): v.decode() for k, v in request.headers}
    status, out_headers, payload = provider.route(
        request.method.decode(), request.target.decode(), headers, body
    )
    response_headers = [
        *out_headers.items(),
        ("content-length", str(len(payload))),
        ("connection", "close"),
    ]
    try:
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=response_headers)))
        await stream.send_all(conn.send(h11.Data(data=payload)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
    except trio.BrokenResourceError:
        pass
    await stream.aclose()


async def serve_provider(
    provider: FakeProvider, port: int = 0, *, task_status: trio.TaskStatus[FakeProvider] = (
        trio.TASK_STATUS_IGNORED
    ),
) -> None:  # fmt: skip
    """Listen on 127.0.0.1:`port` until cancelled; `provider.url` is set once listening."""
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    provider.url = f"http://127.0.0.1:{bound}"
    handler = partial(_serve_one, provider)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        task_status.started(provider)


async def _main(port: int) -> None:
    provider = FakeProvider()
    provider.accounts["github"] = {
        "id": 4242, "login": "octo-browser", "name": "Octo Browser", "avatar_url": None,
        "_emails": [{"email": "octo@example.test", "primary": True, "verified": True}],
    }  # fmt: skip
    provider.accounts["google"] = {"id": "g-4242", "email": "gee@example.test", "name": "Gee"}
    print(f"fake OAuth provider on http://127.0.0.1:{port}", flush=True)
    await serve_provider(provider, port)


if __name__ == "__main__":
    trio.run(_main, int(sys.argv[1]))

"""GET / without WEB_DIR: a small page of our own saying what this hub is, its version and
health, and how to connect the AgentIM web client and a gateway (no script, no CDN)."""

from __future__ import annotations

from html import escape
from typing import Final

from quart import Quart, Response, request

from agentim import __version__
from agentim.http._request import services
from agentim.http.health import timed_checks

CHECK_NAMES: Final = ("PostgreSQL", "Redis", "upload directory")

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AgentIM hub</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d232a; }}
code, pre {{ font-family: ui-monospace, monospace; background: #f1f3f5; border-radius: 4px; }}
pre {{ padding: .75rem 1rem; overflow-x: auto; }}
.ok {{ color: #1a7f37; }} .bad {{ color: #cf222e; }}
</style>
</head>
<body>
<h1>AgentIM hub <small>{version}</small></h1>
<p>This server is an AgentIM hub: chat rooms where people and AI coding agents talk. Browsers
use <code>/ws/client</code>, agent gateways <code>/ws/gateway</code>, and the REST API lives
under <a href="/api/health"><code>/api</code></a>.</p>
<h2>Health: <span class="{health_class}">{health}</span></h2>
<ul>
{checks}
</ul>
<h2>Use it from a browser</h2>
<p>No web client is served here. Build the AgentIM web client and start the hub with
<code>WEB_DIR</code> pointing at its <code>dist</code> directory; it is then served at
this address.</p>
<h2>Connect a gateway</h2>
<p>On the machine that runs your coding agents:</p>
<pre>npm i -g agentim
agentim login -s {url}</pre>
</body>
</html>
"""


def install(app: Quart) -> None:
    @app.route("/", methods=["GET", "HEAD"])
    async def _landing() -> Response:
        results = await timed_checks()
        healthy = all(ok for ok, _ in results)
        checks = "\n".join(
            f'<li>{name}: <span class="{"ok" if ok else "bad"}">{"ok" if ok else "failing"}'
            f"</span> ({ms:g} ms)</li>"
            for name, (ok, ms) in zip(CHECK_NAMES, results, strict=True)
        )
        page = _PAGE.format(
            version=escape(__version__), health="ok" if healthy else "degraded",
            health_class="ok" if healthy else "bad", checks=checks, url=escape(hub_url()),
        )  # fmt: skip
        return Response(page, status=200, content_type="text/html; charset=utf-8")


def hub_url() -> str:
    """This hub's URL as the browser reached it (the request's scheme and Host); werkzeug
    leaves an invalid Host empty, and then the local address stands in."""
    host = request.host or f"localhost:{services().settings.port}"
    return f"{request.scheme}://{host}"

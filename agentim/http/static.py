"""The built web app from WEB_DIR: static files, then the SPA fallback (api.md §16.5); without
WEB_DIR, our landing page at `/` (http/landing.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import trio
from quart import Quart, Response, request, send_file

from agentim.http import landing
from agentim.http.pipeline import plain_not_found

NO_FALLBACK_PREFIXES: Final = ("/api/", "/ws/", "/uploads/")


def _resolve(root: Path, path: str) -> Path | None:
    candidate = (root / path.lstrip("/")).resolve()
    if candidate.is_file() and candidate.is_relative_to(root):
        return candidate
    return None


def install(app: Quart, web_dir: Path | None) -> None:
    if web_dir is None:
        landing.install(app)
        return
    root = web_dir.resolve()

    @app.route("/", defaults={"path": ""}, methods=["GET", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "HEAD"])
    async def _spa(path: str) -> Response:
        found = await trio.to_thread.run_sync(_resolve, root, path)
        if found is not None:
            return await send_file(found)
        if any(request.path.startswith(p) for p in NO_FALLBACK_PREFIXES) or request.path == "/api":
            return plain_not_found()
        index = await trio.to_thread.run_sync(_resolve, root, "index.html")
        return await send_file(index) if index is not None else plain_not_found()

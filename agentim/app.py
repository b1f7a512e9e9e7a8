"""create_app(services): the quart-trio app with the pipeline and every blueprint."""

from __future__ import annotations

from quart_trio import QuartTrio

from agentim.http import (
    admin,
    agents,
    auth,
    bookmarks,
    docs,
    files,
    health,
    messages,
    metrics,
    oauth,
    pipeline,
    push,
    rooms,
    routers,
    service_agents,  # head-gap A3
    spawn,
    static,
    tasks,
    totp,
    uploads,
    users,
)
from agentim.services import Services
from agentim.settings import UPLOAD_BODY_LIMIT_BYTES

BLUEPRINTS = (
    health.blueprint,
    metrics.blueprint,
    docs.blueprint,
    auth.blueprint,
    totp.blueprint,  # TOTP two-factor routes under /api/auth (head-gap A4)
    users.blueprint,
    rooms.blueprint,
    routers.blueprint,
    messages.blueprint,
    tasks.blueprint,
    spawn.blueprint,  # before agents: its /api/agents/* fallbacks must not take the path
    agents.blueprint,
    uploads.blueprint,
    files.blueprint,
    # issue 21: message bookmarks
    bookmarks.blueprint,
    push.blueprint,  # Web Push (issue 21 item 7)
    admin.blueprint,  # /api/admin/settings, /api/admin/metrics (A1, A2)
    service_agents.blueprint,  # head-gap A3
    oauth.blueprint,  # OAuth sign-in, link, unlink (head-gap A5, A6)
)


def create_app(services: Services) -> QuartTrio:
    app = QuartTrio("agentim")
    app.config["MAX_CONTENT_LENGTH"] = UPLOAD_BODY_LIMIT_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.compact = True  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["agentim"] = services
    pipeline.install(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    static.install(app, services.settings.web_dir)  # the web client, else the landing page
    return app

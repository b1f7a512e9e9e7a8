"""create_app(services): the quart-trio app with the pipeline and every blueprint."""

from __future__ import annotations

from quart_trio import QuartTrio

from agentim.http import (
    agents,
    auth,
    docs,
    files,
    health,
    messages,
    metrics,
    oauth,
    pipeline,
    rooms,
    routers,
    spawn,
    static,
    tasks,
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
    users.blueprint,
    rooms.blueprint,
    routers.blueprint,
    messages.blueprint,
    tasks.blueprint,
    spawn.blueprint,  # before agents: its /api/agents/* fallbacks must not take the path
    agents.blueprint,
    uploads.blueprint,
    files.blueprint,
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
    if services.settings.web_dir is not None:
        static.install(app, services.settings.web_dir)
    return app

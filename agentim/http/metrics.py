"""GET /api/metrics: Prometheus text (DIFFERENCES D18), fed by the code paths doing the work."""

from __future__ import annotations

from quart import Blueprint, Response

from agentim.http._request import authenticate_header, services

blueprint = Blueprint("metrics", __name__)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@blueprint.get("/api/metrics")
async def metrics() -> Response:
    svc = services()
    # METRICS_AUTH_ENABLED guards production; a saved `metrics.authEnabled` decides anywhere.
    saved = svc.live.saved("metrics.authEnabled")
    if svc.live.current.metrics_auth_enabled and (svc.settings.is_production or saved):
        await authenticate_header()
    return Response(svc.metrics.render(), status=200, content_type=PROMETHEUS_TYPE)

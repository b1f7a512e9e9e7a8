"""/api/service-agents (head-gap A3): admin CRUD of service agents, the provider list with a
JSON schema per provider for the web client's form, and the validate call.

Every route needs an admin. Bodies are checked the way the reference's zod schemas do, then a
provider's config against that provider's rules (`Invalid provider config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
from quart import Blueprint, Response

from agentim.actions import service_agents as actions
from agentim.errors import AgentImError
from agentim.http._request import (
    check_ids,
    client_ip,
    json_body,
    ok,
    principal,
    require_admin,
    services,
)
from agentim.http.docs import documented
from agentim.http.not_found import add_not_found_routes, authenticated_with_ids
from agentim.http.validate import (
    MISSING,
    Enum,
    Int,
    Issue,
    Rule,
    Str,
    collect,
    fields_of,
)
from agentim.protocol.jsontypes import type_name
from agentim.routing.service_providers import PROVIDERS
from agentim.routing.ssrf import is_valid_url
from agentim.store import service_agents as store

blueprint = Blueprint("service_agents", __name__)

TYPES: Final = ("openai-chat", "perplexity", "openai-image", "elevenlabs", "runway",
                "stability-audio", "meshy", "custom")  # fmt: skip
CATEGORIES: Final = ("chat", "search", "image", "audio", "video", "music", "3d")
STATUSES: Final = ("active", "inactive", "error")
DANGEROUS_KEYS: Final = ("__proto__", "constructor", "prototype")
MODEL_REQUIRED: Final = ("openai-chat", "openai-image", "perplexity", "runway", "meshy")
NAME_BLANK: Final = "validation.nameWhitespace"
ART_STYLES: Final = ("realistic", "cartoon", "low-poly", "sculpture", "pbr")
SPEECH_FORMATS: Final = ("mp3_44100_128", "mp3_22050_32", "pcm_16000", "pcm_24000")


@attrs.frozen(kw_only=True)
class Url(Rule):
    """zod's `string().url()`."""

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, str):
            return Str().check_value(value, path, issues)
        if not is_valid_url(value):
            issues.append((path, "Invalid url"))
            return MISSING
        return value

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "format": "uri"}


@attrs.frozen(kw_only=True)
class Number(Rule):
    """zod's `number().min().max()`."""

    min: float | None = None
    max: float | None = None

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            issues.append((path, f"Expected number, received {type_name(value)}"))
            return MISSING
        before = len(issues)
        if self.min is not None and value < self.min:
            issues.append((path, f"Number must be greater than or equal to {self.min:g}"))
        if self.max is not None and value > self.max:
            issues.append((path, f"Number must be less than or equal to {self.max:g}"))
        return value if len(issues) == before else MISSING

    def openapi(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.min, "maximum": self.max}


@attrs.frozen(kw_only=True)
class Config(Rule):
    """The reference's config record: an object without prototype-polluting keys."""

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, dict):
            issues.append((path, f"Expected object, received {type_name(value)}"))
            return MISSING
        if any(key in DANGEROUS_KEYS for key in value):
            issues.append((path, "validation.configDangerousKey"))
            return MISSING
        return value

    def openapi(self) -> dict[str, Any]:
        return {"type": "object"}


CREATE: Final = {
    "name": Str(min=1, max=100, blank_message=NAME_BLANK),
    "type": Enum(values=TYPES, default="openai-chat"),
    "category": Enum(values=CATEGORIES, optional=True),
    "description": Str(max=1000, optional=True),
    "config": Config(),
}
UPDATE: Final = {
    "name": Str(min=1, max=100, blank_message=NAME_BLANK, optional=True),
    "type": Enum(values=TYPES, optional=True),
    "category": Enum(values=CATEGORIES, optional=True),
    "description": Str(max=1000, optional=True, nullable=True),
    "status": Enum(values=STATUSES, optional=True),
    "config": Config(optional=True),
}
# Each runnable provider's config rules; the JSON schema the form gets is made from them.
PROVIDER_CONFIGS: Final[dict[str, dict[str, Rule]]] = {
    "openai-chat": {
        "baseUrl": Url(),
        "apiKey": Str(min=1),
        "model": Str(min=1),
        "systemPrompt": Str(max=10_000, optional=True),
        "maxTokens": Int(min=1, max=100_000, default=4096),
    },
    "perplexity": {
        "apiKey": Str(min=1),
        "model": Str(min=1, default="sonar"),
        "systemPrompt": Str(max=10_000, optional=True),
        "maxTokens": Int(min=1, max=100_000, default=4096),
        # ours: the API root (the reference always calls Perplexity's own)
        "baseUrl": Url(optional=True),
    },
    "runway": {
        "apiKey": Str(min=1),
        "model": Str(min=1, default="gen4_turbo"),
        "duration": Enum(values=("5", "10"), default="5"),
        "ratio": Enum(values=("16:9", "9:16", "1:1"), default="16:9"),
        # ours: the API root (the reference always calls Runway's own)
        "baseUrl": Url(optional=True),
    },
    "meshy": {
        "apiKey": Str(min=1),
        "artStyle": Enum(values=ART_STYLES, default="realistic"),
        "topology": Enum(values=("quad", "triangle"), default="quad"),
        "targetPolycount": Int(min=100, max=200_000, default=30_000),
        # ours: the API root (the reference always calls Meshy's own)
        "baseUrl": Url(optional=True),
    },
    "openai-image": {
        "baseUrl": Url(default="https://api.openai.com/v1"),
        "apiKey": Str(min=1),
        "model": Str(min=1, default="gpt-image-1"),
        "size": Enum(values=("1024x1024", "1536x1024", "1024x1536", "auto"), default="auto"),
        "quality": Enum(values=("low", "medium", "high", "auto"), default="auto"),
    },
    "elevenlabs": {
        "apiKey": Str(min=1),
        "voiceId": Str(min=1, default="21m00Tcm4TlvDq8ikWAM"),
        "modelId": Str(min=1, default="eleven_multilingual_v2"),
        "stability": Number(min=0, max=1, default=0.5),
        "similarityBoost": Number(min=0, max=1, default=0.75),
        "outputFormat": Enum(values=SPEECH_FORMATS, default="mp3_44100_128"),
        # ours: the API root (the reference always calls ElevenLabs' own)
        "baseUrl": Url(optional=True),
    },
}


def config_schema(rules: Mapping[str, Rule]) -> dict[str, Any]:
    """A JSON schema of the config (what zod-to-json-schema gives the reference's form)."""
    properties = {}
    for name, rule in rules.items():
        spec = {k: v for k, v in rule.openapi().items() if v is not None}
        if rule.default is not MISSING:
            spec["default"] = rule.default
        properties[name] = spec
    required = [n for n, r in rules.items() if not r.optional and r.default is MISSING]
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}  # fmt: skip


def _create_issues(fields: Mapping[str, Any]) -> list[Issue]:
    """The reference's cross-field rules, checked once the fields themselves are valid."""
    config, kind = fields["config"], fields["type"]
    issues: list[Issue] = []
    if kind != "custom" and not config.get("apiKey"):
        issues.append(("config.apiKey", "validation.serviceAgentApiKeyRequired"))
    if kind in MODEL_REQUIRED and not config.get("model"):
        issues.append(("config.model", "validation.serviceAgentModelRequired"))
    if kind == "elevenlabs" and not config.get("voiceId"):
        issues.append(("config.voiceId", "validation.serviceAgentVoiceIdRequired"))
    return issues


def _fail(error: str, issues: list[Issue]) -> AgentImError:
    return AgentImError(400, error, extra={"fields": fields_of(issues)})


def _provider_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config checked against its provider's rules, defaults filled, unknown keys kept."""
    rules = PROVIDER_CONFIGS.get(kind)
    if rules is None:
        return dict(config)
    clean, issues = collect(rules, config)
    if issues:
        raise _fail("Invalid provider config", [(f"config.{p}", m) for p, m in issues])
    return {**config, **clean}


def _validated(schema: Mapping[str, Rule], body: Any) -> dict[str, Any]:
    clean, issues = collect(schema, body)
    if not issues and schema is CREATE:
        issues = _create_issues(clean)
    if issues:
        raise _fail("Validation failed", issues)
    return clean


# routes --------------------------------------------------------------------------------------
@blueprint.get("/api/service-agents/providers")
@require_admin
async def list_providers() -> Response:
    return ok([
        {"type": meta.type, "displayName": meta.display_name, "category": meta.category,
         "description": meta.description, "configSchema": config_schema(PROVIDER_CONFIGS[kind])}
        for kind, meta in PROVIDERS.items()
    ])  # fmt: skip


@blueprint.get("/api/service-agents")
@require_admin
async def list_service_agents() -> Response:
    rows = await store.list_all(services().db)
    return ok([actions.service_agent_json(row) for row in rows])


@blueprint.get("/api/service-agents/<id>")
@require_admin
@check_ids("id")
async def get_service_agent(id: str) -> Response:
    return ok(await actions.get_service_agent(services(), id))


@blueprint.post("/api/service-agents")
@require_admin
@documented(body=CREATE)
async def create_service_agent() -> Response:
    fields = _validated(CREATE, await json_body())
    config = _provider_config(fields["type"], fields.pop("config"))
    meta = PROVIDERS.get(fields["type"])
    fields.setdefault("category", meta.category if meta else "chat")
    created = await actions.create_service_agent(
        services(), user_id=principal().user_id, ip=client_ip(), fields=fields, config=config
    )
    return ok(created, 201)


@blueprint.put("/api/service-agents/<id>")
@require_admin
@check_ids("id")
@documented(body=UPDATE)
async def update_service_agent(id: str) -> Response:
    changes = _validated(UPDATE, await json_body())
    config = changes.pop("config", None)

    def merge(existing: dict[str, Any], kind: str) -> dict[str, Any]:
        return _provider_config(kind, {**existing, **(config or {})})

    updated = await actions.update_service_agent(
        services(), user_id=principal().user_id, ip=client_ip(), agent_id=id, changes=changes,
        merge_config=merge if config is not None else None,
    )  # fmt: skip
    return ok(updated)


@blueprint.delete("/api/service-agents/<id>")
@require_admin
@check_ids("id")
async def delete_service_agent(id: str) -> Response:
    await actions.delete_service_agent(
        services(), user_id=principal().user_id, ip=client_ip(), agent_id=id
    )
    return ok()


@blueprint.post("/api/service-agents/<id>/validate")
@require_admin
@check_ids("id")
async def validate_service_agent(id: str) -> Response:
    return ok(await actions.validate_service_agent(services(), id))


add_not_found_routes(blueprint, "/api/service-agents", authenticated_with_ids("id"))

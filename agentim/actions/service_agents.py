"""Service agents (head-gap A3): admin writes, and the replies the hub generates for them.

A reply is produced exactly as a gateway's would be: `server:message_chunk` frames to the room
while the provider streams, then the stored message and `server:message_complete`, then routed
on (chain depth, visited set, per-agent rate limit) by the conversation's router. A stop, a
timeout or a provider error ends the stream with what came so far; the latter two add an error
chunk saying why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Final

import httpx2
import trio

from agentim.actions import agents as agent_actions
from agentim.actions.audit import audit
from agentim.actions.room_context import room_change_events
from agentim.auth.crypto import open_secret, seal
from agentim.errors import conflict, not_found
from agentim.protocol.events import Event, control_event
from agentim.protocol.filetypes import attachment_name, clean_filename
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.routing.conversation import Hop
from agentim.routing.hub import Hub
from agentim.routing.service_providers import (
    ELEVENLABS,
    MESHY,
    OPENAI_CHAT,
    OPENAI_IMAGE,
    PERPLEXITY,
    PROVIDERS,
    RUNWAY,
    Media,
    Prompt,
    ProviderError,
    generate_image,
    generate_model,
    generate_video,
    search_answer,
    stream_chat,
    synthesize_speech,
    validate_chat,
    validate_elevenlabs,
)
from agentim.routing.service_runs import STOP_SERVICE_AGENT
from agentim.services import Services
from agentim.store import service_agents as store, uploads as upload_store
from agentim.store.db import UNIQUE_VIOLATION, DbError

log = logging.getLogger("ServiceAgents")

NOT_FOUND: Final = "Service agent not found"
NAME_TAKEN: Final = "A service agent with this name already exists"
MASK: Final = "••••••••"
MASK_KEEP: Final = 4  # the reference shows the API key's first 4 characters
PERSIST_S: Final = 5.0  # storing a reply after a stop, or while shutting down
UNAVAILABLE: Final = "Service agent is not available."
UNSUPPORTED: Final = "Unsupported service agent type."
CONFIG_ERROR: Final = "Configuration error."
EMPTY: Final = "Returned an empty response."
GENERATED: Final = "Generation complete"
TARGET: Final = "service_agent"
# Providers whose job is started, then polled until done; the wait is that of the reference's
# longest (Meshy's 10 minutes) unless SERVICE_AGENT_TIMEOUT_MS allows more.
POLLED: Final = {RUNWAY.type: generate_video, MESHY.type: generate_model}
POLLED_WAIT_S: Final = 600.0
# Providers whose answer is one generated file (stored as an upload), by type.
MEDIA_PROVIDERS: Final = {OPENAI_IMAGE.type: generate_image, ELEVENLABS.type: synthesize_speech}


# reads ---------------------------------------------------------------------------------------
def service_agent_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "name": row["name"], "type": row["type"], "category": row["category"],
        "description": row["description"], "status": row["status"],
        "avatarUrl": row["avatar_url"], "createdById": row["created_by_id"],
        "createdAt": row["created_at"], "updatedAt": row["updated_at"],
    }  # fmt: skip


def open_config(services: Services, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The provider config in clear; None when it cannot be opened (logged, never shown)."""
    plain = open_secret(row["config_encrypted"], services.settings.encryption_key)
    try:
        config = json.loads(plain) if plain is not None else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        log.warning("Failed to decrypt config for service agent %s (check ENCRYPTION_KEY)",
                    row["id"])  # fmt: skip
        return None
    return config


def masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as GET shows it: the API key's first 4 characters, then a mask."""
    shown = dict(config)
    if isinstance(shown.get("apiKey"), str):
        shown["apiKey"] = shown["apiKey"][:MASK_KEEP] + MASK
    return shown


async def get_service_agent(services: Services, agent_id: str) -> dict[str, Any]:
    row = await store.get(services.db, agent_id)
    if row is None:
        raise not_found(NOT_FOUND)
    config = open_config(services, row)
    return {**service_agent_json(row), "config": masked(config) if config is not None else {}}


# writes --------------------------------------------------------------------------------------
def _sealed(services: Services, config: Mapping[str, Any]) -> str:
    return seal(json.dumps(config, ensure_ascii=False), services.settings.encryption_key)


async def create_service_agent(
    services: Services, *, user_id: str, ip: str, fields: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Store a validated service agent (with its agent and carrier gateway rows)."""
    agent_id, now = new_id(), iso_now()
    try:
        async with services.db.transaction() as tx:
            row = await store.insert(
                tx, agent_id=agent_id, gateway_id=new_id(), fields=fields,
                config_sealed=_sealed(services, config), user_id=user_id, now=now,
            )  # fmt: skip
            await audit(tx, "admin_service_agent_create", user_id=user_id, ip=ip,
                        target_id=agent_id, target_type=TARGET,
                        metadata={"name": fields["name"], "type": fields["type"]})  # fmt: skip
    except DbError as exc:
        if exc.sqlstate == UNIQUE_VIOLATION:
            raise conflict(NAME_TAKEN) from None
        raise
    return service_agent_json(row)


async def update_service_agent(
    services: Services, *, user_id: str, ip: str, agent_id: str, changes: Mapping[str, Any],
    merge_config: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Apply validated changes. `merge_config(existing_config, type)` returns the merged
    config to store (it raises when the merge is invalid), or is None when config is unchanged.
    """
    try:
        async with services.db.transaction() as tx:
            existing = await store.get(tx, agent_id, for_update=True)
            if existing is None:
                raise not_found(NOT_FOUND)
            columns = {_column(name): value for name, value in changes.items()}
            if merge_config is not None:
                old = open_config(services, existing) or {}
                merged = merge_config(old, changes.get("type", existing["type"]))
                columns["config_encrypted"] = _sealed(services, merged)
            row = await store.update(tx, agent_id, columns, iso_now())
            assert row is not None
            await audit(tx, "admin_service_agent_update", user_id=user_id, ip=ip,
                        target_id=agent_id, target_type=TARGET,
                        metadata={"fields": sorted([*changes, *(["config"] if merge_config
                                                              else [])])})  # fmt: skip
            events = await _room_events(tx, agent_id)
    except DbError as exc:
        if exc.sqlstate == UNIQUE_VIOLATION:
            raise conflict(NAME_TAKEN) from None
        raise
    await services.events.publish_all(events)
    return service_agent_json(row)


def _column(name: str) -> str:
    return {"avatarUrl": "avatar_url"}.get(name, name)


async def _room_events(tx: Any, agent_id: str) -> list[Event]:
    rows = await tx.fetch(
        "SELECT room_id FROM room_members WHERE member_id = $1 AND member_type = 'agent'",
        agent_id,
    )
    return [e for row in rows for e in await room_change_events(tx, row["room_id"])]


async def delete_service_agent(services: Services, *, user_id: str, ip: str, agent_id: str) -> None:
    async with services.db.transaction() as tx:
        room_ids = await store.delete(tx, agent_id)
        if room_ids is None:
            raise not_found(NOT_FOUND)
        await audit(tx, "admin_service_agent_delete", user_id=user_id, ip=ip,
                    target_id=agent_id, target_type=TARGET)  # fmt: skip
        events = [e for room_id in room_ids for e in await room_change_events(tx, room_id)]
    await services.events.publish_all(events)
    for room_id in room_ids:
        await services.events.publish(control_event(STOP_SERVICE_AGENT, agent_id, roomId=room_id))


async def validate_service_agent(services: Services, agent_id: str) -> dict[str, Any]:
    row = await store.get(services.db, agent_id)
    if row is None:
        raise not_found(NOT_FOUND)
    if row["type"] not in PROVIDERS:
        return {"valid": True, "message": "No validation available"}
    config = open_config(services, row)
    if config is None:
        return {"valid": False, "error": "Failed to decrypt config"}
    if row["type"] == ELEVENLABS.type:
        return await validate_elevenlabs(services.service_runs.http, config)
    if row["type"] != OPENAI_CHAT.type:
        return {"valid": True}  # the reference checks only the stored config's shape here
    return await validate_chat(services.service_runs.http, config)


# stop (client:stop_generation, from any process) ---------------------------------------------
async def is_service_agent(services: Services, agent_id: str) -> bool:
    return agent_id in await store.ids_among(services.db, [agent_id])


async def stop(services: Services, *, room_id: str, agent_id: str) -> None:
    """Stop the agent's replies in the room on whichever process generates them."""
    await services.events.publish(control_event(STOP_SERVICE_AGENT, agent_id, roomId=room_id))


def install_controls(services: Services) -> None:
    """Register the stop handler on this process's hub (called once by main)."""

    def _stop(hub: Hub, event: Event) -> None:
        room_id = (event.control or {}).get("roomId")
        if isinstance(room_id, str) and services.service_runs.stop(event.target_id, room_id):
            log.info("Service agent %s stopped in room %s", event.target_id, room_id)

    services.hub.controls[STOP_SERVICE_AGENT] = _stop


# replies -------------------------------------------------------------------------------------
def start_replies(services: Services, deliveries: list[dict[str, Any]]) -> None:
    """Start a reply for each `server:send_to_agent` addressed to a service agent."""
    for delivery in deliveries:
        key = (delivery["agentId"], delivery["roomId"])
        body = _ReplyRun(services, delivery).run
        services.service_runs.start(key, body, name=f"service agent {key[0]}")


class _ReplyRun:
    """One reply: the provider's stream relayed as chunks, then stored and routed on."""

    def __init__(self, services: Services, delivery: Mapping[str, Any]) -> None:
        self.services = services
        self.delivery = delivery
        self.agent_id: str = delivery["agentId"]
        self.room_id: str = delivery["roomId"]
        self.message_id = new_id()
        self.name = agent_actions.UNKNOWN_AGENT
        self.parts: list[str] = []
        self.chunks: list[dict[str, Any]] = []
        self.size = 0
        self.attachments: list[dict[str, Any]] = []

    async def run(self, http: httpx2.AsyncClient, stop_scope: trio.CancelScope) -> None:
        started = trio.current_time()
        error = await self._generate(http, stop_scope)
        if error is not None:
            await self._chunk({"type": "error", "content": error})
        with trio.move_on_after(PERSIST_S, shield=True):
            stored = await agent_actions.complete_agent_message(
                self.services, room_id=self.room_id, agent_id=self.agent_id,
                agent_name=self.name, message_id=self.message_id, content="".join(self.parts),
                chunks=self.chunks, started=started, mark_online=False,
                attachments=self.attachments,
            )  # fmt: skip
            if stored is not None and error is None and not stop_scope.cancelled_caught:
                hop = Hop(self.delivery["conversationId"], stored, int(self.delivery["depth"]),
                          sender_agent_id=self.agent_id)  # fmt: skip
                self.services.conversations.route(hop)

    async def _generate(self, http: httpx2.AsyncClient, stop_scope: trio.CancelScope) -> str | None:
        """Relay the provider's answer; the error text to show, or None."""
        row = await store.get(self.services.db, self.agent_id)
        if row is None or row["status"] != "active":
            return UNAVAILABLE
        self.name = row["name"]
        if row["type"] not in PROVIDERS:
            return UNSUPPORTED
        config = open_config(self.services, row)
        if config is None:
            return CONFIG_ERROR
        timeout = self.services.settings.service_agent_timeout_s
        if row["type"] in POLLED:  # the reference waits up to 5 minutes for a polled job
            timeout = max(timeout, POLLED_WAIT_S)
        prompt = Prompt(self.delivery["content"], self.delivery["senderName"])
        with stop_scope, trio.move_on_after(timeout) as timer:
            try:
                if (job := POLLED.get(row["type"])) is not None:
                    poll_s = self.services.settings.service_agent_poll_interval_s
                    media = await job(http, config, prompt, self._status, poll_s)
                    await self._attach(media, row["created_by_id"])
                elif (generate := MEDIA_PROVIDERS.get(row["type"])) is not None:
                    await self._attach(await generate(http, config, prompt), row["created_by_id"])
                elif row["type"] == PERPLEXITY.type:
                    answer = await search_answer(http, config, prompt)
                    if answer and not await self._text(answer):
                        return "Response exceeds maximum size"
                elif not await stream_chat(http, config, prompt, self._text):
                    return "Response exceeds maximum size"
            except ProviderError as exc:
                log.warning("Service agent %s failed: %s", self.agent_id, exc)
                return str(exc)
        if timer.cancelled_caught:
            log.warning("Service agent %s timed out after %g s", self.agent_id, timeout)
            return f"Service agent timed out after {timeout:g} s"
        if not self.parts and not stop_scope.cancelled_caught:
            return EMPTY
        return None

    async def _attach(self, media: Media, owner_id: str) -> None:
        """Store the file as an upload (linked to the reply when it is stored); its caption,
        or the reference's `Generation complete`, is the reply's text."""
        attachment_id = new_id()
        name = attachment_name(attachment_id, media.mime_type)
        if name == attachment_id:  # a type the upload table has no extension for (audio)
            name += PurePosixPath(media.filename).suffix
        url = f"/uploads/{name}"
        await self.services.blobs.write(name, media.data, media.mime_type)  # disk or S3
        await upload_store.insert_attachment(
            self.services.db, attachment_id=attachment_id, filename=clean_filename(media.filename),
            mime_type=media.mime_type, size=len(media.data), url=url, uploaded_by=owner_id,
            now=iso_now(),
        )  # fmt: skip
        self.attachments.append({"id": attachment_id, "filename": clean_filename(media.filename),
                                 "mimeType": media.mime_type, "size": len(media.data),
                                 "url": url})  # fmt: skip
        self.parts.append(media.caption or GENERATED)

    async def _status(self, text: str) -> None:
        """A polled job's progress: a thinking chunk (shown, not part of the reply's text)."""
        await self._chunk({"type": "thinking", "content": text})

    async def _text(self, delta: str) -> bool:
        """Relay one delta; False once the reply outgrew MAX_AGENT_MESSAGE_BYTES."""
        self.size += len(delta.encode("utf-8", errors="replace"))
        if self.size > self.services.settings.max_agent_message_bytes:
            return False
        self.parts.append(delta)
        await self._chunk({"type": "text", "content": delta})
        return True

    async def _chunk(self, chunk: dict[str, Any]) -> None:
        self.chunks.append(chunk)
        await self.services.events.publish(agent_actions.chunk_event(
            room_id=self.room_id, agent_id=self.agent_id, agent_name=self.name,
            message_id=self.message_id, chunk=chunk,
        ))  # fmt: skip

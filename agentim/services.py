"""Services: the long-lived objects built once in main.serve and passed to every edge."""

from __future__ import annotations

import time

import attrs

from agentim.auth.passwords import PasswordHasher
from agentim.auth.tokens import TokenService
from agentim.metrics import Metrics
from agentim.routing.conversation import Conversations
from agentim.routing.hub import Hub
from agentim.routing.live_settings import LiveSettings
from agentim.routing.oauth_states import PendingStates
from agentim.routing.ratelimit import RateLimiter
from agentim.routing.relay_requests import RelayState
from agentim.routing.service_runs import ServiceRuns
from agentim.routing.webpush import PushQueue
from agentim.settings import Settings
from agentim.store.blobs import BlobStore
from agentim.store.db import Database
from agentim.store.kv import Kv
from agentim.store.pubsub import EventBus


@attrs.frozen
class Services:
    settings: Settings
    db: Database
    kv: Kv
    events: EventBus
    hub: Hub
    passwords: PasswordHasher
    tokens: TokenService
    limiter: RateLimiter  # every windowed rate limit: HTTP, WebSocket, routing
    metrics: Metrics
    blobs: BlobStore  # uploaded bytes: UPLOAD_DIR or an S3 bucket (STORAGE_PROVIDER)
    embedded_db: bool = False
    embedded_redis: bool = False
    started_at: float = attrs.field(factory=time.monotonic)
    conversations: Conversations = attrs.field(factory=Conversations)  # started by main
    relays: RelayState = attrs.field(factory=RelayState)  # client ↔ gateway relays, this process
    push: PushQueue = attrs.field(factory=PushQueue)  # Web Push hand-off, opened by main
    # Runtime settings (A1): the startup settings with the administrator's saved values over
    # them; read live knobs as `live.current.<field>` (routing/live_settings.py). Built from
    # `settings` (not an argument), so attrs.evolve(services, settings=…) gets a matching view.
    live: LiveSettings = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: LiveSettings(self.settings, self.db), takes_self=True),
    )
    service_runs: ServiceRuns = attrs.field(factory=ServiceRuns)  # service-agent replies (main)
    oauth_states: PendingStates = attrs.field(factory=PendingStates)  # OAuth, Redis down

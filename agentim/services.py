"""Services: the long-lived objects built once in main.serve and passed to every edge."""

from __future__ import annotations

import time

import attrs

from agentim.auth.passwords import PasswordHasher
from agentim.auth.tokens import TokenService
from agentim.http.ratelimit import RateLimiter
from agentim.metrics import Metrics
from agentim.routing.conversation import Conversations
from agentim.routing.hub import Hub
from agentim.routing.oauth_states import PendingStates
from agentim.routing.relay_requests import RelayState
from agentim.settings import Settings
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
    limiter: RateLimiter
    metrics: Metrics
    embedded_db: bool = False
    embedded_redis: bool = False
    started_at: float = attrs.field(factory=time.monotonic)
    conversations: Conversations = attrs.field(factory=Conversations)  # started by main
    relays: RelayState = attrs.field(factory=RelayState)  # client ↔ gateway relays, this process
    oauth_states: PendingStates = attrs.field(factory=PendingStates)  # OAuth, Redis down

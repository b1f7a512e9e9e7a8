"""Conversations: a ConversationRouter per active conversation id handles its hops one at a time,
off the sockets' reader tasks. A router keeps no state Redis lacks (depth rides on the hop), so any
process may run one for any id; it exits once its chain goes idle.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import httpx
import trio

from agentim.routing.ai_selector import new_llm_client
from agentim.routing.dispatch import AgentMember
from agentim.routing.fallback import RoutingFallback

log = logging.getLogger("Routing")

# Each idle router costs one task and one channel (a few KB). At 5 s idle this bound allows about
# 2,000 new conversations per second; past it a hop is dropped with a warning rather than handled
# in the caller's reader task, which must never wait on the router LLM.
MAX_ACTIVE_CONVERSATIONS: Final = 10_000
# Hops of one chain arrive one agent reply at a time; 32 queued for one conversation means its
# agents flood it, and the extra replies are stored and shown but not routed on.
CONVERSATION_INBOX_HOPS: Final = 32
# A router exits after this long without a hop. Nothing is lost: the next hop starts a new one
# from the state in Redis, so the value only trades task churn against idle tasks.
CONVERSATION_IDLE_S: Final = 5.0
# One hop is a few queries, one Redis round per target and at most one 5 s LLM call; a hop still
# running after this is abandoned so the chain's later hops are not held up behind it.
HOP_LIMIT_S: Final = 30.0
HTTP_CLOSE_GRACE_S: Final = 2.0  # closing the LLM client's pool at shutdown


@attrs.frozen
class Hop:
    """One message to route within a conversation.

    `message` is the stored message as broadcast (`id`, `roomId`, `senderId`, `senderName`,
    `content`, `mentions`). For a user message, `members` are the room's agent members as stored
    with it (routing needs no query for them). `sender_agent_id` is None for the user
    message that starts a conversation; for an agent reply it is the replying agent and `depth`
    the gateway's depth.
    """

    conversation_id: str
    message: dict[str, Any]
    depth: int = 0
    sender_agent_id: str | None = None
    members: tuple[AgentMember, ...] = ()  # a user message's: the room's agents when stored


HopHandler = Callable[[Hop], Awaitable[None]]


class Conversations:
    """The owner of every ConversationRouter of this process (started from main)."""

    def __init__(
        self, *, max_active: int = MAX_ACTIVE_CONVERSATIONS,
        inbox_hops: int = CONVERSATION_INBOX_HOPS, idle_s: float = CONVERSATION_IDLE_S,
        hop_limit_s: float = HOP_LIMIT_S,
    ) -> None:  # fmt: skip
        self.max_active = max_active
        self.inbox_hops = inbox_hops
        self.idle_s = idle_s
        self.hop_limit_s = hop_limit_s
        self.fallback = RoutingFallback()  # D16: stands in for the routing keys in Redis
        self._inboxes: dict[str, trio.MemorySendChannel[Hop]] = {}
        self._nursery: trio.Nursery | None = None
        self._handler: HopHandler | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def active(self) -> int:
        """How many conversations have a router right now."""
        return len(self._inboxes)

    @property
    def http(self) -> httpx.AsyncClient:
        """The router LLM client shared by every conversation (only while running)."""
        if self._http is None:
            raise RuntimeError("conversations are not running")
        return self._http

    async def run(
        self, handler: HopHandler, *,
        task_status: trio.TaskStatus[Conversations] = trio.TASK_STATUS_IGNORED,
    ) -> None:  # fmt: skip
        """Own the routers' nursery and the LLM client until cancelled.

        Error policy: a hop's failure is logged by its router, which carries on; nothing here
        is expected to raise.
        """
        http = new_llm_client()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery, self._handler, self._http = nursery, handler, http
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = self._handler = self._http = None
            self._inboxes.clear()
            with trio.move_on_after(HTTP_CLOSE_GRACE_S, shield=True):
                await http.aclose()

    def route(self, hop: Hop) -> bool:
        """Queue the hop on its conversation's router, starting one if needed; never blocks.

        Returns:
            False when the hop was dropped (logged): not running, too many conversations, or
            the conversation's inbox is full.
        """
        inbox = self._inboxes.get(hop.conversation_id)
        if inbox is None and (inbox := self._open(hop)) is None:
            return False
        try:
            inbox.send_nowait(hop)
        except trio.WouldBlock:
            _dropped(hop, f"conversation inbox full: {self.inbox_hops} hops queued")
            return False
        return True

    def _open(self, hop: Hop) -> trio.MemorySendChannel[Hop] | None:
        """A new router's inbox; the channel exists before the task runs, so no hop is lost."""
        if self._nursery is None or self._handler is None:
            _dropped(hop, "conversation routing is not running")
            return None
        if len(self._inboxes) >= self.max_active:
            _dropped(hop, f"too many active conversations: {self.max_active}")
            return None
        send, receive = trio.open_memory_channel[Hop](self.inbox_hops)  # ≤ inbox_hops messages
        self._inboxes[hop.conversation_id] = send
        router = ConversationRouter(self, hop.conversation_id, receive, self._handler)
        self._nursery.start_soon(router.run, name=f"conversation {hop.conversation_id}")
        return send

    def _forget(self, conversation_id: str) -> None:
        send = self._inboxes.pop(conversation_id, None)
        if send is not None:
            send.close()


class ConversationRouter:
    """One conversation's hops, in arrival order, one at a time."""

    def __init__(
        self, owner: Conversations, conversation_id: str,
        inbox: trio.MemoryReceiveChannel[Hop], handler: HopHandler,
    ) -> None:  # fmt: skip
        self.owner = owner
        self.conversation_id = conversation_id
        self.inbox = inbox
        self.handler = handler

    async def run(self) -> None:
        """Handle hops until the inbox stays empty for `idle_s`, then leave the owner's dict.

        Error policy: each hop's failure is logged and the next hop is handled.
        """
        with self.inbox:
            while (hop := await self._next_hop()) is not None:
                await self._handle(hop)

    async def _next_hop(self) -> Hop | None:
        with trio.move_on_after(self.owner.idle_s):
            return await self.inbox.receive()
        # No checkpoint between this check and _forget: a hop cannot land in between, since
        # route() runs in other tasks and only while this one is parked.
        try:
            return self.inbox.receive_nowait()
        except trio.WouldBlock:
            self.owner._forget(self.conversation_id)
            return None

    async def _handle(self, hop: Hop) -> None:
        message_id = hop.message.get("id")
        with trio.move_on_after(self.owner.hop_limit_s) as scope:
            try:
                await self.handler(hop)
            except Exception:
                log.exception("routeToAgents: message %s in conversation %s failed", message_id,
                              self.conversation_id)  # fmt: skip
        if scope.cancelled_caught:
            log.warning("routeToAgents: message %s in conversation %s took over %g s, abandoned",
                        message_id, self.conversation_id, self.owner.hop_limit_s)  # fmt: skip


def _dropped(hop: Hop, reason: str) -> None:
    log.warning("routeToAgents: message %s in room %s → nobody (%s)", hop.message.get("id"),
                hop.message.get("roomId"), reason)  # fmt: skip

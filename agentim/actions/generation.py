"""Stop generation (realtime.md §5.6): any room member may stop any agent of the room."""

from __future__ import annotations

from agentim.actions import service_agents
from agentim.protocol.events import Target, frame_event
from agentim.protocol.gateway import stop_agent
from agentim.services import Services
from agentim.store.membership import has_member_row


async def stop_generation(services: Services, *, room_id: str, agent_id: str) -> bool:
    """Send `server:stop_agent` to the agent's gateway if the agent is in the room.

    Returns:
        Whether the stop was sent (failures are silent on the wire).
    """
    if not await has_member_row(services.db, room_id, agent_id):
        return False
    if await service_agents.is_service_agent(services, agent_id):  # head-gap A3
        await service_agents.stop(services, room_id=room_id, agent_id=agent_id)
        return True
    await services.events.publish(frame_event(Target.AGENT, agent_id, stop_agent(agent_id)))
    return True

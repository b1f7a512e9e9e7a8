-- Who may command a room's agents (head-gap A22, B8): the lowest room role whose messages are
-- routed to agents and who may send client:agent_command. 'member' (everyone) keeps the old
-- behaviour for existing rooms.
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS agent_command_role text NOT NULL DEFAULT 'member';

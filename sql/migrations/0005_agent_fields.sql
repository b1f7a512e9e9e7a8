-- 0005_agent_fields.sql: agent fields and task fields of AgentIM 631a1ad (head-gap C8, C12, A18).
--
-- Forward-only and idempotent, like 0001: on a database where AgentIM's own drizzle
-- migrations already added these columns, every ADD COLUMN is skipped.

-- Agents: per-user sharing (A16, A17), and what a gateway reports about an agent at
-- registration (B23): its slash commands, MCP servers and model. JSON columns are jsonb, as
-- in AgentIM, so the shared-agent list can test whitelist membership in SQL.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS visibility_list jsonb NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN IF NOT EXISTS slash_commands jsonb;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS mcp_servers jsonb;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS model text;

-- Visibility values are now private | all | whitelist; what used to be `shared` (visible to
-- every user) is `all`.
UPDATE agents SET visibility = 'all' WHERE visibility = 'shared';

-- Agent types are now claude-code | codex | gemini | generic. Rows of a type that no longer
-- exists (`cursor` from older gateways) become `generic`: today's web client and gateways
-- reject a frame naming an unknown type, and would drop the room's agent status and room
-- context frames because of such an agent.
UPDATE agents SET type = 'generic'
 WHERE type NOT IN ('claude-code', 'codex', 'gemini', 'generic');

-- Gateways: a gateway started for one run (`gateway:auth` with `ephemeral: true`) is not
-- listed. Migration 0002 adds the same column; whichever runs first adds it.
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS ephemeral boolean NOT NULL DEFAULT false;
-- the offline-gateway sweeper looks gateways up by disconnect time
CREATE INDEX IF NOT EXISTS gateways_disconnected_at_idx ON gateways (disconnected_at);

-- Tasks: an outcome and a due date (A23). due_date is an ISO-8601 text timestamp, like every
-- timestamp of this schema.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS result text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS due_date text;

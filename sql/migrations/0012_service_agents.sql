-- 0012_service_agents.sql: service agents of AgentIM 631a1ad (head-gap A3, C2): bots the hub
-- itself runs against a provider API. Forward-only and idempotent, like 0001.
--
-- The columns are AgentIM's `service_agents`. `config_encrypted` holds the provider config as
-- JSON sealed with ENCRYPTION_KEY (auth/crypto.py); it never leaves the hub unmasked.
--
-- Ours, not the reference's: each service agent is also an `agents` row with the same id (type
-- `generic`, connection type `api`) on a gateway row of its own (`ephemeral`, so no gateway list
-- shows it, and never disconnected, so the offline-gateway sweeper never removes it). That makes
-- it a room member like any other agent: rooms add it, @mentions and routers pick it, and its
-- replies are stored as agent messages. Deleting the service agent deletes that gateway, and the
-- agent row and its room memberships go with it.
CREATE TABLE IF NOT EXISTS service_agents (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    type             text NOT NULL DEFAULT 'openai-chat',
    category         text NOT NULL DEFAULT 'chat',
    description      text,
    status           text NOT NULL DEFAULT 'active',
    config_encrypted text NOT NULL,
    avatar_url       text,
    created_by_id    text NOT NULL
                     CONSTRAINT service_agents_created_by_id_users_id_fk
                     REFERENCES users (id) ON DELETE CASCADE,
    created_at       text NOT NULL,
    updated_at       text NOT NULL
);
CREATE INDEX IF NOT EXISTS service_agents_created_by_idx ON service_agents (created_by_id);
CREATE UNIQUE INDEX IF NOT EXISTS service_agents_name_creator_idx
    ON service_agents (name, created_by_id);

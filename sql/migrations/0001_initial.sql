-- 0001_initial.sql: the whole agentim data model (api.md section 14).
--
-- Forward-only. The migration runner wraps this file in one transaction, so
-- there is no BEGIN/COMMIT here. Every statement is idempotent (IF NOT EXISTS,
-- guarded DO blocks), so the file also applies cleanly to a database where
-- these tables already exist, including one built by the AgentIM reference's
-- drizzle migrations.
--
-- Conventions (section 14): every id and timestamp is text (ISO strings), JSON
-- values are stored as text, FKs are ON UPDATE NO ACTION (the default). FK
-- constraint names follow drizzle's <table>_<column>_<ref>_<refcol>_fk scheme.
--
-- Deviations from section 14, each explained where it occurs:
--   * audit table is `audit_log` (seed TROUBLESHOOTING.md), indexes audit_log_*;
--   * messages(room_id, created_at) index is `messages_room_id_created_at_idx`
--     (seed TROUBLESHOOTING.md) instead of messages_room_created_idx;
--   * refresh_tokens: token_hash is SHA-256 hex, plus family_id and rotated_at (D8);
--   * new table deleted_agents (D13);
--   * the indexes schema.ts declares but no reference migration creates are created.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- ---------------------------------------------------------------------------
-- 14.1 users
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS users (
    id                    text PRIMARY KEY,
    username              text NOT NULL,
    password_hash         text NOT NULL,
    display_name          text NOT NULL,
    avatar_url            text,
    role                  text NOT NULL DEFAULT 'user',
    -- lockout state (D9; seed TROUBLESHOOTING.md queries both columns)
    failed_login_attempts integer NOT NULL DEFAULT 0,
    locked_until          text,
    max_ws_connections    integer,
    max_gateways          integer,
    created_at            text NOT NULL,
    updated_at            text NOT NULL,
    CONSTRAINT users_username_unique UNIQUE (username)
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username_idx ON users (username);

-- ---------------------------------------------------------------------------
-- 14.2 refresh_tokens
-- ---------------------------------------------------------------------------
-- Differs from the reference:
--   * token_hash holds the SHA-256 hex digest of the refresh JWT, not an argon2
--     hash: the JWT already carries enough entropy, and a deterministic digest
--     lets us look a token up by its hash with refresh_tokens_hash_idx.
--     (Reference rows hold argon2 hashes; they simply never match and expire.)
--   * family_id: one login = one session family. Rotation issues the new token
--     in the same family, so it invalidates only that device's session (D8).
--   * rotated_at: a rotated token is kept (not deleted) until it expires, so a
--     reuse of it is detected and revokes its whole family (D8).
-- refresh_tokens_hash_idx stays non-unique, as in the reference, so fresh and
-- upgraded databases behave the same.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    id         text PRIMARY KEY,
    user_id    text NOT NULL
               CONSTRAINT refresh_tokens_user_id_users_id_fk
               REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL,
    expires_at text NOT NULL,
    created_at text NOT NULL,
    family_id  text NOT NULL,
    rotated_at text
);
-- Upgrade path for a refresh_tokens table created by the reference: add the
-- new columns; each existing row becomes its own family.
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS family_id text;
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS rotated_at text;
UPDATE refresh_tokens SET family_id = id WHERE family_id IS NULL;
ALTER TABLE refresh_tokens ALTER COLUMN family_id SET NOT NULL;

CREATE INDEX IF NOT EXISTS refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_hash_idx ON refresh_tokens (token_hash);
-- declared in the reference's schema.ts but never migrated there; used by the
-- expired-token cleanup
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_idx ON refresh_tokens (expires_at);
-- ours: revoke a whole session family (D8)
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON refresh_tokens (family_id);

-- ---------------------------------------------------------------------------
-- 14.3 gateways
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS gateways (
    id              text PRIMARY KEY,
    user_id         text NOT NULL
                    CONSTRAINT gateways_user_id_users_id_fk
                    REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL,
    hostname        text,
    platform        text,
    arch            text,
    node_version    text,
    connected_at    text,
    disconnected_at text,
    created_at      text NOT NULL
);
CREATE INDEX IF NOT EXISTS gateways_user_idx ON gateways (user_id);

-- ---------------------------------------------------------------------------
-- 14.4 agents
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS agents (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    type              text NOT NULL,
    status            text NOT NULL DEFAULT 'offline',
    visibility        text NOT NULL DEFAULT 'private',
    gateway_id        text NOT NULL
                      CONSTRAINT agents_gateway_id_gateways_id_fk
                      REFERENCES gateways (id) ON DELETE CASCADE,
    working_directory text,
    capabilities      text,                    -- JSON array of strings
    connection_type   text NOT NULL DEFAULT 'cli',
    last_seen_at      text,
    created_at        text NOT NULL,
    updated_at        text NOT NULL
);
CREATE INDEX IF NOT EXISTS agents_gateway_idx ON agents (gateway_id);
CREATE INDEX IF NOT EXISTS agents_status_idx ON agents (status);
CREATE INDEX IF NOT EXISTS agents_visibility_idx ON agents (visibility);
CREATE INDEX IF NOT EXISTS agents_last_seen_idx ON agents (last_seen_at);

-- ---------------------------------------------------------------------------
-- 14.5 routers
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS routers (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    description       text,
    scope             text NOT NULL DEFAULT 'personal',
    created_by_id     text NOT NULL
                      CONSTRAINT routers_created_by_id_users_id_fk
                      REFERENCES users (id) ON DELETE CASCADE,
    llm_base_url      text NOT NULL,
    llm_api_key       text NOT NULL,           -- enc:iv:ct:tag or plaintext
    llm_model         text NOT NULL,
    max_chain_depth   integer NOT NULL DEFAULT 5,
    rate_limit_window integer NOT NULL DEFAULT 60,
    rate_limit_max    integer NOT NULL DEFAULT 20,
    visibility        text NOT NULL DEFAULT 'all',
    visibility_list   text NOT NULL DEFAULT '[]',  -- JSON array of user ids
    created_at        text NOT NULL,
    updated_at        text NOT NULL
);
CREATE INDEX IF NOT EXISTS routers_created_by_idx ON routers (created_by_id);
CREATE INDEX IF NOT EXISTS routers_scope_idx ON routers (scope);
-- declared in the reference's schema.ts but never migrated there
CREATE INDEX IF NOT EXISTS routers_scope_creator_idx ON routers (scope, created_by_id);

-- ---------------------------------------------------------------------------
-- 14.6 rooms
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS rooms (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    type           text NOT NULL DEFAULT 'group',
    broadcast_mode boolean NOT NULL DEFAULT false,
    system_prompt  text,
    router_id      text
                   CONSTRAINT rooms_router_id_routers_id_fk
                   REFERENCES routers (id) ON DELETE SET NULL,
    created_by_id  text NOT NULL
                   CONSTRAINT rooms_created_by_id_users_id_fk
                   REFERENCES users (id) ON DELETE CASCADE,
    created_at     text NOT NULL,
    updated_at     text NOT NULL
);
CREATE INDEX IF NOT EXISTS rooms_created_by_idx ON rooms (created_by_id);
CREATE INDEX IF NOT EXISTS rooms_router_idx ON rooms (router_id);

-- ---------------------------------------------------------------------------
-- 14.7 room_members (no primary key; member_id is polymorphic, so no FK)
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS room_members (
    room_id           text NOT NULL
                      CONSTRAINT room_members_room_id_rooms_id_fk
                      REFERENCES rooms (id) ON DELETE CASCADE,
    member_id         text NOT NULL,           -- user id or agent id
    member_type       text NOT NULL,
    role              text NOT NULL DEFAULT 'member',
    role_description  text,
    notification_pref text NOT NULL DEFAULT 'all',
    pinned_at         text,
    archived_at       text,
    last_read_at      text,
    joined_at         text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS room_members_unique_idx ON room_members (room_id, member_id);
CREATE INDEX IF NOT EXISTS room_members_room_idx ON room_members (room_id);
CREATE INDEX IF NOT EXISTS room_members_member_idx ON room_members (member_id);
CREATE INDEX IF NOT EXISTS room_members_member_room_idx ON room_members (member_id, room_id);
CREATE INDEX IF NOT EXISTS room_members_room_type_idx ON room_members (room_id, member_type);
CREATE INDEX IF NOT EXISTS room_members_member_type_idx ON room_members (member_id, member_type);

-- ---------------------------------------------------------------------------
-- 14.8 messages (sender_id and reply_to_id have no FK)
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS messages (
    id          text PRIMARY KEY,
    room_id     text NOT NULL
                CONSTRAINT messages_room_id_rooms_id_fk
                REFERENCES rooms (id) ON DELETE CASCADE,
    sender_id   text NOT NULL,
    sender_type text NOT NULL,                 -- user | agent | system
    sender_name text NOT NULL,
    type        text NOT NULL DEFAULT 'text',
    content     text NOT NULL,
    reply_to_id text,
    mentions    text NOT NULL DEFAULT '[]',    -- JSON array of names
    chunks      text,                          -- JSON array of chunks
    created_at  text NOT NULL,
    updated_at  text                           -- set only by edits
);
-- The (room_id, created_at) index is named messages_room_id_created_at_idx, as
-- the operator guide (seed TROUBLESHOOTING.md) tells operators to check for;
-- the reference calls it messages_room_created_idx. On a database built by the
-- reference, rename it rather than build a duplicate.
DO $$
BEGIN
    IF to_regclass('messages_room_created_idx') IS NOT NULL
       AND to_regclass('messages_room_id_created_at_idx') IS NULL THEN
        ALTER INDEX messages_room_created_idx RENAME TO messages_room_id_created_at_idx;
    END IF;
END
$$;
CREATE INDEX IF NOT EXISTS messages_room_idx ON messages (room_id);
CREATE INDEX IF NOT EXISTS messages_room_id_created_at_idx ON messages (room_id, created_at);
CREATE INDEX IF NOT EXISTS messages_sender_idx ON messages (sender_id);
CREATE INDEX IF NOT EXISTS messages_reply_to_idx ON messages (reply_to_id);
CREATE INDEX IF NOT EXISTS messages_updated_at_idx ON messages (updated_at);
-- speeds up the ILIKE message search
CREATE INDEX IF NOT EXISTS messages_content_trgm_idx ON messages USING gin (content gin_trgm_ops);

-- ---------------------------------------------------------------------------
-- 14.9 message_attachments (message_id NULL = upload not yet linked)
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS message_attachments (
    id          text PRIMARY KEY,
    message_id  text
                CONSTRAINT message_attachments_message_id_messages_id_fk
                REFERENCES messages (id) ON DELETE CASCADE,
    filename    text NOT NULL,
    mime_type   text NOT NULL,
    size        integer NOT NULL,
    url         text NOT NULL,
    uploaded_by text
                CONSTRAINT message_attachments_uploaded_by_users_id_fk
                REFERENCES users (id) ON DELETE SET NULL,
    created_at  text NOT NULL
);
CREATE INDEX IF NOT EXISTS attachments_message_idx ON message_attachments (message_id);
CREATE INDEX IF NOT EXISTS attachments_uploaded_by_idx ON message_attachments (uploaded_by);

-- ---------------------------------------------------------------------------
-- 14.10 message_reactions (no primary key)
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS message_reactions (
    message_id text NOT NULL
               CONSTRAINT message_reactions_message_id_messages_id_fk
               REFERENCES messages (id) ON DELETE CASCADE,
    user_id    text NOT NULL
               CONSTRAINT message_reactions_user_id_users_id_fk
               REFERENCES users (id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    created_at text NOT NULL
);
CREATE INDEX IF NOT EXISTS reactions_message_idx ON message_reactions (message_id);
CREATE UNIQUE INDEX IF NOT EXISTS reactions_unique_idx ON message_reactions (message_id, user_id, emoji);

-- ---------------------------------------------------------------------------
-- 14.11 message_edits
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS message_edits (
    id               text PRIMARY KEY,
    message_id       text NOT NULL
                     CONSTRAINT message_edits_message_id_messages_id_fk
                     REFERENCES messages (id) ON DELETE CASCADE,
    previous_content text NOT NULL,
    edited_at        text NOT NULL
);
CREATE INDEX IF NOT EXISTS message_edits_message_idx ON message_edits (message_id);
-- declared in the reference's schema.ts but never migrated there; serves the
-- edit history ordered by time
CREATE INDEX IF NOT EXISTS message_edits_message_edited_idx ON message_edits (message_id, edited_at);

-- ---------------------------------------------------------------------------
-- 14.12 tasks (assignee_id has no FK)
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS tasks (
    id            text PRIMARY KEY,
    room_id       text NOT NULL
                  CONSTRAINT tasks_room_id_rooms_id_fk
                  REFERENCES rooms (id) ON DELETE CASCADE,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending',
    assignee_id   text,
    assignee_type text,
    created_by_id text NOT NULL
                  CONSTRAINT tasks_created_by_id_users_id_fk
                  REFERENCES users (id) ON DELETE CASCADE,
    created_at    text NOT NULL,
    updated_at    text NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_room_idx ON tasks (room_id);
CREATE INDEX IF NOT EXISTS tasks_assignee_idx ON tasks (assignee_id);
CREATE INDEX IF NOT EXISTS tasks_status_idx ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_created_by_idx ON tasks (created_by_id);
CREATE INDEX IF NOT EXISTS tasks_room_status_idx ON tasks (room_id, status);
CREATE INDEX IF NOT EXISTS tasks_updated_at_idx ON tasks (updated_at);

-- ---------------------------------------------------------------------------
-- 14.13 audit log: table `audit_log`
-- ---------------------------------------------------------------------------
-- The operator guide (seed TROUBLESHOOTING.md, binding per D1) queries
-- `audit_log`; the reference calls the table audit_logs. Columns are section
-- 14.13's. On a database built by the reference, rename the table and its
-- indexes so the audit history is kept.
DO $$
BEGIN
    IF to_regclass('audit_logs') IS NOT NULL AND to_regclass('audit_log') IS NULL THEN
        ALTER TABLE audit_logs RENAME TO audit_log;
        IF to_regclass('audit_logs_user_idx') IS NOT NULL THEN
            ALTER INDEX audit_logs_user_idx RENAME TO audit_log_user_idx;
        END IF;
        IF to_regclass('audit_logs_action_idx') IS NOT NULL THEN
            ALTER INDEX audit_logs_action_idx RENAME TO audit_log_action_idx;
        END IF;
        IF to_regclass('audit_logs_created_at_idx') IS NOT NULL THEN
            ALTER INDEX audit_logs_created_at_idx RENAME TO audit_log_created_at_idx;
        END IF;
        IF to_regclass('audit_logs_target_idx') IS NOT NULL THEN
            ALTER INDEX audit_logs_target_idx RENAME TO audit_log_target_idx;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'audit_log'::regclass
                   AND conname = 'audit_logs_pkey') THEN
            ALTER TABLE audit_log RENAME CONSTRAINT audit_logs_pkey TO audit_log_pkey;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'audit_log'::regclass
                   AND conname = 'audit_logs_user_id_users_id_fk') THEN
            ALTER TABLE audit_log RENAME CONSTRAINT audit_logs_user_id_users_id_fk
                TO audit_log_user_id_users_id_fk;
        END IF;
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS audit_log (
    id          text PRIMARY KEY,
    user_id     text
                CONSTRAINT audit_log_user_id_users_id_fk
                REFERENCES users (id) ON DELETE SET NULL,
    action      text NOT NULL,
    target_id   text,
    target_type text,
    metadata    text,                          -- JSON text
    ip_address  text,
    created_at  text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_user_idx ON audit_log (user_id);
CREATE INDEX IF NOT EXISTS audit_log_action_idx ON audit_log (action);
CREATE INDEX IF NOT EXISTS audit_log_created_at_idx ON audit_log (created_at);
CREATE INDEX IF NOT EXISTS audit_log_target_idx ON audit_log (target_id, target_type);

-- ---------------------------------------------------------------------------
-- deleted_agents (ours, not in the reference)
-- ---------------------------------------------------------------------------
-- Tombstones of deleted agents, so a gateway that re-registers a deleted agent
-- id is refused ("Rejecting re-registration of deleted agent <id>") across hub
-- restarts and across hub processes (D13); the reference keeps them in memory.
-- user_id is the owner at deletion time, for information only. It has
-- deliberately no FK: deleting the user must not drop the tombstone, or the
-- agent id could be resurrected by a gateway that still holds it.
CREATE TABLE IF NOT EXISTS deleted_agents (
    agent_id   text PRIMARY KEY,
    user_id    text,
    deleted_at text NOT NULL
);

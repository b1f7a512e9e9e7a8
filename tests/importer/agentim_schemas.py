"""AgentIM databases to import from, written for these tests from AgentIM's migration history:
only the tables and columns the importer reads, with the types each version gives them.

728c8f5 keeps every timestamp and JSON value in text columns. 631a1ad (its migrations 0023 and
0024) turned JSON columns into jsonb and timestamps into timestamptz, and added columns: TOTP
and a nullable password on users (OAuth accounts), gateways.ephemeral, the agent's sharing list,
slash commands, MCP servers and model, rooms.agent_command_role, room_members.cleared_at, and
the task's result and due date.
"""

from __future__ import annotations

from typing import Final

_V728: Final = """
CREATE TABLE users (
    id text PRIMARY KEY, username text NOT NULL UNIQUE, password_hash text NOT NULL,
    display_name text NOT NULL, avatar_url text, role text NOT NULL DEFAULT 'user',
    failed_login_attempts integer NOT NULL DEFAULT 0, locked_until {ts},
    max_ws_connections integer, max_gateways integer,
    created_at {ts} NOT NULL, updated_at {ts} NOT NULL);
CREATE TABLE gateways (
    id text PRIMARY KEY, user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL, hostname text, platform text, arch text, node_version text,
    connected_at {ts}, disconnected_at {ts}, created_at {ts} NOT NULL);
CREATE TABLE agents (
    id text PRIMARY KEY, name text NOT NULL, type text NOT NULL,
    status text NOT NULL DEFAULT 'offline', visibility text NOT NULL DEFAULT 'private',
    gateway_id text NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    working_directory text, capabilities {json}, connection_type text NOT NULL DEFAULT 'cli',
    last_seen_at {ts}, created_at {ts} NOT NULL, updated_at {ts} NOT NULL);
CREATE TABLE routers (
    id text PRIMARY KEY, name text NOT NULL, description text,
    scope text NOT NULL DEFAULT 'personal',
    created_by_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    llm_base_url text NOT NULL, llm_api_key text NOT NULL, llm_model text NOT NULL,
    max_chain_depth integer NOT NULL DEFAULT 5, rate_limit_window integer NOT NULL DEFAULT 60,
    rate_limit_max integer NOT NULL DEFAULT 20, visibility text NOT NULL DEFAULT 'all',
    visibility_list {json} NOT NULL DEFAULT '[]',
    created_at {ts} NOT NULL, updated_at {ts} NOT NULL);
CREATE TABLE rooms (
    id text PRIMARY KEY, name text NOT NULL, type text NOT NULL DEFAULT 'group',
    broadcast_mode boolean NOT NULL DEFAULT false, system_prompt text,
    router_id text REFERENCES routers (id) ON DELETE SET NULL,
    created_by_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at {ts} NOT NULL, updated_at {ts} NOT NULL);
CREATE TABLE room_members (
    room_id text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE, member_id text NOT NULL,
    member_type text NOT NULL, role text NOT NULL DEFAULT 'member', role_description text,
    notification_pref text NOT NULL DEFAULT 'all', pinned_at {ts}, archived_at {ts},
    last_read_at {ts}, joined_at {ts} NOT NULL);
CREATE UNIQUE INDEX room_members_unique_idx ON room_members (room_id, member_id);
CREATE TABLE messages (
    id text PRIMARY KEY, room_id text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    sender_id text NOT NULL, sender_type text NOT NULL, sender_name text NOT NULL,
    type text NOT NULL DEFAULT 'text', content text NOT NULL, reply_to_id text,
    mentions {json} NOT NULL DEFAULT '[]', chunks {json},
    created_at {ts} NOT NULL, updated_at {ts});
CREATE TABLE message_attachments (
    id text PRIMARY KEY, message_id text REFERENCES messages (id) ON DELETE CASCADE,
    filename text NOT NULL, mime_type text NOT NULL, size integer NOT NULL, url text NOT NULL,
    uploaded_by text REFERENCES users (id) ON DELETE SET NULL, created_at {ts} NOT NULL);
CREATE TABLE message_reactions (
    message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji text NOT NULL, created_at {ts} NOT NULL);
CREATE UNIQUE INDEX reactions_unique_idx ON message_reactions (message_id, user_id, emoji);
CREATE TABLE message_edits (
    id text PRIMARY KEY, message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    previous_content text NOT NULL, edited_at {ts} NOT NULL);
CREATE TABLE tasks (
    id text PRIMARY KEY, room_id text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    title text NOT NULL, description text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'pending', assignee_id text, assignee_type text,
    created_by_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at {ts} NOT NULL, updated_at {ts} NOT NULL);
CREATE TABLE audit_logs (
    id text PRIMARY KEY, user_id text REFERENCES users (id) ON DELETE SET NULL,
    action text NOT NULL, target_id text, target_type text, metadata {json},
    ip_address text, created_at {ts} NOT NULL);
"""

_V631_ADDITIONS: Final = """
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users ADD COLUMN totp_secret text;
ALTER TABLE users ADD COLUMN totp_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE gateways ADD COLUMN ephemeral boolean NOT NULL DEFAULT false;
ALTER TABLE agents ADD COLUMN visibility_list jsonb NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN slash_commands jsonb;
ALTER TABLE agents ADD COLUMN mcp_servers jsonb;
ALTER TABLE agents ADD COLUMN model text;
ALTER TABLE rooms ADD COLUMN agent_command_role text NOT NULL DEFAULT 'member';
ALTER TABLE room_members ADD COLUMN cleared_at timestamptz;
ALTER TABLE tasks ADD COLUMN result text;
ALTER TABLE tasks ADD COLUMN due_date timestamptz;
"""

SCHEMAS: Final = {
    "728c8f5": _V728.format(ts="text", json="text"),
    "631a1ad": _V728.format(ts="timestamptz", json="jsonb") + _V631_ADDITIONS,
}

-- 0008_room_clear_bookmarks.sql: per-member history clearing and message bookmarks of
-- AgentIM 631a1ad (head-gap C11, C3; issue rows A8, A12).
--
-- Forward-only and idempotent, like 0001: on a database where AgentIM's own drizzle
-- migrations already made these, every statement is skipped.

-- When the member last cleared the room's history (PUT /api/rooms/:id/clear). Messages
-- created before it are hidden from that member's history, search, recent and unread
-- figures. An ISO-8601 text timestamp, compared as text like every timestamp of this schema.
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS cleared_at text;
-- the room list reads a user's pin and archive state
CREATE INDEX IF NOT EXISTS room_members_pinned_idx ON room_members (member_id, pinned_at);
CREATE INDEX IF NOT EXISTS room_members_archived_idx ON room_members (member_id, archived_at);

-- A user's saved messages, with a note; one bookmark per user and message. Both go with
-- their user or message.
CREATE TABLE IF NOT EXISTS bookmarks (
    id         text PRIMARY KEY,
    user_id    text NOT NULL
               CONSTRAINT bookmarks_user_id_users_id_fk
               REFERENCES users (id) ON DELETE CASCADE,
    message_id text NOT NULL
               CONSTRAINT bookmarks_message_id_messages_id_fk
               REFERENCES messages (id) ON DELETE CASCADE,
    note       text DEFAULT '',
    created_at text NOT NULL
);
CREATE INDEX IF NOT EXISTS bookmarks_user_idx ON bookmarks (user_id);
CREATE INDEX IF NOT EXISTS bookmarks_created_at_idx ON bookmarks (user_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS bookmarks_user_message_unique ON bookmarks (user_id, message_id);
-- bookmarks of a deleted message go with it (the foreign key's cascade looks them up here)
CREATE INDEX IF NOT EXISTS bookmarks_message_idx ON bookmarks (message_id);

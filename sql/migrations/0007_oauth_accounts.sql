-- 0007_oauth_accounts.sql: sign-in with GitHub and Google as AgentIM 631a1ad (head-gap A5, A6, C5).
--
-- Forward-only and idempotent, like 0001: on a database where AgentIM's own drizzle migrations
-- already made these, every statement is a no-op.

-- A user created by an OAuth sign-in has no password (password login then answers 401
-- `Invalid credentials`, as for a wrong password).
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- One row per provider account linked to a user. access_token and refresh_token are the
-- provider's tokens sealed with ENCRYPTION_KEY (auth/crypto.py), never stored in clear.
CREATE TABLE IF NOT EXISTS oauth_accounts (
    id                  text PRIMARY KEY,
    user_id             text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider            text NOT NULL,
    provider_account_id text NOT NULL,
    email               text,
    display_name        text,
    avatar_url          text,
    access_token        text,
    refresh_token       text,
    created_at          text NOT NULL,
    updated_at          text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS oauth_provider_account_idx
    ON oauth_accounts (provider, provider_account_id);
CREATE INDEX IF NOT EXISTS oauth_user_idx ON oauth_accounts (user_id);

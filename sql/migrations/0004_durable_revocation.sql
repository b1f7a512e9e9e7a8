-- 0004_durable_revocation.sql: access-token revocation kept in PostgreSQL (DECISIONS D7, D23).
--
-- Redis (`revoked:<userId>`) is the fast path; this table is the truth, so a logout or a
-- password change still holds while Redis is down and after Redis restarts without its data.
--
-- Same table and columns as the reference's `revoked_tokens` (head-gap C7), so a database it
-- created upgrades in place. Two kinds of row:
--   * a user's cut-off: id = 'user:' || user_id, token_hash = '*'. Every access token of the
--     user issued at or before revoked_at (exact to the millisecond, D7) is refused. One row per
--     user, moved forward by each revocation; kept until expires_at = the cut-off plus the
--     access-token lifetime, when every token it covers has expired anyway.
--   * one revoked access token (logout of one session, D23, issue 16): token_hash = SHA-256 hex
--     of that token, expires_at = the token's own expiry.
-- Expired rows are deleted by the hub's token-cleanup sweeper.

CREATE TABLE IF NOT EXISTS revoked_tokens (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    token_hash text NOT NULL,
    revoked_at timestamp with time zone NOT NULL DEFAULT now(),
    expires_at timestamp with time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_user_id_idx ON revoked_tokens (user_id);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
CREATE INDEX IF NOT EXISTS revoked_tokens_token_hash_idx ON revoked_tokens (token_hash);

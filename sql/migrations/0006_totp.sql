-- 0006_totp.sql: TOTP two-factor login of AgentIM 631a1ad (head-gap A4, A25, C6).
--
-- Forward-only and idempotent, like 0001: on a database where AgentIM's own drizzle
-- migrations already added the first three columns, their ADD COLUMN is skipped.

-- The shared secret, sealed with ENCRYPTION_KEY (auth/crypto.py, `enc:` form). Set by
-- /api/auth/setup-totp while 2FA is still off; kept once a code confirms it.
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_secret text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_enabled boolean NOT NULL DEFAULT false;
-- A JSON array of the one-time backup codes' digests (HMAC-SHA256 keyed with the TOTP secret
-- here, argon2 in AgentIM); a used code's digest is removed from the array.
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_backup_codes text;

-- Ours, not AgentIM's: the last 30-second time step whose code was accepted, so the same code
-- cannot be used twice (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_last_step bigint;

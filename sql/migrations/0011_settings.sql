-- 0011_settings.sql: runtime settings an administrator changes from the web client (head-gap
-- A1, C1, config row D12).
--
-- One row per setting the administrator has saved; a setting without a row keeps the value
-- the process was started with (environment, else the built-in default). `key` is the
-- reference's dotted name (e.g. `upload.maxFileSize`), `value` its text; secrets are stored
-- sealed (`enc:<iv>:<ciphertext>:<tag>`, AES-256-GCM with ENCRYPTION_KEY). Same table and
-- columns as the reference's `settings`, so a database it created upgrades in place.

CREATE TABLE IF NOT EXISTS settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_by text REFERENCES users (id) ON DELETE SET NULL
);

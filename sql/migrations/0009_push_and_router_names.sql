-- 0009_push_and_router_names.sql: Web Push subscriptions (head-gap A15, C4) and one router
-- name per creator (A31, C13). Forward-only and idempotent, like 0001.

-- One row per browser push subscription. The endpoint is unique: a browser that subscribes
-- again (or for another user) replaces the row. Rows go with their user.
CREATE TABLE IF NOT EXISTS push_subscriptions (
    id          text PRIMARY KEY,
    user_id     text NOT NULL
                CONSTRAINT push_subscriptions_user_id_users_id_fk
                REFERENCES users (id) ON DELETE CASCADE,
    endpoint    text NOT NULL,
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_at  text NOT NULL
);
CREATE INDEX IF NOT EXISTS push_subscriptions_user_idx ON push_subscriptions (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS push_subscriptions_endpoint_idx
    ON push_subscriptions (endpoint);

-- Router names are unique per creator. A database that already holds two routers of one
-- creator with the same name keeps them (renaming an operator's data is not ours to do): the
-- index is then not created, and the API's own check (409) still refuses new duplicates.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM routers GROUP BY created_by_id, name HAVING count(*) > 1
    ) THEN
        CREATE UNIQUE INDEX IF NOT EXISTS routers_name_creator_idx
            ON routers (created_by_id, name);
    END IF;
END
$$;

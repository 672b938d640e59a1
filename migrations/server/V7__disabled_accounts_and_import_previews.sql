-- Accounts an administrator disabled: they cannot sign in, refresh or use an access token
-- (403 `account_disabled`), and drop off the leaderboards at the next rebuild, but keep every
-- row (wallet, ledger, steps, orders) and can be enabled again. Both changes are audited
-- (`user.disable`, `user.enable`).
ALTER TABLE users
    ADD COLUMN disabled_at     timestamptz,
    ADD COLUMN disabled_reason text
        CHECK (disabled_reason IS NULL OR length(btrim(disabled_reason)) BETWEEN 1 AND 500),
    ADD CONSTRAINT users_disabled_with_reason_check CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL));

-- The console's "disabled accounts" filter.
CREATE INDEX users_disabled_idx ON users (disabled_at) WHERE disabled_at IS NOT NULL;

-- Shopify feeds an administrator previewed in the console, waiting for "Apply" (at most 15
-- minutes; older ones are ignored and deleted by the next preview). In the database, not one
-- instance's memory, so behind a load balancer any instance applies a preview another made,
-- and a restart between preview and apply loses nothing. `feed` is the parsed feed written
-- back as a products.json document (at most the 20 MiB an import reads, plus re-encoding).
CREATE TABLE console_import_previews (
    id         uuid PRIMARY KEY,
    admin_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source     text NOT NULL CHECK (length(source) BETWEEN 1 AND 2048),
    feed       bytea NOT NULL CHECK (length(feed) <= 64 * 1024 * 1024),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_import_previews_admin_idx ON console_import_previews (admin_id, created_at);

-- Accounts and authentication: session invalidation and login rate limiting.

-- Bumped when every session of a user must end (password change, account deletion). Access
-- tokens carry the epoch they were issued in; a token from an older epoch is refused.
ALTER TABLE users
    ADD COLUMN session_epoch integer NOT NULL DEFAULT 0 CHECK (session_epoch >= 0);

-- Failed sign-in attempts, counted per account and per client address within a window to
-- rate-limit password guessing across every server instance. The account key is a SHA-256
-- of the normalised email, so the table holds no email addresses. Old rows are purged.
CREATE TABLE auth_failures (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    scope     text NOT NULL CHECK (scope IN ('account', 'address')),
    key       text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    failed_at timestamptz NOT NULL DEFAULT now()
);
-- Counting recent failures of one key.
CREATE INDEX auth_failures_key_idx ON auth_failures (scope, key, failed_at);
-- Purging old failures.
CREATE INDEX auth_failures_failed_at_brin ON auth_failures USING brin (failed_at);

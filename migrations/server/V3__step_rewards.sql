-- Steps to coins: per-day reward bookkeeping and a ledger sequence.

-- One row per user and local day that has steps: what the day is worth (the largest verified
-- source total) and how many step-reward coins it has paid. Rewards are computed on these
-- totals, never on increments, so the remainder of the coin rate carries within the day and
-- a replayed report can never pay twice: it pays (target - coins_paid), which is zero.
CREATE TABLE step_days (
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    day            date NOT NULL,
    verified_steps integer NOT NULL DEFAULT 0 CHECK (verified_steps >= 0),
    coins_paid     bigint NOT NULL DEFAULT 0 CHECK (coins_paid >= 0),
    change_version bigint NOT NULL DEFAULT 0 CHECK (change_version >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);
-- Sync pull of a user's day totals.
CREATE INDEX step_days_user_version_idx ON step_days (user_id, change_version);
CREATE TRIGGER step_days_set_updated_at BEFORE UPDATE ON step_days
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The order in which entries were booked. Entries of one transaction share created_at, so
-- the ledger's balance chain (each entry's *_after) is verified and paged in this order.
ALTER TABLE coin_transactions ADD COLUMN ledger_seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX coin_transactions_user_seq_idx ON coin_transactions (user_id, ledger_seq);

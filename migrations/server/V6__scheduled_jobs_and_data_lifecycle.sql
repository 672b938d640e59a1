-- Scheduled jobs that run once across server instances, and the data lifecycle: an archive
-- schema for step-record partitions past their retention, and the indexes pruning needs.

-- One row per background job (leaderboard rebuild, database upkeep, ledger verification).
-- Every instance runs the same loop; the one whose
-- `UPDATE ... SET next_due = <next> WHERE name = <job> AND next_due = <seen> AND next_due <= now()`
-- matches a row runs the job for that due time, the others find nothing to claim. So each due
-- time is run once however many instances there are.
CREATE TABLE scheduled_jobs (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z_]{1,64}$'),
    -- The next time the job is due.
    next_due         timestamptz NOT NULL,
    last_due         timestamptz,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_outcome     text CHECK (last_outcome IN ('ok', 'failed')),
    -- What the last run reported (counts, problems); never secrets.
    last_detail      jsonb,
    -- The instance that ran it last (host name and process id).
    last_instance    text CHECK (last_instance IS NULL OR length(last_instance) <= 200),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER scheduled_jobs_set_updated_at BEFORE UPDATE ON scheduled_jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Every run of a scheduled job (and of `verify-ledger` from the command line), for operators
-- and for the ledger-verification metric. Pruned after 90 days by the upkeep job.
CREATE TABLE scheduled_job_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text NOT NULL CHECK (job ~ '^[a-z_]{1,64}$'),
    -- The due time this run claimed (NULL for a run started by hand).
    due_at      timestamptz,
    instance    text NOT NULL CHECK (length(instance) <= 200),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('ok', 'failed')),
    detail      jsonb
);
CREATE INDEX scheduled_job_runs_job_idx ON scheduled_job_runs (job, started_at DESC);

-- Step-record partitions older than FITKART_STEP_RETENTION_MONTHS are detached from
-- step_records and moved here, with the review decisions that point at them: kept, not
-- deleted, out of every query the server runs.
CREATE SCHEMA IF NOT EXISTS archive;
-- Same columns, in the same order, as step_validations (a later migration that changes
-- step_validations changes this table too).
CREATE TABLE archive.step_validations (LIKE step_validations INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE INDEX step_validations_day_idx ON archive.step_validations (step_day);

-- Moving a month's review decisions to the archive finds them by day.
CREATE INDEX step_validations_step_day_idx ON step_validations (step_day);
-- Pruning expired refresh tokens uses refresh_tokens_expires_at_idx (V1); pruning
-- sync_mutations uses sync_mutations_applied_brin (V1).

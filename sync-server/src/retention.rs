//! The data lifecycle: step-record partitions past the configured retention are detached and
//! moved to the `archive` schema (never deleted), stored sync outcomes past the replay window
//! and expired refresh tokens are pruned. The coin ledger and the audit log are never pruned.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Pool};

use crate::config::MIN_STEP_RETENTION_MONTHS;
use crate::error::{Error, Result};

/// Rows one pruning statement deletes at most, so a large backlog is removed in short
/// transactions instead of one long one.
pub const PRUNE_BATCH: i64 = 10_000;

/// How long the runs of scheduled jobs are kept.
pub const JOB_RUN_RETENTION_DAYS: i32 = 90;

/// The oldest `created_at` a pushed mutation may carry at `now` to still be applied when the
/// server has no stored outcome for it: older ones are rejected `mutation_expired`.
///
/// Stored outcomes are pruned only once both their `applied_at` and their `client_created_at`
/// are older than the window (see [`prune_sync_mutations`]). A replay carries the same
/// `created_at` as its first push (a device never edits a sent mutation), so by the time its
/// stored outcome is gone the replay is older than the window and is rejected: a mutation is
/// answered `duplicate` or `mutation_expired`, never applied twice, whatever the device's clock.
pub fn replay_cutoff(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX)
}

/// Deletes stored sync outcomes whose mutation was created and applied longer ago than the
/// replay window. Returns how many were deleted.
pub async fn prune_sync_mutations(client: &impl GenericClient, window: Duration) -> Result<u64> {
    let cutoff = replay_cutoff(Utc::now(), window);
    delete_in_batches(
        client,
        "DELETE FROM sync_mutations WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM sync_mutations
             WHERE applied_at < $1 AND client_created_at < $1
             LIMIT $2))",
        cutoff,
    )
    .await
}

/// Deletes refresh tokens past their expiry (they can never be used again; a family that
/// is still alive keeps its newer tokens). Returns how many were deleted.
pub async fn prune_expired_refresh_tokens(client: &impl GenericClient) -> Result<u64> {
    delete_in_batches(
        client,
        "DELETE FROM refresh_tokens WHERE id = ANY(ARRAY(
             SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2))",
        Utc::now(),
    )
    .await
}

/// Deletes the records of scheduled-job runs older than [`JOB_RUN_RETENTION_DAYS`].
pub async fn prune_job_runs(client: &impl GenericClient) -> Result<u64> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(JOB_RUN_RETENTION_DAYS));
    delete_in_batches(
        client,
        "DELETE FROM scheduled_job_runs WHERE id = ANY(ARRAY(
             SELECT id FROM scheduled_job_runs WHERE started_at < $1 LIMIT $2))",
        cutoff,
    )
    .await
}

async fn delete_in_batches(
    client: &impl GenericClient,
    statement: &str,
    cutoff: DateTime<Utc>,
) -> Result<u64> {
    let mut total = 0;
    loop {
        let deleted = client.execute(statement, &[&cutoff, &PRUNE_BATCH]).await?;
        total += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// What archiving old step-record partitions did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveReport {
    /// Partitions moved to the `archive` schema (their names are kept).
    pub archived: Vec<String>,
    /// Partitions past the retention that stayed because a record in them still waits for
    /// an admin's review; they are archived at a later run, once it is decided.
    pub waiting_for_review: Vec<String>,
}

/// The first day that must stay in `step_records` under a retention of `months` months on
/// `today`: the first day of the month `months` months back, or earlier when the backfill
/// window (`backfill_days`, plus a day for time zones ahead of UTC) reaches further.
pub fn retention_start(today: NaiveDate, months: u32, backfill_days: i64) -> NaiveDate {
    use chrono::Datelike as _;
    let this_month = today.with_day(1).unwrap_or(today);
    let by_retention = this_month
        .checked_sub_months(chrono::Months::new(months.saturating_sub(1)))
        .unwrap_or(NaiveDate::MIN);
    let oldest_report =
        today - chrono::Days::new(u64::try_from(backfill_days.max(0) + 1).unwrap_or(0));
    let by_backfill = oldest_report.with_day(1).unwrap_or(oldest_report);
    by_retention.min(by_backfill)
}

/// Detaches every monthly partition of `step_records` that ends before the retention start
/// (see [`retention_start`]) and moves it, with the review decisions of its records, to the
/// `archive` schema. A partition with a record still waiting for review stays.
pub async fn archive_step_partitions(pool: &Pool, months: u32) -> Result<ArchiveReport> {
    if months < MIN_STEP_RETENTION_MONTHS {
        return Err(Error::Config(format!(
            "the step retention must keep at least {MIN_STEP_RETENTION_MONTHS} months"
        )));
    }
    let mut conn = pool.get().await?;
    let backfill: Option<i64> = conn
        .query_opt(
            "SELECT (value #>> '{}')::bigint AS days FROM settings
             WHERE key = $1 AND jsonb_typeof(value) = 'number'",
            &[&crate::rewards::settings::SettingKey::BackfillDays.as_str()],
        )
        .await?
        .map(|row| row.get("days"));
    let start = retention_start(
        crate::rewards::leaderboard::today_utc(),
        months,
        backfill.unwrap_or(0),
    );
    let partitions = conn
        .query(
            "SELECT c.relname, bounds[1]::date AS from_day, bounds[2]::date AS to_day
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                 'FROM \\(''([0-9-]+)''\\) TO \\(''([0-9-]+)''\\)') AS bounds
             WHERE i.inhparent = 'step_records'::regclass AND bounds[2]::date <= $1
             ORDER BY from_day",
            &[&start],
        )
        .await?;
    let mut report = ArchiveReport::default();
    for row in partitions {
        let (name, from, to): (String, NaiveDate, NaiveDate) =
            (row.get("relname"), row.get("from_day"), row.get("to_day"));
        let tx = conn.transaction().await?;
        // A detach needs a brief exclusive lock on step_records: give up rather than queue
        // every step report behind a long-running reader.
        tx.batch_execute("SET LOCAL lock_timeout = '10s'").await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('fitkart.step_records.partitions'))",
            &[],
        )
        .await?;
        let pending: i64 = tx
            .query_one(
                "SELECT count(*) AS pending FROM step_validations
                 WHERE step_day >= $1 AND step_day < $2 AND status = 'pending_review'",
                &[&from, &to],
            )
            .await?
            .get("pending");
        if pending > 0 {
            tracing::warn!(partition = %name, pending, "not archiving a partition with records waiting for review");
            report.waiting_for_review.push(name);
            continue;
        }
        // The review decisions go with their records (their foreign key would refuse the
        // detach), into a table of the same shape.
        tx.execute(
            "WITH moved AS (
                 DELETE FROM step_validations WHERE step_day >= $1 AND step_day < $2
                 RETURNING *)
             INSERT INTO archive.step_validations SELECT * FROM moved",
            &[&from, &to],
        )
        .await?;
        let quoted = crate::db::quote_ident(&name);
        tx.batch_execute(&format!(
            "ALTER TABLE step_records DETACH PARTITION {quoted};
             ALTER TABLE {quoted} SET SCHEMA archive;"
        ))
        .await?;
        tx.commit().await?;
        tracing::info!(partition = %name, "archived a step_records partition");
        report.archived.push(name);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_retention_keeps_whole_months_and_the_backfill_window() {
        // Two months: this month and the previous one.
        assert_eq!(retention_start(date(2026, 3, 15), 2, 7), date(2026, 2, 1));
        assert_eq!(retention_start(date(2026, 1, 31), 12, 7), date(2025, 2, 1));
        // Early in a month the backfill window reaches into the month before the retention.
        assert_eq!(retention_start(date(2026, 3, 3), 1, 7), date(2026, 2, 1));
        // A backfill window of 400 days keeps more than a year.
        assert_eq!(retention_start(date(2026, 3, 15), 6, 400), date(2025, 2, 1));
    }

    #[test]
    fn a_replay_older_than_the_window_is_past_the_cutoff() {
        let now = Utc::now();
        let window = Duration::from_secs(3600);
        assert!(now - chrono::Duration::minutes(61) < replay_cutoff(now, window));
        assert!(now - chrono::Duration::minutes(59) > replay_cutoff(now, window));
    }
}

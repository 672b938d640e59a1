//! Leaderboards: rebuilding the weekly, monthly and all-time boards of `leaderboard_cache`,
//! the background job that keeps them fresh, and reading one for a user.
//!
//! The boards are built from totals kept incrementally: `step_month_totals` holds every
//! user's verified steps per calendar month, changed by triggers on `step_days` in the same
//! transaction as each day (V8). The monthly board reads the current month's totals, the
//! all-time board sums each user's months, and the weekly board sums the current week's
//! days; none reads history the period does not cover. A full rebuild (the admin and operator
//! refresh) first recomputes the month totals from `step_days` and repairs any that differ.
//!
//! A rebuild replaces a board with set-based SQL in one transaction (DELETE + INSERT ...
//! SELECT with `row_number()`), so a reader sees either the old board or the new one, never a
//! half-built one, and is never blocked (MVCC). Rebuilds of the same period are serialised by
//! a transaction-scoped advisory lock. Users deleted since the last rebuild are filtered out
//! at read time and the ranks closed up, so a board never shows a deleted account or a gap.

use std::time::Duration;

use chrono::{DateTime, Datelike as _, Months, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use fitkart_protocol::leaderboard::{Leaderboard, LeaderboardEntry, MyRank};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::config::ServerConfig;
use crate::db::CachedStatements as _;
use crate::error::{DomainError, Error, Result};

pub use fitkart_protocol::leaderboard::LeaderboardPeriod as Period;

/// The largest `limit` a board request may ask for when the `leaderboard.size` setting is
/// missing (the seed's value).
pub const DEFAULT_MAX_SIZE: i64 = 100;

/// The `settings` key holding the largest `limit` a board request may ask for.
pub const MAX_SIZE_SETTING: &str = crate::rewards::settings::SettingKey::LeaderboardSize.as_str();

/// Today's date in UTC, the calendar the boards' periods follow.
pub fn today_utc() -> NaiveDate {
    Utc::now().date_naive()
}

/// The days a period covers on `today` (UTC): its first day and, except for all time, the
/// first day after it. Weekly is the ISO week (Monday to Sunday), monthly the calendar month,
/// all time starts on 1970-01-01.
pub fn period_bounds(period: Period, today: NaiveDate) -> (NaiveDate, Option<NaiveDate>) {
    match period {
        Period::Weekly => {
            let start =
                today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()));
            (start, start.checked_add_days(chrono::Days::new(7)))
        }
        Period::Monthly => {
            let start = today.with_day(1).unwrap_or(today);
            (start, start.checked_add_months(Months::new(1)))
        }
        Period::AllTime => (DateTime::UNIX_EPOCH.date_naive(), None),
    }
}

/// Who asked for a rebuild, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequester<'a> {
    /// The administrator (None for the operator CLI).
    pub admin_id: Option<Uuid>,
    /// Where the request came from (None for the operator CLI).
    pub client: Option<&'a ClientInfo>,
}

/// How a rebuild finds each user's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// From the month totals the `step_days` triggers keep (the nightly job): reads only the
    /// current week's days, the current month's totals and one row per user and month.
    Incremental,
    /// First recomputes every month total from `step_days` and repairs those that differ
    /// (see [`repair_month_totals`]), then rebuilds as [`Rebuild::Incremental`] does. Step
    /// writes wait while the totals are recomputed; board reads do not.
    Full,
}

/// Rebuilds one period's board, or every board, in one transaction, from the incremental
/// month totals. Returns how many users each rebuilt board ranks. Used by the background job
/// and the generator; nothing is audited.
pub async fn refresh(pool: &Pool, period: Option<Period>) -> Result<Vec<(Period, u64)>> {
    refresh_boards(pool, period, Rebuild::Incremental, None).await
}

/// A [`Rebuild::Full`] of one period's board, or every board, without an audit entry: the
/// correctness check of the incremental totals. Returns the boards' sizes as [`refresh`] does.
pub async fn refresh_full(pool: &Pool, period: Option<Period>) -> Result<Vec<(Period, u64)>> {
    refresh_boards(pool, period, Rebuild::Full, None).await
}

/// A [`Rebuild::Full`] on behalf of an administrator or the operator, writing exactly one
/// `admin_logs` row (`leaderboard.refresh`) in the same transaction as the rebuild.
pub async fn refresh_audited(
    pool: &Pool,
    period: Option<Period>,
    requester: RefreshRequester<'_>,
) -> Result<Vec<(Period, u64)>> {
    refresh_boards(pool, period, Rebuild::Full, Some(requester)).await
}

async fn refresh_boards(
    pool: &Pool,
    period: Option<Period>,
    how: Rebuild,
    requester: Option<RefreshRequester<'_>>,
) -> Result<Vec<(Period, u64)>> {
    let periods = match period {
        Some(period) => vec![period],
        None => Period::ALL.to_vec(),
    };
    let today = today_utc();
    let mut conn = pool.get().await?;
    if how == Rebuild::Full && periods.iter().any(|p| *p != Period::Weekly) {
        let repaired = repair_month_totals(&mut conn).await?;
        if repaired > 0 {
            tracing::warn!(
                repaired,
                "month totals differed from step_days and were repaired"
            );
        }
    }
    let tx = conn.transaction().await?;
    let mut counts = Vec::with_capacity(periods.len());
    // Locks are taken in the fixed order of `Period::ALL`, so concurrent refreshes of several
    // periods cannot deadlock.
    for period in periods {
        counts.push((period, rebuild(&tx, period, today).await?));
    }
    if let Some(requester) = requester {
        audit_refresh(&tx, period, &counts, requester).await?;
    }
    tx.commit().await?;
    for (period, entries) in &counts {
        tracing::info!(%period, entries, "rebuilt leaderboard");
    }
    // Fresh statistics keep the readers' plans right after the table was replaced (a user's
    // own rank is counted from the few deleted accounts, not from every rank above it).
    // Best effort: the boards are already rebuilt.
    if let Err(err) = conn.batch_execute("ANALYZE leaderboard_cache").await {
        tracing::warn!(error = %err, "could not analyze leaderboard_cache");
    }
    Ok(counts)
}

/// The one `leaderboard.refresh` audit entry of a requested rebuild: each board's size.
async fn audit_refresh(
    tx: &Transaction<'_>,
    period: Option<Period>,
    counts: &[(Period, u64)],
    requester: RefreshRequester<'_>,
) -> Result<()> {
    let boards: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(period, entries)| (period.to_string(), (*entries).into()))
        .collect();
    audit::record(
        tx,
        AuditEntry {
            admin_id: requester.admin_id,
            action: "leaderboard.refresh",
            entity_type: "leaderboard",
            entity_id: period.map_or_else(|| "all".to_owned(), |p| p.to_string()),
            before: None,
            after: Some(serde_json::json!({ "entries": boards })),
            reason: None,
            client: requester.client,
        },
    )
    .await?;
    Ok(())
}

/// Recomputes every user's month totals from `step_days` and writes those that differ from
/// `step_month_totals` (missing, wrong, or left over from months without steps), in one
/// transaction. Returns how many rows it wrote or deleted: 0 when the incremental totals are
/// exact. The table is locked against writes (`EXCLUSIVE`: reads go on) for the transaction,
/// so no day can change between the recomputation and the repair; step writes wait for it.
pub async fn repair_month_totals(conn: &mut deadpool_postgres::Client) -> Result<u64> {
    let tx = conn.transaction().await?;
    tx.batch_execute("LOCK TABLE step_month_totals IN EXCLUSIVE MODE")
        .await?;
    let row = tx
        .query_one(
            "WITH actual AS MATERIALIZED (
                 SELECT date_trunc('month', day)::date AS month, user_id,
                        sum(verified_steps) AS steps
                 FROM step_days
                 GROUP BY 1, 2
                 HAVING sum(verified_steps) > 0
             ), corrected AS (
                 INSERT INTO step_month_totals AS t (month, user_id, steps)
                 SELECT a.month, a.user_id, a.steps
                 FROM actual a
                 LEFT JOIN step_month_totals k ON k.month = a.month AND k.user_id = a.user_id
                 WHERE k.steps IS DISTINCT FROM a.steps
                 ON CONFLICT (month, user_id) DO UPDATE SET steps = EXCLUDED.steps
                 RETURNING 1
             ), stale AS (
                 DELETE FROM step_month_totals t
                 WHERE NOT EXISTS (SELECT 1 FROM actual a
                                   WHERE a.month = t.month AND a.user_id = t.user_id)
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM corrected) + (SELECT count(*) FROM stale) AS repaired",
            &[],
        )
        .await?;
    tx.commit().await?;
    let repaired: i64 = row.get("repaired");
    Ok(repaired as u64)
}

/// The SQL summing each user's steps in a period, as rows of `user_id, steps`: the week's from
/// `$2` (its first day) to `$3` (the first day after it), the month's from `$2`, all time's
/// from every month.
fn period_totals_sql(period: Period) -> &'static str {
    match period {
        // At most seven days per user, found through `step_days_day_idx`.
        Period::Weekly => {
            "SELECT sd.user_id, sum(sd.verified_steps) AS steps
             FROM step_days sd
             WHERE sd.day >= $2 AND sd.day < $3
             GROUP BY sd.user_id"
        }
        // One row per user: the current month's total.
        Period::Monthly => {
            "SELECT mt.user_id, mt.steps
             FROM step_month_totals mt
             WHERE mt.month = $2"
        }
        // One row per user and month with steps.
        Period::AllTime => {
            "SELECT mt.user_id, sum(mt.steps)::bigint AS steps
             FROM step_month_totals mt
             GROUP BY mt.user_id"
        }
    }
}

/// Replaces one period's rows: everyone live with steps in the period, ranked by steps, then
/// registration time, then id. Returns the number of users ranked.
async fn rebuild(tx: &Transaction<'_>, period: Period, today: NaiveDate) -> Result<u64> {
    let (start, end) = period_bounds(period, today);
    let name = period.as_str();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('fitkart.leaderboard.' || $1))",
        &[&name],
    )
    .await?;
    tx.execute("DELETE FROM leaderboard_cache WHERE period = $1", &[&name])
        .await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&name, &start];
    if period == Period::Weekly {
        params.push(&end);
    }
    let ranked = tx
        .execute(
            &format!(
                "INSERT INTO leaderboard_cache
                     (period, period_start, user_id, rank, steps, display_name, computed_at)
                 SELECT $1, $2, totals.user_id,
                        row_number() OVER (ORDER BY totals.steps DESC, u.created_at, u.id),
                        totals.steps, u.display_name, now()
                 FROM ({}) totals
                 JOIN users u ON u.id = totals.user_id
                 WHERE u.deleted_at IS NULL AND u.disabled_at IS NULL AND totals.steps > 0",
                period_totals_sql(period)
            ),
            &params,
        )
        .await?;
    Ok(ranked)
}

/// Whether some period has no board yet (a fresh install, or a cache someone emptied).
pub async fn any_board_missing(client: &impl GenericClient) -> Result<bool> {
    let boards: i64 = client
        .query_one(
            "SELECT count(DISTINCT period) AS boards FROM leaderboard_cache",
            &[],
        )
        .await?
        .get("boards");
    Ok(boards < Period::ALL.len() as i64)
}

/// The stored value of the `leaderboard.size` setting, which must be a positive integer.
fn size_from_setting(value: serde_json::Value) -> Result<i64> {
    value.as_i64().filter(|size| *size >= 1).ok_or_else(|| {
        Error::Config(format!(
            "setting {MAX_SIZE_SETTING} must be a positive integer"
        ))
    })
}

/// The parts of a board [`read`] answers from, in one statement (one snapshot): the top
/// (`$2` rows; ranks are closed up over users deleted since the rebuild: the top is
/// renumbered, and the viewer's rank loses one for every deleted user above it), the viewer's
/// place (`$3`), the board's first row (its period start and build time; through the rank
/// index, not a scan that may first pass the rows the last rebuilds deleted) and the
/// `leaderboard.size` setting (`$4`).
///
/// The limit is a sub-select, `LIMIT (SELECT $2::bigint)`, so that no plan knows its value:
/// with a bare `LIMIT $2` a custom plan (which sees the 100) always looked cheaper than the
/// generic one (which guesses 10% of the board), and PostgreSQL re-planned this statement on
/// every call: 0.4–0.6 ms of planning against 0.24 ms of running at `medium`. Both plans now
/// cost the same, so the cached generic plan is kept after the first five calls
/// (`docs/benchmarks.md`, tuning step 7).
const READ_BOARD: &str = "(SELECT 'top' AS part, row_number() OVER (ORDER BY lc.rank) AS rank,
         lc.display_name, lc.steps, lc.user_id = $3 AS is_me,
         NULL::date AS period_start, NULL::timestamptz AS computed_at, NULL::jsonb AS value
  FROM leaderboard_cache lc
  WHERE lc.period = $1
    AND NOT EXISTS (SELECT 1 FROM users du
                    WHERE du.id = lc.user_id AND du.deleted_at IS NOT NULL)
  ORDER BY lc.rank
  LIMIT (SELECT $2::bigint))
 UNION ALL
 SELECT 'me', lc.rank - (SELECT count(*)
                         FROM users du
                         JOIN leaderboard_cache d ON d.period = lc.period AND d.user_id = du.id
                         WHERE du.deleted_at IS NOT NULL AND d.rank < lc.rank),
        NULL, lc.steps, NULL, NULL, NULL, NULL
 FROM leaderboard_cache lc
 WHERE lc.period = $1 AND lc.user_id = $3
 UNION ALL
 (SELECT 'built', NULL, NULL, NULL, NULL, period_start, computed_at, NULL
  FROM leaderboard_cache WHERE period = $1 ORDER BY rank LIMIT 1)
 UNION ALL
 SELECT 'size', NULL, NULL, NULL, NULL, NULL, NULL, value FROM settings WHERE key = $4";

/// The top `limit` of a period's board for `viewer`, with the viewer's own place even when
/// it is outside the top. `limit` defaults to 10 and must be 1 to the `leaderboard.size`
/// setting (422 `validation_failed` otherwise). Everything is read by one statement, from one
/// snapshot, in one round trip.
pub async fn read(
    client: &impl GenericClient,
    viewer: Uuid,
    period: Period,
    limit: Option<i64>,
) -> Result<Leaderboard, DomainError> {
    let limit = limit.unwrap_or(fitkart_protocol::leaderboard::DEFAULT_LEADERBOARD_LIMIT);
    if limit < 1 {
        return Err(DomainError::validation("limit", "limit must be at least 1"));
    }
    // The setting is read with the board, so the rows read are capped by the largest value
    // the setting may take; a limit above the stored value is refused below.
    let largest = crate::rewards::settings::SettingKey::LeaderboardSize
        .rule()
        .max as i64;
    let rows = client
        .query_cached(
            READ_BOARD,
            &[
                &period.as_str(),
                &limit.min(largest),
                &viewer,
                &MAX_SIZE_SETTING,
            ],
        )
        .await?;
    let part = |name: &'static str| {
        rows.iter()
            .filter(move |row| row.get::<_, &str>("part") == name)
    };
    let max = match part("size").next() {
        Some(row) => size_from_setting(row.get("value"))?,
        None => DEFAULT_MAX_SIZE,
    };
    if limit > max {
        return Err(DomainError::validation(
            "limit",
            format!("limit must be between 1 and {max}"),
        ));
    }
    let top: Vec<&tokio_postgres::Row> = part("top").collect();
    Ok(board_from_rows(
        period,
        &top,
        part("me").next(),
        part("built").next(),
    ))
}

/// The answer of [`read`] from the parts of its statement: the top, the viewer's own place, and any row
/// of the board (its period start and build time; a board never built starts today's period).
fn board_from_rows(
    period: Period,
    top: &[&tokio_postgres::Row],
    me: Option<&tokio_postgres::Row>,
    built: Option<&tokio_postgres::Row>,
) -> Leaderboard {
    let (period_start, computed_at) = match built {
        Some(row) => (
            row.get("period_start"),
            Some(row.get::<_, DateTime<Utc>>("computed_at")),
        ),
        None => (period_bounds(period, today_utc()).0, None),
    };
    Leaderboard {
        period,
        period_start,
        computed_at,
        entries: top
            .iter()
            .map(|row| LeaderboardEntry {
                rank: row.get("rank"),
                display_name: row.get("display_name"),
                steps: row.get("steps"),
                is_me: row.get("is_me"),
            })
            .collect(),
        me: me.map(|row| MyRank {
            rank: row.get("rank"),
            steps: row.get("steps"),
        }),
    }
}

/// When the background job rebuilds the boards.
pub use crate::jobs::Schedule as RefreshSchedule;

/// The rebuild schedule a configuration asks for: the interval when one is set, else nightly.
pub fn refresh_schedule(config: &ServerConfig) -> RefreshSchedule {
    match config.leaderboard_refresh_interval {
        Some(every) => RefreshSchedule::Every(every.max(Duration::from_secs(1))),
        None => RefreshSchedule::DailyAt(config.leaderboard_refresh_at),
    }
}

/// Keeps the boards fresh until the task is aborted: rebuilds on every due time of
/// `schedule`, once across every instance sharing the database (see [`crate::jobs`]), and at
/// once on a fresh install whose boards are missing. A failure is logged and recorded; the
/// next due time retries.
pub async fn run_refresh_job(pool: Pool, schedule: RefreshSchedule, instance: String) {
    let missing = match pool.get().await {
        Ok(client) => any_board_missing(&client).await,
        Err(err) => Err(err.into()),
    };
    let missing = missing.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "could not check the leaderboards; they are rebuilt at the next due time");
        false
    });
    crate::jobs::run_scheduled(
        pool,
        crate::jobs::LEADERBOARD_REFRESH,
        schedule,
        missing,
        instance,
        |pool| async move {
            let counts = refresh(&pool, None).await?;
            Ok(serde_json::Value::Object(
                counts
                    .into_iter()
                    .map(|(period, entries)| (period.to_string(), entries.into()))
                    .collect(),
            ))
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn weeks_run_monday_to_sunday_across_month_and_year_ends() {
        // 2023-12-31 is a Sunday; its ISO week started on Monday 2023-12-25.
        assert_eq!(
            period_bounds(Period::Weekly, date(2023, 12, 31)),
            (date(2023, 12, 25), Some(date(2024, 1, 1)))
        );
        // 2024-01-01 is a Monday: a new week.
        assert_eq!(
            period_bounds(Period::Weekly, date(2024, 1, 1)),
            (date(2024, 1, 1), Some(date(2024, 1, 8)))
        );
        assert_eq!(
            period_bounds(Period::Weekly, date(2024, 2, 29)),
            (date(2024, 2, 26), Some(date(2024, 3, 4)))
        );
    }

    #[test]
    fn months_are_calendar_months_and_all_time_starts_in_1970() {
        assert_eq!(
            period_bounds(Period::Monthly, date(2024, 2, 29)),
            (date(2024, 2, 1), Some(date(2024, 3, 1)))
        );
        assert_eq!(
            period_bounds(Period::Monthly, date(2023, 12, 31)),
            (date(2023, 12, 1), Some(date(2024, 1, 1)))
        );
        assert_eq!(
            period_bounds(Period::AllTime, date(2024, 5, 5)),
            (date(1970, 1, 1), None)
        );
    }

    #[test]
    fn the_nightly_rebuild_waits_for_the_next_occurrence_of_its_time() {
        let at = NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        let schedule = RefreshSchedule::DailyAt(at);
        let before = date(2024, 3, 10).and_hms_opt(2, 30, 0).unwrap().and_utc();
        assert_eq!(schedule.delay_after(before), Duration::from_secs(30 * 60));
        let exactly = date(2024, 3, 10).and_hms_opt(3, 0, 0).unwrap().and_utc();
        assert_eq!(
            schedule.delay_after(exactly),
            Duration::from_secs(24 * 3600)
        );
        let after = date(2024, 3, 10).and_hms_opt(4, 0, 0).unwrap().and_utc();
        assert_eq!(schedule.delay_after(after), Duration::from_secs(23 * 3600));
        let every = RefreshSchedule::Every(Duration::from_secs(5));
        assert_eq!(every.delay_after(after), Duration::from_secs(5));
    }
}

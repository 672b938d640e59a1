//! Scheduled background jobs that run once per due time however many server instances share
//! the database: each instance runs the same loop, and only the one that claims the job's due
//! time in `scheduled_jobs` (one conditional `UPDATE`) runs it. Every run is recorded in
//! `scheduled_job_runs` (docs/adr/0009-scheduled-jobs-and-replay-window.md).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use rand::RngExt as _;

use crate::error::Result;

/// The leaderboard rebuild (nightly at `FITKART_LEADERBOARD_REFRESH_AT`).
pub const LEADERBOARD_REFRESH: &str = "leaderboard_refresh";
/// Database upkeep: partitions ahead, retention, pruning (every `FITKART_UPKEEP_INTERVAL_SECS`).
pub const UPKEEP: &str = "upkeep";
/// Ledger verification (every `FITKART_LEDGER_VERIFY_INTERVAL_HOURS`).
pub const VERIFY_LEDGER: &str = "verify_ledger";

/// Longest an instance sleeps before it looks at a job's row again, so a due time another
/// instance moved earlier (a fresh install, a shorter interval) is noticed.
const MAX_POLL: Duration = Duration::from_secs(60);

/// When a job is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Once a day at this UTC time of day.
    DailyAt(NaiveTime),
    /// Every this long.
    Every(Duration),
}

impl Schedule {
    /// How long to wait from `now` until the next due time.
    pub fn delay_after(&self, now: DateTime<Utc>) -> Duration {
        match *self {
            Self::Every(every) => every,
            Self::DailyAt(at) => {
                let today = now.date_naive().and_time(at).and_utc();
                let next = if today > now {
                    today
                } else {
                    today + chrono::Duration::days(1)
                };
                (next - now).to_std().unwrap_or(Duration::ZERO)
            }
        }
    }

    /// The next due time after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.delay_after(now))
            .unwrap_or_else(|_| chrono::Duration::days(1))
    }
}

/// The name this process's instance writes into `scheduled_job_runs.instance`: the host name,
/// the process id and a random tag (several servers may run in one process, as in tests).
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().take(120).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let tag: u32 = rand::rng().random();
    format!("{host}:{}:{tag:08x}", std::process::id())
}

/// Creates the job's row if it is missing, and moves its due time earlier when this
/// instance's schedule says so: to now when `due_now` and the job has never run (a fresh
/// install), else to this schedule's next due time if that is earlier than the stored one.
/// Returns the stored due time.
pub async fn register(
    client: &impl GenericClient,
    job: &str,
    schedule: Schedule,
    due_now: bool,
) -> Result<DateTime<Utc>> {
    let now = Utc::now();
    let first = if due_now {
        now
    } else {
        schedule.next_after(now)
    };
    Ok(client
        .query_one(
            "INSERT INTO scheduled_jobs (name, next_due) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET next_due =
                 CASE WHEN $3 AND scheduled_jobs.last_started_at IS NOT NULL
                      THEN least(scheduled_jobs.next_due, $4)
                      ELSE least(scheduled_jobs.next_due, EXCLUDED.next_due) END
             RETURNING next_due",
            &[&job, &first, &due_now, &schedule.next_after(now)],
        )
        .await?
        .get("next_due"))
}

/// A claimed due time: the run to record the outcome of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The `scheduled_job_runs` row of this run.
    pub run_id: i64,
    /// The due time claimed.
    pub due_at: DateTime<Utc>,
}

/// Claims the job's due time if it has come and no other instance claimed it: moves the due
/// time to `schedule`'s next one and records the run. `None` when there is nothing to run.
pub async fn claim(
    client: &impl GenericClient,
    job: &str,
    schedule: Schedule,
    instance: &str,
) -> Result<Option<Claim>> {
    // Under READ COMMITTED a second instance's UPDATE waits for the first one's row lock and
    // then re-checks `next_due <= now()` against the moved due time: it claims nothing.
    let next = schedule.next_after(Utc::now());
    Ok(client
        .query_opt(
            "WITH claimed AS (
                 UPDATE scheduled_jobs
                 SET next_due = $2, last_due = next_due, last_started_at = now(),
                     last_instance = $3
                 WHERE name = $1 AND next_due <= now()
                 RETURNING last_due)
             INSERT INTO scheduled_job_runs (job, due_at, instance)
             SELECT $1, last_due, $3 FROM claimed
             RETURNING id, due_at",
            &[&job, &next, &instance],
        )
        .await?
        .map(|row| Claim {
            run_id: row.get("id"),
            due_at: row.get("due_at"),
        }))
}

/// Records a run that was not claimed from the schedule (the `verify-ledger` command).
pub async fn record_manual_run(
    client: &impl GenericClient,
    job: &str,
    instance: &str,
) -> Result<i64> {
    Ok(client
        .query_one(
            "INSERT INTO scheduled_job_runs (job, instance) VALUES ($1, $2) RETURNING id",
            &[&job, &instance],
        )
        .await?
        .get("id"))
}

/// Records how a run ended, on the run and on the job's row.
pub async fn finish(
    client: &impl GenericClient,
    job: &str,
    run_id: i64,
    outcome: &Result<serde_json::Value>,
) -> Result<()> {
    let (status, detail) = match outcome {
        Ok(detail) => ("ok", detail.clone()),
        Err(err) => ("failed", serde_json::json!({ "error": err.to_string() })),
    };
    client
        .execute(
            "WITH run AS (
                 UPDATE scheduled_job_runs SET finished_at = now(), outcome = $3, detail = $4
                 WHERE id = $2 RETURNING finished_at)
             UPDATE scheduled_jobs SET last_finished_at = run.finished_at, last_outcome = $3,
                 last_detail = $4
             FROM run WHERE name = $1",
            &[&job, &run_id, &status, &detail],
        )
        .await?;
    Ok(())
}

/// Runs `work` once per due time of `schedule` across every instance sharing the database,
/// until the task is aborted. `due_now` makes a never-run job due at once. A failed run is
/// logged and recorded; the job is next due at its next scheduled time.
pub async fn run_scheduled<F, Fut>(
    pool: Pool,
    job: &'static str,
    schedule: Schedule,
    due_now: bool,
    instance: String,
    work: F,
) where
    F: Fn(Pool) -> Fut,
    Fut: Future<Output = Result<serde_json::Value>>,
{
    let retry = match schedule {
        Schedule::Every(every) => every.min(MAX_POLL),
        Schedule::DailyAt(_) => MAX_POLL,
    };
    let mut registered = false;
    loop {
        let due = match step(
            &pool,
            job,
            schedule,
            due_now,
            &instance,
            &mut registered,
            &work,
        )
        .await
        {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(job, error = %err, "scheduled job bookkeeping failed; will retry");
                Utc::now() + chrono::Duration::from_std(retry).unwrap_or_default()
            }
        };
        let wait = (due - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_POLL);
        // A little jitter so instances do not all hit the row in the same millisecond.
        let jitter = Duration::from_millis(rand::rng().random_range(0..50));
        tokio::time::sleep(wait + jitter).await;
    }
}

/// One pass of the loop: register once, claim and run if due. Returns the next due time.
async fn step<F, Fut>(
    pool: &Pool,
    job: &'static str,
    schedule: Schedule,
    due_now: bool,
    instance: &str,
    registered: &mut bool,
    work: &F,
) -> Result<DateTime<Utc>>
where
    F: Fn(Pool) -> Fut,
    Fut: Future<Output = Result<serde_json::Value>>,
{
    let client = pool.get().await?;
    if !*registered {
        register(&client, job, schedule, due_now).await?;
        *registered = true;
    }
    if let Some(claimed) = claim(&client, job, schedule, instance).await? {
        drop(client);
        let outcome = work(pool.clone()).await;
        match &outcome {
            Ok(detail) => {
                tracing::info!(job, due_at = %claimed.due_at, %detail, "scheduled job done")
            }
            Err(err) => tracing::warn!(job, error = %err, "scheduled job failed"),
        }
        finish(&pool.get().await?, job, claimed.run_id, &outcome).await?;
        return next_due(&pool.get().await?, job).await;
    }
    next_due(&client, job).await
}

async fn next_due(client: &impl GenericClient, job: &str) -> Result<DateTime<Utc>> {
    Ok(client
        .query_one(
            "SELECT next_due FROM scheduled_jobs WHERE name = $1",
            &[&job],
        )
        .await?
        .get("next_due"))
}

/// Connections of the background jobs' own pool, one for each job that may run at once (the
/// leaderboard rebuild, the upkeep, the database-backed metrics, the ledger verification).
/// Their own pool keeps a long job (the ledger verification reads the whole ledger: 70 s at
/// 100K users) from holding a connection the requests need, and the requests from delaying
/// a job (ADR 0014).
pub const BACKGROUND_POOL_SIZE: usize = 4;

/// Starts every background task of a serving instance: the leaderboard rebuild, the upkeep,
/// the ledger verification (when configured) and the metrics that are read from the
/// database, on a pool of their own ([`BACKGROUND_POOL_SIZE`] connections to the primary).
/// Abort the returned tasks to stop them.
pub fn spawn_background_jobs(
    state: &crate::http::AppState,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let config = &state.config;
    let pool = crate::db::pool(&config.database_url, BACKGROUND_POOL_SIZE)?;
    let instance = instance_name();
    tracing::info!(%instance, "starting the scheduled jobs of this instance");
    let mut tasks = vec![
        tokio::spawn(crate::rewards::leaderboard::run_refresh_job(
            pool.clone(),
            crate::rewards::leaderboard::refresh_schedule(config),
            instance.clone(),
        )),
        tokio::spawn(crate::maintenance::run_upkeep(
            pool.clone(),
            crate::maintenance::UpkeepSettings::from_config(config),
            config.upkeep_interval,
            instance.clone(),
        )),
        tokio::spawn(crate::metrics::run_database_gauges(
            pool.clone(),
            state.metrics.clone(),
        )),
    ];
    if let Some(every) = config.ledger_verify_interval {
        tasks.push(tokio::spawn(crate::maintenance::run_ledger_verification(
            pool, every, instance,
        )));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2024, 3, 10)
            .unwrap()
            .and_hms_opt(h, m, 0)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn a_daily_job_is_next_due_at_its_next_time_of_day() {
        let schedule = Schedule::DailyAt(NaiveTime::from_hms_opt(3, 0, 0).unwrap());
        assert_eq!(schedule.next_after(at(2, 30)), at(3, 0));
        assert_eq!(
            schedule.next_after(at(3, 0)),
            at(3, 0) + chrono::Duration::days(1)
        );
        let every = Schedule::Every(Duration::from_secs(6 * 3600));
        assert_eq!(every.next_after(at(3, 0)), at(9, 0));
    }
}

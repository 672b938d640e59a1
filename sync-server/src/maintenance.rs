//! Background upkeep of the database while the server runs, as scheduled jobs that run once
//! across instances: monthly step-record partitions are created ahead of time so an insert
//! never finds its month missing, the data lifecycle runs (retention, pruning), and the
//! ledger is verified.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::auth::rate_limit;
use crate::config::{LoginLimits, ServerConfig};
use crate::error::Result;
use crate::{jobs, retention};

/// How many months of partitions exist ahead of the current one (plus the previous month,
/// for late reports within the backfill window).
pub const PARTITION_MONTHS_AHEAD: i32 = 3;

/// Creates the step-record partitions from last month to [`PARTITION_MONTHS_AHEAD`] months
/// ahead. Returns how many were created.
pub async fn ensure_partitions(pool: &Pool) -> Result<i32> {
    let client = pool.get().await?;
    let made: i32 = client
        .query_one(
            "SELECT ensure_step_record_partitions(
                 (date_trunc('month', current_date) - interval '1 month')::date, $1) AS made",
            &[&(PARTITION_MONTHS_AHEAD + 2)],
        )
        .await?
        .get("made");
    if made > 0 {
        tracing::info!(partitions = made, "created step_records partitions");
    }
    Ok(made)
}

/// What the upkeep job needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct UpkeepSettings {
    /// Sign-in limits (their windows say which failures can be purged).
    pub login_limits: LoginLimits,
    /// The replay window of sync mutations.
    pub sync_replay_window: Duration,
    /// Months of step records kept (`None`: all).
    pub step_retention_months: Option<u32>,
}

impl UpkeepSettings {
    /// The settings of a server configuration.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            login_limits: config.login_limits,
            sync_replay_window: config.sync_replay_window,
            step_retention_months: config.step_retention_months,
        }
    }
}

/// One run of the upkeep: partitions ahead, archiving past the retention (when configured),
/// pruning of old sign-in failures, sync outcomes past the replay window, expired refresh
/// tokens and old job runs. Returns what it did, for `scheduled_job_runs.detail`.
pub async fn upkeep(pool: &Pool, settings: UpkeepSettings) -> Result<serde_json::Value> {
    let partitions = ensure_partitions(pool).await?;
    let archive = match settings.step_retention_months {
        Some(months) => Some(retention::archive_step_partitions(pool, months).await?),
        None => None,
    };
    let client = pool.get().await?;
    let sign_in_failures = rate_limit::purge(&client, &settings.login_limits).await?;
    let sync_mutations =
        retention::prune_sync_mutations(&client, settings.sync_replay_window).await?;
    let refresh_tokens = retention::prune_expired_refresh_tokens(&client).await?;
    let job_runs = retention::prune_job_runs(&client).await?;
    Ok(serde_json::json!({
        "partitions_created": partitions,
        "archive": archive,
        "pruned": {
            "sign_in_failures": sign_in_failures,
            "sync_mutations": sync_mutations,
            "refresh_tokens": refresh_tokens,
            "job_runs": job_runs,
        },
    }))
}

/// Runs the upkeep every `every`, once per due time across every instance sharing the
/// database, until the task is aborted. A fresh install runs it at once.
pub async fn run_upkeep(pool: Pool, settings: UpkeepSettings, every: Duration, instance: String) {
    jobs::run_scheduled(
        pool,
        jobs::UPKEEP,
        jobs::Schedule::Every(every.max(Duration::from_secs(1))),
        true,
        instance,
        move |pool| async move { upkeep(&pool, settings).await },
    )
    .await;
}

/// Verifies the ledger every `every`, once per due time across every instance, recording
/// the result in `scheduled_job_runs` (the `fitkart_ledger_verification_*` metrics read it).
/// A fresh install verifies at once.
pub async fn run_ledger_verification(pool: Pool, every: Duration, instance: String) {
    jobs::run_scheduled(
        pool,
        jobs::VERIFY_LEDGER,
        jobs::Schedule::Every(every.max(Duration::from_secs(1))),
        true,
        instance,
        |pool| async move { verify_ledger(&pool).await },
    )
    .await;
}

/// Verifies the ledger and describes the result: `{"ok", "wallets", "entries", "problems"}`.
/// Problems are counted, and the first few named (user ids, no personal data).
pub async fn verify_ledger(pool: &Pool) -> Result<serde_json::Value> {
    let report = crate::rewards::ledger::verify(&pool.get().await?).await?;
    if !report.is_ok() {
        tracing::error!(
            problems = report.problems.len(),
            "ledger verification found problems"
        );
    }
    Ok(serde_json::json!({
        "ok": report.is_ok(),
        "wallets": report.wallets_checked,
        "entries": report.entries_checked,
        "problems": report.problems.len(),
        "first_problems": report.problems.iter().take(10).map(ToString::to_string).collect::<Vec<_>>(),
    }))
}

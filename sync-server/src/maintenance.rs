//! Background upkeep of the database while the server runs: monthly step-record partitions
//! are created ahead of time so an insert never finds its month missing, and old sign-in
//! failures are purged.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::config::LoginLimits;
use crate::error::Result;
use crate::rate_limit;

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
                 (date_trunc('month', current_date) - interval '1 month')::date, $1)",
            &[&(PARTITION_MONTHS_AHEAD + 2)],
        )
        .await?
        .get(0);
    if made > 0 {
        tracing::info!(partitions = made, "created step_records partitions");
    }
    Ok(made)
}

/// Runs the upkeep every `every` until the task is aborted.
pub async fn run_upkeep(pool: Pool, limits: LoginLimits, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = ensure_partitions(&pool).await {
            tracing::warn!(error = %err, "could not create step_records partitions; will retry");
        }
        let purged = match pool.get().await {
            Ok(client) => rate_limit::purge(&client, &limits).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = purged {
            tracing::warn!(error = %err, "could not purge old sign-in failures; will retry");
        }
    }
}

//! Analytics for administrators: walkers, steps, goals met and coins issued and spent per
//! day, active users, and orders per status.

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// One day of analytics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalyticsDay {
    /// The local date.
    pub date: NaiveDate,
    /// Users with steps that day.
    pub walkers: i64,
    /// Verified steps of all users.
    pub total_steps: i64,
    /// Users who reached their goal.
    pub goals_met: i64,
    /// Coins issued (step rewards, bonuses, positive adjustments) booked that day (UTC).
    pub coins_issued: i64,
    /// Coins spent (captured orders, net of refunds) booked that day (UTC).
    pub coins_spent: i64,
}

/// Answer of `GET /api/v1/admin/analytics`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Analytics {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Per day, oldest first.
    pub days: Vec<AnalyticsDay>,
    /// Users active in the last 30 days (the `active_users` view).
    pub active_users: i64,
    /// Orders per status, all time.
    pub orders_by_status: std::collections::BTreeMap<String, i64>,
}

/// Analytics over `[from, to]`, from the `daily_step_summary` and `active_users` views and the
/// ledger.
pub async fn analytics(
    client: &impl GenericClient,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Analytics, DomainError> {
    let mut days: std::collections::BTreeMap<NaiveDate, AnalyticsDay> = Default::default();
    for row in client
        .query(
            "SELECT day, count(*) FILTER (WHERE coalesce(verified_steps, 0) > 0) AS walkers,
                    coalesce(sum(verified_steps), 0)::bigint AS total_steps,
                    count(*) FILTER (WHERE goal_met) AS goals_met
             FROM daily_step_summary WHERE day BETWEEN $1 AND $2 GROUP BY day",
            &[&from, &to],
        )
        .await?
    {
        let date: NaiveDate = row.get("day");
        let day = days.entry(date).or_insert_with(|| AnalyticsDay {
            date,
            ..Default::default()
        });
        day.walkers = row.get("walkers");
        day.total_steps = row.get("total_steps");
        day.goals_met = row.get("goals_met");
    }
    for row in client
        .query(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
                    coalesce(sum(available_delta) FILTER (WHERE kind IN ('step_reward', 'achievement_bonus')
                        OR (kind = 'admin_adjustment' AND available_delta > 0)), 0)::bigint
                        AS coins_issued,
                    coalesce(sum(-frozen_delta) FILTER (WHERE kind = 'order_capture'), 0)::bigint
                      - coalesce(sum(available_delta) FILTER (WHERE kind = 'refund'), 0)::bigint
                        AS coins_spent
             FROM coin_transactions
             WHERE created_at >= $1::date AND created_at < ($2::date + 1)
             GROUP BY 1",
            &[&from, &to],
        )
        .await?
    {
        let date: NaiveDate = row.get("day");
        let day = days.entry(date).or_insert_with(|| AnalyticsDay { date, ..Default::default() });
        day.coins_issued = row.get("coins_issued");
        day.coins_spent = row.get("coins_spent");
    }
    let active_users: i64 = client
        .query_one("SELECT count(*) AS active_users FROM active_users", &[])
        .await?
        .get("active_users");
    let orders_by_status = client
        .query(
            "SELECT status, count(*) AS orders FROM orders WHERE deleted_at IS NULL GROUP BY status",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get("status"), r.get("orders")))
        .collect();
    Ok(Analytics {
        from,
        to,
        days: days.into_values().collect(),
        active_users,
        orders_by_status,
    })
}

//! The anti-cheat review queue: flagged step records wait here; an approval pays the
//! withheld coins exactly once (within the daily cap), a rejection never pays.

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::error::ApiError;
use crate::rewards::achievements;
use crate::rewards::ledger;
use crate::rewards::settings::RewardSettings;
use crate::rewards::steps::reward_entry;
use crate::sync::versions::next_user_version;

/// A validation as admins see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Validation {
    /// Validation id.
    pub id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// The record's local date.
    pub date: NaiveDate,
    /// The record's source.
    pub source: String,
    /// Verified total before the flagged increase.
    pub previous_steps: i64,
    /// The total claimed.
    pub claimed_steps: i64,
    /// How far past the thresholds (1.0 = at a threshold).
    pub anomaly_score: f64,
    /// Why it was flagged.
    pub reasons: serde_json::Value,
    /// `pending_review`, `approved` or `rejected`.
    pub status: String,
    /// Reviewer.
    pub reviewed_by: Option<Uuid>,
    /// When it was reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The reviewer's note.
    pub review_note: Option<String>,
    /// When it was flagged.
    pub created_at: DateTime<Utc>,
    /// Coins an approval paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coins_awarded: Option<i64>,
}

const COLUMNS: &str = "v.id, v.user_id, v.step_day, r.source, v.previous_steps, v.claimed_steps,
     v.anomaly_score, v.reasons, v.status, v.reviewed_by, v.reviewed_at, v.review_note,
     v.created_at, v.step_record_id";

fn from_row(row: &tokio_postgres::Row) -> Validation {
    Validation {
        id: row.get(0),
        user_id: row.get(1),
        date: row.get(2),
        source: row.get(3),
        previous_steps: i64::from(row.get::<_, i32>(4)),
        claimed_steps: i64::from(row.get::<_, i32>(5)),
        anomaly_score: row.get(6),
        reasons: row.get(7),
        status: row.get(8),
        reviewed_by: row.get(9),
        reviewed_at: row.get(10),
        review_note: row.get(11),
        created_at: row.get(12),
        coins_awarded: None,
    }
}

/// Validations with `status`, oldest first.
pub async fn list(
    client: &impl GenericClient,
    status: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Validation>, ApiError> {
    if !matches!(status, "pending_review" | "approved" | "rejected") {
        return Err(ApiError::validation(
            "status",
            "status must be pending_review, approved or rejected",
        ));
    }
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM step_validations v
                 JOIN step_records r ON r.id = v.step_record_id AND r.day = v.step_day
                 WHERE v.status = $1 ORDER BY v.created_at, v.id LIMIT $2 OFFSET $3"
            ),
            &[&status, &limit, &offset],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// An admin's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Verify the claimed total and pay what it earns.
    Approve,
    /// Refuse it for good.
    Reject,
}

/// Applies an admin's decision: one transaction with the record, the day, the ledger, the
/// achievements and the audit row.
pub async fn decide(
    pool: &Pool,
    admin_id: Uuid,
    validation_id: Uuid,
    decision: Decision,
    note: Option<&str>,
    client: &ClientInfo,
) -> Result<Validation, ApiError> {
    if note.is_some_and(|n| n.chars().count() > 1000) {
        return Err(ApiError::validation(
            "note",
            "note must be at most 1000 characters",
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user_id: Uuid = tx
        .query_opt(
            "SELECT user_id FROM step_validations WHERE id = $1",
            &[&validation_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("no such validation"))?
        .get(0);
    // The user's lock first (the same order as recording steps), then the validation.
    let version = next_user_version(&tx, user_id).await?;
    let row = tx
        .query_one(
            &format!(
                "SELECT {COLUMNS} FROM step_validations v
                 JOIN step_records r ON r.id = v.step_record_id AND r.day = v.step_day
                 WHERE v.id = $1 FOR UPDATE OF v"
            ),
            &[&validation_id],
        )
        .await?;
    let before = from_row(&row);
    let record_id: Uuid = row.get(13);
    if before.status != "pending_review" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_reviewed",
            format!("this validation was already {}", before.status),
        ));
    }
    let (record_status, validation_status) = match decision {
        Decision::Approve => ("accepted", "approved"),
        Decision::Reject => ("rejected", "rejected"),
    };
    tx.execute(
        "UPDATE step_records SET status = $3,
             verified_steps = CASE WHEN $3 = 'accepted' THEN steps ELSE verified_steps END,
             change_version = $4
         WHERE id = $1 AND day = $2",
        &[&record_id, &before.date, &record_status, &version],
    )
    .await?;
    let settings = RewardSettings::load(&tx).await?;
    let worth: i64 = tx
        .query_one(
            "SELECT coalesce(max(verified_steps) FILTER (WHERE status <> 'rejected'), 0)::bigint
             FROM step_records WHERE user_id = $1 AND day = $2",
            &[&user_id, &before.date],
        )
        .await?
        .get(0);
    let paid: i64 = tx
        .query_opt(
            "SELECT coins_paid FROM step_days WHERE user_id = $1 AND day = $2 FOR UPDATE",
            &[&user_id, &before.date],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let award = match decision {
        Decision::Approve => (settings.coins_for_day(worth) - paid).max(0),
        Decision::Reject => 0,
    };
    tx.execute(
        "INSERT INTO step_days (user_id, day, verified_steps, coins_paid, change_version)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, day) DO UPDATE SET verified_steps = EXCLUDED.verified_steps,
             coins_paid = EXCLUDED.coins_paid, change_version = EXCLUDED.change_version",
        &[
            &user_id,
            &before.date,
            &(worth as i32),
            &(paid + award),
            &version,
        ],
    )
    .await?;
    let mut entries = Vec::new();
    if award > 0 {
        entries.push(reward_entry(user_id, before.date, award, paid + award));
    }
    let goal: i32 = tx
        .query_one(
            "SELECT daily_step_goal FROM users WHERE id = $1",
            &[&user_id],
        )
        .await?
        .get(0);
    let unlocks = achievements::evaluate(
        &tx,
        user_id,
        settings.streak_day_steps(i64::from(goal)),
        &[],
    )
    .await?;
    entries.extend(achievements::bonus_entries(user_id, &unlocks));
    ledger::post(&tx, user_id, version, &entries).await?;
    achievements::record_unlocks(&tx, user_id, version, &unlocks).await?;
    let row = tx
        .query_one(
            &format!(
                "WITH updated AS (
                     UPDATE step_validations SET status = $2, reviewed_by = $3,
                         reviewed_at = now(), review_note = $4, change_version = $5
                     WHERE id = $1 RETURNING *)
                 SELECT {COLUMNS} FROM updated v
                 JOIN step_records r ON r.id = v.step_record_id AND r.day = v.step_day"
            ),
            &[
                &validation_id,
                &validation_status,
                &admin_id,
                &note,
                &version,
            ],
        )
        .await?;
    let mut after = from_row(&row);
    after.coins_awarded = Some(entries.iter().map(|e| e.available_delta).sum());
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action: match decision {
                Decision::Approve => "step_validation.approve",
                Decision::Reject => "step_validation.reject",
            },
            entity_type: "step_validation",
            entity_id: validation_id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            reason: note,
            client: Some(client),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

//! The anti-cheat review queue: flagged step records wait here; an approval pays the
//! withheld coins exactly once (within the daily cap), a rejection never pays. Both settle
//! the record's day with [`settlement`], as step recording does.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::error::{DomainError, ErrorKind};
use crate::rewards::anticheat::RecordStatus;
use crate::rewards::settings::RewardSettings;
use crate::rewards::settlement::{self, Cause, SettledDay, StoredDay};
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
        id: row.get("id"),
        user_id: row.get("user_id"),
        date: row.get("step_day"),
        source: row.get("source"),
        previous_steps: i64::from(row.get::<_, i32>("previous_steps")),
        claimed_steps: i64::from(row.get::<_, i32>("claimed_steps")),
        anomaly_score: row.get("anomaly_score"),
        reasons: row.get("reasons"),
        status: row.get("status"),
        reviewed_by: row.get("reviewed_by"),
        reviewed_at: row.get("reviewed_at"),
        review_note: row.get("review_note"),
        created_at: row.get("created_at"),
        coins_awarded: None,
    }
}

/// Validations with `status`, oldest first.
pub async fn list(
    client: &impl GenericClient,
    status: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Validation>, DomainError> {
    if !matches!(status, "pending_review" | "approved" | "rejected") {
        return Err(DomainError::validation(
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

impl Decision {
    /// The status the record takes.
    fn record_status(self) -> RecordStatus {
        match self {
            Self::Approve => RecordStatus::Accepted,
            Self::Reject => RecordStatus::Rejected,
        }
    }

    /// The status the validation takes.
    fn validation_status(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
        }
    }

    /// How the record's day is settled afterwards.
    fn settlement(self) -> Cause {
        match self {
            Self::Approve => Cause::ReviewApproved,
            Self::Reject => Cause::ReviewRejected,
        }
    }

    /// The audit action.
    fn action(self) -> &'static str {
        match self {
            Self::Approve => "step_validation.approve",
            Self::Reject => "step_validation.reject",
        }
    }
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
) -> Result<Validation, DomainError> {
    if note.is_some_and(|n| n.chars().count() > 1000) {
        return Err(DomainError::validation(
            "note",
            "note must be at most 1000 characters",
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let user_id = owner_of(&tx, validation_id).await?;
    // The user's lock first (the same order as recording steps), then the validation.
    let version = next_user_version(&tx, user_id).await?;
    let (before, record_id) = lock_pending(&tx, validation_id).await?;
    tx.execute(
        "UPDATE step_records SET status = $3,
             verified_steps = CASE WHEN $3 = 'accepted' THEN steps ELSE verified_steps END,
             change_version = $4
         WHERE id = $1 AND day = $2",
        &[
            &record_id,
            &before.date,
            &decision.record_status().as_str(),
            &version,
        ],
    )
    .await?;
    let coins = settle_reviewed_day(&tx, user_id, version, before.date, decision).await?;
    let mut after = mark_reviewed(&tx, validation_id, decision, admin_id, note, version).await?;
    after.coins_awarded = Some(coins);
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action: decision.action(),
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

/// The user a validation belongs to; 404 when there is no such validation.
async fn owner_of(tx: &Transaction<'_>, validation_id: Uuid) -> Result<Uuid, DomainError> {
    Ok(tx
        .query_opt(
            "SELECT user_id FROM step_validations WHERE id = $1",
            &[&validation_id],
        )
        .await?
        .ok_or_else(|| DomainError::not_found("no such validation"))?
        .get("user_id"))
}

/// Locks the validation and returns it with its record's id; 409 `already_reviewed` unless
/// it is still pending.
async fn lock_pending(
    tx: &Transaction<'_>,
    validation_id: Uuid,
) -> Result<(Validation, Uuid), DomainError> {
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
    let validation = from_row(&row);
    if validation.status != "pending_review" {
        return Err(DomainError::new(
            ErrorKind::Conflict,
            "already_reviewed",
            format!("this validation was already {}", validation.status),
        ));
    }
    Ok((validation, row.get("step_record_id")))
}

/// Settles the reviewed record's day with the one settlement step recording uses, and
/// returns the coins it booked (the day's reward and any achievement bonus).
async fn settle_reviewed_day(
    tx: &Transaction<'_>,
    user_id: Uuid,
    version: i64,
    day: NaiveDate,
    decision: Decision,
) -> Result<i64, DomainError> {
    let settings = RewardSettings::load(tx).await?;
    let stored = StoredDay::load(tx, user_id, day).await?;
    let (after, _) = settlement::settle_day(
        stored.account,
        stored.worth,
        decision.settlement(),
        &settings,
    );
    let goal: i32 = tx
        .query_one(
            "SELECT daily_step_goal FROM users WHERE id = $1",
            &[&user_id],
        )
        .await?
        .get("daily_step_goal");
    let settled = [SettledDay {
        day,
        before: stored.account,
        after,
    }];
    let paid = settlement::settle_days(
        tx,
        user_id,
        version,
        &settled,
        settings.streak_day_steps(i64::from(goal)),
        &[],
    )
    .await?;
    Ok(paid.coins)
}

/// Marks the validation reviewed and returns it as it is now.
async fn mark_reviewed(
    tx: &Transaction<'_>,
    validation_id: Uuid,
    decision: Decision,
    admin_id: Uuid,
    note: Option<&str>,
    version: i64,
) -> Result<Validation, DomainError> {
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
                &decision.validation_status(),
                &admin_id,
                &note,
                &version,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

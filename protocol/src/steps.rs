//! Steps, coins and achievements: the bodies of `/steps/*`, `/wallet*` and `/achievements`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most records one `POST /api/v1/steps/record` may carry.
pub const MAX_RECORDS_PER_REQUEST: usize = 1000;

/// Longest `source` name, in bytes (`[A-Za-z0-9_.:-]` only).
pub const MAX_SOURCE_LEN: usize = 64;

/// One day total as HealthKit or Health Connect reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    /// The user's local date the steps belong to.
    pub date: NaiveDate,
    /// Where the count comes from (`healthkit`, `health_connect`, `watch:garmin`, ...).
    pub source: String,
    /// The day's total so far from this source (not an increment).
    pub steps: i64,
    /// When the device read this total. A time after the server's clock counts as now.
    pub recorded_at: DateTime<Utc>,
}

/// `POST /api/v1/steps/record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordStepsRequest {
    /// 1 to [`MAX_RECORDS_PER_REQUEST`] reports, in any order, duplicates allowed.
    pub records: Vec<StepReport>,
}

/// What happened to one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// The total grew and was verified.
    Accepted,
    /// Not above what the server already had (a late, repeated or smaller report).
    Unchanged,
    /// The total grew but looks suspicious: it waits for review, its coins are withheld.
    Flagged,
    /// Refused (see the code); nothing was stored.
    Rejected,
}

/// The result of one report, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordResult {
    /// Position of the report in the request.
    pub index: usize,
    /// The report's date.
    pub date: NaiveDate,
    /// The report's source.
    pub source: String,
    /// What happened.
    pub status: RecordOutcome,
    /// Why it was rejected or flagged (`future_date`, `impossible_cadence`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The total the server now holds for this date and source.
    pub steps: i64,
    /// The verified part of it.
    pub verified_steps: i64,
    /// Coins this report paid.
    pub coins_awarded: i64,
}

/// Answer of `POST /api/v1/steps/record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordStepsResponse {
    /// One result per report, in request order.
    pub results: Vec<RecordResult>,
    /// Coins paid by the whole request (steps and achievement bonuses).
    pub coins_awarded: i64,
    /// Achievements this request unlocked (codes).
    pub achievements_unlocked: Vec<String>,
}

/// One source's total for a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceSteps {
    /// The source.
    pub source: String,
    /// Highest total reported.
    pub steps: i64,
    /// Verified part.
    pub verified_steps: i64,
    /// `accepted`, `flagged` (waiting for review) or `rejected`.
    pub status: String,
}

/// One day of steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DaySteps {
    /// The local date.
    pub date: NaiveDate,
    /// What the day is worth: the largest verified source total.
    pub total_steps: i64,
    /// Coins the day's steps paid.
    pub coins_earned: i64,
    /// Whether the total reached the user's daily goal.
    pub goal_met: bool,
    /// Per source.
    pub sources: Vec<SourceSteps>,
}

/// Answer of `GET /api/v1/steps?from=&to=`: days with records, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepHistory {
    /// The days.
    pub days: Vec<DaySteps>,
}

/// Answer of `GET /api/v1/steps/today`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TodaySteps {
    /// Today in the user's time zone, with its totals.
    #[serde(flatten)]
    pub day: DaySteps,
    /// The user's daily goal.
    pub daily_goal: i64,
}

/// Answer of `GET /api/v1/wallet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Wallet {
    /// Coins that can be spent.
    pub available_coins: i64,
    /// Coins held by open orders.
    pub frozen_coins: i64,
    /// Coins ever earned.
    pub lifetime_earned: i64,
    /// Coins ever spent.
    pub lifetime_spent: i64,
}

/// One ledger entry as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoinTransaction {
    /// Entry id.
    pub id: Uuid,
    /// `step_reward`, `achievement_bonus`, `order_hold`, `order_capture`, `order_release`,
    /// `refund` or `admin_adjustment`.
    pub kind: String,
    /// Change of available coins.
    pub available_delta: i64,
    /// Change of frozen coins.
    pub frozen_delta: i64,
    /// Available coins after this entry.
    pub available_after: i64,
    /// Frozen coins after this entry.
    pub frozen_after: i64,
    /// What it refers to (`step_day`, `order`, `achievement`, ...).
    pub reference_type: Option<String>,
    /// The referenced id or date.
    pub reference_id: Option<String>,
    /// Human-readable description.
    pub description: Option<String>,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
}

/// Answer of `GET /api/v1/wallet/transactions?limit=&cursor=`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionPage {
    /// The page.
    pub transactions: Vec<CoinTransaction>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One achievement with the caller's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AchievementProgress {
    /// Stable code (`steps_10k`, `streak_7`, ...).
    pub code: String,
    /// Display name.
    pub name: String,
    /// Display description.
    pub description: String,
    /// Icon asset name.
    pub icon: Option<String>,
    /// Coins paid once on unlock.
    pub bonus_coins: i64,
    /// The unlock rule.
    pub criteria: serde_json::Value,
    /// Progress towards the rule's target (steps, days).
    pub progress: i64,
    /// The rule's target.
    pub target: i64,
    /// When it was unlocked, if it was.
    pub unlocked_at: Option<DateTime<Utc>>,
}

/// Answer of `GET /api/v1/achievements`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AchievementList {
    /// Every active achievement, in display order.
    pub achievements: Vec<AchievementProgress>,
}

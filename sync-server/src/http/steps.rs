//! `/api/v1/steps/*`, `/api/v1/wallet*` and `/api/v1/achievements`: recording steps and
//! reading what they earned.

use axum::Json;
use axum::extract::{Query, State};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use fitkart_protocol::steps::{
    AchievementList, DaySteps, RecordStepsRequest, RecordStepsResponse, StepHistory, TodaySteps,
    TransactionPage, Wallet,
};
use serde::Deserialize;

use super::AppState;
use super::extract::AuthUser;
use super::json::ApiJson;
use crate::error::ApiError;
use crate::{achievements, ledger, steps};

/// `POST /api/v1/steps/record`.
pub async fn record(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<RecordStepsRequest>,
) -> Result<Json<RecordStepsResponse>, ApiError> {
    let response = steps::record_steps(&state.pool, user.id, &body.records).await?;
    state.metrics.observe_record(&response);
    Ok(Json(response))
}

/// `GET /api/v1/steps/today`.
pub async fn today(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<TodaySteps>, ApiError> {
    let conn = state.pool.get().await?;
    let (date, goal) = steps::today(&conn, user.id).await?;
    let day = steps::history(&conn, user.id, date, date)
        .await?
        .pop()
        .unwrap_or(DaySteps {
            date,
            total_steps: 0,
            coins_earned: 0,
            goal_met: false,
            sources: Vec::new(),
        });
    Ok(Json(TodaySteps {
        day,
        daily_goal: goal,
    }))
}

/// Query of `GET /api/v1/steps`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First date (default: 30 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last date (default: today in the user's time zone).
    pub to: Option<NaiveDate>,
}

/// `GET /api/v1/steps?from=&to=`.
pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<StepHistory>, ApiError> {
    let Query(range) = query.map_err(|e| ApiError::validation("from", e.body_text()))?;
    let conn = state.pool.get().await?;
    let to = match range.to {
        Some(to) => to,
        None => steps::today(&conn, user.id).await?.0,
    };
    let from = range.from.unwrap_or(to - chrono::Duration::days(30));
    steps::check_range(from, to)?;
    Ok(Json(StepHistory {
        days: steps::history(&conn, user.id, from, to).await?,
    }))
}

/// `GET /api/v1/wallet`.
pub async fn wallet(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Wallet>, ApiError> {
    let conn = state.pool.get().await?;
    Ok(Json(ledger::wallet(&conn, user.id).await?))
}

/// Query of `GET /api/v1/wallet/transactions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("tx1:{seq}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("tx1:").and_then(|n| n.parse().ok()))
        .filter(|seq: &i64| *seq > 0)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "the cursor is not one this server gave out",
            )
        })
}

/// `GET /api/v1/wallet/transactions?limit=&cursor=`: newest first.
pub async fn transactions(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TransactionPage>, ApiError> {
    let Query(page) = query.map_err(|e| ApiError::validation("limit", e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    let before = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let conn = state.pool.get().await?;
    let (transactions, next) = ledger::transactions(&conn, user.id, before, limit).await?;
    Ok(Json(TransactionPage {
        transactions,
        next_cursor: next.map(encode_cursor),
    }))
}

/// `GET /api/v1/achievements`.
pub async fn achievements(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<AchievementList>, ApiError> {
    let conn = state.pool.get().await?;
    let (_, goal) = steps::today(&conn, user.id).await?;
    Ok(Json(AchievementList {
        achievements: achievements::list(&conn, user.id, goal).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("garbage!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("tx1:-3")).is_err());
    }
}

//! `/api/v1/steps/*`, `/api/v1/wallet*` and `/api/v1/achievements`: recording steps and
//! reading what they earned.

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::steps::{
    AchievementList, DaySteps, RecordStepsRequest, RecordStepsResponse, StepHistory, TodaySteps,
    TransactionPage, Wallet,
};
use fitkart_protocol::validate;
use serde::Deserialize;

use crate::error::DomainError;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AuthUser, PendingAuth};
use crate::http::json::ApiJson;
use crate::http::openapi::TAG_STEPS;
use crate::http::query::ApiQuery;
use crate::replica::Freshness;
use crate::rewards::settings::RewardSettings;
use crate::rewards::{achievements, ledger, steps};

/// `POST /api/v1/steps/record`.
#[utoipa::path(
    post,
    path = "/steps/record",
    tag = TAG_STEPS,
    security(("bearer" = [])),
    request_body = RecordStepsRequest,
    responses(
        (status = 200, body = RecordStepsResponse,
         description = "One result per report, in request order; coins paid exactly once"),
        (status = 422, body = ErrorEnvelope,
         description = "No or too many records, or a record is invalid (`validation_failed`, \
             `unknown_field`)"),
    )
)]
pub async fn record(
    State(state): State<AppState>,
    auth: PendingAuth,
    body: Result<ApiJson<RecordStepsRequest>, ApiError>,
) -> Result<Json<RecordStepsResponse>, ApiError> {
    let body = body.and_then(|ApiJson(body)| {
        steps::check_batch_size(&body.records)?;
        Ok(body)
    });
    let body = match body {
        Ok(body) => body,
        Err(refusal) => {
            // The account check comes first, as on every route: an ended session hears 401
            // whatever it sent, and only a live account hears what is wrong with its request.
            let conn = state.pool.get().await?;
            auth.check(&conn).await?;
            return Err(refusal);
        }
    };
    // The account check runs in the batch's transaction, on the row it reads the time zone
    // from: one connection and one round trip fewer than a check of its own. Small batches
    // of different users that arrive together share a transaction (group commit).
    let user = auth.claimed_user();
    let response = state
        .step_groups
        .record(&state.pool, user, body.records, move |s| {
            auth.check_standing(s).map(drop)
        })
        .await?;
    state.metrics.observe_record(&response);
    Ok(Json(response))
}

/// `GET /api/v1/steps/today`.
#[utoipa::path(
    get,
    path = "/steps/today",
    tag = TAG_STEPS,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Today in the caller's time zone", body = TodaySteps),
    )
)]
pub async fn today(
    State(state): State<AppState>,
    auth: PendingAuth,
) -> Result<Json<TodaySteps>, ApiError> {
    // The account is checked on the connection the day is then read on: one wait for the pool.
    let (user, conn) = auth.check_on_pooled(&state.pool).await?;
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First date (default: 30 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last date (default: today in the user's time zone).
    pub to: Option<NaiveDate>,
}

/// `GET /api/v1/steps?from=&to=`.
#[utoipa::path(
    get,
    path = "/steps",
    tag = TAG_STEPS,
    security(("bearer" = [])),
    params(RangeQuery),
    responses(
        (status = 200, description = "Days with records, oldest first", body = StepHistory),
        (status = 422, body = ErrorEnvelope,
         description = "A query value is invalid, `from` is after `to` or the range is too long \
             (`validation_failed`, `range_too_large`)"),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(range): ApiQuery<RangeQuery>,
) -> Result<Json<StepHistory>, ApiError> {
    let (from, to) = (range.from, range.to);
    from.map(|from| validate::date("from", from)).transpose()?;
    to.map(|to| validate::date("to", to)).transpose()?;
    let conn = state.reads.get(Freshness::own_writes(user.id)).await?;
    let to = match to {
        Some(to) => to,
        None => steps::today(&conn, user.id).await?.0,
    };
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_days(chrono::Days::new(30))
            .ok_or_else(|| ApiError::validation("to", "to is too early"))?,
    };
    steps::check_range(from, to)?;
    Ok(Json(StepHistory {
        days: steps::history(&conn, user.id, from, to).await?,
    }))
}

/// `GET /api/v1/wallet`.
#[utoipa::path(
    get,
    path = "/wallet",
    tag = TAG_STEPS,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's balances", body = Wallet),
    )
)]
pub async fn wallet(
    State(state): State<AppState>,
    auth: PendingAuth,
) -> Result<Json<Wallet>, ApiError> {
    // The account check and the wallet in one statement (a join on the caller's own row).
    let conn = state.pool.get().await?;
    let read = ledger::wallet_and_standing(&conn, auth.claimed_user()).await?;
    auth.check_standing(read.as_ref().map(|(_, standing)| standing))?;
    let (wallet, _) = read.ok_or_else(ApiError::internal)?;
    Ok(Json(wallet))
}

/// Query of `GET /api/v1/wallet/transactions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The tag of coin-history cursors (format version 1): the ledger sequence of the last entry
/// delivered.
const TX_CURSOR: &str = "tx1";

fn encode_cursor(seq: i64) -> String {
    crate::sync::cursor::encode(TX_CURSOR, &[&seq])
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let [seq] = crate::sync::cursor::decode::<i64, 1>(cursor, TX_CURSOR)?;
    if seq > 0 {
        Ok(seq)
    } else {
        Err(crate::sync::cursor::invalid().into())
    }
}

/// `GET /api/v1/wallet/transactions?limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/wallet/transactions",
    tag = TAG_STEPS,
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Ledger entries, newest first", body = TransactionPage),
        (status = 400, body = ErrorEnvelope,
         description = "The cursor is not one this server gave out (`invalid_cursor`)"),
        (status = 422, body = ErrorEnvelope,
         description = "`limit` is not between 1 and 200, or an unknown query parameter \
             (`validation_failed`)"),
    )
)]
pub async fn transactions(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<TransactionPage>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    let before = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let conn = state.reads.get(Freshness::own_writes(user.id)).await?;
    let (transactions, next) = ledger::transactions(&conn, user.id, before, limit).await?;
    Ok(Json(TransactionPage {
        transactions,
        next_cursor: next.map(encode_cursor),
    }))
}

/// `GET /api/v1/achievements`.
#[utoipa::path(
    get,
    path = "/achievements",
    tag = TAG_STEPS,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AchievementList,
         description = "Every active achievement with the caller's progress"),
    )
)]
pub async fn achievements(
    State(state): State<AppState>,
    auth: PendingAuth,
) -> Result<Json<AchievementList>, ApiError> {
    let conn = state.pool.get().await?;
    let user_id = auth.claimed_user();
    // Two round trips: the account check with the goal and the settings, then the list.
    let read = async {
        let ((_, goal), settings) = tokio::try_join!(steps::today(&conn, user_id), async {
            Ok(RewardSettings::load(&conn).await?)
        })?;
        let streak_day_steps = settings.streak_day_steps(goal);
        Ok::<_, DomainError>(achievements::list(&conn, user_id, streak_day_steps).await?)
    };
    let (_, achievements) = auth.check_with(&conn, read).await?;
    Ok(Json(AchievementList { achievements }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("garbage!").is_err());
        assert!(decode_cursor(&crate::sync::cursor::encode("tx1", &[&-3])).is_err());
    }
}

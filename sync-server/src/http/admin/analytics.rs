//! `GET /api/v1/admin/analytics`: steps, coins and orders per day.

use axum::Json;
use axum::extract::State;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::validate::{self};
use serde::Deserialize;

use crate::admin;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::AdminUser;
use crate::http::openapi::TAG_ADMIN;
use crate::http::query::ApiQuery;

/// Query of `GET /api/v1/admin/analytics`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// First day (default: 29 days before `to`).
    pub from: Option<chrono::NaiveDate>,
    /// Last day (default: today, UTC).
    pub to: Option<chrono::NaiveDate>,
}

/// `GET /api/v1/admin/analytics?from=&to=`.
#[utoipa::path(
    get,
    path = "/admin/analytics",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(AnalyticsQuery),
    responses(
        (status = 200, body = admin::Analytics,
         description = "Per-day activity and coin flows, active users, orders by status"),
        (status = 422, body = ErrorEnvelope,
         description = "A date is invalid, `from` is after `to` or the range is too long \
             (`validation_failed`, `range_too_large`)"),
    )
)]
pub async fn analytics(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> Result<Json<admin::Analytics>, ApiError> {
    query
        .from
        .map(|from| validate::date("from", from))
        .transpose()?;
    query.to.map(|to| validate::date("to", to)).transpose()?;
    let to = query.to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = match query.from {
        Some(from) => from,
        None => to
            .checked_sub_days(chrono::Days::new(29))
            .ok_or_else(|| ApiError::validation("to", "to is too early"))?,
    };
    crate::rewards::steps::check_range(from, to)?;
    let conn = state.pool.get().await?;
    Ok(Json(admin::analytics(&conn, from, to).await?))
}

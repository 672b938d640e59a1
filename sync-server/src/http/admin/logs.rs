//! `GET /api/v1/admin/logs`: the audit log, filtered and paged.

use axum::Json;
use axum::extract::State;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::validate::{self};
use serde::{Deserialize, Serialize};

use crate::admin;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::AdminUser;
use crate::http::openapi::TAG_ADMIN;
use crate::http::query::ApiQuery;

/// Answer of `GET /api/v1/admin/logs`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPage {
    /// Newest first.
    pub logs: Vec<admin::AuditLogEntry>,
}

/// `GET /api/v1/admin/logs?admin_id=&action=&entity_type=&entity_id=&from=&to=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/admin/logs",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(admin::LogFilter),
    responses(
        (status = 200, description = "The audit log, newest first", body = LogPage),
        (status = 422, body = ErrorEnvelope,
         description = "A filter is invalid, `limit` is not between 1 and 200, or an unknown \
             query parameter (`validation_failed`)"),
    )
)]
pub async fn logs(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(filter): ApiQuery<admin::LogFilter>,
) -> Result<Json<LogPage>, ApiError> {
    filter
        .from
        .map(|from| validate::timestamp("from", from))
        .transpose()?;
    filter
        .to
        .map(|to| validate::timestamp("to", to))
        .transpose()?;
    for (field, value) in [
        ("action", &filter.action),
        ("entity_type", &filter.entity_type),
        ("entity_id", &filter.entity_id),
    ] {
        validate::optional_text(field, value.as_deref(), 200)?;
    }
    let conn = state.pool.get().await?;
    Ok(Json(LogPage {
        logs: admin::logs(&conn, &filter).await?,
    }))
}

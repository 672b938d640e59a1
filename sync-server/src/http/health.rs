//! `GET /healthz` (the process is up) and `GET /readyz` (the database is reachable and
//! migrated to the schema this build expects).

use axum::Json;
use axum::extract::State;
use fitkart_protocol::{ErrorEnvelope, HealthStatus};

use super::AppState;
use super::openapi::TAG_OPS;
use crate::db;
use crate::error::ApiError;

/// Liveness: answers 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = TAG_OPS,
    responses(
        (status = 200, description = "The process serves requests", body = HealthStatus),
    )
)]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".into(),
        schema_version: None,
    })
}

/// Readiness: 200 when the database answers and carries this build's schema, 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = TAG_OPS,
    responses(
        (status = 200, body = HealthStatus,
         description = "The database answers and carries this build's schema"),
        (status = 503, body = ErrorEnvelope,
         description = "The database is unreachable or not migrated (`unavailable`)"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthStatus>, ApiError> {
    let client = state.pool.get().await?;
    let applied = db::applied_schema_version(&client).await?;
    let expected = db::latest_migration_version();
    match applied {
        Some(version) if version >= expected => Ok(Json(HealthStatus {
            status: "ok".into(),
            schema_version: Some(version),
        })),
        _ => Err(ApiError::unavailable(format!(
            "the database schema is at version {}, this server needs {expected}",
            applied.unwrap_or(0)
        ))),
    }
}

/// `GET /metrics`: Prometheus (OpenMetrics text) exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG_OPS,
    responses(
        (status = 200, content_type = "application/openmetrics-text", body = String,
         description = "Prometheus metrics (OpenMetrics text)"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let body = state
        .metrics
        .render(&state.pool)
        .map_err(ApiError::internal_because)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Records every request's route, status and latency.
pub async fn track(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.observe_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

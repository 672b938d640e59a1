//! `GET /healthz` (the process is up) and `GET /readyz` (the database is reachable and
//! migrated to the schema this build expects).

use axum::Json;
use axum::extract::State;
use fitkart_protocol::{ErrorEnvelope, HealthStatus};

use super::AppState;
use super::openapi::TAG_OPS;
use crate::db;
use crate::http::ApiError;

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

/// `GET /metrics` on the public listener: Prometheus (OpenMetrics text) exposition, only to a
/// caller presenting the configured metrics token (`FITKART_METRICS_TOKEN`). Without a token
/// configured it answers 404: metrics are then served only on the metrics listener
/// (`FITKART_METRICS_LISTEN`, see [`metrics_router`]), or not at all.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG_OPS,
    responses(
        (status = 200, content_type = "application/openmetrics-text", body = String,
         description = "Prometheus metrics (OpenMetrics text); needs `Authorization: Bearer` \
                        with the configured metrics token"),
        (status = 401, body = ErrorEnvelope,
         description = "A metrics token is configured and the request does not present it \
                        (`unauthorized`)"),
        (status = 404, body = ErrorEnvelope,
         description = "No metrics token is configured: the public listener does not serve \
                        metrics (`not_found`)"),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let Some(token) = &state.config.metrics_token else {
        return Err(ApiError::not_found(
            "metrics are not served on this address (see FITKART_METRICS_LISTEN and \
             FITKART_METRICS_TOKEN)",
        ));
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !presented.is_some_and(|presented| token.matches(presented)) {
        return Err(ApiError::unauthorized(
            "unauthorized",
            "GET /metrics needs the metrics token as a bearer token",
        ));
    }
    render_metrics(&state)
}

/// The router of the metrics listener (`FITKART_METRICS_LISTEN`): `GET /metrics` without a
/// token, nothing else (every other path is 404). It is not part of the public API, so it
/// is not in the OpenAPI document; the address it is bound to is its protection.
pub fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |State(state): State<AppState>| async move { render_metrics(&state) },
            ),
        )
        .fallback(super::not_found)
        .with_state(state)
}

fn render_metrics(state: &AppState) -> Result<axum::response::Response, ApiError> {
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

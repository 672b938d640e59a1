//! `GET /healthz` (the process is up) and `GET /readyz` (the database is reachable and
//! migrated to the schema this build expects).

use axum::Json;
use axum::extract::State;
use fitkart_protocol::HealthStatus;

use super::AppState;
use crate::db;
use crate::error::ApiError;

/// Liveness: answers 200 while the process serves requests.
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".into(),
        schema_version: None,
    })
}

/// Readiness: 200 when the database answers and carries this build's schema, 503 otherwise.
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

//! The audit log as administrators query it: filtered by admin, action and entity, newest
//! first, a page at a time.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

/// One audit log row.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditLogEntry {
    /// Row id.
    pub id: Uuid,
    /// The admin (None for the CLI).
    pub admin_id: Option<Uuid>,
    /// Action.
    pub action: String,
    /// Entity kind.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Option<String>,
    /// Before.
    pub before: Option<serde_json::Value>,
    /// After.
    pub after: Option<serde_json::Value>,
    /// Stated reason.
    pub reason: Option<String>,
    /// Client address.
    pub ip_address: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Filters of the audit log query.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    /// Only this admin's actions.
    pub admin_id: Option<Uuid>,
    /// Only this action (e.g. `order.status`).
    pub action: Option<String>,
    /// Only this entity kind.
    pub entity_type: Option<String>,
    /// Only this entity.
    pub entity_id: Option<String>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// The audit log, newest first.
pub async fn logs(
    client: &impl GenericClient,
    filter: &LogFilter,
) -> Result<Vec<AuditLogEntry>, DomainError> {
    let limit = filter.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(DomainError::validation(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    let offset = filter.offset.unwrap_or(0).max(0);
    Ok(client
        .query(
            "SELECT id, admin_id, action, entity_type, entity_id, before, after, reason,
                    host(ip_address) AS ip_address, user_agent, created_at
             FROM admin_logs
             WHERE ($1::uuid IS NULL OR admin_id = $1) AND ($2::text IS NULL OR action = $2)
               AND ($3::text IS NULL OR entity_type = $3) AND ($4::text IS NULL OR entity_id = $4)
               AND ($5::timestamptz IS NULL OR created_at >= $5)
               AND ($6::timestamptz IS NULL OR created_at < $6)
             ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8",
            &[
                &filter.admin_id,
                &filter.action,
                &filter.entity_type,
                &filter.entity_id,
                &filter.from,
                &filter.to,
                &limit,
                &offset,
            ],
        )
        .await?
        .iter()
        .map(|r| AuditLogEntry {
            id: r.get("id"),
            admin_id: r.get("admin_id"),
            action: r.get("action"),
            entity_type: r.get("entity_type"),
            entity_id: r.get("entity_id"),
            before: r.get("before"),
            after: r.get("after"),
            reason: r.get("reason"),
            ip_address: r.get("ip_address"),
            user_agent: r.get("user_agent"),
            created_at: r.get("created_at"),
        })
        .collect())
}

//! The admin audit log: every admin mutation writes exactly one `admin_logs` row, in the same
//! transaction as the change, with before/after JSON, client address and user agent.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::auth::accounts::ClientInfo;
use crate::error::Result;

/// One audited action.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The admin (None for the operator CLI).
    pub admin_id: Option<Uuid>,
    /// Dotted action name, e.g. `step_validation.approve`.
    pub action: &'a str,
    /// The kind of object changed.
    pub entity_type: &'a str,
    /// Its id.
    pub entity_id: String,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
    /// The admin's stated reason.
    pub reason: Option<&'a str>,
    /// Where the request came from.
    pub client: Option<&'a ClientInfo>,
}

/// Appends the entry in the caller's transaction.
pub async fn record(tx: &impl GenericClient, entry: AuditEntry<'_>) -> Result<()> {
    let address = entry.client.map(|c| c.address);
    let user_agent = entry.client.and_then(|c| c.user_agent.as_deref());
    tx.execute(
        "INSERT INTO admin_logs
             (admin_id, action, entity_type, entity_id, before, after, reason, ip_address, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &entry.admin_id,
            &entry.action,
            &entry.entity_type,
            &entry.entity_id,
            &entry.before,
            &entry.after,
            &entry.reason,
            &address,
            &user_agent,
        ],
    )
    .await?;
    Ok(())
}

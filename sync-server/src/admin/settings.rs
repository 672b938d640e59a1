//! Settings as administrators see and change them: every change validated against its key's
//! rule (and the soft/hard daily maximum pair against each other), audited, and a public
//! setting published with the next shared change version.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::error::{DomainError, ErrorKind};
use crate::rewards::settings::{SettingKey, SettingRule};
use crate::sync::versions::next_shared_version;

/// A setting as admins see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Setting {
    /// Dotted key.
    pub key: String,
    /// JSON value.
    pub value: serde_json::Value,
    /// What it controls.
    pub description: String,
    /// Whether devices receive it.
    pub is_public: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn unknown_setting(key: &str) -> DomainError {
    DomainError::new(ErrorKind::NotFound, "unknown_setting", "no such setting")
        .with_details(serde_json::json!({ "key": key }))
}

/// Checks a new value for `key` against its [`SettingKey::rule`]; answers the known key.
pub fn check_setting(key: &str, value: &serde_json::Value) -> Result<SettingKey, DomainError> {
    let known = SettingKey::parse(key).ok_or_else(|| unknown_setting(key))?;
    let SettingRule { integer, min, max } = known.rule();
    let number = if integer {
        value.as_i64().map(|v| v as f64)
    } else {
        value.as_f64()
    };
    match number {
        Some(n) if n.is_finite() && (min..=max).contains(&n) => Ok(known),
        _ => Err(DomainError::validation(
            "value",
            format!(
                "{key} must be {} between {min} and {max}",
                if integer { "an integer" } else { "a number" }
            ),
        )),
    }
}

/// A setting read from a row holding its `key, value, description, is_public, updated_at`.
fn setting_from_row(row: &tokio_postgres::Row) -> Setting {
    Setting {
        key: row.get("key"),
        value: row.get("value"),
        description: row.get("description"),
        is_public: row.get("is_public"),
        updated_at: row.get("updated_at"),
    }
}

/// Every setting.
pub async fn settings(client: &impl GenericClient) -> Result<Vec<Setting>, DomainError> {
    Ok(client
        .query(
            "SELECT key, value, description, is_public, updated_at FROM settings ORDER BY key",
            &[],
        )
        .await?
        .iter()
        .map(setting_from_row)
        .collect())
}

/// Changes one setting (validated), audited; a public one gets the next shared version.
pub async fn put_setting(
    pool: &Pool,
    admin_id: Uuid,
    key: &str,
    value: &serde_json::Value,
    client: &ClientInfo,
) -> Result<Setting, DomainError> {
    let known = check_setting(key, value)?;
    let pair = known
        .ordered_against()
        .map(|(other, at_most)| (other.as_str(), at_most));
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let other_value = match pair {
        Some((other, _)) => lock_pair_and_read_other(&tx, key, other).await?,
        None => None,
    };
    let before = tx
        .query_opt(
            "SELECT value, is_public FROM settings WHERE key = $1 FOR UPDATE",
            &[&key],
        )
        .await?
        .ok_or_else(|| unknown_setting(key))?;
    let (old, public): (serde_json::Value, bool) = (before.get("value"), before.get("is_public"));
    if let (Some((_, at_most)), Some(other_value)) = (pair, other_value) {
        check_against_pair(value, at_most, other_value)?;
    }
    let version = if public {
        Some(next_shared_version(&tx).await?)
    } else {
        None
    };
    let row = tx
        .query_one(
            "UPDATE settings SET value = $2, updated_by = $3,
                 change_version = coalesce($4, change_version)
             WHERE key = $1 RETURNING key, value, description, is_public, updated_at",
            &[&key, &value, &admin_id, &version],
        )
        .await?;
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action: "setting.update",
            entity_type: "setting",
            entity_id: key.to_owned(),
            before: Some(serde_json::json!({ "value": old })),
            after: Some(serde_json::json!({ "value": value })),
            reason: None,
            client: Some(client),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(setting_from_row(&row))
}

/// Locks `key` and the setting it is ordered against, and reads that other setting's value.
/// The soft maximum may not exceed the hard one. Both rows are locked (in key order, so two
/// admins changing one each cannot deadlock) before either is read, so concurrent changes of
/// the pair are validated one after the other and can never cross.
async fn lock_pair_and_read_other(
    tx: &Transaction<'_>,
    key: &str,
    other: &str,
) -> Result<Option<i64>, DomainError> {
    let mut other_value = None;
    for row in tx
        .query(
            "SELECT key, value FROM settings WHERE key = ANY($1) ORDER BY key FOR UPDATE",
            &[&[key, other].as_slice()],
        )
        .await?
    {
        if row.get::<_, &str>("key") == other {
            other_value = row.get::<_, serde_json::Value>("value").as_i64();
        }
    }
    Ok(other_value)
}

/// Refuses a value that would cross the setting it is ordered against: at most the other
/// (`at_most`) or at least it.
fn check_against_pair(
    value: &serde_json::Value,
    at_most: bool,
    other_value: i64,
) -> Result<(), DomainError> {
    let this = value.as_i64().unwrap_or(0);
    if (at_most && this > other_value) || (!at_most && this < other_value) {
        return Err(DomainError::validation(
            "value",
            "the soft daily maximum must not exceed the hard daily maximum",
        ));
    }
    Ok(())
}

//! Wallet adjustments by administrators: an `admin_adjustment` ledger entry with a required
//! reason, audited, applied once per idempotency key.

use deadpool_postgres::{Pool, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::required_reason;
use crate::auth::accounts::ClientInfo;
use crate::error::{DomainError, ErrorKind};
use crate::rewards::ledger::{self, Entry, EntryKind};
use crate::sync::versions::next_user_version;

/// Body of `POST /api/v1/admin/users/{id}/wallet/adjust`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletAdjustment {
    /// Coins to add (positive) or remove (negative); never zero.
    pub amount: i64,
    /// Why (required, kept in the ledger and the audit log).
    pub reason: String,
    /// Optional key that makes a retried request apply once.
    pub idempotency_key: Option<String>,
}

/// The answer to a retried adjustment (an idempotency key that was booked), given its entry
/// row: the first answer when the body is the same (amount and reason, which the entry
/// stores), 409 `idempotency_conflict` when it is not, so a key can never silently drop a
/// different adjustment.
fn replayed_adjustment(
    first: &tokio_postgres::Row,
    amount: i64,
    reason: &str,
) -> Result<fitkart_protocol::steps::Wallet, DomainError> {
    let booked_amount: i64 = first.get("available_delta");
    let booked_reason: Option<String> = first.get("description");
    if booked_amount != amount || booked_reason.as_deref() != Some(reason) {
        return Err(DomainError::new(
            ErrorKind::Conflict,
            "idempotency_conflict",
            "this idempotency_key was used for a different adjustment",
        )
        .with_details(serde_json::json!({ "field": "idempotency_key" })));
    }
    // The wallet right after the first adjustment, as its audit entry recorded it (both were
    // written in one transaction, so they share created_at).
    let audited: Option<serde_json::Value> = first.get("audited_after");
    match audited.and_then(|after| serde_json::from_value(after).ok()) {
        Some(wallet) => Ok(wallet),
        None => Err(DomainError::internal_because(
            "a booked wallet adjustment has no audit entry",
        )),
    }
}

/// Adjusts a wallet with an `admin_adjustment` ledger entry; audited. The same
/// `idempotency_key` with the same body answers the first result; with another body, 409.
pub async fn adjust_wallet(
    pool: &Pool,
    admin_id: Uuid,
    user_id: Uuid,
    adjustment: &WalletAdjustment,
    client: &ClientInfo,
) -> Result<fitkart_protocol::steps::Wallet, DomainError> {
    let reason = check_adjustment(adjustment)?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let exists = tx
        .query_opt("SELECT 1 FROM wallets WHERE user_id = $1", &[&user_id])
        .await?
        .is_some();
    if !exists {
        return Err(DomainError::not_found("no such user"));
    }
    let key = format!(
        "admin_adjustment:{user_id}:{}",
        adjustment
            .idempotency_key
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().to_string())
    );
    let version = next_user_version(&tx, user_id).await?;
    if let Some(first) = booked_adjustment(&tx, &key, user_id).await? {
        return replayed_adjustment(&first, adjustment.amount, reason);
    }
    let before = ledger::wallet(&tx, user_id).await?;
    let after = ledger::post(
        &tx,
        user_id,
        version,
        &[Entry {
            kind: EntryKind::AdminAdjustment,
            available_delta: adjustment.amount,
            frozen_delta: 0,
            reference: Some(("admin", admin_id.to_string())),
            idempotency_key: key,
            description: Some(reason.to_owned()),
            created_by: Some(admin_id),
        }],
    )
    .await?;
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action: "wallet.adjust",
            entity_type: "wallet",
            entity_id: user_id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            reason: Some(reason),
            client: Some(client),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Checks an adjustment before anything is read: a non-zero amount of at most 10,000,000
/// coins, a reason, an idempotency key of 1 to 100 characters if any. Answers the trimmed
/// reason.
fn check_adjustment(adjustment: &WalletAdjustment) -> Result<&str, DomainError> {
    if adjustment.amount == 0 || adjustment.amount.unsigned_abs() > 10_000_000 {
        return Err(DomainError::validation(
            "amount",
            "amount must be non-zero and at most 10,000,000 coins",
        ));
    }
    let reason = required_reason(&adjustment.reason)?;
    if adjustment
        .idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 100)
    {
        return Err(DomainError::validation(
            "idempotency_key",
            "idempotency_key must be 1 to 100 characters",
        ));
    }
    Ok(reason)
}

/// The ledger entry an earlier adjustment with this idempotency key booked, with the wallet
/// its audit entry recorded after it (`audited_after`), if there was one.
async fn booked_adjustment(
    tx: &Transaction<'_>,
    key: &str,
    user_id: Uuid,
) -> Result<Option<tokio_postgres::Row>, DomainError> {
    Ok(tx
        .query_opt(
            "SELECT t.available_delta, t.description,
                    (SELECT l.after FROM admin_logs l
                     WHERE l.action = 'wallet.adjust' AND l.entity_type = 'wallet'
                       AND l.entity_id = $2 AND l.created_at = t.created_at
                     LIMIT 1) AS audited_after
             FROM coin_transactions t WHERE t.idempotency_key = $1",
            &[&key, &user_id.to_string()],
        )
        .await?)
}

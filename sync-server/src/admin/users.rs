//! Users as administrators see them: the detail page (wallet, step statistics, recent
//! orders) and disabling or enabling an account, audited.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::required_reason;
use crate::auth::accounts::ClientInfo;
use crate::error::{DomainError, ErrorKind};
use crate::rewards::ledger;

/// A user as the admin detail page shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserDetail {
    /// Account id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: String,
    /// Time zone.
    pub timezone: String,
    /// Daily goal.
    pub daily_step_goal: i32,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Soft-deleted at.
    pub deleted_at: Option<DateTime<Utc>>,
    /// When an administrator disabled the account (`None`: enabled).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Wallet.
    pub wallet: fitkart_protocol::steps::Wallet,
    /// Step statistics.
    pub stats: UserStepStats,
    /// The newest orders (up to 20).
    pub recent_orders: Vec<fitkart_protocol::orders::Order>,
}

/// Step statistics of one user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserStepStats {
    /// Lifetime verified steps.
    pub total_steps: i64,
    /// Days with steps.
    pub active_days: i64,
    /// Best day.
    pub best_day_steps: i64,
    /// Last day with steps.
    pub last_step_day: Option<NaiveDate>,
    /// Achievements unlocked.
    pub achievements_unlocked: i64,
    /// Flagged records waiting for review.
    pub pending_validations: i64,
}

/// A user with wallet, step stats and recent orders; deleted users too (for audit).
pub async fn user_detail(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<UserDetail, DomainError> {
    let row = client
        .query_opt(
            "SELECT u.id, u.email, u.display_name, u.role, u.timezone, u.daily_step_goal,
                    u.created_at, u.last_login_at, u.deleted_at,
                    coalesce(s.total_steps, 0)::bigint AS total_steps,
                    coalesce(s.active_days, 0)::bigint AS active_days,
                    coalesce(s.best_day, 0)::bigint AS best_day_steps, s.last_day AS last_step_day,
                    (SELECT count(*) FROM user_achievements a WHERE a.user_id = u.id)
                        AS achievements_unlocked,
                    (SELECT count(*) FROM step_validations v
                     WHERE v.user_id = u.id AND v.status = 'pending_review') AS pending_validations,
                    u.disabled_at, u.disabled_reason
             FROM users u
             LEFT JOIN LATERAL (
                 SELECT sum(verified_steps) AS total_steps,
                        count(*) FILTER (WHERE verified_steps > 0) AS active_days,
                        max(verified_steps) AS best_day, max(day) AS last_day
                 FROM step_days d WHERE d.user_id = u.id) s ON true
             WHERE u.id = $1",
            &[&user_id],
        )
        .await?
        .ok_or_else(|| DomainError::not_found("no such user"))?;
    let wallet = ledger::wallet(client, user_id)
        .await
        .unwrap_or(fitkart_protocol::steps::Wallet {
            available_coins: 0,
            frozen_coins: 0,
            lifetime_earned: 0,
            lifetime_spent: 0,
        });
    let (recent_orders, _) = crate::shop::orders::list(client, Some(user_id), None, 20, 0).await?;
    Ok(UserDetail {
        id: row.get("id"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        role: row.get("role"),
        timezone: row.get("timezone"),
        daily_step_goal: row.get("daily_step_goal"),
        created_at: row.get("created_at"),
        last_login_at: row.get("last_login_at"),
        deleted_at: row.get("deleted_at"),
        disabled_at: row.get("disabled_at"),
        disabled_reason: row.get("disabled_reason"),
        wallet,
        stats: UserStepStats {
            total_steps: row.get("total_steps"),
            active_days: row.get("active_days"),
            best_day_steps: row.get("best_day_steps"),
            last_step_day: row.get("last_step_day"),
            achievements_unlocked: row.get("achievements_unlocked"),
            pending_validations: row.get("pending_validations"),
        },
        recent_orders,
    })
}

/// Body of `POST /api/v1/admin/users/{id}/disable` and `.../enable`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountStatusChange {
    /// Why (1 to 500 characters); kept on the account when disabling and in the audit log.
    pub reason: String,
}

/// Whether an account may be used, as `user.disable` / `user.enable` audit entries record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountStatus {
    /// Account id.
    pub id: Uuid,
    /// When it was disabled (`None`: enabled).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
}

/// Disables (`disable = true`) or enables an account; audited as `user.disable` or
/// `user.enable` with the status before and after. Disabling ends every session at once
/// (access tokens through the session epoch, refresh tokens revoked) and the account cannot
/// sign in until enabled; nothing else about it changes (wallet, ledger, orders, steps stay).
/// Asking for the state the account is already in changes nothing and writes no audit row.
/// An administrator cannot disable their own account (409 `cannot_disable_self`), so the
/// console can never lock out the last person able to undo it.
pub async fn set_account_disabled(
    pool: &Pool,
    admin_id: Uuid,
    user_id: Uuid,
    disable: bool,
    reason: &str,
    client: &ClientInfo,
) -> Result<AccountStatus, DomainError> {
    fitkart_protocol::validate::text("reason", reason, 500)?;
    let reason = required_reason(reason)?;
    if disable && admin_id == user_id {
        return Err(DomainError::new(
            ErrorKind::Conflict,
            "cannot_disable_self",
            "administrators cannot disable their own account",
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let before = lock_account_status(&tx, user_id).await?;
    if before.disabled_at.is_some() == disable {
        return Ok(before);
    }
    let after = if disable {
        let after = write_account_status(&tx, user_id, Some(reason)).await?;
        crate::auth::accounts::end_all_sessions(
            &tx,
            user_id,
            crate::auth::accounts::SessionsEnd::Admin,
        )
        .await?;
        after
    } else {
        write_account_status(&tx, user_id, None).await?
    };
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action: if disable {
                "user.disable"
            } else {
                "user.enable"
            },
            entity_type: "user",
            entity_id: user_id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            reason: Some(reason),
            client: Some(client),
        },
    )
    .await?;
    tx.commit().await?;
    if disable {
        tracing::info!(%user_id, %admin_id, "account disabled");
    }
    Ok(after)
}

/// An account's status read from a row holding `disabled_at` and `disabled_reason`.
fn account_status(user_id: Uuid, row: &tokio_postgres::Row) -> AccountStatus {
    AccountStatus {
        id: user_id,
        disabled_at: row.get("disabled_at"),
        disabled_reason: row.get("disabled_reason"),
    }
}

/// Locks a live account and reads its status; 404 when there is none.
async fn lock_account_status(
    tx: &Transaction<'_>,
    user_id: Uuid,
) -> Result<AccountStatus, DomainError> {
    tx.query_opt(
        "SELECT disabled_at, disabled_reason FROM users
         WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        &[&user_id],
    )
    .await?
    .map(|row| account_status(user_id, &row))
    .ok_or_else(|| DomainError::not_found("no such user"))
}

/// Disables the locked account with `reason` (`Some`) from now, or enables it (`None`).
async fn write_account_status(
    tx: &Transaction<'_>,
    user_id: Uuid,
    disabled_for: Option<&str>,
) -> Result<AccountStatus, DomainError> {
    let row = match disabled_for {
        Some(reason) => {
            tx.query_one(
                "UPDATE users SET disabled_at = now(), disabled_reason = $2
                 WHERE id = $1 RETURNING disabled_at, disabled_reason",
                &[&user_id, &reason],
            )
            .await?
        }
        None => {
            tx.query_one(
                "UPDATE users SET disabled_at = NULL, disabled_reason = NULL
                 WHERE id = $1 RETURNING disabled_at, disabled_reason",
                &[&user_id],
            )
            .await?
        }
    };
    Ok(account_status(user_id, &row))
}

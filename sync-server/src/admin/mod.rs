//! The admin API's domain: user detail, analytics, settings with per-key validation, the
//! audit log query, and wallet adjustments. Every mutation writes exactly one `admin_logs`
//! row in the same transaction as the change.

pub mod audit;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::accounts::ClientInfo;
use crate::error::ApiError;
use crate::rewards::ledger::{self, Entry, EntryKind};
use crate::rewards::settings::{SettingKey, SettingRule};
use crate::sync::versions::{next_shared_version, next_user_version};
use audit::AuditEntry;

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
) -> Result<UserDetail, ApiError> {
    let row = client
        .query_opt(
            "SELECT u.id, u.email, u.display_name, u.role, u.timezone, u.daily_step_goal,
                    u.created_at, u.last_login_at, u.deleted_at,
                    coalesce(s.total_steps, 0)::bigint, coalesce(s.active_days, 0)::bigint,
                    coalesce(s.best_day, 0)::bigint, s.last_day,
                    (SELECT count(*) FROM user_achievements a WHERE a.user_id = u.id),
                    (SELECT count(*) FROM step_validations v
                     WHERE v.user_id = u.id AND v.status = 'pending_review'),
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
        .ok_or_else(|| ApiError::not_found("no such user"))?;
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
        id: row.get(0),
        email: row.get(1),
        display_name: row.get(2),
        role: row.get(3),
        timezone: row.get(4),
        daily_step_goal: row.get(5),
        created_at: row.get(6),
        last_login_at: row.get(7),
        deleted_at: row.get(8),
        disabled_at: row.get(15),
        disabled_reason: row.get(16),
        wallet,
        stats: UserStepStats {
            total_steps: row.get(9),
            active_days: row.get(10),
            best_day_steps: row.get(11),
            last_step_day: row.get(12),
            achievements_unlocked: row.get(13),
            pending_validations: row.get(14),
        },
        recent_orders,
    })
}

/// One day of analytics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalyticsDay {
    /// The local date.
    pub date: NaiveDate,
    /// Users with steps that day.
    pub walkers: i64,
    /// Verified steps of all users.
    pub total_steps: i64,
    /// Users who reached their goal.
    pub goals_met: i64,
    /// Coins issued (step rewards, bonuses, positive adjustments) booked that day (UTC).
    pub coins_issued: i64,
    /// Coins spent (captured orders, net of refunds) booked that day (UTC).
    pub coins_spent: i64,
}

/// Answer of `GET /api/v1/admin/analytics`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Analytics {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Per day, oldest first.
    pub days: Vec<AnalyticsDay>,
    /// Users active in the last 30 days (the `active_users` view).
    pub active_users: i64,
    /// Orders per status, all time.
    pub orders_by_status: std::collections::BTreeMap<String, i64>,
}

/// Analytics over `[from, to]`, from the `daily_step_summary` and `active_users` views and the
/// ledger.
pub async fn analytics(
    client: &impl GenericClient,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Analytics, ApiError> {
    let mut days: std::collections::BTreeMap<NaiveDate, AnalyticsDay> = Default::default();
    for row in client
        .query(
            "SELECT day, count(*) FILTER (WHERE coalesce(verified_steps, 0) > 0),
                    coalesce(sum(verified_steps), 0)::bigint, count(*) FILTER (WHERE goal_met)
             FROM daily_step_summary WHERE day BETWEEN $1 AND $2 GROUP BY day",
            &[&from, &to],
        )
        .await?
    {
        let date: NaiveDate = row.get(0);
        let day = days.entry(date).or_insert_with(|| AnalyticsDay {
            date,
            ..Default::default()
        });
        day.walkers = row.get(1);
        day.total_steps = row.get(2);
        day.goals_met = row.get(3);
    }
    for row in client
        .query(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
                    coalesce(sum(available_delta) FILTER (WHERE kind IN ('step_reward', 'achievement_bonus')
                        OR (kind = 'admin_adjustment' AND available_delta > 0)), 0)::bigint,
                    coalesce(sum(-frozen_delta) FILTER (WHERE kind = 'order_capture'), 0)::bigint
                      - coalesce(sum(available_delta) FILTER (WHERE kind = 'refund'), 0)::bigint
             FROM coin_transactions
             WHERE created_at >= $1::date AND created_at < ($2::date + 1)
             GROUP BY 1",
            &[&from, &to],
        )
        .await?
    {
        let date: NaiveDate = row.get(0);
        let day = days.entry(date).or_insert_with(|| AnalyticsDay { date, ..Default::default() });
        day.coins_issued = row.get(1);
        day.coins_spent = row.get(2);
    }
    let active_users: i64 = client
        .query_one("SELECT count(*) FROM active_users", &[])
        .await?
        .get(0);
    let orders_by_status = client
        .query(
            "SELECT status, count(*) FROM orders WHERE deleted_at IS NULL GROUP BY status",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Analytics {
        from,
        to,
        days: days.into_values().collect(),
        active_users,
        orders_by_status,
    })
}

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

fn unknown_setting(key: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_setting", "no such setting")
        .with_details(serde_json::json!({ "key": key }))
}

/// Checks a new value for `key` against its [`SettingKey::rule`]; answers the known key.
pub fn check_setting(key: &str, value: &serde_json::Value) -> Result<SettingKey, ApiError> {
    let known = SettingKey::parse(key).ok_or_else(|| unknown_setting(key))?;
    let SettingRule { integer, min, max } = known.rule();
    let number = if integer {
        value.as_i64().map(|v| v as f64)
    } else {
        value.as_f64()
    };
    match number {
        Some(n) if n.is_finite() && (min..=max).contains(&n) => Ok(known),
        _ => Err(ApiError::validation(
            "value",
            format!(
                "{key} must be {} between {min} and {max}",
                if integer { "an integer" } else { "a number" }
            ),
        )),
    }
}

/// Every setting.
pub async fn settings(client: &impl GenericClient) -> Result<Vec<Setting>, ApiError> {
    Ok(client
        .query(
            "SELECT key, value, description, is_public, updated_at FROM settings ORDER BY key",
            &[],
        )
        .await?
        .iter()
        .map(|r| Setting {
            key: r.get(0),
            value: r.get(1),
            description: r.get(2),
            is_public: r.get(3),
            updated_at: r.get(4),
        })
        .collect())
}

/// Changes one setting (validated), audited; a public one gets the next shared version.
pub async fn put_setting(
    pool: &Pool,
    admin_id: Uuid,
    key: &str,
    value: &serde_json::Value,
    client: &ClientInfo,
) -> Result<Setting, ApiError> {
    let known = check_setting(key, value)?;
    // The soft maximum may not exceed the hard one. Both rows are locked (in key order, so
    // two admins changing one each cannot deadlock) before either is read, so concurrent
    // changes of the pair are validated one after the other and can never cross.
    let pair = known
        .ordered_against()
        .map(|(other, at_most)| (other.as_str(), at_most));
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let mut other_value: Option<i64> = None;
    if let Some((other, _)) = pair {
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
    }
    let before = tx
        .query_opt(
            "SELECT value, is_public FROM settings WHERE key = $1 FOR UPDATE",
            &[&key],
        )
        .await?
        .ok_or_else(|| unknown_setting(key))?;
    let (old, public): (serde_json::Value, bool) = (before.get(0), before.get(1));
    if let Some((_, at_most)) = pair {
        let this = value.as_i64().unwrap_or(0);
        if let Some(other_value) = other_value
            && ((at_most && this > other_value) || (!at_most && this < other_value))
        {
            return Err(ApiError::validation(
                "value",
                "the soft daily maximum must not exceed the hard daily maximum",
            ));
        }
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
    Ok(Setting {
        key: row.get(0),
        value: row.get(1),
        description: row.get(2),
        is_public: row.get(3),
        updated_at: row.get(4),
    })
}

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
) -> Result<Vec<AuditLogEntry>, ApiError> {
    let limit = filter.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    let offset = filter.offset.unwrap_or(0).max(0);
    Ok(client
        .query(
            "SELECT id, admin_id, action, entity_type, entity_id, before, after, reason,
                    host(ip_address), user_agent, created_at
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
            id: r.get(0),
            admin_id: r.get(1),
            action: r.get(2),
            entity_type: r.get(3),
            entity_id: r.get(4),
            before: r.get(5),
            after: r.get(6),
            reason: r.get(7),
            ip_address: r.get(8),
            user_agent: r.get(9),
            created_at: r.get(10),
        })
        .collect())
}

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
) -> Result<fitkart_protocol::steps::Wallet, ApiError> {
    let booked_amount: i64 = first.get("available_delta");
    let booked_reason: Option<String> = first.get("description");
    if booked_amount != amount || booked_reason.as_deref() != Some(reason) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
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
        None => Err(ApiError::internal_because(
            "a booked wallet adjustment has no audit entry",
        )),
    }
}

/// The trimmed reason an admin action requires: 1 to 500 characters, else 422 naming
/// `reason`.
fn required_reason(reason: &str) -> Result<&str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::validation(
            "reason",
            "a reason of 1 to 500 characters is required",
        ));
    }
    Ok(reason)
}

/// Adjusts a wallet with an `admin_adjustment` ledger entry; audited. The same
/// `idempotency_key` with the same body answers the first result; with another body, 409.
pub async fn adjust_wallet(
    pool: &Pool,
    admin_id: Uuid,
    user_id: Uuid,
    adjustment: &WalletAdjustment,
    client: &ClientInfo,
) -> Result<fitkart_protocol::steps::Wallet, ApiError> {
    if adjustment.amount == 0 || adjustment.amount.unsigned_abs() > 10_000_000 {
        return Err(ApiError::validation(
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
        return Err(ApiError::validation(
            "idempotency_key",
            "idempotency_key must be 1 to 100 characters",
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let exists = tx
        .query_opt("SELECT 1 FROM wallets WHERE user_id = $1", &[&user_id])
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::not_found("no such user"));
    }
    let key = format!(
        "admin_adjustment:{user_id}:{}",
        adjustment
            .idempotency_key
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().to_string())
    );
    let version = next_user_version(&tx, user_id).await?;
    if let Some(first) = tx
        .query_opt(
            "SELECT t.available_delta, t.description,
                    (SELECT l.after FROM admin_logs l
                     WHERE l.action = 'wallet.adjust' AND l.entity_type = 'wallet'
                       AND l.entity_id = $2 AND l.created_at = t.created_at
                     LIMIT 1) AS audited_after
             FROM coin_transactions t WHERE t.idempotency_key = $1",
            &[&key, &user_id.to_string()],
        )
        .await?
    {
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
) -> Result<AccountStatus, ApiError> {
    fitkart_protocol::validate::text("reason", reason, 500)?;
    let reason = required_reason(reason)?;
    if disable && admin_id == user_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_disable_self",
            "administrators cannot disable their own account",
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let status = |row: &tokio_postgres::Row| AccountStatus {
        id: user_id,
        disabled_at: row.get(0),
        disabled_reason: row.get(1),
    };
    let before = tx
        .query_opt(
            "SELECT disabled_at, disabled_reason FROM users
             WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            &[&user_id],
        )
        .await?
        .map(|row| status(&row))
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    if before.disabled_at.is_some() == disable {
        return Ok(before);
    }
    let after = if disable {
        let row = tx
            .query_one(
                "UPDATE users SET disabled_at = now(), disabled_reason = $2
                 WHERE id = $1 RETURNING disabled_at, disabled_reason",
                &[&user_id, &reason],
            )
            .await?;
        crate::auth::accounts::end_all_sessions(
            &tx,
            user_id,
            crate::auth::accounts::SessionsEnd::Admin,
        )
        .await?;
        status(&row)
    } else {
        let row = tx
            .query_one(
                "UPDATE users SET disabled_at = NULL, disabled_reason = NULL
                 WHERE id = $1 RETURNING disabled_at, disabled_reason",
                &[&user_id],
            )
            .await?;
        status(&row)
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

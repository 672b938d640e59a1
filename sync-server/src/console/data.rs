//! Read-only queries the console's pages need beyond the admin API's domain functions (who a
//! user is, an order's ledger entries, a user's devices, inactive products, ...). Nothing here
//! changes data: every change goes through the domain functions the JSON API uses.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::http::ApiError;

/// Who a user is, in one line.
#[derive(Debug, Clone)]
pub struct UserLine {
    /// Id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
}

/// The users with these ids (deleted ones too), in any order.
pub async fn users_by_id(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<UserLine>, ApiError> {
    Ok(client
        .query(
            "SELECT id, email, display_name FROM users WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| UserLine {
            id: row.get("id"),
            email: row.get("email"),
            display_name: row.get("display_name"),
        })
        .collect())
}

/// Live administrators, for the audit log's filter.
pub async fn admins(client: &impl GenericClient) -> Result<Vec<UserLine>, ApiError> {
    Ok(client
        .query(
            "SELECT id, email, display_name FROM users
             WHERE role = 'admin' AND deleted_at IS NULL ORDER BY email",
            &[],
        )
        .await?
        .iter()
        .map(|row| UserLine {
            id: row.get("id"),
            email: row.get("email"),
            display_name: row.get("display_name"),
        })
        .collect())
}

/// The actions the audit log holds, for its filter.
pub async fn audit_actions(client: &impl GenericClient) -> Result<Vec<String>, ApiError> {
    Ok(client
        .query(
            "SELECT DISTINCT action FROM admin_logs ORDER BY action",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get("action"))
        .collect())
}

/// Flagged records waiting for review.
pub async fn review_queue_size(client: &impl GenericClient) -> Result<i64, ApiError> {
    Ok(client
        .query_one(
            "SELECT count(*) AS pending FROM step_validations WHERE status = 'pending_review'",
            &[],
        )
        .await?
        .get("pending"))
}

/// Per day in `[from, to]`: step records, and how many of them were flagged for review.
pub async fn flagged_per_day(
    client: &impl GenericClient,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, i64, i64)>, ApiError> {
    Ok(client
        .query(
            "SELECT r.day, count(*) AS records,
                    count(*) FILTER (WHERE EXISTS (
                        SELECT 1 FROM step_validations v
                        WHERE v.step_record_id = r.id AND v.step_day = r.day)) AS flagged
             FROM step_records r WHERE r.day BETWEEN $1 AND $2
             GROUP BY r.day ORDER BY r.day",
            &[&from, &to],
        )
        .await?
        .iter()
        .map(|row| (row.get("day"), row.get("records"), row.get("flagged")))
        .collect())
}

/// A user's verified steps per day in `[from, to]` (days without a row are missing).
pub async fn step_days(
    client: &impl GenericClient,
    user_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, i64, i64)>, ApiError> {
    Ok(client
        .query(
            "SELECT day, verified_steps::bigint AS verified_steps, coins_paid FROM step_days
             WHERE user_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
            &[&user_id, &from, &to],
        )
        .await?
        .iter()
        .map(|row| {
            (
                row.get("day"),
                row.get("verified_steps"),
                row.get("coins_paid"),
            )
        })
        .collect())
}

/// How a flagged record's total arrived.
#[derive(Debug, Clone)]
pub struct RecordTiming {
    /// Reports merged into the record.
    pub report_count: i32,
    /// First report.
    pub first_recorded_at: DateTime<Utc>,
    /// Last report.
    pub last_recorded_at: DateTime<Utc>,
}

/// The timing of the step record a validation is about.
pub async fn record_timing(
    client: &impl GenericClient,
    validation_id: Uuid,
) -> Result<Option<RecordTiming>, ApiError> {
    Ok(client
        .query_opt(
            "SELECT r.report_count, r.first_recorded_at, r.last_recorded_at
             FROM step_validations v
             JOIN step_records r ON r.id = v.step_record_id AND r.day = v.step_day
             WHERE v.id = $1",
            &[&validation_id],
        )
        .await?
        .map(|row| RecordTiming {
            report_count: row.get("report_count"),
            first_recorded_at: row.get("first_recorded_at"),
            last_recorded_at: row.get("last_recorded_at"),
        }))
}

/// One ledger entry as the console shows it.
#[derive(Debug, Clone)]
pub struct LedgerLine {
    /// Kind.
    pub kind: String,
    /// Change of the spendable balance.
    pub available_delta: i64,
    /// Change of the held balance.
    pub frozen_delta: i64,
    /// Spendable balance after.
    pub available_after: i64,
    /// Held balance after.
    pub frozen_after: i64,
    /// What it refers to.
    pub reference: String,
    /// Description (an adjustment's reason).
    pub description: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

fn ledger_line(row: &tokio_postgres::Row) -> LedgerLine {
    let reference_type: Option<String> = row.get("reference_type");
    let reference_id: Option<String> = row.get("reference_id");
    LedgerLine {
        kind: row.get("kind"),
        available_delta: row.get("available_delta"),
        frozen_delta: row.get("frozen_delta"),
        available_after: row.get("available_after"),
        frozen_after: row.get("frozen_after"),
        reference: match (reference_type, reference_id) {
            (Some(kind), Some(id)) => format!("{kind} {id}"),
            (Some(kind), None) => kind,
            _ => String::new(),
        },
        description: row.get("description"),
        created_at: row.get("created_at"),
    }
}

const LEDGER_COLUMNS: &str = "kind, available_delta, frozen_delta, available_after, \
     frozen_after, reference_type, reference_id, description, created_at";

/// The ledger entries an order wrote (hold, capture, release, refund), oldest first.
pub async fn order_ledger(
    client: &impl GenericClient,
    order_id: Uuid,
) -> Result<Vec<LedgerLine>, ApiError> {
    Ok(client
        .query(
            &format!(
                "SELECT {LEDGER_COLUMNS} FROM coin_transactions
                 WHERE reference_type = 'order' AND reference_id = $1 ORDER BY ledger_seq"
            ),
            &[&order_id.to_string()],
        )
        .await?
        .iter()
        .map(ledger_line)
        .collect())
}

/// A user's newest ledger entries.
pub async fn user_ledger(
    client: &impl GenericClient,
    user_id: Uuid,
    limit: i64,
) -> Result<Vec<LedgerLine>, ApiError> {
    Ok(client
        .query(
            &format!(
                "SELECT {LEDGER_COLUMNS} FROM coin_transactions
                 WHERE user_id = $1 ORDER BY ledger_seq DESC LIMIT $2"
            ),
            &[&user_id, &limit],
        )
        .await?
        .iter()
        .map(ledger_line)
        .collect())
}

/// The owner of an order.
pub async fn order_owner(client: &impl GenericClient, order_id: Uuid) -> Result<Uuid, ApiError> {
    Ok(client
        .query_opt(
            "SELECT user_id FROM orders WHERE id = $1 AND deleted_at IS NULL",
            &[&order_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("no such order"))?
        .get("user_id"))
}

/// A device of a user.
#[derive(Debug, Clone)]
pub struct DeviceLine {
    /// Platform.
    pub platform: String,
    /// Model, if sent.
    pub model: Option<String>,
    /// App version, if sent.
    pub app_version: Option<String>,
    /// Last sync.
    pub last_seen_at: DateTime<Utc>,
    /// Whether it was signed out.
    pub revoked: bool,
}

/// A user's devices, most recently seen first.
pub async fn devices(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<DeviceLine>, ApiError> {
    Ok(client
        .query(
            "SELECT platform, model, app_version, last_seen_at, revoked_at IS NOT NULL AS revoked
             FROM devices WHERE user_id = $1 ORDER BY last_seen_at DESC LIMIT 20",
            &[&user_id],
        )
        .await?
        .iter()
        .map(|row| DeviceLine {
            platform: row.get("platform"),
            model: row.get("model"),
            app_version: row.get("app_version"),
            last_seen_at: row.get("last_seen_at"),
            revoked: row.get("revoked"),
        })
        .collect())
}

/// A user's unlocked achievements: (name, bonus coins, unlocked at), newest first.
pub async fn achievements(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<(String, i64, DateTime<Utc>)>, ApiError> {
    Ok(client
        .query(
            "SELECT a.name, a.bonus_coins, u.unlocked_at
             FROM user_achievements u JOIN achievements a ON a.id = u.achievement_id
             WHERE u.user_id = $1 ORDER BY u.unlocked_at DESC",
            &[&user_id],
        )
        .await?
        .iter()
        .map(|row| {
            (
                row.get("name"),
                row.get("bonus_coins"),
                row.get("unlocked_at"),
            )
        })
        .collect())
}

/// A product as the admin list shows it, active or not.
#[derive(Debug, Clone)]
pub struct ProductLine {
    /// Id.
    pub id: Uuid,
    /// SKU.
    pub sku: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Price.
    pub coin_price: i64,
    /// Stock.
    pub stock: i32,
    /// Orderable.
    pub is_active: bool,
    /// Imported from Shopify.
    pub shopify_product_id: Option<i64>,
}

fn product_line(row: &tokio_postgres::Row) -> ProductLine {
    ProductLine {
        id: row.get("id"),
        sku: row.get("sku"),
        name: row.get("name"),
        description: row.get("description"),
        category: row.get("category"),
        coin_price: row.get("coin_price"),
        stock: row.get("stock"),
        is_active: row.get("is_active"),
        shopify_product_id: row.get("shopify_product_id"),
    }
}

const PRODUCT_COLUMNS: &str =
    "id, sku, name, description, category, coin_price, stock, is_active, shopify_product_id";

/// Live products whose name or SKU contains `query` (all when empty), active first.
pub async fn products(
    client: &impl GenericClient,
    query: &str,
    limit: i64,
) -> Result<Vec<ProductLine>, ApiError> {
    let pattern = format!("%{}%", crate::db::like_literal(query));
    Ok(client
        .query(
            &format!(
                "SELECT {PRODUCT_COLUMNS} FROM reward_products
                 WHERE deleted_at IS NULL
                   AND (lower(name) LIKE $1 OR lower(coalesce(sku, '')) LIKE $1)
                 ORDER BY is_active DESC, category, name, id LIMIT $2"
            ),
            &[&pattern, &limit],
        )
        .await?
        .iter()
        .map(product_line)
        .collect())
}

/// One live product, active or not.
pub async fn product(client: &impl GenericClient, id: Uuid) -> Result<ProductLine, ApiError> {
    client
        .query_opt(
            &format!(
                "SELECT {PRODUCT_COLUMNS} FROM reward_products
                 WHERE id = $1 AND deleted_at IS NULL"
            ),
            &[&id],
        )
        .await?
        .map(|row| product_line(&row))
        .ok_or_else(|| ApiError::not_found("no such product"))
}

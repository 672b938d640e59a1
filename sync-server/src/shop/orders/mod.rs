//! Redemption orders, a two-phase transfer: placing an order holds its coins (available ->
//! frozen) and its stock in one transaction; delivery captures the hold (frozen -> spent);
//! cancellation releases it (frozen -> available) and restores stock; a refund after
//! delivery credits the coins back. Every step takes the user's change-version lock first,
//! then the order row, so concurrent steps resolve one at a time and a double spend or a
//! double release cannot happen.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use fitkart_protocol::orders::{
    MAX_ITEM_QUANTITY, MAX_ORDER_ITEMS, Order, OrderItem, OrderStatusRequest, PlaceOrderRequest,
    ShippingAddress,
};
use rand::RngExt as _;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::db::CachedStatements as _;
use crate::error::{DomainError, ErrorKind};
use crate::rewards::ledger::{self, Entry, EntryKind};
use crate::sync::versions::next_user_version;

pub mod workflow;
use workflow::{Booking, Mover, OrderStatus};

const COLUMNS: &str = "id, order_code, client_order_id, status, total_coins, shipping_address,
     tracking_number, created_at, updated_at, shipped_at, delivered_at, cancelled_at, user_id,
     request_fingerprint";

struct OrderRow {
    order: Order,
    fingerprint: Vec<u8>,
}

fn order_from_row(row: &tokio_postgres::Row) -> Result<OrderRow, DomainError> {
    let address: serde_json::Value = row.get("shipping_address");
    Ok(OrderRow {
        order: Order {
            id: row.get("id"),
            order_code: row.get("order_code"),
            client_order_id: row.get("client_order_id"),
            status: row.get("status"),
            total_coins: row.get("total_coins"),
            items: Vec::new(),
            shipping_address: serde_json::from_value(address)
                .map_err(DomainError::internal_because)?,
            tracking_number: row.get("tracking_number"),
            created_at: row.get::<_, DateTime<Utc>>("created_at"),
            updated_at: row.get("updated_at"),
            shipped_at: row.get("shipped_at"),
            delivered_at: row.get("delivered_at"),
            cancelled_at: row.get("cancelled_at"),
        },
        fingerprint: row.get("request_fingerprint"),
    })
}

/// One order with its items loaded.
async fn with_items(client: &impl GenericClient, order: Order) -> Result<Order, DomainError> {
    let mut orders = [order];
    attach_items(client, &mut orders).await?;
    let [order] = orders;
    Ok(order)
}

/// Loads the items of the given orders into them (one query).
async fn attach_items(
    client: &impl GenericClient,
    orders: &mut [Order],
) -> Result<(), DomainError> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let rows = client
        .query_cached(
            "SELECT order_id, product_id, product_name, quantity, unit_coin_price
             FROM order_items WHERE order_id = ANY($1) ORDER BY product_name, product_id",
            &[&ids],
        )
        .await?;
    for row in rows {
        let order_id: Uuid = row.get("order_id");
        if let Some(order) = orders.iter_mut().find(|o| o.id == order_id) {
            order.items.push(OrderItem {
                product_id: row.get("product_id"),
                product_name: row.get("product_name"),
                quantity: i64::from(row.get::<_, i32>("quantity")),
                unit_coin_price: row.get("unit_coin_price"),
            });
        }
    }
    Ok(())
}

fn check_address(address: &ShippingAddress) -> Result<(), DomainError> {
    let field = |name: &str, value: &str, min: usize, max: usize| {
        let chars = value.trim().chars().count();
        if chars < min || chars > max || value.chars().any(char::is_control) {
            Err(DomainError::validation(
                &format!("shipping_address.{name}"),
                format!("shipping_address.{name} must be {min} to {max} characters"),
            ))
        } else {
            Ok(())
        }
    };
    field("name", &address.name, 1, 100)?;
    field("line1", &address.line1, 1, 200)?;
    field("line2", address.line2.as_deref().unwrap_or(""), 0, 200)?;
    field("city", &address.city, 1, 100)?;
    field("region", address.region.as_deref().unwrap_or(""), 0, 100)?;
    field("postal_code", &address.postal_code, 1, 20)?;
    field("phone", address.phone.as_deref().unwrap_or(""), 0, 32)?;
    if address.country.len() != 2 || !address.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DomainError::validation(
            "shipping_address.country",
            "shipping_address.country must be an ISO 3166-1 alpha-2 code such as DE",
        ));
    }
    Ok(())
}

/// Checks an order request's shape before any database work.
pub fn check_request(request: &PlaceOrderRequest) -> Result<(), DomainError> {
    if request.items.is_empty() || request.items.len() > MAX_ORDER_ITEMS {
        return Err(DomainError::validation(
            "items",
            format!("an order has 1 to {MAX_ORDER_ITEMS} items"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for item in &request.items {
        if !(1..=MAX_ITEM_QUANTITY).contains(&item.quantity) {
            return Err(DomainError::validation(
                "items.quantity",
                format!("quantity must be 1 to {MAX_ITEM_QUANTITY}"),
            ));
        }
        if !seen.insert(item.product_id) {
            return Err(DomainError::validation(
                "items.product_id",
                "each product may appear once; raise its quantity instead",
            ));
        }
    }
    check_address(&request.shipping_address)
}

/// A digest of what the request asks for, to tell a retry from a different order reusing
/// the same `client_order_id`.
fn fingerprint(request: &PlaceOrderRequest) -> Vec<u8> {
    let mut items: Vec<(Uuid, i32)> = request
        .items
        .iter()
        .map(|i| (i.product_id, i.quantity))
        .collect();
    items.sort();
    let canonical = serde_json::to_vec(&(items, &request.shipping_address)).unwrap_or_default();
    Sha256::digest(&canonical).to_vec()
}

fn order_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    let code: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("FK-{code}")
}

fn conflict(code: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::new(ErrorKind::Conflict, code, message)
}

/// Places an order, in one transaction on `conn` (the connection the route checked the
/// caller's account on). Returns the order and whether it was created now (false: a retry of
/// the same request, answered with the order it made).
pub async fn place(
    conn: &mut deadpool_postgres::Client,
    user_id: Uuid,
    request: &PlaceOrderRequest,
) -> Result<(Order, bool), DomainError> {
    let tx = conn.transaction().await?;
    let placed = place_in(&tx, user_id, request).await?;
    tx.commit().await?;
    Ok(placed)
}

/// [`place`] inside the caller's transaction (which it does not commit). On an error the
/// caller must roll back (or roll back to a savepoint): earlier statements may have run.
pub async fn place_in(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: Uuid,
    request: &PlaceOrderRequest,
) -> Result<(Order, bool), DomainError> {
    check_request(request)?;
    let print = fingerprint(request);
    let version = next_user_version(tx, user_id).await?;
    if let Some(existing) = earlier_placement(tx, user_id, request, &print).await? {
        return Ok((existing, false));
    }
    let (lines, total) = lock_and_price(tx, request).await?;
    let order_id = Uuid::now_v7();
    hold_coins(tx, user_id, version, order_id, total).await?;
    take_stock(tx, &lines).await?;
    let row = insert_order(tx, order_id, user_id, request, &print, total, version).await?;
    insert_items(tx, order_id, user_id, &lines).await?;
    let order = with_items(tx, order_from_row(&row)?.order).await?;
    Ok((order, true))
}

/// The order an earlier request with this `client_order_id` placed, if any: a retry of the same
/// request is answered with it; a different request reusing the id is refused (409).
async fn earlier_placement(
    tx: &impl GenericClient,
    user_id: Uuid,
    request: &PlaceOrderRequest,
    print: &[u8],
) -> Result<Option<Order>, DomainError> {
    let Some(row) = tx
        .query_opt_cached(
            &format!("SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND client_order_id = $2"),
            &[&user_id, &request.client_order_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let existing = order_from_row(&row)?;
    if existing.fingerprint != print {
        return Err(conflict(
            "idempotency_conflict",
            "this client_order_id was already used for a different order",
        ));
    }
    Ok(Some(with_items(tx, existing.order).await?))
}

/// One line of an order being placed, priced from the locked product row.
struct PricedLine {
    product_id: Uuid,
    name: String,
    quantity: i32,
    price: i64,
}

/// Locks the ordered products (in id order, so concurrent orders never deadlock) and prices
/// each line, answering the lines and the order's total. A product that is missing or inactive is 404 `product_not_found`; not enough
/// stock for any line is 409 `out_of_stock` listing every short line; a total out of range
/// is 422.
async fn lock_and_price(
    tx: &deadpool_postgres::Transaction<'_>,
    request: &PlaceOrderRequest,
) -> Result<(Vec<PricedLine>, i64), DomainError> {
    let ids: Vec<Uuid> = request.items.iter().map(|i| i.product_id).collect();
    let products = tx
        .query_cached(
            "SELECT id, name, coin_price, stock FROM reward_products
             WHERE id = ANY($1) AND is_active AND deleted_at IS NULL
             ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
    let mut total: i64 = 0;
    let mut short = Vec::new();
    let mut lines = Vec::with_capacity(request.items.len());
    for item in &request.items {
        let Some(product) = products
            .iter()
            .find(|p| p.get::<_, Uuid>("id") == item.product_id)
        else {
            return Err(DomainError::new(
                ErrorKind::NotFound,
                "product_not_found",
                "a product of this order does not exist or is no longer available",
            )
            .with_details(serde_json::json!({ "product_id": item.product_id })));
        };
        let (name, price, stock): (String, i64, i32) = (
            product.get("name"),
            product.get("coin_price"),
            product.get("stock"),
        );
        if stock < item.quantity {
            short.push(serde_json::json!({
                "product_id": item.product_id, "requested": item.quantity, "available": stock,
            }));
        }
        total = line_total(price, item.quantity, total)?;
        lines.push(PricedLine {
            product_id: item.product_id,
            name,
            quantity: item.quantity,
            price,
        });
    }
    if !short.is_empty() {
        return Err(conflict("out_of_stock", "not enough stock for this order")
            .with_details(serde_json::json!({ "items": short })));
    }
    Ok((lines, total))
}

/// `total` plus `price` times `quantity`; 422 when it overflows.
fn line_total(price: i64, quantity: i32, total: i64) -> Result<i64, DomainError> {
    price
        .checked_mul(i64::from(quantity))
        .and_then(|line| total.checked_add(line))
        .ok_or_else(|| DomainError::validation("items", "the order total is too large"))
}

/// Holds the order's coins: available -> frozen, one `order_hold` ledger entry.
async fn hold_coins(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: Uuid,
    version: i64,
    order_id: Uuid,
    total: i64,
) -> Result<(), DomainError> {
    ledger::post(
        tx,
        user_id,
        version,
        &[Entry {
            kind: EntryKind::OrderHold,
            available_delta: -total,
            frozen_delta: total,
            reference: Some(("order", order_id.to_string())),
            idempotency_key: format!("order_hold:{order_id}"),
            description: Some("Order placed".into()),
            created_by: None,
        }],
    )
    .await?;
    Ok(())
}

/// Takes each line's quantity from its (locked) product's stock.
async fn take_stock(tx: &impl GenericClient, lines: &[PricedLine]) -> Result<(), DomainError> {
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    tx.execute_cached(
        "UPDATE reward_products p SET stock = p.stock - u.quantity
         FROM unnest($1::uuid[], $2::int[]) AS u(id, quantity) WHERE p.id = u.id",
        &[&ids, &quantities],
    )
    .await?;
    Ok(())
}

/// Inserts the order row under a fresh random order code (drawn again, up to five times, when
/// a code is taken) and returns it.
async fn insert_order(
    tx: &impl GenericClient,
    order_id: Uuid,
    user_id: Uuid,
    request: &PlaceOrderRequest,
    print: &[u8],
    total: i64,
    version: i64,
) -> Result<tokio_postgres::Row, DomainError> {
    // The address as it was checked: trimmed.
    let address = serde_json::to_value(request.shipping_address.trimmed())
        .map_err(DomainError::internal_because)?;
    for _ in 0..5 {
        let row = tx
            .query_opt_cached(
                &format!(
                    "INSERT INTO orders (id, user_id, order_code, client_order_id, request_fingerprint,
                         total_coins, shipping_address, change_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (order_code) DO NOTHING
                     RETURNING {COLUMNS}"
                ),
                &[
                    &order_id,
                    &user_id,
                    &order_code(),
                    &request.client_order_id,
                    &print,
                    &total,
                    &address,
                    &version,
                ],
            )
            .await?;
        if let Some(row) = row {
            return Ok(row);
        }
    }
    Err(DomainError::internal())
}

/// Inserts the order's lines with the names and prices they were bought at.
async fn insert_items(
    tx: &impl GenericClient,
    order_id: Uuid,
    user_id: Uuid,
    lines: &[PricedLine],
) -> Result<(), DomainError> {
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.price).collect();
    tx.execute_cached(
        "INSERT INTO order_items (order_id, user_id, product_id, product_name, quantity, unit_coin_price)
         SELECT $1, $2, u.product_id, u.name, u.quantity, u.price
         FROM unnest($3::uuid[], $4::text[], $5::int[], $6::bigint[]) AS u(product_id, name, quantity, price)",
        &[&order_id, &user_id, &ids, &names, &quantities, &prices],
    )
    .await?;
    Ok(())
}

/// One of the user's orders (someone else's is "not found").
pub async fn get_own(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<Order, DomainError> {
    let row = client
        .query_opt_cached(
            &format!(
                "SELECT {COLUMNS} FROM orders WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
            ),
            &[&id, &user_id],
        )
        .await?
        .ok_or_else(|| DomainError::not_found("no such order"))?;
    with_items(client, order_from_row(&row)?.order).await
}

/// Orders, newest first: the user's own, or (user `None`, admins) all with an optional status.
pub async fn list(
    client: &impl GenericClient,
    user_id: Option<Uuid>,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Order>, i64), DomainError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, count(*) OVER () AS total_count FROM orders
                 WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR user_id = $1)
                   AND ($2::text IS NULL OR status = $2)
                 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            ),
            &[&user_id, &status, &limit, &offset],
        )
        .await?;
    let total = rows
        .first()
        .map(|r| r.get::<_, i64>("total_count"))
        .unwrap_or(0);
    let mut orders = rows
        .iter()
        .map(|row| order_from_row(row).map(|o| o.order))
        .collect::<Result<Vec<_>, _>>()?;
    attach_items(client, &mut orders).await?;
    Ok((orders, total))
}

/// The user's orders changed in versions `(after, to]`, oldest change first.
pub async fn changed_since(
    client: &impl GenericClient,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Vec<Order>, DomainError> {
    let rows = client
        .query_cached(
            &format!(
                "SELECT {COLUMNS} FROM orders
                 WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
                 ORDER BY change_version, id"
            ),
            &[&user_id, &after, &to],
        )
        .await?;
    let mut orders = rows
        .iter()
        .map(|row| order_from_row(row).map(|o| o.order))
        .collect::<Result<Vec<_>, _>>()?;
    attach_items(client, &mut orders).await?;
    Ok(orders)
}

/// Who asks for a transition.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    /// The order's owner (may only cancel a pending or confirmed order).
    Owner(Uuid),
    /// An administrator.
    Admin(Uuid),
}

impl Actor {
    fn mover(self) -> Mover {
        match self {
            Self::Owner(_) => Mover::Owner,
            Self::Admin(_) => Mover::Admin,
        }
    }
}

/// Moves an order to `request.status`, with its money and stock effects, in one transaction.
pub async fn transition(
    pool: &Pool,
    actor: Actor,
    order_id: Uuid,
    request: &OrderStatusRequest,
    client: &ClientInfo,
) -> Result<Order, DomainError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let order = transition_in(&tx, actor, order_id, request, client).await?;
    tx.commit().await?;
    Ok(order)
}

/// [`transition`] inside the caller's transaction (which it does not commit).
pub async fn transition_in(
    tx: &deadpool_postgres::Transaction<'_>,
    actor: Actor,
    order_id: Uuid,
    request: &OrderStatusRequest,
    client: &ClientInfo,
) -> Result<Order, DomainError> {
    let (to, tracking, reason) = check_transition(request, actor)?;
    let (owner, version, before) = lock_order(tx, actor, order_id).await?;
    let from = OrderStatus::parse(&before.status).ok_or_else(|| {
        DomainError::internal_because(format!("order {order_id} has status {:?}", before.status))
    })?;
    let step = workflow::plan(from, to, actor.mover()).map_err(|refused| {
        conflict(
            "invalid_transition",
            format!(
                "an order that is {} cannot become {}",
                refused.from, refused.to
            ),
        )
        .with_details(
            serde_json::json!({ "from": refused.from.as_str(), "to": refused.to.as_str() }),
        )
    })?;
    if let Some(entry) = booking_entry(step.booking, actor, order_id, before.total_coins) {
        ledger::post(tx, owner, version, &[entry]).await?;
    }
    if step.restock {
        tx.execute_cached(
            "UPDATE reward_products p SET stock = p.stock + i.quantity
             FROM order_items i WHERE i.order_id = $1 AND p.id = i.product_id",
            &[&order_id],
        )
        .await?;
    }
    let after = write_status(tx, actor, order_id, to, version, tracking, reason).await?;
    if let Actor::Admin(admin_id) = actor {
        audit::record(
            tx,
            AuditEntry {
                admin_id: Some(admin_id),
                action: "order.status",
                entity_type: "order",
                entity_id: order_id.to_string(),
                before: Some(serde_json::json!({ "status": before.status, "tracking_number": before.tracking_number })),
                after: Some(serde_json::json!({ "status": after.status, "tracking_number": after.tracking_number })),
                reason,
                client: Some(client),
            },
        )
        .await?;
    }
    Ok(after)
}

/// Checks a transition request before any database work: a known status, a tracking number of
/// at most 100 characters (required to ship), a reason of at most 500 (required where the
/// workflow asks for one). Answers the target status and the trimmed tracking number and reason.
fn check_transition(
    request: &OrderStatusRequest,
    actor: Actor,
) -> Result<(OrderStatus, Option<&str>, Option<&str>), DomainError> {
    let to = OrderStatus::parse(&request.status)
        .ok_or_else(|| DomainError::validation("status", "unknown order status"))?;
    let tracking = request
        .tracking_number
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if tracking.is_some_and(|t| t.chars().count() > 100) {
        return Err(DomainError::validation(
            "tracking_number",
            "a tracking number is at most 100 characters",
        ));
    }
    if workflow::needs_tracking(to) && tracking.is_none() {
        return Err(DomainError::validation(
            "tracking_number",
            "a tracking number (1 to 100 characters) is required to ship",
        ));
    }
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if workflow::needs_reason(to, actor.mover()) && reason.is_none() {
        return Err(DomainError::validation(
            "reason",
            "a reason is required to cancel or refund",
        ));
    }
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(DomainError::validation(
            "reason",
            "reason must be at most 500 characters",
        ));
    }
    Ok((to, tracking, reason))
}

/// Finds the order (an owner sees only their own: anyone else's is "not found"), takes its
/// owner's change-version lock, then locks the order row. Answers the owner, the new version
/// and the order as it was.
async fn lock_order(
    tx: &deadpool_postgres::Transaction<'_>,
    actor: Actor,
    order_id: Uuid,
) -> Result<(Uuid, i64, Order), DomainError> {
    let owner: Uuid = tx
        .query_opt_cached(
            "SELECT user_id FROM orders WHERE id = $1 AND deleted_at IS NULL",
            &[&order_id],
        )
        .await?
        .map(|r| r.get("user_id"))
        .ok_or_else(|| DomainError::not_found("no such order"))?;
    if let Actor::Owner(user) = actor
        && user != owner
    {
        return Err(DomainError::not_found("no such order"));
    }
    let version = next_user_version(tx, owner).await?;
    let row = tx
        .query_one_cached(
            &format!("SELECT {COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"),
            &[&order_id],
        )
        .await?;
    Ok((owner, version, order_from_row(&row)?.order))
}

/// The ledger entry a transition books for an order of `total` coins, if any: a release
/// (frozen -> available), a capture (frozen -> spent) or a refund (credited back).
fn booking_entry(booking: Booking, actor: Actor, order_id: Uuid, total: i64) -> Option<Entry> {
    let reference = Some(("order", order_id.to_string()));
    match booking {
        Booking::Release => Some(Entry {
            kind: EntryKind::OrderRelease,
            available_delta: total,
            frozen_delta: -total,
            reference,
            idempotency_key: format!("order_release:{order_id}"),
            description: Some("Order cancelled".into()),
            created_by: None,
        }),
        Booking::Capture => Some(Entry {
            kind: EntryKind::OrderCapture,
            available_delta: 0,
            frozen_delta: -total,
            reference,
            idempotency_key: format!("order_capture:{order_id}"),
            description: Some("Order delivered".into()),
            created_by: None,
        }),
        Booking::Refund => Some(Entry {
            kind: EntryKind::Refund,
            available_delta: total,
            frozen_delta: 0,
            reference,
            idempotency_key: format!("refund:{order_id}"),
            description: Some("Order refunded".into()),
            created_by: match actor {
                Actor::Admin(admin) => Some(admin),
                Actor::Owner(_) => None,
            },
        }),
        Booking::None => None,
    }
}

/// Writes the new status with its timestamp (and tracking number, and who cancelled and why)
/// at `version`, and answers the order with its items.
async fn write_status(
    tx: &impl GenericClient,
    actor: Actor,
    order_id: Uuid,
    to: OrderStatus,
    version: i64,
    tracking: Option<&str>,
    reason: Option<&str>,
) -> Result<Order, DomainError> {
    let actor_id = match actor {
        Actor::Owner(user) => user,
        Actor::Admin(admin) => admin,
    };
    let row = tx
        .query_one_cached(
            &format!(
                "UPDATE orders SET status = $2, change_version = $3,
                     tracking_number = coalesce($4, tracking_number),
                     confirmed_at = CASE WHEN $2 = 'confirmed' THEN now() ELSE confirmed_at END,
                     shipped_at = CASE WHEN $2 = 'shipped' THEN now() ELSE shipped_at END,
                     delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END,
                     refunded_at = CASE WHEN $2 = 'refunded' THEN now() ELSE refunded_at END,
                     cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END,
                     cancelled_by = CASE WHEN $2 = 'cancelled' THEN $5 ELSE cancelled_by END,
                     cancel_reason = CASE WHEN $2 = 'cancelled' THEN $6 ELSE cancel_reason END
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &order_id,
                &to.as_str(),
                &version,
                &tracking,
                &actor_id,
                &reason,
            ],
        )
        .await?;
    with_items(tx, order_from_row(&row)?.order).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_codes_are_readable_and_distinct() {
        let a = order_code();
        assert!(a.starts_with("FK-") && a.len() == 11, "{a}");
        assert_ne!(a, order_code());
    }
}

//! The reward catalogue: products users can order, and the admin operations that change it.
//! Every catalogue change takes the next shared change version (under its row lock) so
//! devices pull it; stock moved by orders does not, to keep orders from queueing on one row.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use fitkart_protocol::orders::{Product, ProductInput};
use uuid::Uuid;

use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::db::CachedStatements as _;
use crate::error::{DomainError, ErrorKind};
use crate::sync::versions::next_shared_version;

const COLUMNS: &str = "id, sku, name, description, category, coin_price, stock, images, is_active";

fn from_row(row: &tokio_postgres::Row) -> Product {
    let images: serde_json::Value = row.get("images");
    Product {
        id: row.get("id"),
        sku: row.get("sku"),
        name: row.get("name"),
        description: row.get("description"),
        category: row.get("category"),
        coin_price: row.get("coin_price"),
        stock: i64::from(row.get::<_, i32>("stock")),
        images: serde_json::from_value(images).unwrap_or_default(),
        is_active: row.get("is_active"),
    }
}

/// Active products, optionally of one category, by category, price and id.
pub async fn list(
    client: &impl GenericClient,
    category: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Product>, i64), DomainError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, count(*) OVER () AS total_count FROM reward_products
                 WHERE is_active AND deleted_at IS NULL AND ($1::text IS NULL OR category = $1)
                 ORDER BY category, coin_price, id LIMIT $2 OFFSET $3"
            ),
            &[&category, &limit, &offset],
        )
        .await?;
    let total = rows
        .first()
        .map(|r| r.get::<_, i64>("total_count"))
        .unwrap_or(0);
    Ok((rows.iter().map(from_row).collect(), total))
}

/// Products changed in shared versions `(after, to]` (inactive ones included, so devices
/// drop them).
pub async fn changed_since(
    client: &impl GenericClient,
    after: i64,
    to: i64,
) -> Result<Vec<Product>, DomainError> {
    Ok(client
        .query_cached(
            "SELECT id, sku, name, description, category, coin_price, stock, images,
                    (is_active AND deleted_at IS NULL) AS is_active
             FROM reward_products WHERE change_version > $1 AND change_version <= $2
             ORDER BY change_version, id",
            &[&after, &to],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// One active product.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Product, DomainError> {
    client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM reward_products
                 WHERE id = $1 AND is_active AND deleted_at IS NULL"
            ),
            &[&id],
        )
        .await?
        .map(|row| from_row(&row))
        .ok_or_else(|| DomainError::not_found("no such product"))
}

fn check_input(input: &ProductInput) -> Result<(), DomainError> {
    let text = |field: &str, value: &Option<String>, min: usize, max: usize| match value {
        Some(v) if !(min..=max).contains(&v.trim().chars().count()) => Err(
            DomainError::validation(field, format!("{field} must be {min} to {max} characters")),
        ),
        _ => Ok(()),
    };
    text("sku", &input.sku, 1, 64)?;
    text("name", &input.name, 1, 200)?;
    text("description", &input.description, 0, 10_000)?;
    text("category", &input.category, 1, 64)?;
    if input.coin_price.is_some_and(|p| p <= 0) {
        return Err(DomainError::validation(
            "coin_price",
            "coin_price must be positive",
        ));
    }
    if input
        .stock
        .is_some_and(|s| !(0..=i64::from(i32::MAX)).contains(&s))
    {
        return Err(DomainError::validation(
            "stock",
            "stock must be zero or more",
        ));
    }
    if let Some(images) = &input.images
        && (images.len() > 20
            || images.iter().any(|u| {
                u.len() > 2048 || !(u.starts_with("https://") || u.starts_with("http://"))
            }))
    {
        return Err(DomainError::validation(
            "images",
            "images must be at most 20 http(s) URLs",
        ));
    }
    Ok(())
}

fn map_unique(err: tokio_postgres::Error) -> DomainError {
    if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        DomainError::new(
            ErrorKind::Conflict,
            "sku_taken",
            "another product has this SKU",
        )
        .with_details(serde_json::json!({ "field": "sku" }))
    } else {
        err.into()
    }
}

/// Locks a live product (active or not) until commit.
async fn lock_product(tx: &Transaction<'_>, id: Uuid) -> Result<Product, DomainError> {
    tx.query_opt(
        &format!(
            "SELECT {COLUMNS} FROM reward_products WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        ),
        &[&id],
    )
    .await?
    .map(|row| from_row(&row))
    .ok_or_else(|| DomainError::not_found("no such product"))
}

/// Creates a product (admin).
pub async fn create(
    pool: &Pool,
    admin_id: Uuid,
    input: &ProductInput,
    client: &ClientInfo,
) -> Result<Product, DomainError> {
    check_input(input)?;
    let (Some(name), Some(category), Some(price)) =
        (&input.name, &input.category, input.coin_price)
    else {
        return Err(DomainError::validation(
            "name",
            "name, category and coin_price are required",
        ));
    };
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let version = next_shared_version(&tx).await?;
    let images = serde_json::json!(input.images.clone().unwrap_or_default());
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO reward_products
                     (id, sku, name, description, category, coin_price, stock, images, is_active,
                      change_version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &input.sku.as_deref().map(str::trim),
                &name.trim(),
                &input.description.as_deref().unwrap_or("").trim(),
                &category.trim(),
                &price,
                &(input.stock.unwrap_or(0) as i32),
                &images,
                &input.is_active.unwrap_or(true),
                &version,
            ],
        )
        .await
        .map_err(map_unique)?;
    let product = from_row(&row);
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action: "product.create",
            entity_type: "reward_product",
            entity_id: product.id.to_string(),
            before: None,
            after: serde_json::to_value(&product).ok(),
            reason: None,
            client: Some(client),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(product)
}

/// Changes some fields of a product (admin). `deactivate` is `is_active: false`.
pub async fn update(
    pool: &Pool,
    admin_id: Uuid,
    id: Uuid,
    input: &ProductInput,
    action: &'static str,
    client: &ClientInfo,
) -> Result<Product, DomainError> {
    check_input(input)?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let version = next_shared_version(&tx).await?;
    let before = lock_product(&tx, id).await?;
    let images = input.images.as_ref().map(|i| serde_json::json!(i));
    let row = tx
        .query_one(
            &format!(
                "UPDATE reward_products SET
                     sku = coalesce($2, sku), name = coalesce($3, name),
                     description = coalesce($4, description), category = coalesce($5, category),
                     coin_price = coalesce($6, coin_price), stock = coalesce($7, stock),
                     images = coalesce($8, images), is_active = coalesce($9, is_active),
                     change_version = $10
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &input.sku.as_deref().map(str::trim),
                &input.name.as_deref().map(str::trim),
                &input.description.as_deref().map(str::trim),
                &input.category.as_deref().map(str::trim),
                &input.coin_price,
                &input.stock.map(|s| s as i32),
                &images,
                &input.is_active,
                &version,
            ],
        )
        .await
        .map_err(map_unique)?;
    let after = from_row(&row);
    audit::record(
        &tx,
        AuditEntry {
            admin_id: Some(admin_id),
            action,
            entity_type: "reward_product",
            entity_id: id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            reason: None,
            client: Some(client),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

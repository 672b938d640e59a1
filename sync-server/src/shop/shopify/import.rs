//! The import itself: every product of a feed upserted in one transaction, earlier imports that
//! left the feed deactivated, SKU clashes resolved, and one audit row (or one for a failure).

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use fitkart_protocol::orders::ImportReport;
use uuid::Uuid;

use super::mapping::{MappedProduct, map_feed};
use super::{Feed, ImportError, MAX_SOURCE_CHARS, on_blocking_thread, truncate};
use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;

/// The setting holding how many coins one unit of the shop's currency is worth.
pub const COINS_PER_CURRENCY_UNIT_SETTING: &str =
    crate::rewards::settings::SettingKey::CoinsPerCurrencyUnit.as_str();
/// Coins per currency unit when the setting is missing.
pub const DEFAULT_COINS_PER_CURRENCY_UNIT: i64 = 1000;

const MAX_SKU_CHARS: usize = 64;

/// How an import treats an empty feed, and whether it only previews.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Accept a feed without products (it deactivates every imported product).
    pub allow_empty: bool,
    /// Work out the report, then roll back: nothing changes and nothing is audited (the admin
    /// console's preview of an import).
    pub dry_run: bool,
}

/// Who runs an import and where the feed came from, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ImportContext<'a> {
    /// The admin, or `None` for the command line.
    pub admin_id: Option<Uuid>,
    /// The HTTP client, when over HTTP.
    pub client: Option<&'a ClientInfo>,
    /// `upload`, the file or the URL (see [`describe_url`](super::describe_url)).
    pub source: &'a str,
}

/// Reads the coin rate setting, [`DEFAULT_COINS_PER_CURRENCY_UNIT`] when it is missing.
pub async fn coins_per_currency_unit(client: &impl GenericClient) -> Result<i64, ImportError> {
    let row = client
        .query_opt(
            "SELECT value FROM settings WHERE key = $1",
            &[&COINS_PER_CURRENCY_UNIT_SETTING],
        )
        .await?;
    match row {
        None => Ok(DEFAULT_COINS_PER_CURRENCY_UNIT),
        Some(row) => row
            .get::<_, serde_json::Value>("value")
            .as_i64()
            .filter(|rate| *rate > 0)
            .ok_or_else(|| {
                ImportError::InvalidSetting(format!(
                    "the setting {COINS_PER_CURRENCY_UNIT_SETTING} must be a positive integer"
                ))
            }),
    }
}

/// Imports a feed into `reward_products` in one transaction and writes one `admin_logs` row.
///
/// Products are upserted by `shopify_product_id`; only rows whose content changed are
/// rewritten, and they take the next shared change version. Earlier imports missing from the
/// feed are deactivated. Entries that cannot be imported are reported in `skipped` (an existing
/// row of a skipped entry is left as it was), as are SKUs another product already uses (the
/// product is imported without one). Products deleted by an admin are left alone.
pub async fn import(
    client: &mut deadpool_postgres::Client,
    feed: &Feed,
    options: ImportOptions,
    context: ImportContext<'_>,
) -> Result<ImportReport, ImportError> {
    if feed.products.is_empty() && !options.allow_empty {
        return Err(ImportError::EmptyFeed);
    }
    let tx = client.transaction().await?;
    // Catalogue changes commit in version order: hold the shared version row until commit.
    let pending = crate::sync::versions::PendingSharedVersion::lock(&tx).await?;
    let version = pending.version;
    let rate = coins_per_currency_unit(&tx).await?;

    let products = feed.products.clone();
    let (mut rows, mut skipped, in_feed) = on_blocking_thread(move || map_feed(&products, rate))
        .await
        .map_err(ImportError::Internal)?;
    let feed_ids: Vec<i64> = in_feed.into_iter().collect();
    skip_products_deleted_by_admin(&tx, &feed_ids, &mut rows, &mut skipped).await?;
    assign_skus(&tx, &mut rows, &mut skipped).await?;
    let (created, updated) = upsert_products(&tx, &rows, version).await?;
    let deactivated = deactivate_products_missing_from(&tx, &feed_ids, version).await?;

    let report = ImportReport {
        created,
        updated,
        deactivated,
        skipped,
    };
    if report.created + report.updated + report.deactivated > 0 {
        pending.publish(&tx).await?;
    }
    if options.dry_run {
        tx.rollback().await?;
        return Ok(report);
    }
    audit_import(&tx, &report, context).await?;
    tx.commit().await?;
    tracing::info!(
        source = context.source,
        created = report.created,
        updated = report.updated,
        deactivated = report.deactivated,
        skipped = report.skipped.len(),
        "catalogue imported"
    );
    Ok(report)
}

/// Leaves alone the products of the feed that an administrator deleted, noting each in `skipped`.
async fn skip_products_deleted_by_admin(
    tx: &impl GenericClient,
    feed_ids: &[i64],
    rows: &mut Vec<MappedProduct>,
    skipped: &mut Vec<String>,
) -> Result<(), ImportError> {
    let deleted: HashSet<i64> = tx
        .query(
            "SELECT shopify_product_id FROM reward_products
             WHERE shopify_product_id = ANY($1) AND deleted_at IS NOT NULL",
            &[&feed_ids],
        )
        .await?
        .iter()
        .map(|row| row.get("shopify_product_id"))
        .collect();
    rows.retain(|row| {
        let keep = !deleted.contains(&row.shopify_product_id);
        if !keep {
            skipped.push(format!(
                "product {} {:?}: skipped, an administrator deleted it",
                row.shopify_product_id, row.name
            ));
        }
        keep
    });
    Ok(())
}

/// Writes the mapped products at `version`: new ones inserted, changed ones rewritten, unchanged
/// ones untouched. Returns how many were created and how many existing ones changed.
async fn upsert_products(
    tx: &impl GenericClient,
    rows: &[MappedProduct],
    version: i64,
) -> Result<(u64, u64), ImportError> {
    // Columns for unnest.
    let ids: Vec<i64> = rows.iter().map(|r| r.shopify_product_id).collect();
    let handles: Vec<Option<&str>> = rows.iter().map(|r| r.shopify_handle.as_deref()).collect();
    let skus: Vec<Option<&str>> = rows.iter().map(|r| r.sku.as_deref()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let descriptions: Vec<&str> = rows.iter().map(|r| r.description.as_str()).collect();
    let categories: Vec<&str> = rows.iter().map(|r| r.category.as_str()).collect();
    let prices: Vec<i64> = rows.iter().map(|r| r.coin_price).collect();
    let stocks: Vec<i32> = rows.iter().map(|r| r.stock).collect();
    let images: Vec<serde_json::Value> = rows.iter().map(|r| serde_json::json!(r.images)).collect();
    let active: Vec<bool> = rows.iter().map(|r| r.is_active).collect();

    let mut updated_ids = free_moving_skus(tx, &ids, &skus, version).await?;
    let upserted = tx
        .query(
            "INSERT INTO reward_products AS p
                 (shopify_product_id, shopify_handle, sku, name, description, category,
                  coin_price, stock, images, is_active, change_version)
             SELECT f.*, $11
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::bigint[], $8::int[], $9::jsonb[], $10::bool[])
                  AS f(shopify_product_id, shopify_handle, sku, name, description, category,
                       coin_price, stock, images, is_active)
             ON CONFLICT (shopify_product_id) DO UPDATE SET
                 shopify_handle = EXCLUDED.shopify_handle, sku = EXCLUDED.sku,
                 name = EXCLUDED.name, description = EXCLUDED.description,
                 category = EXCLUDED.category, coin_price = EXCLUDED.coin_price,
                 stock = EXCLUDED.stock, images = EXCLUDED.images,
                 is_active = EXCLUDED.is_active, change_version = EXCLUDED.change_version
             WHERE p.deleted_at IS NULL
               AND (p.shopify_handle, p.sku, p.name, p.description, p.category, p.coin_price,
                    p.stock, p.images, p.is_active)
                   IS DISTINCT FROM
                   (EXCLUDED.shopify_handle, EXCLUDED.sku, EXCLUDED.name, EXCLUDED.description,
                    EXCLUDED.category, EXCLUDED.coin_price, EXCLUDED.stock, EXCLUDED.images,
                    EXCLUDED.is_active)
             RETURNING p.shopify_product_id, (p.xmax = 0) AS inserted",
            &[
                &ids,
                &handles,
                &skus,
                &names,
                &descriptions,
                &categories,
                &prices,
                &stocks,
                &images,
                &active,
                &version,
            ],
        )
        .await?;
    let mut created = 0_u64;
    for row in &upserted {
        if row.get::<_, bool>("inserted") {
            created += 1;
        } else {
            updated_ids.insert(row.get("shopify_product_id"));
        }
    }
    Ok((created, updated_ids.len() as u64))
}

/// Frees the SKUs that move between imported products first, so the upsert cannot trip over
/// the unique index halfway through. Returns the products it changed.
async fn free_moving_skus(
    tx: &impl GenericClient,
    ids: &[i64],
    skus: &[Option<&str>],
    version: i64,
) -> Result<HashSet<i64>, ImportError> {
    Ok(tx
        .query(
            "UPDATE reward_products AS p SET sku = NULL, change_version = $3
             FROM unnest($1::bigint[], $2::text[]) AS f(shopify_product_id, sku)
             WHERE p.shopify_product_id = f.shopify_product_id AND p.deleted_at IS NULL
               AND p.sku IS NOT NULL AND p.sku IS DISTINCT FROM f.sku
             RETURNING p.shopify_product_id",
            &[&ids, &skus, &version],
        )
        .await?
        .iter()
        .map(|row| row.get("shopify_product_id"))
        .collect())
}

/// Deactivates (never deletes) earlier imports the feed no longer holds; returns how many.
async fn deactivate_products_missing_from(
    tx: &impl GenericClient,
    feed_ids: &[i64],
    version: i64,
) -> Result<u64, ImportError> {
    Ok(tx
        .execute(
            "UPDATE reward_products SET is_active = false, change_version = $2
             WHERE shopify_product_id IS NOT NULL AND NOT (shopify_product_id = ANY($1))
               AND is_active AND deleted_at IS NULL",
            &[&feed_ids, &version],
        )
        .await?)
}

/// Records a committed import in the audit log (`product.import`, with its counts).
async fn audit_import(
    tx: &impl GenericClient,
    report: &ImportReport,
    context: ImportContext<'_>,
) -> Result<(), ImportError> {
    audit::record(
        tx,
        AuditEntry {
            admin_id: context.admin_id,
            action: "product.import",
            entity_type: "reward_products",
            entity_id: truncate(context.source, MAX_SOURCE_CHARS),
            before: None,
            after: Some(serde_json::json!({
                "created": report.created,
                "updated": report.updated,
                "deactivated": report.deactivated,
                "skipped": report.skipped.len(),
            })),
            reason: None,
            client: context.client,
        },
    )
    .await?;
    Ok(())
}

/// Records a failed import in the audit log (`product.import_failed`, with the error's code),
/// outside any transaction: the import itself changed nothing. A failure to record is logged.
pub async fn audit_failure(
    pool: &deadpool_postgres::Pool,
    admin_id: Uuid,
    client: &ClientInfo,
    source: &str,
    err: &ImportError,
) {
    let reason = match err {
        ImportError::InvalidFeed(_) => "invalid_feed",
        ImportError::EmptyFeed => "empty_feed",
        ImportError::InvalidUrl(_) => "invalid_url",
        ImportError::ForbiddenUrl(_) => "url_not_allowed",
        ImportError::Unreachable { .. } => "feed_unreachable",
        ImportError::TooLarge => "feed_too_large",
        ImportError::InvalidSetting(_) => "invalid_setting",
        ImportError::Conflict => "import_conflict",
        ImportError::Internal(_) => "internal",
    };
    let recorded = async {
        let conn = pool.get().await?;
        audit::record(
            &conn,
            AuditEntry {
                admin_id: Some(admin_id),
                action: "product.import_failed",
                entity_type: "reward_products",
                entity_id: source.chars().take(128).collect(),
                before: None,
                after: Some(serde_json::json!({ "error": reason })),
                reason: None,
                client: Some(client),
            },
        )
        .await
    };
    if let Err(err) = recorded.await {
        tracing::error!(error = ?err, "could not audit a failed catalogue import");
    }
}

/// Drops SKUs that cannot be had: too long, used twice in the feed (the first keeps it), or
/// held by a product this import does not rewrite. Each drop is noted in `skipped`.
async fn assign_skus(
    tx: &impl GenericClient,
    rows: &mut [MappedProduct],
    skipped: &mut Vec<String>,
) -> Result<(), ImportError> {
    let wanted: Vec<&str> = rows.iter().filter_map(|r| r.sku.as_deref()).collect();
    let holders: HashMap<String, Option<i64>> = tx
        .query(
            "SELECT sku, shopify_product_id FROM reward_products WHERE sku = ANY($1)",
            &[&wanted],
        )
        .await?
        .iter()
        .map(|row| (row.get("sku"), row.get("shopify_product_id")))
        .collect();
    let rewritten: HashSet<i64> = rows.iter().map(|r| r.shopify_product_id).collect();
    let mut claimed = HashSet::new();
    for row in rows.iter_mut() {
        let Some(sku) = row.sku.take() else { continue };
        let why = if sku.chars().count() > MAX_SKU_CHARS {
            Some("it is longer than 64 characters")
        } else if holders
            .get(&sku)
            .is_some_and(|holder| !holder.is_some_and(|id| rewritten.contains(&id)))
        {
            Some("another product already has it")
        } else if !claimed.insert(sku.clone()) {
            Some("an earlier product of the feed has it")
        } else {
            None
        };
        match why {
            Some(why) => skipped.push(format!(
                "product {} {:?}: imported without its SKU {:?}, {why}",
                row.shopify_product_id,
                row.name,
                truncate(&sku, 80)
            )),
            None => row.sku = Some(sku),
        }
    }
    Ok(())
}

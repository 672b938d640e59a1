//! Seed data from `seeds/` (achievements, reward products, settings), embedded in the binary.
//! Loading is idempotent: rows that exist (by code, SKU or key) are left as operators set them.

use deadpool_postgres::GenericClient;
use serde::Deserialize;

use crate::error::{Error, Result};

const ACHIEVEMENTS_JSON: &str = include_str!("../../seeds/achievements.json");
const PRODUCTS_JSON: &str = include_str!("../../seeds/products.json");
const SETTINGS_JSON: &str = include_str!("../../seeds/settings.json");

/// One achievement definition of the seed.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedAchievement {
    /// Stable code, e.g. `steps_10k`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Display description.
    pub description: String,
    /// Icon asset name.
    pub icon: Option<String>,
    /// Unlock rule as JSON (`{"type": "total_steps", "steps": 1000}`, ...).
    pub criteria: serde_json::Value,
    /// Coins paid once on unlock.
    pub bonus_coins: i64,
    /// Display order.
    pub sort_order: i32,
}

/// One reward product of the seed.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedProduct {
    /// Stock keeping unit: the product's stable key.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Display description.
    pub description: String,
    /// Catalogue category.
    pub category: String,
    /// Price in coins.
    pub coin_price: i64,
    /// Units in stock.
    pub stock: i32,
    /// Image URLs.
    pub images: Vec<String>,
}

/// One setting of the seed.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedSetting {
    /// Dotted key, e.g. `rewards.coins_per_1000_steps`.
    pub key: String,
    /// The value as JSON.
    pub value: serde_json::Value,
    /// Whether devices receive it.
    pub is_public: bool,
    /// What it controls.
    pub description: String,
}

/// The whole seed data set.
#[derive(Debug, Clone)]
pub struct SeedData {
    /// Achievement definitions.
    pub achievements: Vec<SeedAchievement>,
    /// Reward products.
    pub products: Vec<SeedProduct>,
    /// Settings.
    pub settings: Vec<SeedSetting>,
}

impl SeedData {
    /// The seed data embedded in this binary.
    pub fn embedded() -> Result<Self> {
        fn parse<T: for<'de> Deserialize<'de>>(name: &str, json: &str) -> Result<T> {
            serde_json::from_str(json).map_err(|e| Error::Seed(format!("seeds/{name}: {e}")))
        }
        Ok(Self {
            achievements: parse("achievements.json", ACHIEVEMENTS_JSON)?,
            products: parse("products.json", PRODUCTS_JSON)?,
            settings: parse("settings.json", SETTINGS_JSON)?,
        })
    }
}

/// How many rows a seed load inserted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// New achievement definitions.
    pub achievements: u64,
    /// New products.
    pub products: u64,
    /// New settings.
    pub settings: u64,
}

impl SeedReport {
    /// Rows inserted in all.
    pub fn total(&self) -> u64 {
        self.achievements + self.products + self.settings
    }
}

/// Loads the embedded seed data in one transaction. Existing rows are kept; new catalogue
/// rows get the next shared change version so devices pull them.
pub async fn load(client: &mut deadpool_postgres::Client) -> Result<SeedReport> {
    load_data(client, &SeedData::embedded()?).await
}

/// Loads the given seed data in one transaction (see [`load`]).
pub async fn load_data(
    client: &mut deadpool_postgres::Client,
    data: &SeedData,
) -> Result<SeedReport> {
    let tx = client.transaction().await?;
    let pending = crate::sync::versions::PendingSharedVersion::lock(&tx).await?;
    let version = pending.version;
    let report = SeedReport {
        achievements: insert_achievements(&tx, &data.achievements, version).await?,
        products: insert_products(&tx, &data.products, version).await?,
        settings: insert_settings(&tx, &data.settings, version).await?,
    };
    if report.total() > 0 {
        pending.publish(&tx).await?;
    }
    tx.commit().await?;
    Ok(report)
}

async fn insert_achievements(
    tx: &impl GenericClient,
    rows: &[SeedAchievement],
    version: i64,
) -> Result<u64> {
    let codes: Vec<&str> = rows.iter().map(|a| a.code.as_str()).collect();
    let names: Vec<&str> = rows.iter().map(|a| a.name.as_str()).collect();
    let descriptions: Vec<&str> = rows.iter().map(|a| a.description.as_str()).collect();
    let icons: Vec<Option<&str>> = rows.iter().map(|a| a.icon.as_deref()).collect();
    let criteria: Vec<&serde_json::Value> = rows.iter().map(|a| &a.criteria).collect();
    let bonuses: Vec<i64> = rows.iter().map(|a| a.bonus_coins).collect();
    let orders: Vec<i32> = rows.iter().map(|a| a.sort_order).collect();
    Ok(tx
        .execute(
            "INSERT INTO achievements
                 (code, name, description, icon, criteria, bonus_coins, sort_order, change_version)
             SELECT code, name, description, icon, criteria, bonus_coins, sort_order, $8
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                         $6::bigint[], $7::int[])
                  AS s(code, name, description, icon, criteria, bonus_coins, sort_order)
             ON CONFLICT (code) DO NOTHING",
            &[
                &codes,
                &names,
                &descriptions,
                &icons,
                &criteria,
                &bonuses,
                &orders,
                &version,
            ],
        )
        .await?)
}

async fn insert_products(
    tx: &impl GenericClient,
    rows: &[SeedProduct],
    version: i64,
) -> Result<u64> {
    let skus: Vec<&str> = rows.iter().map(|p| p.sku.as_str()).collect();
    let names: Vec<&str> = rows.iter().map(|p| p.name.as_str()).collect();
    let descriptions: Vec<&str> = rows.iter().map(|p| p.description.as_str()).collect();
    let categories: Vec<&str> = rows.iter().map(|p| p.category.as_str()).collect();
    let prices: Vec<i64> = rows.iter().map(|p| p.coin_price).collect();
    let stocks: Vec<i32> = rows.iter().map(|p| p.stock).collect();
    let images: Vec<serde_json::Value> = rows.iter().map(|p| serde_json::json!(p.images)).collect();
    Ok(tx
        .execute(
            "INSERT INTO reward_products
                 (sku, name, description, category, coin_price, stock, images, change_version)
             SELECT sku, name, description, category, coin_price, stock, images, $8
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                         $6::int[], $7::jsonb[])
                  AS s(sku, name, description, category, coin_price, stock, images)
             ON CONFLICT (sku) DO NOTHING",
            &[
                &skus,
                &names,
                &descriptions,
                &categories,
                &prices,
                &stocks,
                &images,
                &version,
            ],
        )
        .await?)
}

async fn insert_settings(
    tx: &impl GenericClient,
    rows: &[SeedSetting],
    version: i64,
) -> Result<u64> {
    let keys: Vec<&str> = rows.iter().map(|s| s.key.as_str()).collect();
    let values: Vec<&serde_json::Value> = rows.iter().map(|s| &s.value).collect();
    let public: Vec<bool> = rows.iter().map(|s| s.is_public).collect();
    let descriptions: Vec<&str> = rows.iter().map(|s| s.description.as_str()).collect();
    Ok(tx
        .execute(
            "INSERT INTO settings (key, value, is_public, description, change_version)
             SELECT key, value, is_public, description, $5
             FROM unnest($1::text[], $2::jsonb[], $3::bool[], $4::text[])
                  AS s(key, value, is_public, description)
             ON CONFLICT (key) DO NOTHING",
            &[&keys, &values, &public, &descriptions, &version],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_seed_has_the_seven_achievements_eight_products_and_settings() {
        let seed = SeedData::embedded().unwrap();
        assert_eq!(seed.achievements.len(), 7);
        assert_eq!(seed.products.len(), 8);
        // Every key the server knows, and no other (settings::tests checks them one by one).
        assert_eq!(
            seed.settings.len(),
            crate::rewards::settings::SettingKey::ALL.len()
        );
    }
}

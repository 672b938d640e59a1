//! Redemption: the product catalogue and orders, the bodies of `/products*` and `/orders*`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most distinct products one order may hold.
pub const MAX_ORDER_ITEMS: usize = 20;
/// Most units of one product per order.
pub const MAX_ITEM_QUANTITY: i32 = 100;

/// A product of the reward catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    /// Product id.
    pub id: Uuid,
    /// Stock keeping unit, if any.
    pub sku: Option<String>,
    /// Display name.
    pub name: String,
    /// Plain-text description.
    pub description: String,
    /// Catalogue category.
    pub category: String,
    /// Price in coins.
    pub coin_price: i64,
    /// Units in stock.
    pub stock: i64,
    /// Image URLs.
    pub images: Vec<String>,
    /// Whether it can be ordered.
    pub is_active: bool,
}

/// Answer of `GET /api/v1/products?category=&limit=&offset=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductPage {
    /// The page, by category, price and id.
    pub products: Vec<Product>,
    /// Matches in all.
    pub total: i64,
}

/// A postal address for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    /// Recipient's name (1-100 characters).
    pub name: String,
    /// Street and number (1-200).
    pub line1: String,
    /// More address (0-200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City (1-100).
    pub city: String,
    /// State, province or region (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code (1-20).
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, e.g. `DE`.
    pub country: String,
    /// Phone number for the courier (0-32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl ShippingAddress {
    /// The address with every field trimmed, and optional fields that are blank left out:
    /// what the server checks is what it stores.
    pub fn trimmed(&self) -> Self {
        let optional = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            name: self.name.trim().to_owned(),
            line1: self.line1.trim().to_owned(),
            line2: optional(&self.line2),
            city: self.city.trim().to_owned(),
            region: optional(&self.region),
            postal_code: self.postal_code.trim().to_owned(),
            country: self.country.trim().to_owned(),
            phone: optional(&self.phone),
        }
    }
}

/// One line of an order request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The product.
    pub product_id: Uuid,
    /// Units, 1 to [`MAX_ITEM_QUANTITY`].
    pub quantity: i32,
}

/// `POST /api/v1/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// The device's id for this order: sending it again returns the same order.
    pub client_order_id: Uuid,
    /// 1 to [`MAX_ORDER_ITEMS`] lines, each product once.
    pub items: Vec<OrderLine>,
    /// Where to deliver.
    pub shipping_address: ShippingAddress,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderItem {
    /// The product.
    pub product_id: Uuid,
    /// Its name when ordered.
    pub product_name: String,
    /// Units.
    pub quantity: i64,
    /// Price per unit when ordered.
    pub unit_coin_price: i64,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    /// Order id.
    pub id: Uuid,
    /// Human-readable code, e.g. `FK-7Q2M9XKD`.
    pub order_code: String,
    /// The device's id for the order.
    pub client_order_id: Uuid,
    /// `pending`, `confirmed`, `processing`, `shipped`, `delivered`, `cancelled` or `refunded`.
    pub status: String,
    /// Coins held, then spent.
    pub total_coins: i64,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Delivery address.
    pub shipping_address: ShippingAddress,
    /// Courier tracking number, once shipped.
    pub tracking_number: Option<String>,
    /// Placed at.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Shipped at.
    pub shipped_at: Option<DateTime<Utc>>,
    /// Delivered at.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Cancelled at.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Answer of `GET /api/v1/orders?limit=&offset=`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderPage {
    /// The page.
    pub orders: Vec<Order>,
    /// The caller's orders in all.
    pub total: i64,
}

/// `POST /api/v1/admin/orders/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderStatusRequest {
    /// The new status.
    pub status: String,
    /// Required when the status is `shipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    /// Why (kept in the audit log; required to cancel or refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/admin/products` (all fields) and `PATCH /api/v1/admin/products/{id}`
/// (any subset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Stock keeping unit (unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Display name (1-200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Plain-text description (0-10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Category (1-64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Price in coins (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coin_price: Option<i64>,
    /// Units in stock (>= 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    /// Image URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// Whether it can be ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
}

/// What a catalogue import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Products created.
    pub created: u64,
    /// Products updated.
    pub updated: u64,
    /// Products deactivated because they left the feed.
    pub deactivated: u64,
    /// Feed entries skipped, with why.
    pub skipped: Vec<String>,
}

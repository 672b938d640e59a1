//! Importing the reward catalogue from a Shopify product export (the Admin API `products.json`):
//! reading the feed (upload, file or URL), mapping products, and the one-transaction upsert.
//!
//! One Shopify product becomes one reward product, keyed by `shopify_product_id`. An import
//! creates new products, rewrites only the rows whose content changed, and deactivates (never
//! deletes) earlier imports that left the feed. Products without a Shopify id are not touched.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http::StatusCode;
use deadpool_postgres::GenericClient;
use fitkart_protocol::orders::ImportReport;
use serde::{Deserialize, Deserializer, Serialize};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::admin::audit::{self, AuditEntry};
use crate::auth::accounts::ClientInfo;
use crate::error::{ApiError, Error};

/// Largest feed accepted, uploaded or downloaded: 20 MiB.
pub const MAX_FEED_BYTES: usize = 20 * 1024 * 1024;
/// How long downloading a feed from a URL may take in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The setting holding how many coins one unit of the shop's currency is worth.
pub const COINS_PER_CURRENCY_UNIT_SETTING: &str =
    crate::rewards::settings::SettingKey::CoinsPerCurrencyUnit.as_str();
/// Coins per currency unit when the setting is missing.
pub const DEFAULT_COINS_PER_CURRENCY_UNIT: i64 = 1000;
/// Category of products whose `product_type` is empty.
pub const DEFAULT_CATEGORY: &str = "uncategorised";

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 10_000;
const MAX_CATEGORY_CHARS: usize = 64;
const MAX_SKU_CHARS: usize = 64;
const MAX_IMAGES: usize = 20;
const MAX_IMAGE_URL_BYTES: usize = 2048;
const MAX_SOURCE_CHARS: usize = 128;

/// Why an import was refused. Everything but [`ImportError::Internal`] is the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document is not JSON or not shaped like a Shopify `products.json`.
    #[error("invalid feed: {0}")]
    InvalidFeed(String),
    /// The feed has no products and an empty feed was not explicitly allowed.
    #[error(
        "the feed has no products; importing it would deactivate every imported product \
         (allow an empty feed explicitly to do that)"
    )]
    EmptyFeed,
    /// The feed URL is not an http(s) URL.
    #[error("invalid feed URL: {0}")]
    InvalidUrl(String),
    /// The feed URL names (or redirects to) a host that resolves to a loopback, private,
    /// link-local or unique-local address and is not on the allow-list.
    #[error("url not allowed: {0}")]
    ForbiddenUrl(String),
    /// The feed could not be downloaded (connection failure, timeout, non-2xx answer).
    #[error("feed unreachable: {message}")]
    Unreachable {
        /// What went wrong.
        message: String,
        /// The HTTP status the feed URL answered, when it answered.
        status: Option<u16>,
    },
    /// The feed is larger than [`MAX_FEED_BYTES`].
    #[error("the feed is larger than {} MiB", MAX_FEED_BYTES / (1024 * 1024))]
    TooLarge,
    /// A setting the import needs holds an unusable value.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// The catalogue changed under the import (a concurrent edit took a SKU); retrying helps.
    #[error("the catalogue changed during the import; retry it")]
    Conflict,
    /// A database or other internal failure.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            tracing::warn!(error = %err, "catalogue import hit a concurrent change");
            Self::Conflict
        } else {
            Self::Internal(err.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for ImportError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Internal(err.into())
    }
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match err {
            ImportError::InvalidFeed(message) => {
                ApiError::new(unprocessable, "invalid_feed", message)
            }
            ImportError::EmptyFeed => ApiError::new(
                unprocessable,
                "empty_feed",
                "the feed has no products; send ?allow_empty=true to deactivate every imported product",
            ),
            ImportError::InvalidUrl(message) => ApiError::validation("url", message),
            ImportError::ForbiddenUrl(message) => {
                ApiError::new(unprocessable, "url_not_allowed", message)
                    .with_details(serde_json::json!({ "field": "url" }))
            }
            ImportError::Unreachable { message, status } => {
                let error = ApiError::new(unprocessable, "feed_unreachable", message);
                match status {
                    Some(status) => error.with_details(serde_json::json!({ "status": status })),
                    None => error,
                }
            }
            ImportError::TooLarge => ApiError::new(
                unprocessable,
                "feed_too_large",
                format!(
                    "the feed is larger than {} MiB",
                    MAX_FEED_BYTES / (1024 * 1024)
                ),
            )
            .with_details(serde_json::json!({ "limit_bytes": MAX_FEED_BYTES })),
            ImportError::InvalidSetting(message) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_setting", message)
            }
            ImportError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "import_conflict",
                "the catalogue changed during the import; retry it",
            ),
            ImportError::Internal(err) => err.into(),
        }
    }
}

/// One product of a Shopify export, as far as the catalogue needs it (other fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopifyProduct {
    /// Shopify's product id.
    pub id: u64,
    /// The product's title.
    #[serde(default)]
    pub title: Option<String>,
    /// The URL handle.
    #[serde(default)]
    pub handle: Option<String>,
    /// The description as HTML.
    #[serde(default)]
    pub body_html: Option<String>,
    /// The shop's product type.
    #[serde(default)]
    pub product_type: Option<String>,
    /// `active`, `draft` or `archived`; absent in older exports.
    #[serde(default)]
    pub status: Option<String>,
    /// The variants (the first one carries the price and SKU).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub variants: Vec<ShopifyVariant>,
    /// The images.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub images: Vec<ShopifyImage>,
}

/// One variant of a Shopify product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopifyVariant {
    /// Stock keeping unit.
    #[serde(default)]
    pub sku: Option<String>,
    /// The price as a decimal string (`"19.99"`); a JSON number is read as its text.
    #[serde(default)]
    pub price: Option<serde_json::Value>,
    /// Units in stock; negative when oversold.
    #[serde(default)]
    pub inventory_quantity: Option<i64>,
}

/// One image of a Shopify product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopifyImage {
    /// The image URL.
    #[serde(default)]
    pub src: Option<String>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A parsed Shopify export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    /// The products, in feed order.
    pub products: Vec<ShopifyProduct>,
}

/// What an import request asks for: a feed sent inline, or a URL to fetch it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedRequest {
    /// The `products.json` document itself.
    Inline(Feed),
    /// `{"url": "https://..."}`.
    Url(String),
}

/// A product entry, parsed on its own so an error can name the entry and the document is
/// never held twice in memory.
struct Entry(Result<ShopifyProduct, String>);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Self(
            ShopifyProduct::deserialize(value).map_err(|err| err.to_string()),
        ))
    }
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    products: Option<Vec<Entry>>,
    #[serde(default)]
    url: Option<serde_json::Value>,
}

fn parse_document(bytes: &[u8]) -> Result<Document, ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ImportError::InvalidFeed(
            "the feed is not a JSON object with a `products` array (a Shopify products.json export)"
                .into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        let message = if err.is_syntax() || err.is_eof() {
            format!("the feed is not valid JSON: {err}")
        } else {
            format!("the feed is not a Shopify products.json document: {err}")
        };
        ImportError::InvalidFeed(truncate(&message, 300))
    })
}

fn into_feed(entries: Vec<Entry>) -> Result<Feed, ImportError> {
    let mut products = Vec::with_capacity(entries.len());
    for (index, Entry(entry)) in entries.into_iter().enumerate() {
        match entry {
            Ok(product) => products.push(product),
            Err(err) => {
                return Err(ImportError::InvalidFeed(truncate(
                    &format!("products[{index}] is not a Shopify product: {err}"),
                    300,
                )));
            }
        }
    }
    Ok(Feed { products })
}

impl Feed {
    /// Parses a `products.json` document (`{"products": [...]}`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ImportError> {
        let document = parse_document(bytes)?;
        let products = document.products.ok_or_else(|| {
            ImportError::InvalidFeed(
                "the feed has no `products` array (expected a Shopify products.json export)".into(),
            )
        })?;
        into_feed(products)
    }

    /// The feed as a `products.json` document that [`Feed::from_json`] reads back equal
    /// (only the fields the catalogue uses): how a previewed feed waits for its "Apply".
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            products: &'a [ShopifyProduct],
        }
        // Plain structs of strings and numbers always serialise.
        serde_json::to_vec(&Out {
            products: &self.products,
        })
        .unwrap_or_default()
    }

    /// Reads and parses a feed file. Blocking: meant for the command line.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ImportError> {
        let unreadable = |err: std::io::Error| {
            ImportError::InvalidFeed(format!("cannot read {}: {err}", path.display()))
        };
        if std::fs::metadata(path).map_err(unreadable)?.len() > MAX_FEED_BYTES as u64 {
            return Err(ImportError::TooLarge);
        }
        Self::from_json(&std::fs::read(path).map_err(unreadable)?)
    }
}

impl FeedRequest {
    /// Reads the body of an import request: a `products.json` document or `{"url": "..."}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ImportError> {
        let document = parse_document(bytes)?;
        match (document.products, document.url) {
            (Some(products), None) => Ok(Self::Inline(into_feed(products)?)),
            (None, Some(serde_json::Value::String(url))) => Ok(Self::Url(url)),
            (None, Some(_)) => Err(ImportError::InvalidUrl("url must be a string".into())),
            (Some(_), Some(_)) => Err(ImportError::InvalidFeed(
                "send either a products.json document or {\"url\": ...}, not both".into(),
            )),
            (None, None) => Err(ImportError::InvalidFeed(
                "expected a Shopify products.json document (a `products` array) or {\"url\": ...}"
                    .into(),
            )),
        }
    }
}

/// Most redirects a feed download follows.
const MAX_REDIRECTS: usize = 5;

/// Downloads a feed: http(s) only, [`FETCH_TIMEOUT`] in all, at most [`MAX_FEED_BYTES`] read.
/// Every hop (the URL and each redirect, followed by hand) must resolve to public addresses
/// only, unless its host is in `allowed_hosts`; the connection goes to the address that was
/// checked (`*` allows every host: the operator's own command line). A fetched document that does not parse is refused without echoing its content.
pub async fn fetch_feed(url: &str, allowed_hosts: &[String]) -> Result<Feed, ImportError> {
    let mut url = parse_feed_url(url)?;
    let started = tokio::time::Instant::now();
    let mut hops = 0;
    let mut response = loop {
        let client = pinned_client(&url, allowed_hosts).await?;
        let remaining = FETCH_TIMEOUT.saturating_sub(started.elapsed());
        let response = client
            .get(url.clone())
            .timeout(remaining)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_redirection() {
            break response;
        }
        hops += 1;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|location| url.join(location).ok());
        match location {
            Some(next) if hops <= MAX_REDIRECTS => {
                url = parse_feed_url(next.as_str())?;
            }
            _ => {
                return Err(ImportError::Unreachable {
                    message: format!(
                        "the feed URL redirected too often or without a usable location (at most {MAX_REDIRECTS})"
                    ),
                    status: Some(response.status().as_u16()),
                });
            }
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Err(ImportError::Unreachable {
            message: format!("the feed URL answered HTTP {status}"),
            status: Some(status.as_u16()),
        });
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_FEED_BYTES as u64)
    {
        return Err(ImportError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(ImportError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    match on_blocking_thread(move || Feed::from_json(&body)).await? {
        // The message of a parse error can quote the document: never send it back.
        Err(ImportError::InvalidFeed(_)) => Err(ImportError::InvalidFeed(
            "the document at the URL is not a Shopify products.json export".into(),
        )),
        other => other,
    }
}

/// A client for one hop to `url`: its host resolved and checked, and pinned to the checked
/// addresses so a second resolution cannot lead elsewhere. No redirects are followed by it.
async fn pinned_client(
    url: &reqwest::Url,
    allowed_hosts: &[String],
) -> Result<reqwest::Client, ImportError> {
    let host = url
        .host_str()
        .ok_or_else(|| ImportError::InvalidUrl("url has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| ImportError::Unreachable {
            message: "the feed URL's host could not be resolved".into(),
            status: None,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(ImportError::Unreachable {
            message: "the feed URL's host could not be resolved".into(),
            status: None,
        });
    }
    let allowed = allowed_hosts.iter().any(|allowed| {
        let allowed = allowed.trim();
        allowed == "*" || allowed.eq_ignore_ascii_case(&host)
    });
    if !allowed && addresses.iter().any(|addr| !is_public(addr.ip())) {
        return Err(ImportError::ForbiddenUrl(
            "the feed URL (or a redirect) leads to a loopback, private, link-local or \
             unique-local address; add its host to the import allow-list for on-premises feeds"
                .into(),
        ));
    }
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addresses)
        .user_agent(concat!("fitkart-sync-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")).into())
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, unique-local,
/// shared, documentation, multicast or unspecified).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

fn parse_feed_url(url: &str) -> Result<reqwest::Url, ImportError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|err| ImportError::InvalidUrl(format!("url is not a valid URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ImportError::InvalidUrl(
            "url must be an http or https URL".into(),
        ));
    }
    Ok(parsed)
}

fn unreachable(err: reqwest::Error) -> ImportError {
    let message = if err.is_timeout() {
        format!(
            "the feed URL did not answer within {} s",
            FETCH_TIMEOUT.as_secs()
        )
    } else {
        // The chain of causes, without the URL (it may carry an access token).
        let mut message = String::from("the feed could not be downloaded");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        truncate(&message, 300)
    };
    ImportError::Unreachable {
        message,
        status: None,
    }
}

/// A feed URL as the audit log shows it: scheme, host, port and path, never credentials or
/// the query string.
pub fn describe_url(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(parsed) => {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            truncate(
                &format!(
                    "{}://{}{port}{}",
                    parsed.scheme(),
                    parsed.host_str().unwrap_or_default(),
                    parsed.path()
                ),
                MAX_SOURCE_CHARS,
            )
        }
        Err(_) => "url".into(),
    }
}

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
    /// `upload`, the file or the URL (see [`describe_url`]).
    pub source: &'a str,
}

/// A Shopify product mapped to the columns of `reward_products`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedProduct {
    /// Shopify's product id.
    pub shopify_product_id: i64,
    /// The URL handle.
    pub shopify_handle: Option<String>,
    /// The first variant's SKU, if any.
    pub sku: Option<String>,
    /// The title (at most 200 characters).
    pub name: String,
    /// The description as plain text.
    pub description: String,
    /// The product type, or [`DEFAULT_CATEGORY`].
    pub category: String,
    /// The first variant's price in coins.
    pub coin_price: i64,
    /// The units of every variant.
    pub stock: i32,
    /// Image URLs.
    pub images: Vec<String>,
    /// False for draft and archived products.
    pub is_active: bool,
}

/// Maps one Shopify product, or says why it cannot be imported.
pub fn map_product(
    product: &ShopifyProduct,
    coins_per_currency_unit: i64,
) -> Result<MappedProduct, String> {
    let shopify_product_id = i64::try_from(product.id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or("its id is out of range")?;
    let name = product.title.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err("it has no title".into());
    }
    let first = product
        .variants
        .first()
        .ok_or("it has no variants, so no price")?;
    let price = match &first.price {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Number(number)) => number.to_string(),
        _ => return Err("its first variant has no price".into()),
    };
    let coin_price = price_to_coins(&price, coins_per_currency_unit)
        .map_err(|why| format!("its price {:?} {why}", truncate(&price, 32)))?;
    let category = product
        .product_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_CATEGORY);
    let stock = product
        .variants
        .iter()
        .map(|v| v.inventory_quantity.unwrap_or(0).max(0))
        .fold(0_i64, i64::saturating_add);
    let images = product
        .images
        .iter()
        .filter_map(|image| image.src.as_deref().map(str::trim))
        .filter(|src| {
            src.len() <= MAX_IMAGE_URL_BYTES
                && (src.starts_with("https://") || src.starts_with("http://"))
        })
        .take(MAX_IMAGES)
        .map(str::to_owned)
        .collect();
    Ok(MappedProduct {
        shopify_product_id,
        shopify_handle: product
            .handle
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned),
        sku: first
            .sku
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        name: truncate(name, MAX_NAME_CHARS),
        description: html_to_text(product.body_html.as_deref().unwrap_or_default()),
        category: truncate(category, MAX_CATEGORY_CHARS),
        coin_price,
        stock: i32::try_from(stock).unwrap_or(i32::MAX),
        images,
        is_active: product
            .status
            .as_deref()
            .is_none_or(|status| status.trim().eq_ignore_ascii_case("active")),
    })
}

/// Converts a decimal price (`"19.99"`) to coins without floating point: the amount in
/// hundredths times `coins_per_unit` over 100, rounded half up. Malformed and non-positive
/// prices are refused with why.
pub fn price_to_coins(price: &str, coins_per_unit: i64) -> Result<i64, &'static str> {
    const MAX_FRACTION_DIGITS: usize = 6;
    let text = price.trim();
    if text.starts_with('-') {
        return Err("is not positive");
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return Err("is not a decimal amount"),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return Err("is not a decimal amount");
    }
    if whole.len() > 18 || fraction.len() > MAX_FRACTION_DIGITS {
        return Err("is out of range");
    }
    let scale = 10_i128.pow(fraction.len() as u32);
    let parse = |s: &str| s.parse::<i128>().unwrap_or(0);
    let minor = parse(whole) * scale + parse(fraction);
    let coins = (minor * i128::from(coins_per_unit) * 2 + scale) / (2 * scale);
    if coins <= 0 {
        return Err("is not positive");
    }
    i64::try_from(coins).map_err(|_| "is out of range")
}

/// Converts a product description from HTML to plain text: tags stripped (block tags become a
/// space, `script` and `style` are dropped with their content), the common entities decoded,
/// whitespace collapsed, at most 10,000 characters.
///
/// Linear in the input: a tag is only looked for while a `>` is still ahead, and once a quoted
/// attribute ran to the end of the input without closing, later tags end at the next `>`
/// regardless of quotes, so no `<` ever rescans what an earlier one already scanned.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len().min(4 * MAX_DESCRIPTION_CHARS));
    let mut rest = html;
    let mut scanner = TagScanner::default();
    while let Some(at) = rest.find(['<', '&']) {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('<') {
            let markup = if scanner.closes_ahead(html, html.len() - rest.len()) {
                skip_markup(rest, &mut scanner)
            } else {
                // No `>` anywhere ahead: this `<` cannot start a tag.
                None
            };
            match markup {
                Some((after, spaced)) => {
                    if spaced {
                        text.push(' ');
                    }
                    rest = after;
                }
                None => {
                    text.push('<');
                    rest = &rest[1..];
                }
            }
        } else {
            match decode_entity(rest) {
                Some((decoded, length)) => {
                    text.push(decoded);
                    rest = &rest[length..];
                }
                None => {
                    text.push('&');
                    rest = &rest[1..];
                }
            }
        }
        // Enough text for the cap even after collapsing whitespace: stop reading.
        if text.len() > 8 * MAX_DESCRIPTION_CHARS {
            rest = "";
            break;
        }
    }
    text.push_str(rest);
    collapse_whitespace(&text, MAX_DESCRIPTION_CHARS)
}

/// Tags after which the text reads as a new block: they become a space.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// Keeps tag scanning linear (see [`html_to_text`]).
#[derive(Debug, Default)]
struct TagScanner {
    /// The byte offset of the next `>` at or after the last position asked about.
    next_close: Option<usize>,
    /// Whether `next_close` was computed (and there may be none).
    known: bool,
    /// A quoted attribute ran to the end: quotes are no longer honoured.
    quotes_unbalanced: bool,
}

impl TagScanner {
    /// Whether a `>` lies at or after byte `from` of `html`; amortised O(1) as `from` grows.
    fn closes_ahead(&mut self, html: &str, from: usize) -> bool {
        if !self.known || self.next_close.is_some_and(|at| at < from) {
            self.next_close = html[from..].find('>').map(|at| from + at);
            self.known = true;
        }
        self.next_close.is_some()
    }

    /// The byte index just after the `>` closing the tag at the start of `tag`.
    fn tag_end(&mut self, tag: &str) -> Option<usize> {
        if self.quotes_unbalanced {
            return tag.find('>').map(|at| at + 1);
        }
        let end = tag_end(tag);
        if end.is_none() {
            self.quotes_unbalanced = true;
        }
        end
    }
}

/// Skips the tag or comment `rest` starts with: the text after it and whether it separates
/// blocks. `None` when `<` does not start markup (as in `a < b`).
fn skip_markup<'a>(rest: &'a str, scanner: &mut TagScanner) -> Option<(&'a str, bool)> {
    if let Some(comment) = rest.strip_prefix("<!--") {
        return Some(match comment.find("-->") {
            Some(end) => (&comment[end + 3..], false),
            None => ("", false),
        });
    }
    let inner = &rest[1..];
    let closing = inner.starts_with('/');
    let name_start = if closing { &inner[1..] } else { inner };
    if !name_start.starts_with(|c: char| c.is_ascii_alphabetic() || c == '!' || c == '?') {
        return None;
    }
    let name: String = name_start
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let end = scanner.tag_end(rest)?;
    let after = &rest[end..];
    if !closing && (name == "script" || name == "style") {
        let close = format!("</{name}");
        let skipped = find_ignore_ascii_case(after, &close)
            .and_then(|at| tag_end(&after[at..]).map(|end| &after[at + end..]))
            .unwrap_or("");
        return Some((skipped, true));
    }
    Some((after, BLOCK_TAGS.contains(&name.as_str())))
}

/// The byte index just after the `>` closing the tag at the start of `tag`, honouring quoted
/// attribute values.
fn tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (at, c) in tag.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(at + 1),
            (None, _) => {}
        }
    }
    None
}

fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Decodes the entity `rest` starts with: the character and the entity's length in bytes.
fn decode_entity(rest: &str) -> Option<(char, usize)> {
    let semicolon = rest
        .get(1..)?
        .char_indices()
        .take(32)
        .find(|(_, c)| *c == ';')?
        .0
        + 1;
    let name = &rest[1..semicolon];
    let decoded = if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        char::from_u32(code).filter(|c| *c != '\0')?
    } else {
        named_entity(name)?
    };
    Some((decoded, semicolon + 1))
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sup2" => '²',
        "sup3" => '³',
        "micro" => 'µ',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "aacute" => 'á',
        "agrave" => 'à',
        "iacute" => 'í',
        "oacute" => 'ó',
        "uacute" => 'ú',
        "ccedil" => 'ç',
        "ntilde" => 'ñ',
        _ => return None,
    })
}

/// Collapses runs of whitespace to one space, trims, and keeps at most `max_chars` characters.
fn collapse_whitespace(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        let separator = usize::from(!out.is_empty());
        if count + separator >= max_chars {
            break;
        }
        if separator == 1 {
            out.push(' ');
        }
        count += separator;
        for c in word.chars() {
            if count == max_chars {
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// At most `max_chars` characters of `text`.
fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// How a product is named in the report: its id and title.
fn label(product: &ShopifyProduct) -> String {
    let title = product.title.as_deref().map(str::trim).unwrap_or_default();
    format!("product {} {:?}", product.id, truncate(title, 80))
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
            .get::<_, serde_json::Value>(0)
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

    let deleted: HashSet<i64> = tx
        .query(
            "SELECT shopify_product_id FROM reward_products
             WHERE shopify_product_id = ANY($1) AND deleted_at IS NOT NULL",
            &[&feed_ids],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
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
    assign_skus(&tx, &mut rows, &mut skipped).await?;

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

    // Free the SKUs that move between imported products first, so the upsert cannot trip
    // over the unique index halfway through.
    let mut updated_ids: HashSet<i64> = tx
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
        .map(|row| row.get(0))
        .collect();

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
        if row.get::<_, bool>(1) {
            created += 1;
        } else {
            updated_ids.insert(row.get(0));
        }
    }

    let deactivated = tx
        .execute(
            "UPDATE reward_products SET is_active = false, change_version = $2
             WHERE shopify_product_id IS NOT NULL AND NOT (shopify_product_id = ANY($1))
               AND is_active AND deleted_at IS NULL",
            &[&feed_ids, &version],
        )
        .await?;

    let report = ImportReport {
        created,
        updated: updated_ids.len() as u64,
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
    audit::record(
        &tx,
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

/// Maps every product of a feed (CPU-heavy for a large feed: run it on a blocking thread):
/// the rows to write, what was skipped and why, and the Shopify ids the feed holds.
fn map_feed(
    products: &[ShopifyProduct],
    rate: i64,
) -> (Vec<MappedProduct>, Vec<String>, HashSet<i64>) {
    let mut skipped = Vec::new();
    let mut in_feed = HashSet::new();
    let mut rows = Vec::with_capacity(products.len());
    for product in products {
        if let Ok(id) = i64::try_from(product.id)
            && !in_feed.insert(id)
        {
            skipped.push(format!(
                "{}: it appears more than once in the feed; the first entry was imported",
                label(product)
            ));
            continue;
        }
        match map_product(product, rate) {
            Ok(row) => rows.push(row),
            Err(why) => skipped.push(format!("{}: skipped, {why}", label(product))),
        }
    }
    (rows, skipped, in_feed)
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

/// Runs CPU-heavy feed work (parsing, HTML stripping) off the async workers.
pub async fn on_blocking_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::Config(format!("feed work failed: {err}")))
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
        .map(|row| (row.get(0), row.get(1)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_written_back_reads_the_same() {
        for fixture in ["shopify_products.json", "shopify_products_next_night.json"] {
            let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
            let feed = Feed::from_file(std::path::Path::new(&path)).unwrap();
            assert!(!feed.products.is_empty());
            assert_eq!(Feed::from_json(&feed.to_json()).unwrap(), feed, "{fixture}");
        }
        let odd = Feed {
            products: vec![ShopifyProduct {
                id: u64::MAX,
                title: Some("<b>\"quoted\"</b> \u{1F45F}".into()),
                handle: None,
                body_html: None,
                product_type: None,
                status: Some("draft".into()),
                variants: vec![ShopifyVariant {
                    sku: None,
                    price: Some(serde_json::json!(19.99)),
                    inventory_quantity: Some(-3),
                }],
                images: vec![],
            }],
        };
        assert_eq!(Feed::from_json(&odd.to_json()).unwrap(), odd);
    }

    #[test]
    fn prices_become_coins_without_floating_point() {
        assert_eq!(price_to_coins("19.99", 1000), Ok(19_990));
        assert_eq!(price_to_coins("9", 1000), Ok(9000));
        assert_eq!(price_to_coins(" 0.5 ", 1000), Ok(500));
        assert_eq!(price_to_coins("0.01", 1000), Ok(10));
        assert_eq!(price_to_coins("19.99", 1), Ok(20), "rounded half up");
        assert_eq!(price_to_coins("19.49", 1), Ok(19));
        assert_eq!(price_to_coins("1234567.891", 1000), Ok(1_234_567_891));
        for malformed in [
            "12,99",
            "",
            "abc",
            "1.2.3",
            "19.",
            ".99",
            "1e3",
            "+5",
            "19.99 EUR",
        ] {
            assert_eq!(
                price_to_coins(malformed, 1000),
                Err("is not a decimal amount"),
                "{malformed}"
            );
        }
        for nothing in ["0", "0.00", "-5.00", "0.0001"] {
            assert_eq!(
                price_to_coins(nothing, 1000),
                Err("is not positive"),
                "{nothing}"
            );
        }
        assert_eq!(
            price_to_coins("99999999999999999.99", 1000),
            Err("is out of range")
        );
    }

    #[test]
    fn html_stripping_is_linear_in_unclosed_tags_and_quotes() {
        // Each unclosed `<` (and each unbalanced quote) once rescanned the rest of the input.
        let unclosed = "<b".repeat(2_000_000);
        assert!(html_to_text(&unclosed).starts_with("<b<b"));
        let quoted = format!("{}>", "<a '".repeat(1_000_000));
        let _ = html_to_text(&quoted);
        assert_eq!(html_to_text("a <b x='>'>c</b> &amp; d"), "a c & d");
    }

    #[test]
    fn only_public_addresses_may_be_fetched() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn html_descriptions_become_plain_text() {
        assert_eq!(
            html_to_text(
                "<p>Light &amp; tough:<br/>12&nbsp;L</p><ul><li>Sleeve</li><li>Trim</li></ul>"
            ),
            "Light & tough: 12 L Sleeve Trim"
        );
        assert_eq!(
            html_to_text("<strong>Fast</strong>er &lt;3 &#8220;x&#x201D; &bogus; a < b && c"),
            "Faster <3 “x” &bogus; a < b && c"
        );
        assert_eq!(
            html_to_text(
                "<!-- note --><style>p{color:red}</style>Hi<SCRIPT>alert(1)</script> <a href=\"x>y\">there</a>"
            ),
            "Hi there"
        );
        assert_eq!(html_to_text("  \n\t "), "");
        assert_eq!(html_to_text("unterminated <b"), "unterminated <b");
        let long = format!("<p>{}</p>", "word ".repeat(5000));
        let text = html_to_text(&long);
        assert_eq!(text.chars().count(), MAX_DESCRIPTION_CHARS - 1);
        assert!(text.ends_with("word"));
        assert_eq!(html_to_text(&"é".repeat(20_000)).chars().count(), 10_000);
    }

    #[test]
    fn products_map_to_reward_products() {
        let product: ShopifyProduct = serde_json::from_value(serde_json::json!({
            "id": 632910392_u64, "title": "  Trail Pack ", "handle": "trail-pack",
            "body_html": "<p>Hi</p>", "product_type": "", "status": "draft",
            "variants": [
                {"sku": " TP-1 ", "price": "49.99", "inventory_quantity": 5},
                {"sku": "TP-2", "price": "59.99", "inventory_quantity": -2},
                {"sku": null, "price": 1, "inventory_quantity": null}
            ],
            "images": [{"src": "https://cdn.example/a.jpg"}, {"src": "ftp://x"}, {"src": null}]
        }))
        .unwrap();
        let mapped = map_product(&product, 1000).unwrap();
        assert_eq!(mapped.shopify_product_id, 632910392);
        assert_eq!(mapped.name, "Trail Pack");
        assert_eq!(mapped.sku.as_deref(), Some("TP-1"));
        assert_eq!(mapped.category, "uncategorised");
        assert_eq!(mapped.coin_price, 49_990);
        assert_eq!(mapped.stock, 5, "an oversold variant counts as none");
        assert_eq!(mapped.images, vec!["https://cdn.example/a.jpg".to_owned()]);
        assert!(!mapped.is_active);

        let no_variants = ShopifyProduct {
            variants: vec![],
            ..product.clone()
        };
        assert!(map_product(&no_variants, 1000).is_err());
        let untitled = ShopifyProduct {
            title: Some("  ".into()),
            ..product
        };
        assert_eq!(map_product(&untitled, 1000), Err("it has no title".into()));
    }

    #[test]
    fn request_bodies_are_a_feed_or_a_url() {
        assert_eq!(
            FeedRequest::from_json(br#"{"url": "https://shop.example/products.json"}"#).unwrap(),
            FeedRequest::Url("https://shop.example/products.json".into())
        );
        assert!(matches!(
            FeedRequest::from_json(b"\xEF\xBB\xBF{\"products\": []}").unwrap(),
            FeedRequest::Inline(feed) if feed.products.is_empty()
        ));
        for bad in [
            &b"garbage"[..],
            b"[1, 2]",
            b"{\"products\": 5}",
            b"{\"items\": []}",
            b"{\"products\": [{\"title\": \"no id\"}]}",
            b"{\"products\": [",
        ] {
            assert!(
                matches!(
                    FeedRequest::from_json(bad),
                    Err(ImportError::InvalidFeed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let Err(ImportError::InvalidFeed(message)) =
            FeedRequest::from_json(br#"{"products": [{"id": 1}, {"title": "x"}]}"#)
        else {
            panic!("accepted a product without id");
        };
        assert!(
            message.contains("products[1]") && message.contains("`id`"),
            "{message}"
        );
    }

    #[test]
    fn feed_urls_are_described_without_secrets() {
        assert_eq!(
            describe_url("https://user:pw@shop.example:8443/admin/products.json?token=s3cret"),
            "https://shop.example:8443/admin/products.json"
        );
        assert!(matches!(
            parse_feed_url("file:///etc/passwd"),
            Err(ImportError::InvalidUrl(_))
        ));
    }
}

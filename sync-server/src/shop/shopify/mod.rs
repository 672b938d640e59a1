//! Importing the reward catalogue from a Shopify product export (the Admin API `products.json`):
//! reading the feed (upload, file or URL), mapping products, and the one-transaction upsert.
//!
//! One Shopify product becomes one reward product, keyed by `shopify_product_id`. An import
//! creates new products, rewrites only the rows whose content changed, and deactivates (never
//! deletes) earlier imports that left the feed. Products without a Shopify id are not touched.
//!
//! - [`feed`]: the `products.json` document and its limits;
//! - [`fetch`]: downloading a feed from a URL safely (public addresses only, pinned, capped);
//! - [`mapping`]: a Shopify product as a reward product (plain-text description, prices in
//!   coins without floats, stock);
//! - [`import`](mod@import): the one-transaction upsert and its audit.

use tokio_postgres::error::SqlState;

use crate::error::{DomainError, Error, ErrorKind};

pub mod feed;
pub mod fetch;
pub mod import;
pub mod mapping;

pub use feed::{Feed, FeedRequest, MAX_FEED_BYTES, ShopifyImage, ShopifyProduct, ShopifyVariant};
pub use fetch::{FETCH_TIMEOUT, describe_url, fetch_feed, is_public};
pub use import::{
    COINS_PER_CURRENCY_UNIT_SETTING, DEFAULT_COINS_PER_CURRENCY_UNIT, ImportContext, ImportOptions,
    audit_failure, coins_per_currency_unit, import,
};
pub use mapping::{DEFAULT_CATEGORY, MappedProduct, html_to_text, map_product, price_to_coins};

/// Longest feed source (file name or described URL) the audit log keeps.
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

impl From<ImportError> for DomainError {
    fn from(err: ImportError) -> Self {
        let unprocessable = ErrorKind::Invalid;
        match err {
            ImportError::InvalidFeed(message) => {
                DomainError::new(unprocessable, "invalid_feed", message)
            }
            ImportError::EmptyFeed => DomainError::new(
                unprocessable,
                "empty_feed",
                "the feed has no products; send ?allow_empty=true to deactivate every imported product",
            ),
            ImportError::InvalidUrl(message) => DomainError::validation("url", message),
            ImportError::ForbiddenUrl(message) => {
                DomainError::new(unprocessable, "url_not_allowed", message)
                    .with_details(serde_json::json!({ "field": "url" }))
            }
            ImportError::Unreachable { message, status } => {
                let error = DomainError::new(unprocessable, "feed_unreachable", message);
                match status {
                    Some(status) => error.with_details(serde_json::json!({ "status": status })),
                    None => error,
                }
            }
            ImportError::TooLarge => DomainError::new(
                unprocessable,
                "feed_too_large",
                format!(
                    "the feed is larger than {} MiB",
                    MAX_FEED_BYTES / (1024 * 1024)
                ),
            )
            .with_details(serde_json::json!({ "limit_bytes": MAX_FEED_BYTES })),
            ImportError::InvalidSetting(message) => {
                DomainError::new(ErrorKind::Conflict, "invalid_setting", message)
            }
            ImportError::Conflict => DomainError::new(
                ErrorKind::Conflict,
                "import_conflict",
                "the catalogue changed during the import; retry it",
            ),
            ImportError::Internal(err) => err.into(),
        }
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

/// At most `max_chars` characters of `text`.
fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

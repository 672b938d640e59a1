//! The Shopify `products.json` document: its products, the body of an import request (a feed
//! or a URL), and the size limit every feed is held to.

use serde::{Deserialize, Deserializer, Serialize};

use super::{ImportError, truncate};

/// Largest feed accepted, uploaded or downloaded: 20 MiB.
pub const MAX_FEED_BYTES: usize = 20 * 1024 * 1024;

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
    if !bytes.trim_ascii_start().starts_with(b"{") {
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
}

//! A Shopify product as a reward product: the title and category trimmed, the description
//! stripped to plain text, the price in coins without floating point, the stock of every variant.

use std::collections::HashSet;

use super::{ShopifyProduct, truncate};

/// Category of products whose `product_type` is empty.
pub const DEFAULT_CATEGORY: &str = "uncategorised";

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 10_000;
const MAX_CATEGORY_CHARS: usize = 64;
const MAX_IMAGES: usize = 20;
const MAX_IMAGE_URL_BYTES: usize = 2048;

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

/// How a product is named in the report: its id and title.
fn label(product: &ShopifyProduct) -> String {
    let title = product.title.as_deref().map(str::trim).unwrap_or_default();
    format!("product {} {:?}", product.id, truncate(title, 80))
}

/// Maps every product of a feed (CPU-heavy for a large feed: run it on a blocking thread):
/// the rows to write, what was skipped and why, and the Shopify ids the feed holds.
pub(super) fn map_feed(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

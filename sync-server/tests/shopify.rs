//! The Shopify catalogue import, black-box over HTTP and through the binary, on a realistic
//! export and its "next night": what is created, updated, deactivated and skipped, that an
//! unchanged feed rewrites nothing, that seeded products are never touched, that each import
//! leaves one audit row, and that bad feeds, URLs and callers get clear answers.

use std::net::SocketAddr;

use fitkart_protocol::orders::ImportReport;
use fitkart_sync_server::testing::{TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

mod common;
use common::{answer, code, create_admin, sign_in, sign_up};

const USER_AGENT: &str = "fitkart-catalogue-tests/1.0";
const IMPORT: &str = "/api/v1/admin/products/import";
const NIGHT_ONE: &str = include_str!("fixtures/shopify_products.json");
const NEXT_NIGHT: &str = include_str!("fixtures/shopify_products_next_night.json");

// Products of the fixtures, by Shopify id.
const BACKPACK: i64 = 8001000000001;
const SOCKS: i64 = 8001000000002;
const JUMP_ROPE: i64 = 8001000000003;
const FOAM_ROLLER: i64 = 8001000000004;
const GLOVES_DRAFT: i64 = 8001000000005;
const BANDS_BAD_PRICE: i64 = 8001000000006;
const BOTTLE_TAKEN_SKU: i64 = 8001000000007;
const STICKERS_FREE: i64 = 8001000000008;
const CHEST_STRAP: i64 = 8001000000009;
const GIFT_CARD: i64 = 8001000000010;
const RUNNING_BELT: i64 = 8001000000011;

struct Harness {
    server: TestServer,
    http: reqwest::Client,
    admin_id: Uuid,
    admin_token: String,
}

impl Harness {
    async fn start() -> Self {
        // The test feeds are served on 127.0.0.1: allowed like an on-premises feed.
        let server = TestServer::start_with(|config| {
            config.import_allowed_hosts = vec!["127.0.0.1".into()];
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .build()
            .unwrap();
        create_admin(&server, "catalogue@fitkart.example", "Catalogue").await;
        let session = sign_in(&http, &server, "catalogue@fitkart.example").await;
        Self {
            server,
            http,
            admin_id: session.user.id,
            admin_token: session.access_token,
        }
    }

    /// Posts `body` as JSON to the import route (with `query` appended) as `token`.
    async fn post(
        &self,
        body: impl Into<reqwest::Body>,
        query: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.server.url(&format!("{IMPORT}{query}")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    /// Imports a feed as the admin and returns the report.
    async fn import(&self, feed: &str) -> ImportReport {
        let (status, body) = self
            .post(feed.to_owned(), "", Some(&self.admin_token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn db(&self) -> deadpool_postgres::Client {
        self.server.db().client().await.unwrap()
    }
}

/// A reward product as stored.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    name: String,
    handle: Option<String>,
    sku: Option<String>,
    description: String,
    category: String,
    coin_price: i64,
    stock: i32,
    images: Vec<String>,
    is_active: bool,
    deleted: bool,
    change_version: i64,
}

async fn stored(db: &deadpool_postgres::Client, shopify_id: i64) -> Option<Stored> {
    let row = db
        .query_opt(
            "SELECT name, shopify_handle, sku, description, category, coin_price, stock, images,
                    is_active, deleted_at IS NOT NULL, change_version
             FROM reward_products WHERE shopify_product_id = $1",
            &[&shopify_id],
        )
        .await
        .unwrap()?;
    Some(Stored {
        name: row.get(0),
        handle: row.get(1),
        sku: row.get(2),
        description: row.get(3),
        category: row.get(4),
        coin_price: row.get(5),
        stock: row.get(6),
        images: serde_json::from_value(row.get(7)).unwrap(),
        is_active: row.get(8),
        deleted: row.get(9),
        change_version: row.get(10),
    })
}

/// Every product not imported from Shopify (the seed), whole rows, in a stable order.
async fn seeded_products(db: &deadpool_postgres::Client) -> Vec<Value> {
    let rows = db
        .query(
            "SELECT to_jsonb(p) FROM reward_products p
             WHERE shopify_product_id IS NULL ORDER BY sku",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 8, "the seed's products");
    rows.iter().map(|row| row.get(0)).collect()
}

async fn shared_version(db: &deadpool_postgres::Client) -> i64 {
    db.query_one("SELECT version FROM shared_change_version", &[])
        .await
        .unwrap()
        .get(0)
}

async fn import_logs(db: &deadpool_postgres::Client) -> Vec<tokio_postgres::Row> {
    db.query(
        "SELECT admin_id, entity_type, entity_id, after, host(ip_address), user_agent
         FROM admin_logs WHERE action = 'product.import' ORDER BY created_at, id",
        &[],
    )
    .await
    .unwrap()
}

fn counts(report: &ImportReport) -> (u64, u64, u64) {
    (report.created, report.updated, report.deactivated)
}

fn image(name: &str) -> String {
    format!("https://cdn.shopify.com/s/files/1/0612/3456/7890/products/{name}?v=1712345678")
}

#[tokio::test]
async fn first_import_creates_the_catalogue_from_a_shopify_export() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let seeded = seeded_products(&db).await;
    let version_before = shared_version(&db).await;

    let report = harness.import(NIGHT_ONE).await;
    assert_eq!(counts(&report), (8, 0, 0), "{report:?}");
    assert_eq!(report.skipped.len(), 3, "{:#?}", report.skipped);
    let skipped = report.skipped.join("\n");
    assert!(
        skipped.contains(&format!(
            "product {BANDS_BAD_PRICE} \"Resistance Bands Set\": skipped"
        )) && skipped.contains("\"12,99\" is not a decimal amount"),
        "{skipped}"
    );
    assert!(
        skipped.contains(&format!("product {STICKERS_FREE}"))
            && skipped.contains("is not positive"),
        "{skipped}"
    );
    assert!(
        skipped.contains(&format!(
            "product {BOTTLE_TAKEN_SKU} \"Insulated Bottle 750 ml\": imported without its SKU \"FK-BOTTLE-750\""
        )),
        "{skipped}"
    );

    let version = shared_version(&db).await;
    assert_eq!(
        version,
        version_before + 1,
        "one catalogue version per import"
    );

    let backpack = stored(&db, BACKPACK).await.unwrap();
    assert_eq!(
        backpack,
        Stored {
            name: "Trail Runner Backpack 12L".into(),
            handle: Some("trail-runner-backpack-12l".into()),
            sku: Some("RL-TRB12-BLK".into()),
            description:
                "Light & tough: 12 L of storage for long runs. Hydration sleeve Reflective trim"
                    .into(),
            category: "Bags".into(),
            coin_price: 49_990,
            stock: 8,
            images: vec![
                image("trail-backpack-black.jpg"),
                image("trail-backpack-back.jpg")
            ],
            is_active: true,
            deleted: false,
            change_version: version,
        },
        "an oversold variant (-2) counts as none: 5 + 3 + 0"
    );

    let socks = stored(&db, SOCKS).await.unwrap();
    assert_eq!(
        socks.description,
        "Soft merino wool – no blisters, no smell. Sizes: S (36–38), M (39–42), L (43–46)."
    );
    assert_eq!((socks.coin_price, socks.stock), (14_500, 60));

    let roller = stored(&db, FOAM_ROLLER).await.unwrap();
    assert_eq!(roller.name, "Foam Roller – 45 cm");
    assert_eq!(
        roller.description,
        "Roll it out Your calves will <3 it. “Best roller I've owned” — a happy customer."
    );
    assert_eq!(
        (roller.coin_price, roller.stock),
        (24_950, 16),
        "the first variant's price"
    );

    let gloves = stored(&db, GLOVES_DRAFT).await.unwrap();
    assert!(!gloves.is_active, "a draft is imported inactive");
    assert_eq!((gloves.coin_price, gloves.stock), (19_990, 0));
    assert!(gloves.images.is_empty());

    let bottle = stored(&db, BOTTLE_TAKEN_SKU).await.unwrap();
    assert_eq!(bottle.sku, None, "the seed's product keeps FK-BOTTLE-750");
    assert_eq!((bottle.coin_price, bottle.stock), (18_000, 40));

    let strap = stored(&db, CHEST_STRAP).await.unwrap();
    assert_eq!(
        strap.description,
        "ANT+ & Bluetooth® Smart. Battery: CR2032 (included)"
    );
    assert_eq!(strap.images.len(), 3);
    assert_eq!(strap.coin_price, 59_950);

    let gift = stored(&db, GIFT_CARD).await.unwrap();
    assert_eq!(gift.category, "uncategorised");
    assert_eq!(gift.sku, None, "an empty SKU is no SKU");
    assert_eq!(gift.description, "", "a null body_html");
    assert_eq!((gift.coin_price, gift.stock), (25_000, 100));

    assert!(stored(&db, JUMP_ROPE).await.is_some());
    assert_eq!(stored(&db, BANDS_BAD_PRICE).await, None);
    assert_eq!(stored(&db, STICKERS_FREE).await, None);
    assert_eq!(
        seeded_products(&db).await,
        seeded,
        "seeded products untouched"
    );

    let logs = import_logs(&db).await;
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log.get::<_, Option<Uuid>>(0), Some(harness.admin_id));
    assert_eq!(log.get::<_, String>(1), "reward_products");
    assert_eq!(log.get::<_, Option<String>>(2).as_deref(), Some("upload"));
    assert_eq!(
        log.get::<_, Value>(3),
        json!({"created": 8, "updated": 0, "deactivated": 0, "skipped": 3})
    );
    assert_eq!(
        log.get::<_, Option<String>>(4).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(log.get::<_, Option<String>>(5).as_deref(), Some(USER_AGENT));

    // The same export again changes nothing, not even a version.
    let again = harness.import(NIGHT_ONE).await;
    assert_eq!(counts(&again), (0, 0, 0));
    assert_eq!(
        again.skipped, report.skipped,
        "the same entries are reported"
    );
    assert_eq!(shared_version(&db).await, version);
    assert_eq!(stored(&db, BACKPACK).await.unwrap(), backpack);
    assert_eq!(import_logs(&db).await.len(), 2, "one audit row per import");
}

#[tokio::test]
async fn the_next_nights_feed_creates_updates_and_deactivates_exactly_what_changed() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let seeded = seeded_products(&db).await;
    harness.import(NIGHT_ONE).await;
    let first_version = shared_version(&db).await;
    let socks_before = stored(&db, SOCKS).await.unwrap();

    let report = harness.import(NEXT_NIGHT).await;
    assert_eq!(
        counts(&report),
        (1, 1, 1),
        "belt new, backpack repriced, rope gone"
    );
    assert_eq!(report.skipped.len(), 3, "{:#?}", report.skipped);
    let version = shared_version(&db).await;
    assert_eq!(version, first_version + 1);

    let rope = stored(&db, JUMP_ROPE)
        .await
        .expect("a product that left the feed is kept: orders reference it");
    assert!(!rope.is_active && !rope.deleted);
    assert_eq!(
        rope.change_version, version,
        "devices pull the deactivation"
    );
    assert_eq!(rope.name, "Smart Jump Rope", "otherwise unchanged");

    let backpack = stored(&db, BACKPACK).await.unwrap();
    assert_eq!((backpack.coin_price, backpack.stock), (44_990, 5));
    assert_eq!(backpack.change_version, version);

    let belt = stored(&db, RUNNING_BELT).await.unwrap();
    assert_eq!(belt.name, "Reflective Running Belt");
    assert_eq!(belt.description, "Fits a phone, keys & a gel.");
    assert_eq!(
        (belt.coin_price, belt.stock, belt.is_active),
        (21_500, 25, true)
    );
    assert_eq!(belt.sku.as_deref(), Some("RRB-SM"));

    assert_eq!(
        stored(&db, SOCKS).await.unwrap(),
        socks_before,
        "an unchanged product is not rewritten"
    );

    // Tomorrow's job runs on the same export: nothing to do.
    let again = harness.import(NEXT_NIGHT).await;
    assert_eq!(counts(&again), (0, 0, 0));
    assert_eq!(shared_version(&db).await, version);

    // Going back to the first export reactivates the rope and retires the belt.
    let back = harness.import(NIGHT_ONE).await;
    assert_eq!(
        counts(&back),
        (0, 2, 1),
        "rope reactivated and backpack repriced; belt retired"
    );
    assert!(stored(&db, JUMP_ROPE).await.unwrap().is_active);
    assert!(!stored(&db, RUNNING_BELT).await.unwrap().is_active);

    assert_eq!(
        seeded_products(&db).await,
        seeded,
        "seeded products untouched"
    );
    let logs = import_logs(&db).await;
    assert_eq!(logs.len(), 4, "one audit row per import");
    assert_eq!(
        logs[1].get::<_, Value>(3),
        json!({"created": 1, "updated": 1, "deactivated": 1, "skipped": 3})
    );
}

#[tokio::test]
async fn an_empty_export_is_refused_unless_explicitly_allowed() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let seeded = seeded_products(&db).await;
    harness.import(NIGHT_ONE).await;
    let token = Some(harness.admin_token.as_str());

    let (status, body) = harness.post(r#"{"products": []}"#, "", token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "empty_feed")
    );
    assert!(stored(&db, BACKPACK).await.unwrap().is_active);
    assert_eq!(
        import_logs(&db).await.len(),
        1,
        "a refused import is not logged"
    );

    let (status, body) = harness
        .post(r#"{"products": []}"#, "?allow_empty=true", token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: ImportReport = serde_json::from_value(body).unwrap();
    assert_eq!(
        counts(&report),
        (0, 0, 7),
        "every active imported product (the draft already is not)"
    );
    assert!(!stored(&db, BACKPACK).await.unwrap().is_active);
    assert_eq!(
        seeded_products(&db).await,
        seeded,
        "seeded products stay active"
    );
    assert_eq!(import_logs(&db).await.len(), 2);
}

/// Serves the first fixture at `/products.json`, a non-feed at `/page.html`, 404 elsewhere.
async fn serve_feed() -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/products.json",
            axum::routing::get(|| async { ([("content-type", "application/json")], NIGHT_ONE) }),
        )
        .route(
            "/page.html",
            axum::routing::get(|| async { "<html>Shop maintenance</html>" }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn feeds_are_fetched_from_urls_and_unreachable_ones_are_reported() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let feed = serve_feed().await;
    let token = Some(harness.admin_token.as_str());
    let import_url = |url: String| {
        let body = json!({ "url": url }).to_string();
        harness.post(body, "", token)
    };

    let (status, body) = import_url(format!(
        "http://{feed}/products.json?access_token=shpat_secret"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: ImportReport = serde_json::from_value(body).unwrap();
    assert_eq!(counts(&report), (8, 0, 0));
    assert_eq!(stored(&db, CHEST_STRAP).await.unwrap().coin_price, 59_950);
    let logs = import_logs(&db).await;
    assert_eq!(
        logs[0].get::<_, Option<String>>(2),
        Some(format!("http://{feed}/products.json")),
        "the audit log names the feed without its query (tokens live there)"
    );

    let (status, body) = import_url(format!("http://{feed}/missing.json")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "feed_unreachable")
    );
    assert_eq!(body["error"]["details"]["status"], 404);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (status, body) = import_url(format!("http://{closed}/products.json")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "feed_unreachable"),
        "{body}"
    );

    let (status, body) = import_url(format!("http://{feed}/page.html")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_feed")
    );

    for url in ["ftp://shop.example/products.json", "not a url"] {
        let (status, body) = import_url(url.to_owned()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{url}"
        );
        assert_eq!(body["error"]["details"]["field"], "url");
    }
    assert_eq!(
        import_logs(&db).await.len(),
        1,
        "failed imports are not logged"
    );
}

#[tokio::test]
async fn bad_bodies_get_clear_codes_and_change_nothing() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let token = Some(harness.admin_token.as_str());

    for body in [
        "this is not JSON at all",
        "[1, 2, 3]",
        r#"{"products": {"id": 1}}"#,
        r#"{"items": []}"#,
        r#"{"products": [{"id": 1, "title": "Fine"}, {"title": "No id"}]}"#,
        r#"{"products": [{"id": "gid://shopify/Product/1", "title": "GraphQL id"}]}"#,
        r#"{"products": [{"id": 1, "title": "Cut off""#,
    ] {
        let (status, answer) = harness.post(body, "", token).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_feed"),
            "{body}"
        );
    }
    let (_, answer) = harness
        .post(
            r#"{"products": [{"id": 1, "title": "Fine"}, {"title": "No id"}]}"#,
            "",
            token,
        )
        .await;
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("products[1]") && message.contains("missing field `id`"),
        "the message names the problem: {message}"
    );

    let response = harness
        .http
        .post(harness.server.url(IMPORT))
        .bearer_auth(&harness.admin_token)
        .body(NIGHT_ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // An unknown query parameter is refused the same way on every route.
    let (status, answer) = harness.post(NIGHT_ONE, "?force=yes", token).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field")
    );

    let imported: i64 = db
        .query_one(
            "SELECT count(*) FROM reward_products WHERE shopify_product_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(imported, 0);
    assert!(import_logs(&db).await.is_empty());
}

#[tokio::test]
async fn exports_above_the_default_body_limit_are_accepted_up_to_20_mib() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let token = Some(harness.admin_token.as_str());
    let long_description = format!("<p>{}</p>", "Walk more, earn more. ".repeat(100_000));
    let big = json!({"products": [{
        "id": 9001, "title": "Catalogue Poster", "handle": "poster", "product_type": "Merch",
        "body_html": long_description,
        "variants": [{"sku": "POSTER", "price": "5.00", "inventory_quantity": 3}],
        "images": []
    }]})
    .to_string();
    assert!(big.len() > 2 * 1024 * 1024);
    let (status, body) = harness.post(big, "", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let poster = stored(&db, 9001).await.unwrap();
    assert_eq!(
        poster.description.chars().count(),
        10_000,
        "capped at 10,000 characters"
    );
    assert!(poster.description.starts_with("Walk more, earn more. Walk"));

    let huge = format!(
        "{{\"products\": [], \"padding\": \"{}\"}}",
        "x".repeat(21 * 1024 * 1024)
    );
    let (status, body) = harness.post(huge, "", token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(import_logs(&db).await.len(), 1);
}

#[tokio::test]
async fn only_admins_may_import() {
    let harness = Harness::start().await;
    let user = sign_up(&harness.http, &harness.server, "walker@example.com", "W").await;

    let (status, body) = harness.post(NIGHT_ONE, "", Some(&user.access_token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = harness.post(NIGHT_ONE, "", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    let db = harness.db().await;
    assert_eq!(stored(&db, BACKPACK).await, None);
    assert!(import_logs(&db).await.is_empty());
}

fn cli(db: &TestDb, args: &[&str]) -> std::process::Output {
    common::cli(db).args(args).output().unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_nightly_job_imports_a_file_from_the_command_line() {
    let db = TestDb::seeded().await.unwrap();
    let night_one = fixture("shopify_products.json");
    let out = cli(&db, &["import-products", &night_one]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("created 8, updated 0, deactivated 0, skipped 3\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "skipped: product {BANDS_BAD_PRICE} \"Resistance Bands Set\": skipped"
        )),
        "each skipped entry is printed: {stdout}"
    );

    let out = cli(
        &db,
        &[
            "import-products",
            &fixture("shopify_products_next_night.json"),
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("created 1, updated 1, deactivated 1, skipped 3\n")
    );

    let garbage = std::env::temp_dir().join(format!("fitkart-feed-{}.json", Uuid::new_v4()));
    std::fs::write(&garbage, "<html>502 Bad Gateway</html>").unwrap();
    let out = cli(&db, &["import-products", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a bad feed exits 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid feed"));

    std::fs::write(&garbage, r#"{"products": []}"#).unwrap();
    let out = cli(&db, &["import-products", garbage.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty feed needs --allow-empty"
    );
    let out = cli(
        &db,
        &[
            "import-products",
            garbage.to_str().unwrap(),
            "--allow-empty",
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("created 0, updated 0, deactivated 7, skipped 0\n")
    );
    let _ = std::fs::remove_file(&garbage);

    let out = cli(&db, &["import-products", "/nonexistent/products.json"]);
    assert_eq!(out.status.code(), Some(2));

    let client = db.client().await.unwrap();
    let logs = import_logs(&client).await;
    assert_eq!(logs.len(), 3, "one audit row per completed import");
    assert!(
        logs.iter()
            .all(|log| log.get::<_, Option<Uuid>>(0).is_none())
    );
    assert!(
        logs[0]
            .get::<_, Option<String>>(2)
            .is_some_and(|source| source.starts_with("file:/")),
        "the audit log names the file"
    );
}

fn feed_with(products: &[(i64, &str, &str)]) -> String {
    let products: Vec<Value> = products
        .iter()
        .map(|(id, title, sku)| {
            json!({
                "id": id, "title": title, "handle": title.to_lowercase(),
                "body_html": "", "product_type": "Test",
                "variants": [{"sku": sku, "price": "1.00", "inventory_quantity": 1}],
                "images": []
            })
        })
        .collect();
    json!({ "products": products }).to_string()
}

#[tokio::test]
async fn skus_move_between_imported_products_and_duplicates_are_reported() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let report = harness
        .import(&feed_with(&[(1, "Left", "SKU-A"), (2, "Right", "SKU-B")]))
        .await;
    assert_eq!(counts(&report), (2, 0, 0));

    // The shop swapped the two SKUs overnight: no unique violation, both rewritten.
    let report = harness
        .import(&feed_with(&[(1, "Left", "SKU-B"), (2, "Right", "SKU-A")]))
        .await;
    assert_eq!(counts(&report), (0, 2, 0), "{report:?}");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(stored(&db, 1).await.unwrap().sku.as_deref(), Some("SKU-B"));
    assert_eq!(stored(&db, 2).await.unwrap().sku.as_deref(), Some("SKU-A"));

    // A SKU twice in the feed, and a product twice: the first keeps it, the rest is reported.
    let report = harness
        .import(&feed_with(&[
            (1, "Left", "SKU-B"),
            (2, "Right", "SKU-B"),
            (2, "Right again", "SKU-C"),
            (3, "New", "SKU-A"),
        ]))
        .await;
    assert_eq!(counts(&report), (1, 1, 0), "{report:?}");
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    assert!(report.skipped[0].contains("product 2 \"Right again\": it appears more than once"));
    assert!(
        report.skipped[1].contains(
            "product 2 \"Right\": imported without its SKU \"SKU-B\", an earlier product"
        )
    );
    assert_eq!(stored(&db, 2).await.unwrap().sku, None);
    assert_eq!(stored(&db, 3).await.unwrap().sku.as_deref(), Some("SKU-A"));
}

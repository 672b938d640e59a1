//! The Shopify catalogue import, black-box over HTTP and through the binary, on a realistic
//! export and its "next night": what is created, updated, deactivated and skipped, that an
//! unchanged feed rewrites nothing, that seeded products are never touched, that each import
//! leaves one audit row, and that bad feeds, URLs and callers get clear answers.
//!
//! One test binary: each behaviour is a module of this directory; this file holds the helpers
//! they share beside `common`.

use std::net::SocketAddr;

use fitkart_protocol::orders::ImportReport;
use fitkart_sync_server::testing::{TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "../common/mod.rs"]
mod common;
mod imports;
mod refusals;
mod sources;

use common::{Api, code, create_admin};

const USER_AGENT: &str = "fitkart-catalogue-tests/1.0";
const IMPORT: &str = "/api/v1/admin/products/import";
const NIGHT_ONE: &str = include_str!("../fixtures/shopify_products.json");
const NEXT_NIGHT: &str = include_str!("../fixtures/shopify_products_next_night.json");

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
    api: Api,
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
        let api = Api::new(&server).with_user_agent(USER_AGENT);
        create_admin(&server, "catalogue@fitkart.example", "Catalogue").await;
        let session = api.sign_in("catalogue@fitkart.example").await;
        Self {
            server,
            api,
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
        let path = format!("{IMPORT}{query}");
        self.api.send_text(Method::POST, &path, body, token).await
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

fn cli(db: &TestDb, args: &[&str]) -> std::process::Output {
    common::cli(db).args(args).output().unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
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

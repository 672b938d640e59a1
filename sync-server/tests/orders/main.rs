//! Redemption, black-box over HTTP: the catalogue and its admin, placing orders (holds, stock,
//! idempotent retries, every refusal changing nothing), double spends and overselling under
//! concurrency, every legal and illegal status transition, cancellation racing delivery,
//! privacy of other users' orders, and the ledger check after all of it.
//!
//! One test binary: each behaviour is a module of this directory; this file holds the helpers
//! they share beside `common`.

use std::collections::BTreeMap;

use fitkart_protocol::orders::{Order, OrderPage, Product, ProductPage, ShippingAddress};
use fitkart_protocol::steps::Wallet;
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

mod catalogue;
#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod placing;
mod privacy;
mod transitions;

use common::Api;
use common::{Account, assert_ledger_ok, code, count, grant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

impl Api {
    async fn place(&self, who: &Account, body: Value) -> (StatusCode, Value) {
        self.post("/orders", body, who).await
    }

    /// Places an order that must succeed (201).
    async fn place_ok(&self, who: &Account, lines: &[(Uuid, i32)]) -> Order {
        let (status, body) = self.place(who, order_body(Uuid::new_v4(), lines)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn order(&self, who: &Account, id: Uuid) -> Order {
        let (status, body) = self.get(&format!("/orders/{id}"), who).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn cancel(&self, who: &Account, id: Uuid) -> (StatusCode, Value) {
        self.post(&format!("/orders/{id}/cancel"), json!({}), who)
            .await
    }

    async fn set_status(&self, admin: &Account, id: Uuid, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/admin/orders/{id}/status"), body, admin)
            .await
    }

    /// Moves an order to `status` as an admin, sending what that transition needs.
    async fn move_to(&self, admin: &Account, id: Uuid, status: &str) -> (StatusCode, Value) {
        self.set_status(admin, id, transition(status)).await
    }

    /// Walks an order through `statuses`, each step expected to succeed.
    async fn advance(&self, admin: &Account, id: Uuid, statuses: &[&str]) -> Order {
        let mut order = None;
        for status in statuses {
            let (got, body) = self.move_to(admin, id, status).await;
            assert_eq!(got, StatusCode::OK, "to {status}: {body}");
            let moved: Order = serde_json::from_value(body).unwrap();
            assert_eq!(moved.status, *status);
            order = Some(moved);
        }
        order.expect("at least one status")
    }
}

/// A status change body with what its transition needs: a tracking number to ship, a reason
/// to cancel or refund.
fn transition(status: &str) -> Value {
    match status {
        "shipped" => json!({"status": status, "tracking_number": "1Z999AA10123456784"}),
        "cancelled" | "refunded" => json!({"status": status, "reason": "test"}),
        _ => json!({"status": status}),
    }
}

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Ann Walker".into(),
        line1: "Hauptstrasse 1".into(),
        line2: None,
        city: "Berlin".into(),
        region: None,
        postal_code: "10115".into(),
        country: "DE".into(),
        phone: Some("+49 30 1234567".into()),
    }
}

fn order_body(client_order_id: Uuid, lines: &[(Uuid, i32)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(product_id, quantity)| json!({"product_id": product_id, "quantity": quantity}))
        .collect();
    json!({
        "client_order_id": client_order_id,
        "items": items,
        "shipping_address": serde_json::to_value(address()).unwrap(),
    })
}

async fn start() -> (TestServer, Api) {
    let server = TestServer::start().await.unwrap();
    let api = Api::api_v1(&server);
    (server, api)
}

/// A registered user holding `coins`.
async fn customer(server: &TestServer, api: &Api, email: &str, coins: i64) -> Account {
    let account = api.account(email).await;
    if coins > 0 {
        grant(server.db().pool(), account.id, coins).await;
    }
    account
}

async fn add_product(server: &TestServer, name: &str, price: i64, stock: i32) -> Uuid {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "INSERT INTO reward_products (name, category, coin_price, stock)
             VALUES ($1, 'test', $2, $3) RETURNING id",
            &[&name, &price, &stock],
        )
        .await
        .unwrap()
        .get("id")
}

async fn stock(server: &TestServer, product: Uuid) -> i64 {
    count(
        server,
        "SELECT stock::bigint FROM reward_products WHERE id = $1",
        product,
    )
    .await
}

/// How many ledger entries of `kind` the user has.
async fn entries(server: &TestServer, user: &Account, kind: &str) -> i64 {
    let client = server.db().client().await.unwrap();
    client
        .query_one(
            "SELECT count(*) AS entries FROM coin_transactions WHERE user_id = $1 AND kind = $2",
            &[&user.id, &kind],
        )
        .await
        .unwrap()
        .get("entries")
}

/// How many ledger entries of each kind name this order.
async fn entries_for_order(server: &TestServer, order: Uuid) -> BTreeMap<String, i64> {
    let client = server.db().client().await.unwrap();
    client
        .query(
            "SELECT kind, count(*) AS entries FROM coin_transactions
             WHERE reference_type = 'order' AND reference_id = $1 GROUP BY kind",
            &[&order.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("kind"), row.get("entries")))
        .collect()
}

async fn admin_log_count(server: &TestServer, pattern: &str) -> i64 {
    let client = server.db().client().await.unwrap();
    client
        .query_one(
            "SELECT count(*) AS logs FROM admin_logs WHERE action LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap()
        .get("logs")
}

async fn order_count(server: &TestServer) -> i64 {
    let client = server.db().client().await.unwrap();
    client
        .query_one("SELECT count(*) AS orders FROM orders", &[])
        .await
        .unwrap()
        .get("orders")
}

fn balances(wallet: &Wallet) -> (i64, i64) {
    (wallet.available_coins, wallet.frozen_coins)
}

/// Sends `requests` (path, body, account) at once; answers in the same order.
async fn post_all(api: &Api, requests: Vec<(String, Value, Account)>) -> Vec<(StatusCode, Value)> {
    let mut tasks = JoinSet::new();
    for (index, (path, body, who)) in requests.into_iter().enumerate() {
        let api = api.clone();
        tasks.spawn(async move { (index, api.post(&path, body, &who).await) });
    }
    let mut answers = tasks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

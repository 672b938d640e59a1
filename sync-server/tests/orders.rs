//! Redemption, black-box over HTTP: the catalogue and its admin, placing orders (holds, stock,
//! idempotent retries, every refusal changing nothing), double spends and overselling under
//! concurrency, every legal and illegal status transition, cancellation racing delivery,
//! privacy of other users' orders, and the ledger check after all of it.

use std::collections::BTreeMap;

use fitkart_protocol::orders::{Order, OrderPage, Product, ProductPage, ShippingAddress};
use fitkart_protocol::steps::Wallet;
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

mod common;
use common::Client as Api;
use common::{
    Account, PASSWORD, account, answer, assert_ledger_ok, code, count, create_admin, grant,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.request_as(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    async fn get(&self, path: &str, who: &Account) -> (StatusCode, Value) {
        self.send(Method::GET, path, None, Some(&who.token)).await
    }

    async fn post(&self, path: &str, body: Value, who: &Account) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body), Some(&who.token))
            .await
    }

    async fn sign_in(&self, path: &str, body: Value, expected: StatusCode) -> Account {
        let (status, body) = self.send(Method::POST, path, Some(body), None).await;
        assert_eq!(status, expected, "{body}");
        account(body)
    }

    async fn register(&self, email: &str) -> Account {
        let body = json!({"email": email, "password": PASSWORD, "display_name": "Walker"});
        self.sign_in("/auth/register", body, StatusCode::CREATED)
            .await
    }

    async fn wallet(&self, who: &Account) -> Wallet {
        let (status, body) = self.get("/wallet", who).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

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

async fn make_admin(server: &TestServer, api: &Api) -> Account {
    create_admin(server, "boss@example.com", "Boss").await;
    let body = json!({"email": "boss@example.com", "password": PASSWORD});
    api.sign_in("/auth/login", body, StatusCode::OK).await
}

/// A registered user holding `coins`.
async fn customer(server: &TestServer, api: &Api, email: &str, coins: i64) -> Account {
    let account = api.register(email).await;
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
        .get(0)
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
            "SELECT count(*) FROM coin_transactions WHERE user_id = $1 AND kind = $2",
            &[&user.id, &kind],
        )
        .await
        .unwrap()
        .get(0)
}

/// How many ledger entries of each kind name this order.
async fn entries_for_order(server: &TestServer, order: Uuid) -> BTreeMap<String, i64> {
    let client = server.db().client().await.unwrap();
    client
        .query(
            "SELECT kind, count(*) FROM coin_transactions
             WHERE reference_type = 'order' AND reference_id = $1 GROUP BY kind",
            &[&order.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn admin_log_count(server: &TestServer, pattern: &str) -> i64 {
    let client = server.db().client().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM admin_logs WHERE action LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap()
        .get(0)
}

async fn order_count(server: &TestServer) -> i64 {
    let client = server.db().client().await.unwrap();
    client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0)
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

// ---------------------------------------------------------------------------------------------
// Catalogue
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_catalogue_lists_active_products_in_order_and_pages() {
    let (server, api) = start().await;
    let user = api.register("shopper@example.com").await;
    let hidden = add_product(&server, "Hidden", 10, 5).await;
    let dearer = add_product(&server, "Dearer", 30, 5).await;
    let cheaper = add_product(&server, "Cheaper", 20, 5).await;
    server
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE reward_products SET is_active = false WHERE id = $1",
            &[&hidden],
        )
        .await
        .unwrap();
    let expected: Vec<Uuid> = server
        .db()
        .client()
        .await
        .unwrap()
        .query(
            "SELECT id FROM reward_products WHERE is_active ORDER BY category, coin_price, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(expected.len() >= 10, "the seeded catalogue is there");

    let (status, body) = api.get("/products", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: ProductPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.total, expected.len() as i64);
    let ids: Vec<Uuid> = page.products.iter().map(|p| p.id).collect();
    assert_eq!(ids, expected, "active only, by category, price and id");
    assert!(page.products.iter().all(|p| p.is_active));

    let (status, body) = api.get("/products?limit=3&offset=2", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: ProductPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.total, expected.len() as i64);
    let ids: Vec<Uuid> = page.products.iter().map(|p| p.id).collect();
    assert_eq!(ids, expected[2..5]);

    let (status, body) = api.get("/products?category=test", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: ProductPage = serde_json::from_value(body).unwrap();
    let ids: Vec<Uuid> = page.products.iter().map(|p| p.id).collect();
    assert_eq!((page.total, ids), (2, vec![cheaper, dearer]));

    for limit in ["0", "101", "-1"] {
        let (status, body) = api.get(&format!("/products?limit={limit}"), &user).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit {limit}: {body}"
        );
    }

    let (status, body) = api.get(&format!("/products/{}", expected[0]), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let product: Product = serde_json::from_value(body).unwrap();
    assert_eq!(product.id, expected[0]);
    for missing in [hidden, Uuid::new_v4()] {
        let (status, body) = api.get(&format!("/products/{missing}"), &user).await;
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    }

    let (status, _) = api.send(Method::GET, "/products", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed-in users only");
}

#[tokio::test]
async fn admins_manage_products_and_each_change_is_logged_once() {
    let (server, api) = start().await;
    let admin = make_admin(&server, &api).await;
    let user = api.register("shopper@example.com").await;
    let new_product = json!({"name": "Water bottle", "category": "gear", "coin_price": 120});

    // A user may not touch the catalogue.
    let some_product = add_product(&server, "Existing", 50, 3).await;
    let attempts = [
        (
            Method::POST,
            "/admin/products".to_owned(),
            Some(new_product.clone()),
        ),
        (
            Method::PATCH,
            format!("/admin/products/{some_product}"),
            Some(json!({"coin_price": 1})),
        ),
        (
            Method::POST,
            format!("/admin/products/{some_product}/deactivate"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = api.send(method, &path, body, Some(&user.token)).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }

    let (status, body) = api.post("/admin/products", new_product, &admin).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Product = serde_json::from_value(body).unwrap();
    assert_eq!(
        (created.name.as_str(), created.category.as_str()),
        ("Water bottle", "gear")
    );
    assert_eq!(
        (created.coin_price, created.stock),
        (120, 0),
        "stock defaults to 0"
    );
    assert!(created.is_active);

    let (status, body) = api.get(&format!("/products/{}", created.id), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_value::<Product>(body).unwrap(), created);

    let (status, body) = api
        .send(
            Method::PATCH,
            &format!("/admin/products/{}", created.id),
            Some(json!({"coin_price": 150, "stock": 7})),
            Some(&admin.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let patched: Product = serde_json::from_value(body).unwrap();
    assert_eq!((patched.coin_price, patched.stock), (150, 7));
    assert_eq!(patched.name, "Water bottle", "untouched fields stay");

    let invalid_creates = [
        json!({"name": "X", "category": "gear", "coin_price": 0}),
        json!({"name": "X", "category": "gear", "coin_price": -5}),
        json!({"name": "X", "category": "gear", "coin_price": 10, "stock": -1}),
        json!({"name": "", "category": "gear", "coin_price": 10}),
        json!({"category": "gear", "coin_price": 10}),
        json!({"name": "X", "coin_price": 10}),
        json!({"name": "X", "category": "gear"}),
        json!({"name": "X", "category": "gear", "coin_price": 10, "discount": 5}),
    ];
    for body in invalid_creates {
        let (status, answer) = api.post("/admin/products", body.clone(), &admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let invalid_patches = [
        json!({"coin_price": 0}),
        json!({"stock": -1}),
        json!({"name": ""}),
        json!({"price": 10}),
    ];
    for body in invalid_patches {
        let (status, answer) = api
            .send(
                Method::PATCH,
                &format!("/admin/products/{}", created.id),
                Some(body.clone()),
                Some(&admin.token),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let (status, body) = api.get(&format!("/products/{}", created.id), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_value::<Product>(body).unwrap(),
        patched,
        "refused patches changed nothing"
    );

    let (status, body) = api
        .post(
            &format!("/admin/products/{}/deactivate", created.id),
            json!({}),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deactivated: Product = serde_json::from_value(body).unwrap();
    assert!(!deactivated.is_active);
    let (status, body) = api.get(&format!("/products/{}", created.id), &user).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, body) = api.get("/products?limit=100", &user).await;
    let page: ProductPage = serde_json::from_value(body).unwrap();
    assert!(page.products.iter().all(|p| p.id != created.id));

    assert_eq!(
        admin_log_count(&server, "product.%").await,
        3,
        "create, patch and deactivate; refused attempts log nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Placing orders
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_order_holds_its_coins_and_stock_and_shows_up_for_its_owner() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "shopper@example.com", 1000).await;
    let shoes = add_product(&server, "Shoes", 150, 10).await;
    let socks = add_product(&server, "Socks", 100, 5).await;

    let order = api.place_ok(&user, &[(shoes, 2), (socks, 1)]).await;
    assert_eq!(order.status, "pending");
    assert_eq!(order.total_coins, 400, "2 x 150 + 1 x 100");
    let suffix = order.order_code.strip_prefix("FK-").unwrap_or("");
    assert!(
        suffix.len() == 8
            && suffix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "order code {}",
        order.order_code
    );
    let mut items: Vec<(Uuid, &str, i64, i64)> = order
        .items
        .iter()
        .map(|i| {
            (
                i.product_id,
                i.product_name.as_str(),
                i.quantity,
                i.unit_coin_price,
            )
        })
        .collect();
    items.sort();
    let mut expected = vec![(shoes, "Shoes", 2, 150), (socks, "Socks", 1, 100)];
    expected.sort();
    assert_eq!(items, expected);
    assert_eq!(order.shipping_address, address());
    assert_eq!(order.tracking_number, None);
    assert_eq!(
        (order.shipped_at, order.delivered_at, order.cancelled_at),
        (None, None, None)
    );

    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (600, 400), "held, not spent");
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(
        (stock(&server, shoes).await, stock(&server, socks).await),
        (8, 4)
    );
    assert_eq!(entries(&server, &user, "order_hold").await, 1);

    assert_eq!(api.order(&user, order.id).await, order);
    let (status, body) = api.get("/orders", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!((page.total, page.orders), (1, vec![order]));
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn orders_list_newest_first_in_pages() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "shopper@example.com", 1000).await;
    let cap = add_product(&server, "Cap", 10, 50).await;
    let mut placed = Vec::new();
    for quantity in 1..=3 {
        placed.push(api.place_ok(&user, &[(cap, quantity)]).await.id);
    }
    placed.reverse();

    let (status, body) = api.get("/orders?limit=2", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: OrderPage = serde_json::from_value(body).unwrap();
    let (status, body) = api.get("/orders?limit=2&offset=2", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!((first.total, second.total), (3, 3));
    let ids: Vec<Uuid> = first
        .orders
        .iter()
        .chain(&second.orders)
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, placed, "newest first");
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn the_same_order_sent_again_returns_it_without_holding_twice() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "retry@example.com", 1000).await;
    let mat = add_product(&server, "Yoga mat", 100, 20).await;

    // Sequential retries, as after a dropped response.
    let body = order_body(Uuid::new_v4(), &[(mat, 2)]);
    let (status, first) = api.place(&user, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first: Order = serde_json::from_value(first).unwrap();
    for _ in 0..4 {
        let (status, again) = api.place(&user, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(serde_json::from_value::<Order>(again).unwrap(), first);
    }
    assert_eq!(balances(&api.wallet(&user).await), (800, 200));
    assert_eq!(stock(&server, mat).await, 18);

    // Parallel retries, as from a device that fired the same request five times.
    let body = order_body(Uuid::new_v4(), &[(mat, 3)]);
    let requests = (0..5)
        .map(|_| ("/orders".to_owned(), body.clone(), user.clone()))
        .collect();
    let answers = post_all(&api, requests).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    let mut ids = Vec::new();
    for (status, answer) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{status} {answer}"
        );
        ids.push(serde_json::from_value::<Order>(answer.clone()).unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for all five");

    assert_eq!(order_count(&server).await, 2);
    assert_eq!(entries(&server, &user, "order_hold").await, 2);
    assert_eq!(balances(&api.wallet(&user).await), (500, 500));
    assert_eq!(stock(&server, mat).await, 15);

    // The same id with another body is a conflict and changes nothing.
    let mut changed = body.clone();
    changed["items"][0]["quantity"] = json!(4);
    let mut moved = body.clone();
    moved["shipping_address"]["city"] = json!("Hamburg");
    for conflicting in [changed, moved] {
        let (status, answer) = api.place(&user, conflicting).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::CONFLICT, "idempotency_conflict"),
            "{answer}"
        );
    }
    assert_eq!(order_count(&server).await, 2);
    assert_eq!(balances(&api.wallet(&user).await), (500, 500));
    assert_eq!(stock(&server, mat).await, 15);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn refused_orders_change_nothing() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "careful@example.com", 500).await;
    let cheap = add_product(&server, "Band", 10, 50).await;
    let pricey = add_product(&server, "Watch", 300, 10).await;
    let scarce = add_product(&server, "Limited", 20, 2).await;
    let gone = add_product(&server, "Sold out", 20, 0).await;
    let retired = add_product(&server, "Retired", 20, 10).await;
    server
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE reward_products SET is_active = false WHERE id = $1",
            &[&retired],
        )
        .await
        .unwrap();
    let mut many = Vec::new();
    for n in 0..21 {
        many.push((add_product(&server, &format!("Item {n}"), 1, 10).await, 1));
    }
    let products = [cheap, pricey, scarce, gone, retired];
    let stock_before: Vec<i64> = {
        let mut all = Vec::new();
        for p in products.iter().chain(many.iter().map(|(p, _)| p)) {
            all.push(stock(&server, *p).await);
        }
        all
    };

    let valid = || order_body(Uuid::new_v4(), &[(cheap, 1)]);
    let with = |pointer: &str, value: Value| {
        let mut body = valid();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let item = |product: Uuid, quantity: i32| json!({"product_id": product, "quantity": quantity});
    let validation = [
        (with("/items", json!([])), "items"),
        (order_body(Uuid::new_v4(), &many), "items"),
        (with("/items/0/quantity", json!(0)), "quantity"),
        (with("/items/0/quantity", json!(-1)), "quantity"),
        (with("/items/0/quantity", json!(101)), "quantity"),
        (
            with(
                "/items",
                json!([item(cheap, 1), item(pricey, 1), item(cheap, 2)]),
            ),
            "items",
        ),
        (with("/shipping_address/name", json!("")), "name"),
        (
            with("/shipping_address/name", json!("n".repeat(101))),
            "name",
        ),
        (with("/shipping_address/line1", json!("")), "line1"),
        (
            with("/shipping_address/line1", json!("l".repeat(201))),
            "line1",
        ),
        (with("/shipping_address/city", json!("")), "city"),
        (
            with("/shipping_address/city", json!("c".repeat(101))),
            "city",
        ),
        (
            with("/shipping_address/postal_code", json!("")),
            "postal_code",
        ),
        (
            with("/shipping_address/postal_code", json!("1".repeat(21))),
            "postal_code",
        ),
        (with("/shipping_address/country", json!("de")), "country"),
        (with("/shipping_address/country", json!("DEU")), "country"),
        (with("/shipping_address/country", json!("D")), "country"),
        (with("/shipping_address/country", json!("")), "country"),
    ];
    for (body, field) in validation {
        let (status, answer) = api.place(&user, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{body}: {answer}"
        );
        let named = answer["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(
            named.contains(field),
            "details.field {named:?} should name {field}: {answer}"
        );
    }

    let mut extra_top = valid();
    extra_top["coupon"] = json!("FREE");
    let mut extra_item = valid();
    extra_item["items"][0]["price"] = json!(0);
    let mut extra_address = valid();
    extra_address["shipping_address"]["floor"] = json!(3);
    for body in [extra_top, extra_item, extra_address] {
        let (status, answer) = api.place(&user, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"),
            "{body}: {answer}"
        );
    }

    for missing in [Uuid::new_v4(), retired] {
        let body = order_body(Uuid::new_v4(), &[(cheap, 1), (missing, 1)]);
        let (status, answer) = api.place(&user, body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::NOT_FOUND, "product_not_found"),
            "{answer}"
        );
    }

    let (status, answer) = api
        .place(&user, order_body(Uuid::new_v4(), &[(pricey, 2)]))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "insufficient_coins"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"],
        json!({"available": 500, "needed": 600})
    );

    let (status, answer) = api
        .place(
            &user,
            order_body(Uuid::new_v4(), &[(cheap, 1), (scarce, 3)]),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "out_of_stock"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"]["items"],
        json!([{"product_id": scarce, "requested": 3, "available": 2}])
    );
    let (status, answer) = api
        .place(&user, order_body(Uuid::new_v4(), &[(gone, 1)]))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "out_of_stock"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"]["items"],
        json!([{"product_id": gone, "requested": 1, "available": 0}])
    );

    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (500, 0), "no refusal held coins");
    assert_eq!(wallet.lifetime_spent, 0);
    let mut stock_after = Vec::new();
    for p in products.iter().chain(many.iter().map(|(p, _)| p)) {
        stock_after.push(stock(&server, *p).await);
    }
    assert_eq!(stock_after, stock_before, "no refusal took stock");
    assert_eq!(order_count(&server).await, 0);
    assert_eq!(entries(&server, &user, "order_hold").await, 0);
    let (_, body) = api.get("/orders", &user).await;
    assert_eq!(body["total"], 0);

    // The exact amount still goes through afterwards.
    let order = api.place_ok(&user, &[(cheap, 20), (pricey, 1)]).await;
    assert_eq!(order.total_coins, 500);
    assert_eq!(balances(&api.wallet(&user).await), (0, 500));
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_missing_address_field_is_named_and_changes_nothing() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "forgetful@example.com", 500).await;
    let band = add_product(&server, "Band", 10, 10).await;
    for field in ["name", "line1", "city", "postal_code", "country"] {
        let mut body = order_body(Uuid::new_v4(), &[(band, 1)]);
        body["shipping_address"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        let (status, answer) = api.place(&user, body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "without {field}: {answer}"
        );
        let named = answer["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(
            named.contains(field),
            "details.field {named:?} should name {field}: {answer}"
        );
    }
    assert_eq!(balances(&api.wallet(&user).await), (500, 0));
    assert_eq!(stock(&server, band).await, 10);
    assert_eq!(order_count(&server).await, 0);
    assert_ledger_ok(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency: no double spend, no overselling
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_on_one_wallet_spend_only_what_is_there() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "eager@example.com", 1000).await;
    let bike = add_product(&server, "Bike", 300, 100).await;

    let requests = (0..10)
        .map(|_| {
            let body = order_body(Uuid::new_v4(), &[(bike, 1)]);
            ("/orders".to_owned(), body, user.clone())
        })
        .collect();
    let answers = post_all(&api, requests).await;
    let mut created = 0;
    for (status, answer) in &answers {
        match *status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(code(answer), "insufficient_coins", "{answer}");
                assert_eq!(answer["error"]["details"]["needed"], 300);
                let available = answer["error"]["details"]["available"].as_i64().unwrap();
                assert!((0..300).contains(&available), "{answer}");
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(
        created, 3,
        "only three orders fit into 1000 coins: {answers:?}"
    );

    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (100, 900));
    assert_eq!(stock(&server, bike).await, 97);
    assert_eq!(order_count(&server).await, 3);
    assert_eq!(entries(&server, &user, "order_hold").await, 3);
    assert_ledger_ok(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_for_the_last_unit_sell_it_once() {
    let (server, api) = start().await;
    let last = add_product(&server, "Last one", 100, 1).await;
    let mut buyers = Vec::new();
    for n in 0..5 {
        buyers.push(customer(&server, &api, &format!("buyer{n}@example.com"), 1000).await);
    }

    let requests = buyers
        .iter()
        .map(|buyer| {
            let body = order_body(Uuid::new_v4(), &[(last, 1)]);
            ("/orders".to_owned(), body, buyer.clone())
        })
        .collect();
    let answers = post_all(&api, requests).await;
    let mut winners = Vec::new();
    for (buyer, (status, answer)) in buyers.iter().zip(&answers) {
        match *status {
            StatusCode::CREATED => winners.push(buyer.clone()),
            StatusCode::CONFLICT => {
                assert_eq!(code(answer), "out_of_stock", "{answer}");
                assert_eq!(
                    answer["error"]["details"]["items"],
                    json!([{"product_id": last, "requested": 1, "available": 0}])
                );
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(winners.len(), 1, "one unit, one buyer: {answers:?}");
    assert_eq!(stock(&server, last).await, 0);
    assert_eq!(order_count(&server).await, 1);
    for buyer in &buyers {
        let expected = if buyer.id == winners[0].id {
            (900, 100)
        } else {
            (1000, 0)
        };
        assert_eq!(balances(&api.wallet(buyer).await), expected);
    }
    assert_ledger_ok(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Status transitions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_order_goes_all_the_way_to_delivery_and_back_as_a_refund() {
    let (server, api) = start().await;
    let admin = make_admin(&server, &api).await;
    let user = customer(&server, &api, "happy@example.com", 1000).await;
    let tent = add_product(&server, "Tent", 200, 5).await;
    let order = api.place_ok(&user, &[(tent, 2)]).await;
    assert_eq!(balances(&api.wallet(&user).await), (600, 400));

    // Users cannot run the fulfilment.
    let (status, body) = api.move_to(&user, order.id, "confirmed").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = api.get("/admin/orders", &user).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));

    let (status, body) = api.get("/admin/orders?status=pending", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let queue: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!(queue.total, 1);
    assert_eq!(queue.orders[0].id, order.id);

    for status in ["confirmed", "processing"] {
        let moved = api.advance(&admin, order.id, &[status]).await;
        assert_eq!(moved.tracking_number, None);
        assert_eq!(balances(&api.wallet(&user).await), (600, 400));
        assert_eq!(stock(&server, tent).await, 3);
    }

    // Shipping needs a tracking number.
    let (status, body) = api
        .set_status(&admin, order.id, json!({"status": "shipped"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["field"], "tracking_number");
    assert_eq!(api.order(&user, order.id).await.status, "processing");
    let (status, body) = api
        .set_status(
            &admin,
            order.id,
            json!({"status": "shipped", "tracking_number": "JD014600006281"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shipped: Order = serde_json::from_value(body).unwrap();
    assert_eq!(shipped.status, "shipped");
    assert_eq!(shipped.tracking_number.as_deref(), Some("JD014600006281"));
    assert!(shipped.shipped_at.is_some());
    assert_eq!(balances(&api.wallet(&user).await), (600, 400));

    // Delivery spends the hold.
    let delivered = api.advance(&admin, order.id, &["delivered"]).await;
    assert!(delivered.delivered_at.is_some());
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (600, 0));
    assert_eq!(wallet.lifetime_spent, 400);
    assert_eq!(stock(&server, tent).await, 3, "delivered goods stay sold");

    // A refund needs a reason, then gives the coins back.
    let (status, body) = api
        .set_status(&admin, order.id, json!({"status": "refunded"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{body}"
    );
    assert_eq!(api.order(&user, order.id).await.status, "delivered");
    let (status, body) = api
        .set_status(
            &admin,
            order.id,
            json!({"status": "refunded", "reason": "arrived broken"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_value::<Order>(body).unwrap().status,
        "refunded"
    );
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (1000, 0));
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(api.order(&user, order.id).await.status, "refunded");

    let kinds = entries_for_order(&server, order.id).await;
    let expected: BTreeMap<String, i64> = [("order_hold", 1), ("order_capture", 1), ("refund", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    assert_eq!(kinds, expected);
    assert_eq!(
        admin_log_count(&server, "order.status").await,
        5,
        "one row per transition, none for refused ones"
    );
    let (_, body) = api.get("/admin/orders?status=refunded", &admin).await;
    assert_eq!(body["total"], 1);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn cancelling_releases_the_hold_and_restores_stock() {
    let (server, api) = start().await;
    let admin = make_admin(&server, &api).await;
    let user = customer(&server, &api, "fickle@example.com", 1000).await;
    let ball = add_product(&server, "Ball", 50, 10).await;

    // The owner cancels from pending and from confirmed.
    let pending = api.place_ok(&user, &[(ball, 2)]).await;
    let confirmed = api.place_ok(&user, &[(ball, 3)]).await;
    api.advance(&admin, confirmed.id, &["confirmed"]).await;
    assert_eq!(balances(&api.wallet(&user).await), (750, 250));
    assert_eq!(stock(&server, ball).await, 5);

    let (status, body) = api.cancel(&user, pending.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cancelled: Order = serde_json::from_value(body).unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(balances(&api.wallet(&user).await), (850, 150));
    assert_eq!(stock(&server, ball).await, 7);

    let (status, body) = api.cancel(&user, confirmed.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(balances(&api.wallet(&user).await), (1000, 0));
    assert_eq!(stock(&server, ball).await, 10);

    let (status, body) = api.cancel(&user, pending.id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "cancelling twice releases once"
    );
    assert_eq!(balances(&api.wallet(&user).await), (1000, 0));
    assert_eq!(entries(&server, &user, "order_release").await, 2);

    // Once processing, only an admin can cancel.
    let processing = api.place_ok(&user, &[(ball, 1)]).await;
    api.advance(&admin, processing.id, &["confirmed", "processing"])
        .await;
    let (status, body) = api.cancel(&user, processing.id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "{body}"
    );
    assert_eq!(balances(&api.wallet(&user).await), (950, 50));

    // The admin cancels from pending, confirmed and processing, always with a reason.
    let admin_pending = api.place_ok(&user, &[(ball, 2)]).await;
    let admin_confirmed = api.place_ok(&user, &[(ball, 2)]).await;
    api.advance(&admin, admin_confirmed.id, &["confirmed"])
        .await;
    assert_eq!(balances(&api.wallet(&user).await), (750, 250));
    assert_eq!(stock(&server, ball).await, 5);
    let logged_before = admin_log_count(&server, "order.status").await;
    for (order, held) in [
        (&processing, 50),
        (&admin_pending, 100),
        (&admin_confirmed, 100),
    ] {
        let (status, body) = api
            .set_status(&admin, order.id, json!({"status": "cancelled"}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "a reason is required: {body}"
        );
        let before = api.wallet(&user).await;
        let stock_before = stock(&server, ball).await;
        let (status, body) = api
            .set_status(
                &admin,
                order.id,
                json!({"status": "cancelled", "reason": "customer called"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            serde_json::from_value::<Order>(body).unwrap().status,
            "cancelled"
        );
        let after = api.wallet(&user).await;
        assert_eq!(
            balances(&after),
            (before.available_coins + held, before.frozen_coins - held)
        );
        assert_eq!(stock(&server, ball).await, stock_before + held / 50);
    }
    assert_eq!(
        admin_log_count(&server, "order.status").await - logged_before,
        3,
        "one row per admin cancel, none for the refused ones"
    );
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (1000, 0));
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(stock(&server, ball).await, 10);
    assert_eq!(entries(&server, &user, "order_release").await, 5);
    assert_eq!(entries(&server, &user, "order_capture").await, 0);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn illegal_transitions_are_refused_and_change_nothing() {
    let (server, api) = start().await;
    let admin = make_admin(&server, &api).await;
    let user = customer(&server, &api, "tester@example.com", 1000).await;
    let pin = add_product(&server, "Pin", 10, 100).await;

    const ALL: [&str; 7] = [
        "pending",
        "confirmed",
        "processing",
        "shipped",
        "delivered",
        "cancelled",
        "refunded",
    ];
    let paths: [(&str, &[&str], &[&str]); 7] = [
        ("pending", &[], &["confirmed", "cancelled"]),
        ("confirmed", &["confirmed"], &["processing", "cancelled"]),
        (
            "processing",
            &["confirmed", "processing"],
            &["shipped", "cancelled"],
        ),
        (
            "shipped",
            &["confirmed", "processing", "shipped"],
            &["delivered"],
        ),
        (
            "delivered",
            &["confirmed", "processing", "shipped", "delivered"],
            &["refunded"],
        ),
        ("cancelled", &["cancelled"], &[]),
        (
            "refunded",
            &[
                "confirmed",
                "processing",
                "shipped",
                "delivered",
                "refunded",
            ],
            &[],
        ),
    ];
    let user_may_cancel = ["pending", "confirmed"];

    let mut legal_moves = 0;
    for (state, path, legal) in paths {
        let order = api.place_ok(&user, &[(pin, 1)]).await;
        if !path.is_empty() {
            api.advance(&admin, order.id, path).await;
        }
        legal_moves += path.len() as i64;
        let before = api.order(&user, order.id).await;
        assert_eq!(before.status, state);
        let wallet_before = api.wallet(&user).await;
        let stock_before = stock(&server, pin).await;
        let logged_before = admin_log_count(&server, "order.status").await;

        for target in ALL.iter().filter(|t| !legal.contains(t)) {
            let (status, body) = api.move_to(&admin, order.id, target).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::CONFLICT, "invalid_transition"),
                "{state} -> {target}: {body}"
            );
        }
        if !user_may_cancel.contains(&state) {
            let (status, body) = api.cancel(&user, order.id).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::CONFLICT, "invalid_transition"),
                "user cancel from {state}: {body}"
            );
        }

        assert_eq!(api.order(&user, order.id).await, before, "{state}");
        assert_eq!(api.wallet(&user).await, wallet_before, "{state}");
        assert_eq!(stock(&server, pin).await, stock_before, "{state}");
        assert_eq!(
            admin_log_count(&server, "order.status").await,
            logged_before,
            "refusals are not logged ({state})"
        );
    }
    assert_eq!(admin_log_count(&server, "order.status").await, legal_moves);
    assert_ledger_ok(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_racing_fulfilment_settles_each_order_exactly_once() {
    let (server, api) = start().await;
    let admin = make_admin(&server, &api).await;
    let user = customer(&server, &api, "racer@example.com", 1000).await;
    let kite = add_product(&server, "Kite", 100, 20).await;
    let status_path = |id: Uuid| format!("/admin/orders/{id}/status");
    let cancel_path = |id: Uuid| format!("/orders/{id}/cancel");

    let mut orders = Vec::new();
    for _ in 0..4 {
        let order = api.place_ok(&user, &[(kite, 1)]).await;
        api.advance(&admin, order.id, &["confirmed"]).await;
        orders.push(order.id);
    }

    for &id in &orders {
        // Confirmed: the owner cancels while the admin starts processing.
        let answers = post_all(
            &api,
            vec![
                (cancel_path(id), json!({}), user.clone()),
                (status_path(id), transition("processing"), admin.clone()),
            ],
        )
        .await;
        assert_one_wins(&answers);
        if api.order(&user, id).await.status != "processing" {
            continue;
        }
        // Processing: the admin cancels while another admin session ships.
        let answers = post_all(
            &api,
            vec![
                (status_path(id), transition("cancelled"), admin.clone()),
                (status_path(id), transition("shipped"), admin.clone()),
            ],
        )
        .await;
        assert_one_wins(&answers);
        if api.order(&user, id).await.status != "shipped" {
            continue;
        }
        // Shipped: delivery races both kinds of cancel; only delivery is legal.
        let answers = post_all(
            &api,
            vec![
                (status_path(id), transition("delivered"), admin.clone()),
                (status_path(id), transition("cancelled"), admin.clone()),
                (cancel_path(id), json!({}), user.clone()),
            ],
        )
        .await;
        assert_one_wins(&answers);
        assert_eq!(answers[0].0, StatusCode::OK, "{answers:?}");
    }

    let mut spent = 0;
    let mut delivered = 0;
    for &id in &orders {
        let order = api.order(&user, id).await;
        let kinds = entries_for_order(&server, id).await;
        let hold = kinds.get("order_hold").copied().unwrap_or(0);
        let capture = kinds.get("order_capture").copied().unwrap_or(0);
        let release = kinds.get("order_release").copied().unwrap_or(0);
        assert_eq!(hold, 1, "{kinds:?}");
        match order.status.as_str() {
            "delivered" => {
                assert_eq!((capture, release), (1, 0), "{kinds:?}");
                spent += order.total_coins;
                delivered += 1;
            }
            "cancelled" => assert_eq!((capture, release), (0, 1), "{kinds:?}"),
            other => panic!("order left in {other}"),
        }
    }
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (1000 - spent, 0));
    assert_eq!(wallet.lifetime_spent, spent);
    assert_eq!(stock(&server, kite).await, 20 - delivered);
    assert_ledger_ok(&server).await;
}

/// Exactly one of racing transitions succeeded; the others were refused as invalid.
fn assert_one_wins(answers: &[(StatusCode, Value)]) {
    let winners = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, code(body)),
            (StatusCode::CONFLICT, "invalid_transition"),
            "{answers:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Privacy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_users_order_does_not_exist_for_you() {
    let (server, api) = start().await;
    let owner = customer(&server, &api, "owner@example.com", 500).await;
    let snoop = customer(&server, &api, "snoop@example.com", 500).await;
    let lamp = add_product(&server, "Lamp", 100, 5).await;
    let order = api.place_ok(&owner, &[(lamp, 1)]).await;

    let (status, theirs) = api.get(&format!("/orders/{}", order.id), &snoop).await;
    let (_, unknown) = api
        .get(&format!("/orders/{}", Uuid::new_v4()), &snoop)
        .await;
    assert_eq!(
        (status, code(&theirs)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        code(&unknown),
        "not_found",
        "indistinguishable from unknown"
    );

    let (status, body) = api.cancel(&snoop, order.id).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = api.cancel(&snoop, Uuid::new_v4()).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let (status, body) = api.get("/orders", &snoop).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!((page.total, page.orders.len()), (0, 0));

    assert_eq!(api.order(&owner, order.id).await, order, "untouched");
    assert_eq!(balances(&api.wallet(&owner).await), (400, 100));
    assert_eq!(balances(&api.wallet(&snoop).await), (500, 0));
    assert_eq!(stock(&server, lamp).await, 4);
    assert_ledger_ok(&server).await;
}

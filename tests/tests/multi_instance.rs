//! Several server instances on one database, as a load balancer spreads requests over them:
//! two `fitkart-sync-server` processes (the built binary) start together on one fresh
//! database and are driven at once. A user's pushes arriving at both are applied once, orders
//! on one wallet through both never spend a coin twice, and a rolling restart (SIGTERM one
//! instance under load, start it again, then the other) loses no write that was answered.
//! Every scenario ends with `fitkart-sync-server verify-ledger` on the database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use fitkart_e2e::{
    ApiUser, ServerProcess, days_ago, free_port, grant_in, register_user, send_json,
    verify_ledger_command,
};
use fitkart_sync_server::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// The deployment's shared JWT secret: a token from one instance is valid at the other.
const JWT_SECRET: &str = "multi-instance-secret-multi-instance-secret-0123";

/// Two instances started at the same moment on one fresh database (they migrate and seed it
/// together, serialised by the migration lock).
async fn two_instances(db: &TestDb) -> (ServerProcess, ServerProcess) {
    let a = free_port();
    let b = std::iter::repeat_with(free_port)
        .find(|&b| b != a)
        .expect("a second port");
    tokio::join!(
        ServerProcess::start(db.url(), a, JWT_SECRET, &[]),
        ServerProcess::start(db.url(), b, JWT_SECRET, &[]),
    )
}

/// The cheapest active product (id, price), given enough stock that only coins can limit
/// how many orders succeed.
async fn cheapest_product(db: &TestDb, base_url: &str, user: &ApiUser) -> (Uuid, i64) {
    let (status, page) = send_json(
        &reqwest::Client::new(),
        Method::GET,
        &format!("{base_url}/api/v1/products?limit=100"),
        Some(&user.token),
        None,
    )
    .await
    .expect("products");
    assert_eq!(status, 200, "{page}");
    let cheapest = page["products"]
        .as_array()
        .expect("products")
        .iter()
        .min_by_key(|p| p["coin_price"].as_i64())
        .expect("a seeded product")
        .clone();
    let id: Uuid = cheapest["id"].as_str().expect("id").parse().expect("uuid");
    db.client()
        .await
        .expect("db")
        .execute(
            "UPDATE reward_products SET stock = 100000 WHERE id = $1",
            &[&id],
        )
        .await
        .expect("stock");
    (id, cheapest["coin_price"].as_i64().expect("price"))
}

fn order_body(product_id: Uuid, client_order_id: Uuid) -> Value {
    json!({
        "client_order_id": client_order_id,
        "items": [{"product_id": product_id, "quantity": 1}],
        "shipping_address": {
            "name": "Multi Walker", "line1": "1 Load Balancer Way", "city": "Springfield",
            "postal_code": "12345", "country": "US"
        }
    })
}

fn steps_mutation(id: Uuid, day_offset: u64, steps: i64) -> Value {
    let day = days_ago(day_offset);
    json!({
        "id": id,
        "kind": "record_steps",
        "payload": {"records": [{
            "date": day, "source": "phone", "steps": steps,
            "recorded_at": fitkart_e2e::at(day, 21, 0),
        }]},
        "created_at": Utc::now(),
    })
}

fn assert_ledger_command_passes(db: &TestDb) {
    let (ok, report) = verify_ledger_command(db.url());
    assert!(ok, "verify-ledger failed:\n{report}");
    assert!(report.contains("ledger OK"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_pushes_arriving_at_both_instances_are_each_applied_once() {
    let db = TestDb::new_empty().await.unwrap();
    let (a, b) = two_instances(&db).await;
    let user = register_user(&a.url(), "both@example.com").await;
    grant_in(&db, user.id, 100_000).await;
    let (product, price) = cheapest_product(&db, &b.url(), &user).await;
    let device = Uuid::now_v7();

    // Three batches; each is delivered four times at once, twice to each instance (a phone
    // retrying through a load balancer that picks another instance each time).
    let batches: Vec<Value> = (0..3_u64)
        .map(|n| {
            json!({
                "device_id": device,
                "mutations": [
                    steps_mutation(Uuid::now_v7(), 1 + n, 4_000 + 1_000 * n as i64),
                    {
                        "id": Uuid::now_v7(),
                        "kind": "place_order",
                        "payload": order_body(product, Uuid::now_v7()),
                        "created_at": Utc::now(),
                    },
                ],
            })
        })
        .collect();
    let http = reqwest::Client::new();
    let mut deliveries = Vec::new();
    for batch in &batches {
        for base in [a.url(), b.url(), a.url(), b.url()] {
            let (http, batch, token) = (http.clone(), batch.clone(), user.token.clone());
            deliveries.push(tokio::spawn(async move {
                send_json(
                    &http,
                    Method::POST,
                    &format!("{base}/api/v1/sync/push"),
                    Some(&token),
                    Some(&batch),
                )
                .await
                .expect("an answer")
            }));
        }
    }
    // Per mutation id: how many deliveries answered `applied`, and every stored outcome.
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for delivery in deliveries {
        let (status, body) = delivery.await.unwrap();
        assert_eq!(status, 200, "{body}");
        for result in body["results"].as_array().expect("results") {
            let id = result["id"].as_str().expect("id").to_owned();
            let status = result["status"].as_str().expect("status");
            assert!(
                status == "applied" || status == "duplicate",
                "mutation {id}: {result}"
            );
            *applied.entry(id.clone()).or_default() += usize::from(status == "applied");
            outcomes
                .entry(id)
                .or_default()
                .insert(result["outcome"].to_string());
        }
    }
    assert_eq!(applied.len(), 6, "six mutations");
    for (id, count) in &applied {
        assert_eq!(*count, 1, "mutation {id} was applied {count} times");
        assert_eq!(
            outcomes[id].len(),
            1,
            "every delivery of {id} reports the outcome of its one application"
        );
    }

    // Each day was paid once and each order held once: the ledger by kind.
    let client = db.client().await.unwrap();
    let by_kind: BTreeMap<String, (i64, i64, i64)> = client
        .query(
            "SELECT kind, count(*), sum(available_delta)::bigint, sum(frozen_delta)::bigint
             FROM coin_transactions WHERE user_id = $1 GROUP BY kind",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
        .collect();
    let steps_paid: i64 = (0..3)
        .map(|n| fitkart_e2e::day_coins(4_000 + 1_000 * n))
        .sum();
    assert_eq!(by_kind["step_reward"].1, steps_paid, "{by_kind:?}");
    assert_eq!(
        by_kind["order_hold"],
        (3, -3 * price, 3 * price),
        "three orders, each held once"
    );
    let orders: i64 = client
        .query_one(
            "SELECT count(*) FROM orders WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, 3);
    assert_ledger_command_passes(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_on_one_wallet_through_both_instances_never_spend_a_coin_twice() {
    let db = TestDb::new_empty().await.unwrap();
    let (a, b) = two_instances(&db).await;
    let user = register_user(&a.url(), "spender@example.com").await;
    let (product, price) = cheapest_product(&db, &a.url(), &user).await;
    // Enough for five orders and half of a sixth.
    grant_in(&db, user.id, 5 * price + price / 2).await;

    let http = reqwest::Client::new();
    let attempts: Vec<_> = (0..24)
        .map(|n| {
            let base = if n % 2 == 0 { a.url() } else { b.url() };
            let (http, token) = (http.clone(), user.token.clone());
            tokio::spawn(async move {
                send_json(
                    &http,
                    Method::POST,
                    &format!("{base}/api/v1/orders"),
                    Some(&token),
                    Some(&order_body(product, Uuid::now_v7())),
                )
                .await
                .expect("an answer")
            })
        })
        .collect();
    let mut placed = 0;
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        match status {
            201 => placed += 1,
            409 => assert_eq!(body["error"]["code"], "insufficient_coins", "{body}"),
            other => panic!("an order answered {other}: {body}"),
        }
    }
    assert_eq!(placed, 5, "exactly as many orders as the coins pay for");
    let (_, wallet) = send_json(
        &http,
        Method::GET,
        &format!("{}/api/v1/wallet", a.url()),
        Some(&user.token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        wallet["available_coins"].as_i64(),
        Some(price / 2),
        "{wallet}"
    );
    assert_eq!(wallet["frozen_coins"].as_i64(), Some(5 * price), "{wallet}");
    assert_ledger_command_passes(&db);
}

/// One write the load sent and the answer it got.
#[derive(Debug)]
enum Answered {
    /// A push of one step mutation answered 200 `applied`/`duplicate`.
    Push { mutation: Uuid },
    /// An order answered 201.
    Order { client_order_id: Uuid },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_loses_no_answered_write() {
    let db = TestDb::new_empty().await.unwrap();
    let (a, b) = two_instances(&db).await;
    let ports = [a.port(), b.port()];
    let mut users = Vec::new();
    for n in 0..4 {
        let user = register_user(&a.url(), &format!("rolling-{n}@example.com")).await;
        grant_in(&db, user.id, 1_000_000).await;
        users.push(user);
    }
    let (product, _) = cheapest_product(&db, &a.url(), &users[0]).await;

    // Each user writes in a loop, alternating between the instances like a round-robin
    // balancer; a refused or cut connection is simply not an answer.
    let running = Arc::new(AtomicBool::new(true));
    let load: Vec<_> = users
        .iter()
        .cloned()
        .map(|user| {
            let running = running.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let device = Uuid::now_v7();
                let mut answered = Vec::new();
                let mut server_errors = Vec::new();
                let mut i: u64 = 0;
                while running.load(Ordering::SeqCst) {
                    let base = format!("http://127.0.0.1:{}", ports[(i % 2) as usize]);
                    let (url, body, write) = if i % 5 == 4 {
                        let client_order_id = Uuid::now_v7();
                        (
                            format!("{base}/api/v1/orders"),
                            order_body(product, client_order_id),
                            Answered::Order { client_order_id },
                        )
                    } else {
                        let mutation = Uuid::now_v7();
                        let steps = 1_000 + 10 * i as i64;
                        (
                            format!("{base}/api/v1/sync/push"),
                            json!({
                                "device_id": device,
                                "mutations": [steps_mutation(mutation, 1 + i % 3, steps)],
                            }),
                            Answered::Push { mutation },
                        )
                    };
                    match send_json(&http, Method::POST, &url, Some(&user.token), Some(&body)).await
                    {
                        Ok((200 | 201, _)) => answered.push(write),
                        Ok((status, body)) if status >= 500 => {
                            server_errors.push(format!("{status} {body}"));
                        }
                        Ok((status, body)) => panic!("{url} answered {status}: {body}"),
                        Err(_) => {}
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (user, answered, server_errors, i)
            })
        })
        .collect();

    // Roll: stop A gracefully mid-load, start it again, then the same for B.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = a.terminate().await;
    assert!(status.success(), "A did not stop cleanly: {status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = ServerProcess::start(db.url(), ports[0], JWT_SECRET, &[]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = b.terminate().await;
    assert!(status.success(), "B did not stop cleanly: {status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = ServerProcess::start(db.url(), ports[1], JWT_SECRET, &[]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    running.store(false, Ordering::SeqCst);

    let client = db.client().await.unwrap();
    let mut total_answered = 0;
    let mut total_sent = 0;
    for task in load {
        let (user, answered, server_errors, sent) = task.await.unwrap();
        assert!(
            server_errors.is_empty(),
            "answers with a 5xx during the roll: {server_errors:?}"
        );
        total_answered += answered.len();
        total_sent += sent;
        for write in answered {
            match write {
                Answered::Push { mutation } => {
                    let outcome: Option<String> = client
                        .query_opt(
                            "SELECT outcome FROM sync_mutations
                             WHERE user_id = $1 AND mutation_id = $2",
                            &[&user.id, &mutation],
                        )
                        .await
                        .unwrap()
                        .map(|row| row.get(0));
                    assert_eq!(
                        outcome.as_deref(),
                        Some("applied"),
                        "answered push {mutation} is missing"
                    );
                }
                Answered::Order { client_order_id } => {
                    let holds: i64 = client
                        .query_one(
                            "SELECT count(*) FROM orders o
                             JOIN coin_transactions t
                               ON t.reference_id = o.id::text AND t.kind = 'order_hold'
                             WHERE o.user_id = $1 AND o.client_order_id = $2",
                            &[&user.id, &client_order_id],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    assert_eq!(holds, 1, "answered order {client_order_id} is missing");
                }
            }
        }
    }
    assert!(
        total_answered > 100,
        "the load hardly ran: {total_answered} of {total_sent} writes answered"
    );
    println!("rolling restart: {total_answered} of {total_sent} writes answered, all present");
    assert_ledger_command_passes(&db);
    drop((a, b));
}

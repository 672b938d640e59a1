//! Reads on a PostgreSQL streaming replica (`FITKART_READ_DATABASE_URL`), against a real hot
//! standby. `scripts/test-replica.sh` creates a private primary and its standby, points
//! `DATABASE_URL` at the primary and `FITKART_TEST_REPLICA_URL` at the standby, and runs this
//! binary one test at a time (a test pauses the standby's replay, which every test would see):
//!
//! ```sh
//! bash scripts/test-replica.sh
//! ```
//!
//! Lag is made on purpose with `pg_wal_replay_pause()` on the standby, and each test checks
//! the standby really lacks the rows in question, so the routing rule is what is tested.

use std::process::Command;
use std::time::Duration;

use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_e2e::{
    Phone, ServerProcess, assert_converged, assert_steps_equal_server, base_url, days_ago,
    free_port, grant, register_user, send_json,
};
use fitkart_sync_server::config::{JwtSecret, MetricsToken};
use fitkart_sync_server::db;
use fitkart_sync_server::testing::TestServer;
use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "replica-test-password";
const JWT_SECRET: &str = "replica-test-secret-replica-test-secret-012345";
/// The bearer token `GET /metrics` requires on the servers under test.
const METRICS_TOKEN: &str = "replica-test-metrics-token";

/// The standby's server URL (database `postgres`).
fn standby_server_url() -> String {
    std::env::var("FITKART_TEST_REPLICA_URL").unwrap_or_else(|_| {
        panic!(
            "FITKART_TEST_REPLICA_URL is not set: run these tests with \
             `bash scripts/test-replica.sh`, which creates a primary and a hot standby of it"
        )
    })
}

/// The URL of the same database as `database_url` (on the primary) on the standby.
fn on_standby(database_url: &str) -> String {
    let name = database_url.rsplit_once('/').expect("a database name").1;
    let server = standby_server_url();
    format!("{}/{name}", server.rsplit_once('/').expect("a database").0)
}

async fn connect(url: &str) -> tokio_postgres::Client {
    db::connect(&db::parse_url(url).expect("a URL"))
        .await
        .expect("connect")
}

/// Waits until the standby has replayed everything the primary has written so far.
async fn wait_until_replayed(server: &TestServer) {
    let lsn: String = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let standby = connect(&standby_server_url()).await;
    for _ in 0..600 {
        let replayed: bool = standby
            .query_one(
                &format!("SELECT coalesce(pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn, false)"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if replayed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the standby did not replay up to {lsn} within 30 s");
}

/// The standby's replay, paused until [`PausedReplay::resume`] (or drop, also on a panic).
struct PausedReplay {
    resumed: bool,
}

impl PausedReplay {
    async fn start() -> Self {
        let standby = connect(&standby_server_url()).await;
        standby
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .unwrap();
        for _ in 0..200 {
            let state: String = standby
                .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
                .await
                .unwrap()
                .get(0);
            if state == "paused" {
                return Self { resumed: false };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the standby's replay did not pause");
    }

    async fn resume(mut self) {
        connect(&standby_server_url())
            .await
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .unwrap();
        self.resumed = true;
    }
}

impl Drop for PausedReplay {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = Command::new("psql")
                .args([&standby_server_url(), "-c", "SELECT pg_wal_replay_resume()"])
                .output();
        }
    }
}

/// `fitkart_replica_reads_total{served_by=...}` from the server's `/metrics`.
async fn reads_served_by(server_url: &str, served_by: &str) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{server_url}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("fitkart_replica_reads_total{{served_by=\"{served_by}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

async fn server_with_replica() -> TestServer {
    TestServer::start_with(|config| {
        config.jwt_secret = JwtSecret::new(JWT_SECRET).expect("a long secret");
        config.read_database_url = Some(on_standby(&config.database_url));
        config.metrics_token = Some(MetricsToken::new(METRICS_TOKEN).expect("a long token"));
    })
    .await
    .unwrap()
}

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Replica Walker".into(),
        line1: "1 Standby Street".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: "12345".into(),
        country: "US".into(),
        phone: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_sees_its_own_push_while_the_replica_lags_and_the_replica_serves_once_caught_up() {
    let server = server_with_replica().await;
    let url = base_url(&server);
    let phone = Phone::new(&url);
    let user = phone
        .app
        .register("lagging@example.com", PASSWORD, "Lagging")
        .await
        .unwrap();
    grant(&server, user.id, 50_000).await;
    phone.app.sync().await.unwrap();
    wait_until_replayed(&server).await;

    // Caught up: the pull of a sync with nothing to push is served by the replica.
    let from_replica = reads_served_by(&url, "replica").await;
    assert!(phone.app.sync().await.unwrap().complete);
    assert!(
        reads_served_by(&url, "replica").await > from_replica,
        "a caught-up replica served no read"
    );

    // The replica stops applying the primary's changes; the phone walks and orders.
    let paused = PausedReplay::start().await;
    let behind = reads_served_by(&url, "primary_replica_behind").await;
    let day = days_ago(1);
    phone.walk(day, "phone", 6_000);
    let products = phone.app.products().unwrap();
    let cheapest = products.iter().min_by_key(|p| p.coin_price).unwrap();
    phone
        .app
        .place_order(
            &[OrderLine {
                product_id: cheapest.id,
                quantity: 1,
            }],
            &address(),
        )
        .unwrap();
    assert!(phone.app.sync().await.unwrap().complete);

    let standby = connect(&on_standby(server.db().url())).await;
    let orders_on_standby: i64 = standby
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders_on_standby, 0, "the standby was meant to lag");
    // The pull after the push saw the push: the device holds exactly the server's state
    // (its order settled, the day's coins, the ledger), read back over lag-tolerant routes.
    assert_converged(&server, &[&phone]).await;
    assert_steps_equal_server(&server, &phone.app, &phone.access_token(), day, day).await;
    assert_eq!(phone.app.orders().unwrap().len(), 1);
    assert!(
        reads_served_by(&url, "primary_replica_behind").await > behind,
        "the primary did not stand in for the lagging replica"
    );

    // Caught up again, the replica serves the next pull.
    paused.resume().await;
    wait_until_replayed(&server).await;
    let from_replica = reads_served_by(&url, "replica").await;
    assert!(phone.app.sync().await.unwrap().complete);
    assert!(reads_served_by(&url, "replica").await > from_replica);
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_tolerates_lag_but_a_cursor_ahead_of_the_replica_is_never_expired() {
    let server = server_with_replica().await;
    let url = base_url(&server);
    // A second instance without a replica, on the same database (a mixed deployment).
    let plain = ServerProcess::start(server.db().url(), free_port(), JWT_SECRET, &[]).await;
    let user = register_user(&url, "catalogue@example.com").await;
    {
        let mut client = server.db().client().await.unwrap();
        fitkart_sync_server::auth::bootstrap::create_admin(
            &mut client,
            "admin@example.com",
            "Admin",
            PASSWORD,
            false,
        )
        .await
        .unwrap();
    }
    let http = reqwest::Client::new();
    let (status, login) = send_json(
        &http,
        Method::POST,
        &format!("{url}/api/v1/auth/login"),
        None,
        Some(&json!({"email": "admin@example.com", "password": PASSWORD})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{login}");
    let admin = login["access_token"].as_str().unwrap().to_owned();
    wait_until_replayed(&server).await;

    let paused = PausedReplay::start().await;
    let (status, product) = send_json(
        &http,
        Method::POST,
        &format!("{}/api/v1/admin/products", plain.url()),
        Some(&admin),
        Some(&json!({
            "sku": "REPLICA-1", "name": "Lag Socks", "description": "Warm",
            "category": "apparel", "coin_price": 1234, "stock": 10
        })),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{product}");
    let product_id = product["id"].as_str().unwrap().to_owned();
    let listed = |page: &serde_json::Value| {
        page["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == product_id.as_str())
    };

    // The catalogue read is served by the lagging replica: the new product is not there yet.
    let (status, page) = send_json(
        &http,
        Method::GET,
        &format!("{url}/api/v1/products?limit=100"),
        Some(&user.token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        !listed(&page),
        "the catalogue was not read from the replica"
    );
    let (status, _) = send_json(
        &http,
        Method::GET,
        &format!("{url}/api/v1/leaderboard"),
        Some(&user.token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "a leaderboard from the replica");

    // The instance without a replica hands out a cursor that includes the new product...
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("?cursor={c}"));
        let (status, page) = send_json(
            &http,
            Method::GET,
            &format!("{}/api/v1/sync/pull{query}", plain.url()),
            Some(&user.token),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{page}");
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        if page["has_more"] == false {
            break;
        }
    }
    // ...which is ahead of the replica, yet the instance with the replica serves it (from
    // the primary): nothing new, and never `cursor_expired`.
    let cursor = cursor.unwrap();
    let (status, page) = send_json(
        &http,
        Method::GET,
        &format!("{url}/api/v1/sync/pull?cursor={cursor}"),
        Some(&user.token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "a cursor ahead of the replica: {page}");
    assert_eq!(page["has_more"], false);
    assert_eq!(page["next_cursor"], cursor.as_str());
    assert!(page["changes"]["products"].as_array().unwrap().is_empty());
    let on_standby: i64 = connect(&on_standby(server.db().url()))
        .await
        .query_one(
            "SELECT count(*) FROM reward_products WHERE sku = 'REPLICA-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_standby, 0, "the standby was meant to lag");

    // Once the replica has caught up, the catalogue shows the product.
    paused.resume().await;
    wait_until_replayed(&server).await;
    let (_, page) = send_json(
        &http,
        Method::GET,
        &format!("{url}/api/v1/products?limit=100"),
        Some(&user.token),
        None,
    )
    .await
    .unwrap();
    assert!(listed(&page));
    drop(plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_down_sends_every_read_to_the_primary() {
    let server = TestServer::start_with(|config| {
        config.read_database_url = Some(format!(
            "postgres://postgres@127.0.0.1:{}/nowhere",
            free_port()
        ));
        config.metrics_token = Some(MetricsToken::new(METRICS_TOKEN).expect("a long token"));
    })
    .await
    .unwrap();
    let url = base_url(&server);
    let phone = Phone::new(&url);
    let user = phone
        .app
        .register("down@example.com", PASSWORD, "Down")
        .await
        .unwrap();
    grant(&server, user.id, 50_000).await;
    phone.walk(days_ago(1), "phone", 7_000);
    assert!(phone.app.sync().await.unwrap().complete);
    let token = phone.access_token();
    for path in [
        "/products",
        "/leaderboard",
        "/orders",
        "/wallet/transactions",
    ] {
        let (status, body) = send_json(
            &reqwest::Client::new(),
            Method::GET,
            &format!("{url}/api/v1{path}"),
            Some(&token),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_converged(&server, &[&phone]).await;
    assert!(reads_served_by(&url, "primary_replica_failed").await > 0);
    assert_eq!(reads_served_by(&url, "replica").await, 0);
}

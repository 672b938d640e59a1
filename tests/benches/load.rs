//! Load test: a constant arrival rate of mixed traffic (step pushes, pulls, orders, reads)
//! against a release server for a bounded time, reporting errors, p50/p99 latency per kind,
//! and the server's memory and database connections at the start and the end.
//!
//! ```sh
//! bash scripts/load.sh                       # 100 requests/s for 20 s
//! FITKART_LOAD_RATE=400 FITKART_LOAD_SECONDS=60 bash scripts/load.sh
//! ```
//!
//! It starts `target/release/fitkart-sync-server` (scripts/load.sh builds it) on a fresh
//! database on loopback, and stops it at the end.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use fitkart_sync_server::testing::TestDb;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn connections(db: &TestDb) -> i64 {
    let client = db.client().await.expect("db");
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name()],
        )
        .await
        .expect("count")
        .get(0)
}

async fn start_server(db: &TestDb) -> Server {
    let exe = std::env::current_exe().expect("exe");
    let release = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let binary = release.join("fitkart-sync-server");
    assert!(
        binary.exists(),
        "{} is missing: run scripts/load.sh (it builds the release server)",
        binary.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new(binary)
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("FITKART_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "FITKART_JWT_SECRET",
            "load-test-secret-load-test-secret-0123456789",
        )
        .env("RUST_LOG", "warn")
        // The users come from addresses of their own, as through a proxy (see `address`):
        // from one address the server lets 20 accounts an hour be created.
        .env("FITKART_TRUST_FORWARDED_FOR", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Server { child, url };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not become ready");
}

struct User {
    token: String,
    device: uuid::Uuid,
    /// The address the user's requests come from (`X-Forwarded-For`, which the server is
    /// started to trust): each user its own, as phones on their own networks behind the
    /// operator's proxy, so the limit on accounts created per address is not reached.
    address: String,
}

/// The `n`th user's address, in 10.0.0.0/8.
fn address(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<String, u64>,
}

async fn run() {
    let rate = env_or("FITKART_LOAD_RATE", 100);
    let seconds = env_or("FITKART_LOAD_SECONDS", 20);
    let users_count = env_or("FITKART_LOAD_USERS", 50);
    let db = TestDb::new_empty().await.expect("database");
    let server = start_server(&db).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let url = server.url.clone();

    let mut users = Vec::new();
    for n in 0..users_count {
        let address = address(n);
        let answer: serde_json::Value = http
            .post(format!("{url}/api/v1/auth/register"))
            .header("x-forwarded-for", &address)
            .json(&serde_json::json!({
                "email": format!("load-{n}@example.com"),
                "password": "load-test-password", "display_name": format!("Load {n}")}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        let Some(token) = answer["access_token"].as_str().map(str::to_owned) else {
            panic!("registering load-{n} was refused: {answer}");
        };
        let device = uuid::Uuid::now_v7();
        http.post(format!("{url}/api/v1/devices"))
            .bearer_auth(&token)
            .header("x-forwarded-for", &address)
            .header("x-fitkart-protocol-version", "1")
            .json(&serde_json::json!({"device_id": device, "platform": "other"}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("device");
        users.push(User {
            token,
            device,
            address,
        });
    }
    let products: serde_json::Value = http
        .get(format!("{url}/api/v1/products"))
        .bearer_auth(&users[0].token)
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("json");
    let product = products["products"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let users = Arc::new(users);

    let pid = server.child.id();
    let (rss_start, conns_start) = (rss_kib(pid), connections(&db).await);
    println!(
        "load: {rate} requests/s for {seconds} s, {users_count} users, against a release server\n"
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let (http, url, users, tally, product) = (
            http.clone(),
            url.clone(),
            users.clone(),
            tally.clone(),
            product.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let user = &users[(i as usize) % users.len()];
            let (kind, request) = match i % 10 {
                0..=3 => {
                    let day = Utc::now().date_naive() - Days::new(1 + (i / 50) % 6);
                    let body = serde_json::json!({"device_id": user.device, "mutations": [{
                        "id": uuid::Uuid::now_v7(), "kind": "record_steps",
                        "created_at": Utc::now(),
                        "payload": {"records": [{"date": day, "source": "phone",
                            "steps": 1000 + i as i64, "recorded_at": day.and_hms_opt(21, 0, 0)
                                .unwrap_or_default().and_utc()}]}}]});
                    (
                        "push steps",
                        http.post(format!("{url}/api/v1/sync/push")).json(&body),
                    )
                }
                4 | 5 => (
                    "pull",
                    http.get(format!("{url}/api/v1/sync/pull?limit=500")),
                ),
                6 => {
                    let body = serde_json::json!({"client_order_id": uuid::Uuid::now_v7(),
                        "items": [{"product_id": product, "quantity": 1}],
                        "shipping_address": {"name": "Load", "line1": "1 Load St",
                            "city": "Springfield", "postal_code": "12345", "country": "US"}});
                    (
                        "order",
                        http.post(format!("{url}/api/v1/orders")).json(&body),
                    )
                }
                7 => ("wallet", http.get(format!("{url}/api/v1/wallet"))),
                8 => ("today", http.get(format!("{url}/api/v1/steps/today"))),
                _ => ("leaderboard", http.get(format!("{url}/api/v1/leaderboard"))),
            };
            let sent = Instant::now();
            let outcome = request
                .bearer_auth(&user.token)
                .header("x-forwarded-for", &user.address)
                .header("x-fitkart-protocol-version", "1")
                .send()
                .await;
            let took = sent.elapsed();
            let error = match outcome {
                Ok(response) if response.status().is_success() => None,
                // A user without enough coins is a correct answer, not an error.
                Ok(response) if kind == "order" && response.status() == 409 => None,
                Ok(response) => Some(format!("{kind} {}", response.status())),
                Err(err) => Some(format!("{kind} {}", err.without_url())),
            };
            let mut tally = tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tally.latencies.entry(kind).or_default().push(took);
            if let Some(error) = error {
                *tally.errors.entry(error).or_default() += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let (rss_end, conns_end) = (rss_kib(pid), connections(&db).await);

    let tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut all: Vec<Duration> = Vec::new();
    println!(
        "{:<12} {:>8} {:>10} {:>10}",
        "kind", "requests", "p50 ms", "p99 ms"
    );
    for (kind, latencies) in &tally.latencies {
        let mut sorted = latencies.clone();
        sorted.sort();
        all.extend(&sorted);
        println!(
            "{kind:<12} {:>8} {:>10.2} {:>10.2}",
            sorted.len(),
            percentile(&sorted, 0.50),
            percentile(&sorted, 0.99)
        );
    }
    all.sort();
    println!(
        "{:<12} {:>8} {:>10.2} {:>10.2}",
        "all",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );
    let errors: u64 = tally.errors.values().sum();
    println!(
        "\nachieved {:.0} requests/s; errors: {errors} {:?}",
        all.len() as f64 / elapsed.as_secs_f64(),
        tally.errors
    );
    println!(
        "server memory (RSS): {} KiB at start, {} KiB at end; database connections: {conns_start} at start, {conns_end} at end",
        rss_start, rss_end
    );
    drop(server);
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

//! Crash and restart tests: the server process killed with SIGKILL in the middle of pushes and
//! orders, and PostgreSQL restarted under load. Afterwards nothing is applied twice, nothing
//! acknowledged is lost, the ledger verifies and every phone converges.
//!
//! PostgreSQL's restart cuts every connection on the machine, so `scripts/test.sh` runs this
//! binary on its own after the rest of the suite:
//!
//! ```sh
//! cargo nextest run -p fitkart-e2e --test crash --test-threads 1
//! ```

use std::process::Command;
use std::time::Duration;

use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_e2e::{Phone, ServerProcess, assert_converged, days_ago, free_port, grant};
use fitkart_sync_server::testing::TestServer;

const PASSWORD: &str = "crash-test-password";
/// The JWT secret of the server process and of the in-process server that checks the
/// phones' caches over the API, so the phones' tokens are valid on both.
const JWT_SECRET: &str = "crash-test-secret-crash-test-secret-0123456789";

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Crash Walker".into(),
        line1: "1 Crash Lane".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: "12345".into(),
        country: "US".into(),
        phone: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_mid_push_and_mid_order_loses_and_doubles_nothing() {
    // An in-process server that owns the fresh database and checks the phones' caches over
    // the API at the end (with the same secret, so the phones' tokens work there too).
    let holder = TestServer::start_with(|config| {
        config.jwt_secret =
            fitkart_sync_server::config::JwtSecret::new(JWT_SECRET).expect("a long secret");
    })
    .await
    .unwrap();
    let port = free_port();
    let mut server = ServerProcess::start(holder.db().url(), port, JWT_SECRET, &[]).await;
    let url = server.url();

    let mut phones = Vec::new();
    for n in 0..3 {
        let phone = Phone::new(&url);
        let user = phone
            .app
            .register(&format!("crash-{n}@example.com"), PASSWORD, "Crash")
            .await
            .unwrap();
        grant(&holder, user.id, 5_000).await;
        phone.app.sync().await.unwrap();
        phones.push(phone);
    }

    for round in 0..6_u64 {
        for (n, phone) in phones.iter().enumerate() {
            let day = days_ago(1 + (round % 5));
            phone.walk(day, "phone", 2_000 + 1_500 * round as i64 + n as i64);
            if round % 2 == 0 {
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
            }
        }
        // Every phone syncs at once; the server dies under them after a few milliseconds.
        let syncs: Vec<_> = phones
            .iter()
            .map(|phone| {
                let app = phone.app.clone();
                tokio::spawn(async move { app.sync().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(3 + round * 7)).await;
        server.kill();
        for sync in syncs {
            let _ = sync.await;
        }
        server = ServerProcess::start(holder.db().url(), port, JWT_SECRET, &[]).await;
    }

    for phone in &phones {
        let report = phone.app.sync().await.unwrap();
        assert!(report.complete);
    }
    assert_converged(&holder, &phones.iter().collect::<Vec<_>>()).await;
    let client = holder.db().client().await.unwrap();
    let doubled: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT reference_id FROM coin_transactions
             WHERE kind = 'order_hold' GROUP BY reference_id HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(doubled, 0, "an order was held twice");
    let orders: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        orders, 9,
        "every order the phones placed exists once (3 phones x 3 rounds)"
    );
    server.kill();
}

fn restart_postgres() {
    let versions = std::fs::read_dir("/etc/postgresql").expect("a local PostgreSQL cluster");
    let version = versions
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a version");
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_under_load_loses_nothing_acknowledged() {
    let server = TestServer::start().await.unwrap();
    let url = fitkart_e2e::base_url(&server);
    let mut phones = Vec::new();
    for n in 0..2 {
        let phone = Phone::new(&url);
        phone
            .app
            .register(&format!("pg-{n}@example.com"), PASSWORD, "Pg")
            .await
            .unwrap();
        phones.push(phone);
    }

    // Phones record and sync in a loop while PostgreSQL restarts twice.
    let load: Vec<_> = phones
        .iter()
        .enumerate()
        .map(|(n, phone)| {
            let app = phone.app.clone();
            tokio::spawn(async move {
                for i in 0..30_i64 {
                    let day = days_ago(1 + (i as u64 % 4));
                    app.record_steps(
                        day,
                        "phone",
                        1_000 + i * 250 + n as i64,
                        fitkart_e2e::at(day, 20, 0),
                    )
                    .unwrap();
                    let _ = app.sync().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    restart_postgres();
    tokio::time::sleep(Duration::from_millis(250)).await;
    restart_postgres();
    for task in load {
        task.await.unwrap();
    }

    // Once the database is back, every phone converges.
    for phone in &phones {
        let mut synced = false;
        for _ in 0..20 {
            if phone.app.sync().await.is_ok_and(|r| r.complete) {
                synced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(synced, "a phone never synced after the restarts");
    }
    assert_converged(&server, &phones.iter().collect::<Vec<_>>()).await;
    for (n, phone) in phones.iter().enumerate() {
        // The last total of each day reached the server (max-register).
        for day_offset in 1..=4_u64 {
            let day = days_ago(day_offset);
            let history = phone.app.step_history(day, day).unwrap();
            let last = (0..30_i64)
                .filter(|i| 1 + (*i as u64 % 4) == day_offset)
                .map(|i| 1_000 + i * 250 + n as i64)
                .max()
                .unwrap();
            assert_eq!(history[0].sources[0].server_steps, last, "{day}");
        }
    }
}

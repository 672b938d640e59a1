//! The backup and restore drill of `docs/operations.md` ("Back up and restore"), end to end
//! with the real tools: a database populated through the server by devices (accounts, steps,
//! coins, orders) is backed up with `pg_dump --format=custom`, restored with `pg_restore`
//! into a new database, checked with `fitkart-sync-server verify-ledger`, and served again:
//! the devices sync against the restored copy and converge, a device whose cursor is ahead of
//! the backup refetches a snapshot, and a new phone restores an account from it.

use std::path::Path;
use std::process::Command;

use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_e2e::{
    Phone, assert_converged, assert_steps_equal_server, base_url, days_ago, grant,
    verify_ledger_command,
};
use fitkart_sync_server::config::JwtSecret;
use fitkart_sync_server::testing::{TestDb, TestServer};

const PASSWORD: &str = "backup-drill-password";
/// Both servers sign with it, like a restored installation keeps its configuration.
const JWT_SECRET: &str = "backup-drill-secret-backup-drill-secret-0123456";

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Backup Walker".into(),
        line1: "1 Archive Road".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: "12345".into(),
        country: "US".into(),
        phone: None,
    }
}

/// Every wallet (user, available, frozen, earned, spent), by user.
async fn wallets(db: &TestDb) -> Vec<(uuid::Uuid, i64, i64, i64, i64)> {
    db.client()
        .await
        .unwrap()
        .query(
            "SELECT user_id, available_coins, frozen_coins, lifetime_earned, lifetime_spent
             FROM wallets ORDER BY user_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// The phone, reopened on its own database against another server (the app's server URL
/// still points at the same name after ops restored the database behind it).
fn moved(phone: Phone, url: &str) -> Phone {
    let Phone {
        dir, app, tokens, ..
    } = phone;
    drop(app);
    Phone::open(dir, url, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_pg_dump_verifies_and_devices_sync_against_it() {
    let secret = || JwtSecret::new(JWT_SECRET).expect("a long secret");
    let original = TestServer::start_with(|c| c.jwt_secret = secret())
        .await
        .unwrap();
    let url = base_url(&original);

    // Populate through the server: three walkers with coins, three days of steps, an order.
    let mut phones = Vec::new();
    for n in 0..3_i64 {
        let phone = Phone::new(&url);
        let user = phone
            .app
            .register(&format!("backup-{n}@example.com"), PASSWORD, "Backup")
            .await
            .unwrap();
        grant(&original, user.id, 40_000).await;
        phone.app.sync().await.unwrap();
        for day in 1..=3 {
            phone.walk(days_ago(day), "phone", 3_000 + 1_000 * n + 500 * day as i64);
        }
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
        phones.push(phone);
    }
    assert_converged(&original, &phones.iter().collect::<Vec<_>>()).await;

    // The backup.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("fitkart.dump");
    let dump = dump.to_str().unwrap();
    run(
        "pg_dump",
        &["--format=custom", "--file", dump, original.db().url()],
    );
    assert!(Path::new(dump).metadata().unwrap().len() > 0);
    let at_backup = wallets(original.db()).await;

    // After the backup the first walker keeps going: the restore will not have this, and
    // that phone's cursor will be ahead of the restored database.
    phones[0].walk(days_ago(0), "phone", 2_500);
    assert!(phones[0].app.sync().await.unwrap().complete);

    // The restore, into a new database.
    let restored = TestDb::new_empty().await.unwrap();
    run(
        "pg_restore",
        &[
            "--exit-on-error",
            "--no-owner",
            "--dbname",
            restored.url(),
            dump,
        ],
    );
    let (ok, report) = verify_ledger_command(restored.url());
    assert!(
        ok && report.contains("ledger OK"),
        "verify-ledger:\n{report}"
    );
    assert_eq!(
        wallets(&restored).await,
        at_backup,
        "wallets as at the backup"
    );

    // Serve the restored copy; the devices come back to it.
    let served = TestServer::start_on(restored, |c| c.jwt_secret = secret())
        .await
        .unwrap();
    let restored_url = base_url(&served);
    drop(original);
    let phones: Vec<Phone> = phones
        .into_iter()
        .map(|phone| moved(phone, &restored_url))
        .collect();
    for (n, phone) in phones.iter().enumerate() {
        let report = phone.app.sync().await.unwrap();
        assert!(report.complete);
        assert_eq!(
            report.refetched_snapshot,
            n == 0,
            "only the phone that synced after the backup holds a cursor the copy cannot serve"
        );
    }
    // The walker who synced after the backup still has today's steps on the phone (the device
    // is authoritative for raw steps), but the restored server never saw them: the app shows
    // their coins as not yet paid, which is what a restore without WAL replay loses.
    let view = phones[0].app.wallet().unwrap();
    assert_eq!(view.estimated_pending_coins, fitkart_e2e::day_coins(2_500));
    assert_converged(&served, &phones[1..].iter().collect::<Vec<_>>()).await;
    for phone in &phones[1..] {
        assert_steps_equal_server(
            &served,
            &phone.app,
            &phone.access_token(),
            days_ago(3),
            days_ago(1),
        )
        .await;
    }

    // A new phone signs in to a restored account and restores it from a snapshot.
    let fresh = Phone::new(&restored_url);
    fresh
        .app
        .login("backup-2@example.com", PASSWORD)
        .await
        .unwrap();
    assert!(fresh.app.sync().await.unwrap().complete);
    assert_converged(&served, &[&fresh]).await;
    assert_eq!(fresh.app.orders().unwrap().len(), 1);
    assert_steps_equal_server(
        &served,
        &fresh.app,
        &fresh.access_token(),
        days_ago(3),
        days_ago(1),
    )
    .await;
}

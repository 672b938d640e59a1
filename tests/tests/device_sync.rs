//! End-to-end: real phones (fitkart-core on temporary SQLite files) against the real sync
//! server on a fresh PostgreSQL database. Each test ends with the ledger verified and every
//! phone's queue empty and wallet equal to the server's.

use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_core::{Fault, FitKartError, OrderSync};
use fitkart_e2e::{
    CuttingProxy, Phone, api_get, assert_converged, base_url, day_coins, days_ago, grant,
    server_wallet,
};
use fitkart_sync_server::testing::TestServer;

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Ann Walker".into(),
        line1: "1 Main Street".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: "12345".into(),
        country: "US".into(),
        phone: None,
    }
}

async fn signed_up(server: &TestServer, email: &str) -> Phone {
    let phone = Phone::new(&base_url(server));
    phone
        .app
        .register(email, "correct horse battery", "Ann")
        .await
        .expect("register");
    phone
}

async fn second_phone(server: &TestServer, email: &str) -> Phone {
    let phone = Phone::new(&base_url(server));
    phone
        .app
        .login(email, "correct horse battery")
        .await
        .expect("login");
    phone
}

/// The product of the seeded catalogue that costs `coins`.
fn product_costing(phone: &Phone, coins: i64) -> uuid::Uuid {
    phone
        .app
        .products()
        .unwrap()
        .into_iter()
        .find(|p| p.coin_price == coins)
        .expect("a seeded product at that price")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_offline_for_days_then_syncing_in_either_order_are_paid_once() {
    let server = TestServer::start().await.unwrap();
    let a = signed_up(&server, "two@example.com").await;
    let b = second_phone(&server, "two@example.com").await;

    // Three days offline on both; the watch on b saw more on day 2, the phone more on day 3.
    let days = [(3, 4000, 3500), (2, 6000, 7000), (1, 9000, 2000)];
    for (days, on_a, on_b) in days {
        a.walk(days_ago(days), "phone", on_a);
        b.walk(days_ago(days), "watch", on_b);
    }
    // b first, then a, then b again (so b sees a's days).
    let first = b.app.sync().await.unwrap();
    let second = a.app.sync().await.unwrap();
    b.app.sync().await.unwrap();
    assert!(first.complete && second.complete);
    assert_eq!(first.applied, 1, "b's three days travel as one mutation");

    let expected: i64 = days
        .into_iter()
        .map(|(_, on_a, on_b)| day_coins(on_a.max(on_b)))
        .sum();
    let rewards: i64 = b
        .app
        .coin_history(100, None)
        .unwrap()
        .iter()
        .filter(|t| t.kind == "step_reward")
        .map(|t| t.available_delta)
        .sum();
    assert_eq!(
        rewards, expected,
        "each day paid once, on its largest source"
    );
    assert_eq!(a.app.wallet().unwrap(), b.app.wallet().unwrap());
    let day2 = b.app.step_history(days_ago(2), days_ago(2)).unwrap();
    assert_eq!(day2[0].total_steps, 7000);
    assert!(!day2[0].pending);
    assert_converged(&server, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_killed_after_the_server_applied_a_push_pays_nothing_twice() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "killed@example.com").await;
    phone.walk(days_ago(1), "phone", 8000);
    phone.walk(days_ago(2), "phone", 12000);

    // The push reaches the server and is applied; the answer never reaches the app.
    phone.faults.inject("/sync/push", Fault::DropResponse);
    phone.faults.inject("/sync/push", Fault::DropRequest);
    for _ in 0..8 {
        phone.faults.inject("/sync/push", Fault::DropRequest);
    }
    let err = phone.app.sync().await.unwrap_err();
    assert!(matches!(err, FitKartError::Offline { .. }), "{err:?}");
    assert_eq!(phone.app.pending_changes().unwrap(), 1);
    let paid = server_wallet(&server, &phone).await.available_coins;
    assert!(paid >= day_coins(8000) + day_coins(12000));

    // The app is killed and started again on the same file.
    let phone = phone.restart();
    let report = phone.app.sync().await.unwrap();

    assert_eq!((report.applied, report.duplicates), (0, 1));
    assert_eq!(server_wallet(&server, &phone).await.available_coins, paid);
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_timeouts_and_cut_connections_are_retried_until_the_sync_converges() {
    let server = TestServer::start().await.unwrap();
    let proxy = CuttingProxy::start(server.addr()).await;
    let phone = Phone::new(&proxy.url());
    phone
        .app
        .register("faults@example.com", "correct horse battery", "Ann")
        .await
        .unwrap();
    phone.walk(days_ago(1), "phone", 11000);
    phone.app.sync().await.unwrap();
    phone.walk(days_ago(0), "phone", 3000);

    // 500s and timeouts from the transport, then connections cut mid-response by the proxy
    // (the server acts on the request, the app never sees the answer).
    phone.faults.inject("/sync/push", Fault::Status(500));
    phone.faults.inject("/sync/push", Fault::Timeout);
    phone.faults.inject("/sync/pull", Fault::Status(503));
    proxy.cut_next(2);
    let report = phone.app.sync().await.unwrap();

    assert!(report.complete);
    assert_eq!(phone.faults.pending_faults(), 0);
    assert_eq!(proxy.cuts_left(), 0, "both cuts happened");
    let today = phone.app.steps_today().unwrap();
    assert_eq!(today.total_steps, 3000);
    assert!(!today.pending);
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_order_the_server_refuses_releases_its_hold_and_says_why() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "broke@example.com").await;
    phone.app.sync().await.unwrap();
    let user: uuid::Uuid = phone.app.current_user().unwrap().unwrap().id;
    grant(&server, user, 1000).await;
    phone.app.sync().await.unwrap();

    let socks = product_costing(&phone, 1500);
    let order = phone
        .app
        .place_order(
            &[OrderLine {
                product_id: socks,
                quantity: 1,
            }],
            &address(),
        )
        .unwrap();
    let held = phone.app.wallet().unwrap();
    assert_eq!(held.pending_hold_coins, 1500);
    assert_eq!(held.available_coins, 1000 - 1500);
    assert_eq!(
        phone.app.orders().unwrap()[0].sync,
        OrderSync::PendingPlacement
    );

    let report = phone.app.sync().await.unwrap();

    assert_eq!(
        report.rejected,
        [("place_order".to_owned(), "insufficient_coins".to_owned())]
    );
    let wallet = phone.app.wallet().unwrap();
    assert_eq!(
        (wallet.available_coins, wallet.pending_hold_coins),
        (1000, 0)
    );
    assert!(phone.app.orders().unwrap().is_empty());
    let rejections = phone.app.rejections().unwrap();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].code, "insufficient_coins");
    assert_eq!(rejections[0].client_order_id, Some(order.client_order_id));
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_affordable_offline_order_is_held_then_confirmed_and_a_new_phone_restores_everything() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "restore@example.com").await;
    phone.app.sync().await.unwrap();
    let user: uuid::Uuid = phone.app.current_user().unwrap().unwrap().id;
    grant(&server, user, 5000).await;
    for days in 1..=4 {
        phone.walk(days_ago(days), "phone", 6000 + days as i64 * 100);
    }
    phone.app.sync().await.unwrap();
    let bottle = product_costing(&phone, 3500);
    phone
        .app
        .place_order(
            &[OrderLine {
                product_id: bottle,
                quantity: 1,
            }],
            &address(),
        )
        .unwrap();
    phone.app.sync().await.unwrap();
    let orders = phone.app.orders().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].sync, OrderSync::Synced);
    assert!(orders[0].order_code.is_some());
    assert_eq!(phone.app.wallet().unwrap().held_coins, 3500);

    let fresh = second_phone(&server, "restore@example.com").await;
    let report = fresh.app.sync().await.unwrap();

    assert!(report.pulled.total() > 0);
    assert_eq!(fresh.app.wallet().unwrap(), phone.app.wallet().unwrap());
    assert_eq!(
        fresh.app.coin_history(1000, None).unwrap(),
        phone.app.coin_history(1000, None).unwrap()
    );
    assert_eq!(fresh.app.orders().unwrap(), phone.app.orders().unwrap());
    assert_eq!(
        fresh.app.step_history(days_ago(10), days_ago(0)).unwrap(),
        phone.app.step_history(days_ago(10), days_ago(0)).unwrap()
    );
    assert_eq!(
        fresh.app.achievements().unwrap(),
        phone.app.achievements().unwrap()
    );
    assert!(fresh.app.has_synced().unwrap());
    assert_converged(&server, &[&phone, &fresh]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_server_cannot_serve_refetches_a_snapshot_and_keeps_the_queue() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "cursor@example.com").await;
    phone.walk(days_ago(1), "phone", 5000);
    phone.app.sync().await.unwrap();
    let user = phone.app.current_user().unwrap().unwrap().id;
    // A cursor from the future (as after a server restore from an older backup).
    let ahead = base64_url(&format!("c1:{user}:999999:999999"));
    phone
        .app
        .store()
        .write(|tx| -> Result<(), fitkart_core::Error> {
            tx.execute("UPDATE sync_state SET pull_cursor = ?1", [&ahead])?;
            Ok(())
        })
        .unwrap();
    phone.walk(days_ago(0), "phone", 2500);

    let report = phone.app.sync().await.unwrap();

    assert!(report.refetched_snapshot);
    assert_eq!(
        report.applied, 1,
        "the queued steps were pushed, not dropped"
    );
    assert_eq!(phone.app.steps_today().unwrap().total_steps, 2500);
    assert_converged(&server, &[&phone]).await;
}

fn base64_url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_required_stops_the_sync_and_changes_nothing() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "old-app@example.com").await;
    phone.app.sync().await.unwrap();
    phone.walk(days_ago(1), "phone", 5000);
    let before = (
        phone.app.wallet().unwrap(),
        phone.app.pending_changes().unwrap(),
    );
    phone.faults.inject("/sync/push", Fault::Status(426));

    let err = phone.app.sync().await.unwrap_err();

    assert_eq!(err, FitKartError::UpgradeRequired);
    assert_eq!(
        (
            phone.app.wallet().unwrap(),
            phone.app.pending_changes().unwrap()
        ),
        before
    );
    assert_eq!(server_wallet(&server, &phone).await.available_coins, 0);
    phone.app.sync().await.unwrap();
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_pending_changes_refuses_and_another_user_never_sees_the_first_ones_data() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "first@example.com").await;
    phone.walk(days_ago(1), "phone", 9000);
    phone.app.sync().await.unwrap();
    phone.walk(days_ago(0), "phone", 4000);

    assert_eq!(
        phone.app.logout(false).await,
        Err(FitKartError::PendingChanges { count: 1 })
    );

    // Another person signs in on the same phone without the first signing out.
    let other = fitkart_core::FitKart::clone(&phone.app);
    let second = other
        .register("second@example.com", "correct horse battery", "Bo")
        .await
        .unwrap();
    assert_eq!(other.current_user().unwrap().unwrap().id, second.id);
    assert_eq!(other.wallet().unwrap().available_coins, 0);
    assert!(other.coin_history(100, None).unwrap().is_empty());
    assert!(
        other
            .step_history(days_ago(10), days_ago(0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(other.pending_changes().unwrap(), 0);
    other.sync().await.unwrap();
    assert_eq!(server_wallet(&server, &phone).await.available_coins, 0);
    let second_wallet = api_get(&server, &phone.access_token(), "/wallet").await;
    assert_eq!(
        second_wallet["lifetime_earned"], 0,
        "nothing of the first user was pushed"
    );
    assert_converged(&server, &[&phone]).await;

    // The first user comes back: their parked change is still there and syncs as theirs.
    other.logout(false).await.unwrap();
    other
        .login("first@example.com", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(other.pending_changes().unwrap(), 1);
    other.sync().await.unwrap();
    assert_eq!(other.steps_today().unwrap().total_steps, 4000);
    assert_converged(&server, &[&phone]).await;

    phone.walk(days_ago(0), "phone", 5000);
    phone.app.logout(true).await.unwrap();
    assert_eq!(phone.app.current_user().unwrap(), None);
}

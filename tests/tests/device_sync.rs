//! End-to-end: real phones (fitkart-core on temporary SQLite files) against the real sync
//! server on a fresh PostgreSQL database per test. Each test ends with the server's ledger
//! verified and every phone's queue empty and cache equal to the server's state for its user
//! (wallet view == `GET /wallet`, coin history == `GET /wallet/transactions`, orders ==
//! `GET /orders`).

use std::collections::HashSet;

use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_core::{Fault, FitKart, FitKartError, OrderSync};
use fitkart_e2e::{
    Cut, CuttingProxy, OnRequest, Phone, assert_cache_equals_server, assert_converged,
    assert_device_converged, assert_steps_equal_server, at, base_url, day_coins, days_ago, grant,
    quick_retries, server_orders, server_steps, server_transactions, server_wallet,
};
use fitkart_sync_server::testing::TestServer;

const PASSWORD: &str = "correct horse battery";

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
        .register(email, PASSWORD, "Ann")
        .await
        .expect("register");
    phone
}

async fn second_phone(server: &TestServer, email: &str) -> Phone {
    let phone = Phone::new(&base_url(server));
    phone.app.login(email, PASSWORD).await.expect("login");
    phone
}

/// A signed-up phone, synced once, whose user the server granted `coins`, synced again.
async fn funded(server: &TestServer, email: &str, coins: i64) -> Phone {
    let phone = signed_up(server, email).await;
    phone.app.sync().await.unwrap();
    let user = phone.app.current_user().unwrap().unwrap().id;
    grant(server, user, coins).await;
    phone.app.sync().await.unwrap();
    phone
}

/// The product of the seeded catalogue that costs `coins`.
fn product_costing(app: &FitKart, coins: i64) -> uuid::Uuid {
    app.products()
        .unwrap()
        .into_iter()
        .find(|p| p.coin_price == coins)
        .expect("a seeded product at that price")
        .id
}

fn order_one(app: &FitKart, coins: i64) -> uuid::Uuid {
    let line = OrderLine {
        product_id: product_costing(app, coins),
        quantity: 1,
    };
    app.place_order(&[line], &address())
        .unwrap()
        .client_order_id
}

/// Everything an app can read from the cache, to prove a failed sync changed nothing.
fn cache_snapshot(app: &FitKart) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}",
        app.wallet().unwrap(),
        app.coin_history(10_000, None).unwrap(),
        app.orders().unwrap(),
        app.step_history(days_ago(30), days_ago(0)).unwrap(),
        app.rejections().unwrap(),
        app.pending_changes().unwrap(),
    )
}

/// Step-reward coins in a coin history.
fn step_rewards(history: &[fitkart_core::protocol::steps::CoinTransaction]) -> i64 {
    history
        .iter()
        .filter(|t| t.kind == "step_reward")
        .map(|t| t.available_delta)
        .sum()
}

// ---- Two phones of one user ------------------------------------------------------------

/// Two phones of one user, offline for five days (steps only, no orders), then syncing:
/// `first` syncs, then the other, then `first` again to see the other's days.
async fn two_phones_offline_for_days(phone_syncs_first: bool) {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "two@example.com").await;
    let watch = second_phone(&server, "two@example.com").await;

    // (days ago, the phone's total, the watch's total): each day counts its larger source,
    // and two days pass the daily cap.
    let days = [
        (5, 4000, 3500),
        (4, 12000, 25000),
        (3, 6000, 7000),
        (2, 21000, 2000),
        (1, 9000, 9000),
    ];
    for (ago, on_phone, on_watch) in days {
        phone.walk(days_ago(ago), "phone", on_phone);
        watch.walk(days_ago(ago), "watch", on_watch);
    }
    let (first, second) = if phone_syncs_first {
        (&phone, &watch)
    } else {
        (&watch, &phone)
    };
    assert!(first.app.sync().await.unwrap().complete);
    assert!(second.app.sync().await.unwrap().complete);
    assert!(first.app.sync().await.unwrap().complete);

    // Coins: the rules applied once to each day's larger source.
    let token = phone.access_token();
    let expected: i64 = days
        .iter()
        .map(|&(_, on_phone, on_watch)| day_coins(on_phone.max(on_watch)))
        .sum();
    let ledger = server_transactions(&server, &token).await;
    assert_eq!(step_rewards(&ledger), expected, "each day paid once");
    let bonuses: Vec<_> = ledger
        .iter()
        .filter(|t| t.kind == "achievement_bonus")
        .map(|t| t.reference_id.clone())
        .collect();
    let unique: HashSet<_> = bonuses.iter().collect();
    assert_eq!(unique.len(), bonuses.len(), "each achievement paid once");
    let on_server = server_steps(&server, &token, days_ago(7), days_ago(0)).await;
    assert_eq!(on_server.len(), days.len());
    for (day, &(ago, on_phone, on_watch)) in on_server.iter().zip(&days) {
        assert_eq!(day.date, days_ago(ago));
        assert_eq!(day.total_steps, on_phone.max(on_watch));
        assert_eq!(day.coins_earned, day_coins(on_phone.max(on_watch)));
    }

    // One wallet, and both phones show exactly the server's state.
    let wallet = server_wallet(&server, &phone).await;
    assert_eq!(wallet, server_wallet(&server, &watch).await);
    assert_eq!(phone.app.wallet().unwrap(), watch.app.wallet().unwrap());
    for device in [&phone, &watch] {
        assert_steps_equal_server(
            &server,
            &device.app,
            &device.access_token(),
            days_ago(7),
            days_ago(0),
        )
        .await;
    }
    assert_converged(&server, &[&phone, &watch]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_offline_for_days_are_paid_once_when_the_first_syncs_first() {
    two_phones_offline_for_days(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_offline_for_days_are_paid_once_when_the_second_syncs_first() {
    two_phones_offline_for_days(false).await;
}

// ---- Killed mid-sync -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_killed_after_the_server_applied_a_push_pays_and_holds_nothing_twice() {
    let server = TestServer::start().await.unwrap();
    let url = base_url(&server);
    let phone = funded(&server, "killed@example.com", 5000).await;
    phone.walk(days_ago(1), "phone", 8000);
    phone.walk(days_ago(2), "phone", 12000);
    let order = order_one(&phone.app, 1500);
    let queued = phone.app.pending_changes().unwrap();
    assert_eq!(queued, 2, "a step report and an order");

    // The push reaches the server and is applied; its answer is lost, and every retry fails
    // before reaching the server, until the app is killed.
    phone.faults.inject("/sync/push", Fault::DropResponse);
    for _ in 0..quick_retries().max_retries {
        phone.faults.inject("/sync/push", Fault::DropRequest);
    }
    let err = phone.app.sync().await.unwrap_err();
    assert!(matches!(err, FitKartError::Offline { .. }), "{err:?}");
    assert_eq!(phone.faults.pending_faults(), 0);
    assert_eq!(phone.app.pending_changes().unwrap(), queued);
    let applied = server_wallet(&server, &phone).await;
    assert_eq!(applied.frozen_coins, 1500, "the server holds the order");
    let ledger = server_transactions(&server, &phone.access_token()).await;
    assert_eq!(step_rewards(&ledger), day_coins(8000) + day_coins(12000));
    let bonuses_before: i64 = ledger
        .iter()
        .filter(|t| t.kind == "achievement_bonus")
        .map(|t| t.available_delta)
        .sum();

    // Killed: the client is dropped and reopened on the same file over plain HTTP.
    let Phone {
        dir, app, tokens, ..
    } = phone;
    drop(app);
    let app = FitKart::open(fitkart_e2e::config(dir.path(), &url), tokens.clone()).unwrap();
    assert_eq!(app.pending_changes().unwrap(), queued, "nothing lost");
    assert_eq!(app.wallet().unwrap().pending_hold_coins, 1500);
    assert_eq!(app.orders().unwrap()[0].sync, OrderSync::PendingPlacement);

    // After the restart the phone reports a higher total for a day whose report is in
    // flight: that report is never edited (the server applied it), a new one follows it.
    app.record_steps(days_ago(1), "phone", 10000, at(days_ago(1), 21, 30))
        .unwrap();
    assert_eq!(app.pending_changes().unwrap(), queued + 1);

    let report = app.sync().await.unwrap();

    assert_eq!(report.pushed, queued + 1);
    assert_eq!((report.applied, report.duplicates), (1, queued));
    assert!(report.rejected.is_empty());
    assert_eq!(app.pending_changes().unwrap(), 0);
    let token = tokens_access(&tokens);
    let after: fitkart_core::protocol::steps::Wallet =
        serde_json::from_value(fitkart_e2e::api_get(&server, &token, "/wallet").await).unwrap();
    assert_eq!(after.frozen_coins, 1500, "held once");
    let ledger = server_transactions(&server, &token).await;
    assert_eq!(
        step_rewards(&ledger),
        day_coins(10000) + day_coins(12000),
        "paid once, for the higher total"
    );
    assert_eq!(
        after.available_coins - applied.available_coins,
        day_coins(10000) - day_coins(8000)
            + ledger
                .iter()
                .filter(|t| t.kind == "achievement_bonus")
                .map(|t| t.available_delta)
                .sum::<i64>()
            - bonuses_before,
        "only the increase was paid"
    );
    let orders = server_orders(&server, &token).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].client_order_id, order);
    assert_eq!(app.orders().unwrap()[0].sync, OrderSync::Synced);
    assert_steps_equal_server(&server, &app, &token, days_ago(7), days_ago(0)).await;
    assert_device_converged(&server, &app, &token).await;
}

fn tokens_access(tokens: &fitkart_core::MemoryTokenStore) -> String {
    use fitkart_core::TokenStore as _;
    tokens.load().unwrap().unwrap().access_token
}

/// A transport that lets the first request to a path reach the server and then never
/// answers, telling the test the request was served: the moment to kill the app.
struct ServedThenHung {
    inner: fitkart_core::HttpTransport,
    path: String,
    served: tokio::sync::Notify,
    hung: std::sync::atomic::AtomicBool,
}

impl fitkart_core::Transport for ServedThenHung {
    fn send(
        &self,
        request: fitkart_core::transport::HttpRequest,
    ) -> fitkart_core::transport::BoxFuture<
        '_,
        Result<fitkart_core::transport::HttpResponse, fitkart_core::TransportError>,
    > {
        Box::pin(async move {
            let hang = request.path.contains(&self.path)
                && !self.hung.swap(true, std::sync::atomic::Ordering::SeqCst);
            let answer = self.inner.send(request).await;
            if hang {
                self.served.notify_one();
                std::future::pending::<()>().await;
            }
            answer
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_killed_mid_push_resumes_on_restart_without_doubling_anything() {
    let server = TestServer::start().await.unwrap();
    let url = base_url(&server);
    let dir = tempfile::tempdir().unwrap();
    let tokens = std::sync::Arc::new(fitkart_core::MemoryTokenStore::new());
    let config = fitkart_e2e::config(dir.path(), &url);
    let transport = std::sync::Arc::new(ServedThenHung {
        inner: fitkart_core::HttpTransport::new(&url, config.request_timeout).unwrap(),
        path: "/sync/push".into(),
        served: tokio::sync::Notify::new(),
        hung: std::sync::atomic::AtomicBool::new(false),
    });
    let app = FitKart::open_with(
        config.clone(),
        tokens.clone(),
        transport.clone(),
        std::sync::Arc::new(fitkart_core::SystemClock),
    )
    .unwrap();
    app.register("kill@example.com", PASSWORD, "Ann")
        .await
        .unwrap();
    for ago in 1..=3 {
        app.record_steps(days_ago(ago), "phone", 7000, at(days_ago(ago), 21, 0))
            .unwrap();
    }

    // The push is applied by the server; the app is killed before the answer is stored.
    let syncing = tokio::spawn({
        let app = app.clone();
        async move { app.sync().await }
    });
    transport.served.notified().await;
    syncing.abort();
    assert!(syncing.await.unwrap_err().is_cancelled());
    drop(app);
    let token = tokens_access(&tokens);
    let paid = step_rewards(&server_transactions(&server, &token).await);
    assert_eq!(paid, 3 * day_coins(7000), "the server applied the push");

    let app = FitKart::open(config, tokens.clone()).unwrap();
    assert_eq!(
        app.pending_changes().unwrap(),
        1,
        "the push is still queued"
    );
    let report = app.sync().await.unwrap();

    assert_eq!((report.applied, report.duplicates), (0, 1));
    assert_eq!(
        step_rewards(&server_transactions(&server, &token).await),
        paid
    );
    assert_steps_equal_server(&server, &app, &token, days_ago(7), days_ago(0)).await;
    assert_device_converged(&server, &app, &token).await;
}

// ---- Faults on the wire ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_timeouts_are_retried_and_the_sync_converges_when_they_stop() {
    let server = TestServer::start().await.unwrap();
    let phone = funded(&server, "faults@example.com", 2000).await;
    phone.walk(days_ago(2), "phone", 11000);
    order_one(&phone.app, 1500);

    // Within the retry budget: 500s and timeouts on push and pull, then success.
    phone.faults.inject("/sync/push", Fault::Status(500));
    phone.faults.inject("/sync/push", Fault::Timeout);
    phone.faults.inject("/sync/pull", Fault::Status(500));
    phone.faults.inject("/sync/pull", Fault::Timeout);
    let report = phone.app.sync().await.unwrap();
    assert!(report.complete);
    assert_eq!(phone.faults.pending_faults(), 0);
    assert_eq!(report.applied, 2);
    assert_eq!(phone.app.wallet().unwrap().held_coins, 1500);
    assert_converged(&server, &[&phone]).await;

    // Beyond it: the server keeps failing, the sync gives up, nothing is lost; when the
    // faults stop the next sync converges.
    phone.walk(days_ago(1), "phone", 7000);
    for _ in 0..=quick_retries().max_retries {
        phone.faults.inject("/sync/push", Fault::Status(500));
    }
    let err = phone.app.sync().await.unwrap_err();
    assert!(
        matches!(err, FitKartError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(phone.app.pending_changes().unwrap(), 1);
    for _ in 0..=quick_retries().max_retries {
        phone.faults.inject("/sync/pull", Fault::Timeout);
    }
    let err = phone.app.sync().await.unwrap_err();
    assert!(matches!(err, FitKartError::Offline { .. }), "{err:?}");
    assert_eq!(
        phone.app.pending_changes().unwrap(),
        0,
        "the push went through"
    );
    assert!(phone.app.steps_today().is_ok());

    let report = phone.app.sync().await.unwrap();
    assert!(report.complete);
    assert_steps_equal_server(
        &server,
        &phone.app,
        &phone.access_token(),
        days_ago(7),
        days_ago(0),
    )
    .await;
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_mid_response_are_retried_and_the_sync_converges_when_they_stop() {
    let server = TestServer::start().await.unwrap();
    let proxy = CuttingProxy::start(server.addr()).await;
    let phone = Phone::new(&proxy.url());
    phone
        .app
        .register("cut@example.com", PASSWORD, "Ann")
        .await
        .unwrap();
    phone.app.sync().await.unwrap();
    let user = phone.app.current_user().unwrap().unwrap().id;
    grant(&server, user, 2000).await;
    phone.app.sync().await.unwrap();

    // The server acts on the request; the connection closes before the answer's first
    // byte, then (on the retry) in the middle of the answer.
    phone.walk(days_ago(3), "phone", 9000);
    order_one(&phone.app, 1500);
    proxy.cut_next(1, Cut::BeforeAnswer);
    let report = phone.app.sync().await.unwrap();
    assert_eq!(proxy.cuts_left(), 0);
    assert_eq!(
        (report.applied, report.duplicates),
        (0, 2),
        "the cut push was applied"
    );

    phone.walk(days_ago(2), "phone", 8000);
    proxy.cut_next(2, Cut::MidAnswer);
    let report = phone.app.sync().await.unwrap();
    assert_eq!(proxy.cuts_left(), 0);
    assert_eq!((report.applied, report.duplicates), (0, 1));
    assert_converged(&server, &[&phone]).await;

    // While the fault is on, every exchange is cut: the sync gives up and keeps its queue;
    // once it is off, the sync converges.
    phone.walk(days_ago(1), "phone", 6000);
    proxy.cut_every(Cut::MidAnswer);
    let err = phone.app.sync().await.unwrap_err();
    assert!(matches!(err, FitKartError::Offline { .. }), "{err:?}");
    assert_eq!(phone.app.pending_changes().unwrap(), 1);
    proxy.heal();
    let report = phone.app.sync().await.unwrap();
    assert!(report.complete);
    assert_eq!(report.duplicates, 1);

    let rewards = step_rewards(&server_transactions(&server, &phone.access_token()).await);
    assert_eq!(rewards, day_coins(9000) + day_coins(8000) + day_coins(6000));
    assert_steps_equal_server(
        &server,
        &phone.app,
        &phone.access_token(),
        days_ago(7),
        days_ago(0),
    )
    .await;
    assert_converged(&server, &[&phone]).await;
}

// ---- Refused order ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_order_the_server_refuses_releases_its_hold_and_says_why() {
    let server = TestServer::start().await.unwrap();
    let phone = funded(&server, "broke@example.com", 1000).await;

    let order = order_one(&phone.app, 1500);
    phone.walk(days_ago(1), "phone", 7000);
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
    assert_eq!(
        report.applied, 1,
        "the steps behind the refused order went through"
    );
    let wallet = phone.app.wallet().unwrap();
    let rewards = step_rewards(&server_transactions(&server, &phone.access_token()).await);
    assert_eq!(rewards, day_coins(7000));
    assert_eq!(
        (wallet.held_coins, wallet.pending_hold_coins),
        (0, 0),
        "the hold disappeared"
    );
    assert!(wallet.available_coins >= 1000 + rewards);
    assert!(phone.app.orders().unwrap().is_empty());
    let rejections = phone.app.rejections().unwrap();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].code, "insufficient_coins");
    assert_eq!(rejections[0].kind, "place_order");
    assert_eq!(rejections[0].client_order_id, Some(order));
    assert!(
        server_orders(&server, &phone.access_token())
            .await
            .is_empty()
    );
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_spending_the_same_coins_offline_get_one_order_and_one_refusal() {
    let server = TestServer::start().await.unwrap();
    let phone = funded(&server, "spender@example.com", 2000).await;
    let tablet = second_phone(&server, "spender@example.com").await;
    tablet.app.sync().await.unwrap();
    assert_eq!(tablet.app.wallet().unwrap().available_coins, 2000);

    // Both see 2,000 coins and spend 1,500 of them offline.
    let first = order_one(&phone.app, 1500);
    let second = order_one(&tablet.app, 1500);
    assert_eq!(phone.app.wallet().unwrap().available_coins, 500);
    assert_eq!(tablet.app.wallet().unwrap().available_coins, 500);

    let report = phone.app.sync().await.unwrap();
    assert_eq!((report.applied, report.rejected.len()), (1, 0));
    let report = tablet.app.sync().await.unwrap();
    assert_eq!(
        report.rejected,
        [("place_order".to_owned(), "insufficient_coins".to_owned())]
    );
    phone.app.sync().await.unwrap();

    let orders = server_orders(&server, &phone.access_token()).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].client_order_id, first);
    assert_eq!(
        tablet.app.rejections().unwrap()[0].client_order_id,
        Some(second)
    );
    let wallet = server_wallet(&server, &phone).await;
    assert_eq!((wallet.available_coins, wallet.frozen_coins), (500, 1500));
    assert_eq!(phone.app.wallet().unwrap(), tablet.app.wallet().unwrap());
    assert_eq!(phone.app.orders().unwrap(), tablet.app.orders().unwrap());
    assert_converged(&server, &[&phone, &tablet]).await;
}

// ---- A new phone -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_phone_restores_wallet_history_orders_and_steps_from_pull() {
    let server = TestServer::start().await.unwrap();
    let phone = funded(&server, "restore@example.com", 5000).await;
    for ago in 1..=4 {
        phone.walk(days_ago(ago), "phone", 6000 + ago as i64 * 100);
    }
    phone.walk(days_ago(2), "watch", 9000);
    phone.app.sync().await.unwrap();
    order_one(&phone.app, 3500);
    phone.app.sync().await.unwrap();
    let orders = phone.app.orders().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].sync, OrderSync::Synced);
    assert_eq!(phone.app.wallet().unwrap().held_coins, 3500);

    let fresh = second_phone(&server, "restore@example.com").await;
    assert_eq!(
        fresh.app.wallet().unwrap().lifetime_earned,
        0,
        "empty before"
    );
    let report = fresh.app.sync().await.unwrap();

    assert!(report.pulled.total() > 0);
    assert!(fresh.app.has_synced().unwrap());
    assert_eq!(fresh.app.wallet().unwrap(), phone.app.wallet().unwrap());
    assert_eq!(
        fresh.app.coin_history(1000, None).unwrap(),
        phone.app.coin_history(1000, None).unwrap()
    );
    assert_eq!(fresh.app.orders().unwrap(), phone.app.orders().unwrap());
    let week = (days_ago(7), days_ago(0));
    assert_eq!(
        fresh.app.step_history(week.0, week.1).unwrap(),
        phone.app.step_history(week.0, week.1).unwrap()
    );
    assert_eq!(fresh.app.step_history(week.0, week.1).unwrap().len(), 4);
    assert_eq!(
        fresh.app.achievements().unwrap(),
        phone.app.achievements().unwrap()
    );
    // Stock moves with every order without a catalogue change, so only the catalogue itself
    // is compared.
    let catalogue = |app: &FitKart| -> Vec<_> {
        app.products()
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.name, p.coin_price, p.is_active))
            .collect()
    };
    assert_eq!(catalogue(&fresh.app), catalogue(&phone.app));
    for device in [&phone, &fresh] {
        assert_steps_equal_server(&server, &device.app, &device.access_token(), week.0, week.1)
            .await;
    }
    assert_converged(&server, &[&phone, &fresh]).await;
}

// ---- Cursors the server cannot serve ---------------------------------------------------

fn set_cursor(app: &FitKart, cursor: &str) {
    app.store()
        .write(|tx| -> Result<(), fitkart_core::Error> {
            tx.execute("UPDATE sync_state SET pull_cursor = ?1", [cursor])?;
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_server_cannot_serve_refetches_a_snapshot_and_leaves_the_outbox_alone() {
    let server = TestServer::start().await.unwrap();
    let hook = OnRequest::http(&base_url(&server));
    let phone = Phone::over(&base_url(&server), hook.clone());
    phone
        .app
        .register("cursor@example.com", PASSWORD, "Ann")
        .await
        .unwrap();
    phone.app.sync().await.unwrap();
    let user = phone.app.current_user().unwrap().unwrap().id;
    grant(&server, user, 5000).await;
    phone.walk(days_ago(3), "phone", 5000);
    phone.app.sync().await.unwrap();

    // A cursor from the future (as after the server was restored from an older backup): the
    // server answers 410 cursor_expired. An order goes in the same sync, and the user walks
    // while the pull is in flight, so the refetch happens with the outbox holding both an
    // applied order (settled by the snapshot's wallet) and a change never pushed.
    set_cursor(&phone.app, &base64_url(&format!("c1:{user}:999999:999999")));
    order_one(&phone.app, 1500);
    let walker = phone.app.clone();
    hook.arm("/sync/pull", move || {
        walker
            .record_steps(days_ago(2), "phone", 6000, at(days_ago(2), 21, 0))
            .unwrap();
    });

    let report = phone.app.sync().await.unwrap();

    assert!(!hook.is_armed());
    assert!(report.refetched_snapshot);
    assert_eq!(report.applied, 1, "the order was pushed before the pull");
    assert_eq!(
        phone.app.pending_changes().unwrap(),
        1,
        "the refetch kept the change made during the sync"
    );
    let day = &phone.app.step_history(days_ago(2), days_ago(2)).unwrap()[0];
    assert!(day.pending);
    assert_eq!(day.total_steps, 6000);
    let wallet = phone.app.wallet().unwrap();
    assert_eq!(wallet.pending_hold_coins, 0);
    assert_eq!(wallet.held_coins, 1500);
    assert_eq!(wallet.estimated_pending_coins, day_coins(6000));
    assert_cache_equals_server(&server, &phone.app, &phone.access_token()).await;

    // The queued change syncs on the next run.
    let report = phone.app.sync().await.unwrap();
    assert!(!report.refetched_snapshot);
    assert_eq!(report.applied, 1);
    assert_converged(&server, &[&phone]).await;

    // A cursor that is not one the server gave this account: 400 invalid_cursor, same cure.
    set_cursor(&phone.app, "not-a-cursor");
    let before = cache_snapshot(&phone.app);
    let report = phone.app.sync().await.unwrap();
    assert!(report.refetched_snapshot);
    assert_eq!(
        cache_snapshot(&phone.app),
        before,
        "the snapshot is the same state"
    );
    assert_steps_equal_server(
        &server,
        &phone.app,
        &phone.access_token(),
        days_ago(7),
        days_ago(0),
    )
    .await;
    assert_converged(&server, &[&phone]).await;
}

/// URL-safe base64 without padding, as the server encodes its cursors.
fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

// ---- 426 -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_required_stops_the_sync_and_changes_nothing() {
    let server = TestServer::start().await.unwrap();
    let phone = funded(&server, "old-app@example.com", 2000).await;
    phone.walk(days_ago(1), "phone", 5000);
    order_one(&phone.app, 1500);
    let before = cache_snapshot(&phone.app);
    let on_server = server_wallet(&server, &phone).await;
    phone.faults.inject("/sync/push", Fault::Status(426));
    let sent_before = phone.faults.sent_paths().len();

    let err = phone.app.sync().await.unwrap_err();

    assert_eq!(err, FitKartError::UpgradeRequired);
    assert_eq!(phone.app.pending_changes().unwrap(), 2);
    assert_eq!(cache_snapshot(&phone.app), before);
    assert_eq!(server_wallet(&server, &phone).await, on_server);
    assert_eq!(
        phone.faults.sent_paths()[sent_before..],
        [] as [String; 0],
        "no retry and no pull after 426"
    );

    // The updated app syncs what the old one kept.
    phone.app.sync().await.unwrap();
    assert_converged(&server, &[&phone]).await;
}

// ---- Sign-out and another user ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_pending_changes_refuses_and_logout_discarding_drops_them() {
    let server = TestServer::start().await.unwrap();
    let phone = signed_up(&server, "leaving@example.com").await;
    phone.walk(days_ago(2), "phone", 9000);
    phone.app.sync().await.unwrap();
    phone.walk(days_ago(1), "phone", 4000);
    phone.walk(days_ago(1), "watch", 4500);

    assert_eq!(
        phone.app.logout(false).await,
        Err(FitKartError::PendingChanges { count: 1 })
    );
    assert!(
        phone.app.current_user().unwrap().is_some(),
        "still signed in"
    );
    assert_eq!(phone.app.pending_changes().unwrap(), 1);

    phone.app.logout(true).await.unwrap();
    assert_eq!(phone.app.current_user().unwrap(), None);

    phone
        .app
        .login("leaving@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(phone.app.pending_changes().unwrap(), 0, "discarded");
    assert!(
        !phone.app.has_synced().unwrap(),
        "logout cleared has_synced"
    );
    phone.app.sync().await.unwrap();
    let token = phone.access_token();
    let days = server_steps(&server, &token, days_ago(7), days_ago(0)).await;
    assert_eq!(days.len(), 1, "the discarded day never reached the server");
    assert_eq!(days[0].date, days_ago(2));
    assert_steps_equal_server(&server, &phone.app, &token, days_ago(7), days_ago(0)).await;
    assert_converged(&server, &[&phone]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_on_the_same_phone_never_sees_or_pushes_the_first_users_data() {
    let server = TestServer::start().await.unwrap();
    let phone = funded(&server, "first@example.com", 3000).await;
    phone.walk(days_ago(2), "phone", 9000);
    order_one(&phone.app, 1500);
    phone.app.sync().await.unwrap();
    let first_token = phone.access_token();
    let first_wallet = server_wallet(&server, &phone).await;
    phone.walk(days_ago(1), "phone", 4000);
    order_one(&phone.app, 1500);
    assert_eq!(phone.app.pending_changes().unwrap(), 2);

    // Another person signs in on the same phone without the first signing out.
    let second = phone
        .app
        .register("second@example.com", PASSWORD, "Bo")
        .await
        .unwrap();
    let app = &phone.app;
    assert_eq!(app.current_user().unwrap().unwrap().id, second.id);
    let wallet = app.wallet().unwrap();
    assert_eq!(
        (
            wallet.available_coins,
            wallet.held_coins,
            wallet.lifetime_earned,
            wallet.estimated_pending_coins
        ),
        (0, 0, 0, 0)
    );
    assert!(app.coin_history(100, None).unwrap().is_empty());
    assert!(app.orders().unwrap().is_empty());
    assert!(
        app.step_history(days_ago(30), days_ago(0))
            .unwrap()
            .is_empty()
    );
    assert!(app.rejections().unwrap().is_empty());
    assert_eq!(app.pending_changes().unwrap(), 0);

    let report = app.sync().await.unwrap();
    assert_eq!(report.pushed, 0, "nothing of the first user was pushed");
    let token = phone.access_token();
    assert_eq!(server_wallet(&server, &phone).await.lifetime_earned, 0);
    assert!(
        server_steps(&server, &token, days_ago(30), days_ago(0))
            .await
            .is_empty()
    );
    assert!(server_orders(&server, &token).await.is_empty());
    assert!(
        app.step_history(days_ago(30), days_ago(0))
            .unwrap()
            .is_empty()
    );
    assert_converged(&server, &[&phone]).await;

    // The first user's parked changes were not pushed as theirs either, while away.
    let on_server: fitkart_core::protocol::steps::Wallet =
        serde_json::from_value(fitkart_e2e::api_get(&server, &first_token, "/wallet").await)
            .unwrap();
    assert_eq!(on_server, first_wallet);

    // The first user comes back: the parked changes are still there and sync as theirs.
    app.logout(false).await.unwrap();
    app.login("first@example.com", PASSWORD).await.unwrap();
    assert_eq!(app.pending_changes().unwrap(), 2);
    let report = app.sync().await.unwrap();
    assert_eq!(report.applied, 2);
    assert_eq!(app.orders().unwrap().len(), 2);
    assert_steps_equal_server(
        &server,
        app,
        &phone.access_token(),
        days_ago(7),
        days_ago(0),
    )
    .await;
    assert_converged(&server, &[&phone]).await;
}

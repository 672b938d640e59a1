//! Shared helpers of the FitKart end-to-end tests: phones (real `FitKart` clients on temporary
//! SQLite files, behind a fault-injecting transport), server processes (the built binary), a
//! TCP proxy that cuts connections mid-response, and the checks every test ends with.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Timelike as _, Utc};
use fitkart_core::protocol::orders::{Order, OrderPage};
use fitkart_core::protocol::steps::{
    CoinTransaction, DaySteps, StepHistory, TransactionPage, Wallet,
};
use fitkart_core::{
    Config, FaultyTransport, FitKart, HttpTransport, MemoryTokenStore, OrderSync, RetryPolicy,
    TokenStore as _, Transport,
};
use fitkart_sync_server::testing::{TestDb, TestServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A retry policy fast enough for tests: a few milliseconds between attempts.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_millis(50),
        max_retries: 6,
    }
}

/// The configuration every test phone uses: its database in `dir`, quick retries.
pub fn config(dir: &std::path::Path, base_url: &str) -> Config {
    let mut config = Config::new(dir.join("fitkart.db"), base_url);
    config.retry = quick_retries();
    config.request_timeout = Duration::from_secs(10);
    config
}

/// A phone: a real client on a real SQLite file, talking through a [`FaultyTransport`].
pub struct Phone {
    /// The directory holding the database (kept alive with the phone).
    pub dir: Arc<tempfile::TempDir>,
    /// The client.
    pub app: FitKart,
    /// Inject faults here.
    pub faults: Arc<FaultyTransport>,
    /// The session's tokens.
    pub tokens: Arc<MemoryTokenStore>,
    base_url: String,
    skew: chrono::Duration,
}

/// The system clock, off by a fixed amount (a phone whose clock is wrong).
pub struct SkewedClock(pub chrono::Duration);

impl fitkart_core::Clock for SkewedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }

    fn sleep(&self, duration: Duration) -> fitkart_core::transport::BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

impl Phone {
    /// A new phone (empty database) talking to `base_url`.
    pub fn new(base_url: &str) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::open(dir, base_url, Arc::new(MemoryTokenStore::new()))
    }

    /// A new phone whose clock is off by `skew`.
    pub fn with_skew(base_url: &str, skew: chrono::Duration) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::open_skewed(dir, base_url, Arc::new(MemoryTokenStore::new()), skew)
    }

    /// Opens (or reopens, after a "crash") the phone whose database is in `dir`.
    pub fn open(
        dir: Arc<tempfile::TempDir>,
        base_url: &str,
        tokens: Arc<MemoryTokenStore>,
    ) -> Self {
        Self::open_skewed(dir, base_url, tokens, chrono::Duration::zero())
    }

    /// A new phone whose requests go through `inner` (under the fault injector) instead of
    /// plain HTTP.
    pub fn over(base_url: &str, inner: Arc<dyn Transport>) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::assemble(
            dir,
            base_url,
            Arc::new(MemoryTokenStore::new()),
            chrono::Duration::zero(),
            inner,
        )
    }

    fn open_skewed(
        dir: Arc<tempfile::TempDir>,
        base_url: &str,
        tokens: Arc<MemoryTokenStore>,
        skew: chrono::Duration,
    ) -> Self {
        let http = HttpTransport::new(base_url, config(dir.path(), base_url).request_timeout)
            .expect("transport");
        Self::assemble(dir, base_url, tokens, skew, Arc::new(http))
    }

    fn assemble(
        dir: Arc<tempfile::TempDir>,
        base_url: &str,
        tokens: Arc<MemoryTokenStore>,
        skew: chrono::Duration,
        inner: Arc<dyn Transport>,
    ) -> Self {
        let faults = Arc::new(FaultyTransport::new(inner));
        let app = FitKart::open_with(
            config(dir.path(), base_url),
            tokens.clone(),
            faults.clone(),
            Arc::new(SkewedClock(skew)),
        )
        .expect("open the phone");
        Self {
            dir,
            app,
            faults,
            tokens,
            base_url: base_url.to_owned(),
            skew,
        }
    }

    /// The same phone after the app was killed and started again: the client is dropped and
    /// reopened on the same file, with the same session (over plain HTTP, no faults queued).
    pub fn restart(self) -> Self {
        let Self {
            dir,
            app,
            tokens,
            base_url,
            skew,
            ..
        } = self;
        drop(app);
        Self::open_skewed(dir, &base_url, tokens, skew)
    }

    /// The access token of the signed-in user.
    pub fn access_token(&self) -> String {
        self.tokens
            .load()
            .expect("tokens")
            .expect("signed in")
            .access_token
    }

    /// Records `steps` for `date` from `source`, stamped 21:00 UTC that day.
    pub fn walk(&self, date: NaiveDate, source: &str, steps: i64) {
        self.app
            .record_steps(date, source, steps, at(date, 21, 0))
            .expect("record steps");
    }
}

/// The server's base URL.
pub fn base_url(server: &TestServer) -> String {
    server.url("")
}

/// The UTC date `n` days before today (new users live in UTC).
pub fn days_ago(n: u64) -> NaiveDate {
    Utc::now().date_naive() - Days::new(n)
}

/// `hh:mm` UTC on `date`.
pub fn at(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    date.and_hms_opt(hour, minute, 0)
        .expect("valid time")
        .and_utc()
}

/// The seeded reward rules (`seeds/settings.json`): coins per 1,000 steps and the daily cap.
pub fn seeded_reward_rules() -> (i64, i64) {
    static RULES: std::sync::OnceLock<(i64, i64)> = std::sync::OnceLock::new();
    *RULES.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../seeds/settings.json");
        let text = std::fs::read_to_string(path).expect("seeds/settings.json");
        let settings: Vec<serde_json::Value> = serde_json::from_str(&text).expect("settings");
        let value = |key: &str| {
            settings
                .iter()
                .find(|s| s["key"] == key)
                .and_then(|s| s["value"].as_i64())
                .unwrap_or_else(|| panic!("{key} in seeds/settings.json"))
        };
        (
            value("rewards.coins_per_1000_steps"),
            value("rewards.daily_coin_cap"),
        )
    })
}

/// What a verified day total pays under the seeded rules (integer arithmetic, capped).
pub fn day_coins(total: i64) -> i64 {
    let (per_1000, cap) = seeded_reward_rules();
    (total * per_1000 / 1000).min(cap)
}

/// GET `path` on the API as the phone's user.
pub async fn api_get(server: &TestServer, token: &str, path: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/v1{path}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response.json().await.expect("JSON")
}

/// The server's wallet of the phone's user.
pub async fn server_wallet(server: &TestServer, phone: &Phone) -> Wallet {
    serde_json::from_value(api_get(server, &phone.access_token(), "/wallet").await)
        .expect("a wallet")
}

/// Gives a user coins the way an admin adjustment does (the next change version under the
/// user's lock, then the ledger entry, in one transaction).
pub async fn grant(server: &TestServer, user_id: uuid::Uuid, coins: i64) {
    grant_in(server.db(), user_id, coins).await;
}

/// [`grant`] on a database without an in-process server (one served by [`ServerProcess`]es).
pub async fn grant_in(db: &TestDb, user_id: uuid::Uuid, coins: i64) {
    use fitkart_sync_server::rewards::ledger::{self, Entry, EntryKind};
    let mut client = db.client().await.expect("db");
    let tx = client.transaction().await.expect("tx");
    let version = fitkart_sync_server::sync::versions::next_user_version(&tx, user_id)
        .await
        .expect("version");
    ledger::post(
        &tx,
        user_id,
        version,
        &[Entry {
            kind: EntryKind::AdminAdjustment,
            available_delta: coins,
            frozen_delta: 0,
            reference: Some(("admin", "e2e".into())),
            idempotency_key: format!("e2e-grant:{}", uuid::Uuid::new_v4()),
            description: None,
            created_by: None,
        }],
    )
    .await
    .expect("post");
    tx.commit().await.expect("commit");
}

/// Every ledger entry of the user, newest first, from `GET /wallet/transactions` (all pages).
pub async fn server_transactions(server: &TestServer, token: &str) -> Vec<CoinTransaction> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/wallet/transactions?limit=200".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(cursor);
        }
        let page: TransactionPage =
            serde_json::from_value(api_get(server, token, &path).await).expect("a page");
        all.extend(page.transactions);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

/// The user's orders, newest first, from `GET /orders`.
pub async fn server_orders(server: &TestServer, token: &str) -> Vec<Order> {
    let page: OrderPage =
        serde_json::from_value(api_get(server, token, "/orders?limit=100").await).expect("orders");
    assert!(page.total <= 100, "more orders than one page");
    page.orders
}

/// The user's step days from `from` to `to`, oldest first, from `GET /steps`.
pub async fn server_steps(
    server: &TestServer,
    token: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<DaySteps> {
    let history: StepHistory = serde_json::from_value(
        api_get(server, token, &format!("/steps?from={from}&to={to}")).await,
    )
    .expect("step history");
    history.days
}

/// The ledger of every wallet verifies (what `fitkart-sync-server verify-ledger` checks).
pub async fn assert_ledger_verifies(server: &TestServer) {
    let client = server.db().client().await.expect("db");
    let report = fitkart_sync_server::rewards::ledger::verify(&client)
        .await
        .expect("verify");
    assert!(report.is_ok(), "ledger problems: {:?}", report.problems);
}

/// A synced device shows what the server holds for its user: the wallet view is `GET /wallet`
/// (minus holds of orders still pending on the device), the coin history equals `GET /wallet/transactions`, and
/// the orders equal `GET /orders`.
pub async fn assert_cache_equals_server(server: &TestServer, app: &FitKart, token: &str) {
    let wallet: Wallet =
        serde_json::from_value(api_get(server, token, "/wallet").await).expect("a wallet");
    let view = app.wallet().expect("wallet");
    assert_eq!(
        (
            view.server_available_coins,
            view.server_frozen_coins,
            view.lifetime_earned,
            view.lifetime_spent
        ),
        (
            wallet.available_coins,
            wallet.frozen_coins,
            wallet.lifetime_earned,
            wallet.lifetime_spent
        ),
        "wallet view (available, frozen, earned, spent) against GET /wallet"
    );
    assert_eq!(
        (view.available_coins, view.held_coins),
        (
            wallet.available_coins - view.pending_hold_coins,
            wallet.frozen_coins + view.pending_hold_coins
        ),
        "the view is the server's wallet minus pending holds"
    );
    // The device keeps timestamps to the millisecond.
    let on_server: Vec<_> = server_transactions(server, token)
        .await
        .into_iter()
        .map(|mut t| {
            t.created_at = t
                .created_at
                .with_nanosecond(t.created_at.nanosecond() / 1_000_000 * 1_000_000)
                .expect("a valid time");
            t
        })
        .collect();
    assert_eq!(
        app.coin_history(10_000, None).expect("history"),
        on_server,
        "coin history against GET /wallet/transactions"
    );
    let orders: Vec<_> = app
        .orders()
        .expect("orders")
        .into_iter()
        .map(|o| {
            assert_eq!(
                o.sync,
                OrderSync::Synced,
                "order {} still pending",
                o.client_order_id
            );
            (
                o.client_order_id,
                o.order_id,
                o.order_code,
                o.status,
                o.total_coins,
                o.items,
                o.tracking_number,
            )
        })
        .collect();
    let on_server: Vec<_> = server_orders(server, token)
        .await
        .into_iter()
        .map(|o| {
            (
                o.client_order_id,
                Some(o.id),
                Some(o.order_code),
                o.status,
                o.total_coins,
                o.items,
                o.tracking_number,
            )
        })
        .collect();
    assert_eq!(orders, on_server, "orders against GET /orders");
}

/// The device's step days from `from` to `to` equal `GET /steps`: the same days and sources,
/// each with the server's total, verified part and status, nothing pending.
pub async fn assert_steps_equal_server(
    server: &TestServer,
    app: &FitKart,
    token: &str,
    from: NaiveDate,
    to: NaiveDate,
) {
    let mut device = app.step_history(from, to).expect("step history");
    device.reverse(); // oldest first, as the server lists them
    let on_server = server_steps(server, token, from, to).await;
    let device: Vec<_> = device
        .into_iter()
        .map(|day| {
            assert!(!day.pending, "{} still pending", day.date);
            let sources: Vec<_> = day
                .sources
                .into_iter()
                .map(|s| {
                    assert_eq!(s.steps, s.server_steps, "{} {}", day.date, s.source);
                    (s.source, s.steps, s.verified_steps, s.status)
                })
                .collect();
            (day.date, day.verified_steps, sources)
        })
        .collect();
    let on_server: Vec<_> = on_server
        .into_iter()
        .map(|day| {
            let sources: Vec<_> = day
                .sources
                .into_iter()
                .map(|s| (s.source, s.steps, s.verified_steps, s.status))
                .collect();
            (day.date, day.total_steps, sources)
        })
        .collect();
    assert_eq!(device, on_server, "step days against GET /steps");
}

/// What every test ends with for one device: the server's ledger verifies, the device's
/// queue is empty, and its cache equals the server's state for its user (so its wallet view
/// is exactly `GET /wallet`).
pub async fn assert_device_converged(server: &TestServer, app: &FitKart, token: &str) {
    assert_ledger_verifies(server).await;
    assert_eq!(
        app.pending_changes().expect("pending"),
        0,
        "outbox not empty"
    );
    let view = app.wallet().expect("wallet");
    assert_eq!(view.pending_hold_coins, 0, "no hold left pending");
    assert_eq!(view.estimated_pending_coins, 0, "no steps left unsynced");
    assert_cache_equals_server(server, app, token).await;
}

/// [`assert_device_converged`] for every phone.
pub async fn assert_converged(server: &TestServer, phones: &[&Phone]) {
    for phone in phones {
        assert_device_converged(server, &phone.app, &phone.access_token()).await;
    }
}

/// Where a [`CuttingProxy`] closes a connection whose request it let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Before any byte of the answer reaches the client.
    BeforeAnswer,
    /// After the status line, the headers and part of the body reached the client.
    MidAnswer,
}

/// Cuts still to make: a count, or [`ALWAYS`] while the fault is switched on.
const ALWAYS: usize = usize::MAX;

/// A TCP proxy in front of the server that can cut connections mid-response: the request
/// reaches the server (which acts on it), and once the server starts answering both sides
/// are closed — before the answer's first byte or partway through it — so the client sees
/// a connection closed before the answer arrived.
pub struct CuttingProxy {
    /// The proxy's address.
    pub addr: std::net::SocketAddr,
    cuts: Arc<AtomicUsize>,
    mode: Arc<std::sync::Mutex<Cut>>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Starts a proxy to `upstream` on an ephemeral loopback port.
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cuts = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(std::sync::Mutex::new(Cut::BeforeAnswer));
        let task = tokio::spawn({
            let (cuts, mode) = (cuts.clone(), mode.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream, cuts.clone(), mode.clone()));
                }
            }
        });
        Self {
            addr,
            cuts,
            mode,
            task,
        }
    }

    /// Cuts the next `n` requests (on whichever connections carry them) `where`.
    pub fn cut_next(&self, n: usize, at: Cut) {
        *self.mode.lock().expect("mode") = at;
        self.cuts.store(n, Ordering::SeqCst);
    }

    /// Switches the fault on: every request is cut `at` until [`CuttingProxy::heal`].
    pub fn cut_every(&self, at: Cut) {
        self.cut_next(ALWAYS, at);
    }

    /// Switches the fault off.
    pub fn heal(&self) {
        self.cuts.store(0, Ordering::SeqCst);
    }

    /// Counted cuts still waiting.
    pub fn cuts_left(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// The proxy's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many bytes of the answer's first chunk still reach the client before a cut: none, or
/// the head and half of the body bytes that came with it (at least the head).
fn bytes_before_cut(chunk: &[u8], at: Cut) -> usize {
    match at {
        Cut::BeforeAnswer => 0,
        Cut::MidAnswer => match chunk.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(head) => {
                let head = head + 4;
                head + (chunk.len() - head) / 2
            }
            None => chunk.len() / 2,
        },
    }
}

/// Relays one connection both ways. When a request arrives while cuts are pending, one is
/// claimed: the request is forwarded, and once the server starts answering (so it acted on
/// the request) both sides are closed after forwarding none or part of the answer.
async fn relay(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    cuts: Arc<AtomicUsize>,
    mode: Arc<std::sync::Mutex<Cut>>,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut from_client = vec![0_u8; 64 * 1024];
    let mut from_server = vec![0_u8; 64 * 1024];
    let mut cutting: Option<Cut> = None;
    loop {
        tokio::select! {
            read = client_read.read(&mut from_client) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if cutting.is_none()
                        && cuts
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                                ALWAYS => Some(ALWAYS),
                                n => n.checked_sub(1),
                            })
                            .is_ok()
                    {
                        cutting = Some(*mode.lock().expect("mode"));
                    }
                    if server_write.write_all(&from_client[..n]).await.is_err() {
                        return;
                    }
                }
            },
            read = server_read.read(&mut from_server) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let Some(at) = cutting else {
                        if client_write.write_all(&from_server[..n]).await.is_err() {
                            return;
                        }
                        continue;
                    };
                    let part = bytes_before_cut(&from_server[..n], at);
                    let _ = client_write.write_all(&from_server[..part]).await;
                    let _ = client_write.flush().await;
                    return;
                }
            },
        }
    }
}

/// What an [`OnRequest`] runs.
type Action = Box<dyn FnOnce() + Send>;

/// A transport that runs a one-shot action just before the first request whose path
/// contains a filter goes out: the user acting on the phone while a sync is in flight.
pub struct OnRequest {
    inner: Arc<dyn Transport>,
    armed: std::sync::Mutex<Option<(String, Action)>>,
}

impl OnRequest {
    /// Plain HTTP to `base_url`, nothing armed.
    pub fn http(base_url: &str) -> Arc<Self> {
        let http = HttpTransport::new(base_url, Duration::from_secs(10)).expect("transport");
        Arc::new(Self {
            inner: Arc::new(http),
            armed: std::sync::Mutex::new(None),
        })
    }

    /// Runs `action` before the next request whose path contains `path_filter`.
    pub fn arm(&self, path_filter: &str, action: impl FnOnce() + Send + 'static) {
        *self.armed.lock().expect("armed") = Some((path_filter.to_owned(), Box::new(action)));
    }

    /// Whether the armed action still waits.
    pub fn is_armed(&self) -> bool {
        self.armed.lock().expect("armed").is_some()
    }
}

impl Transport for OnRequest {
    fn send(
        &self,
        request: fitkart_core::transport::HttpRequest,
    ) -> fitkart_core::transport::BoxFuture<
        '_,
        Result<fitkart_core::transport::HttpResponse, fitkart_core::TransportError>,
    > {
        let action = {
            let mut armed = self.armed.lock().expect("armed");
            match armed.take() {
                Some((filter, action)) if request.path.contains(&filter) => Some(action),
                other => {
                    *armed = other;
                    None
                }
            }
        };
        if let Some(action) = action {
            action();
        }
        self.inner.send(request)
    }
}

/// The `fitkart-sync-server` binary next to the running test's target directory (the
/// workspace build makes it: `cargo build -p fitkart-sync-server`).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let binary = debug_dir.join("fitkart-sync-server");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p fitkart-sync-server`",
        binary.display()
    );
    binary
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `fitkart-sync-server serve` process (the built binary) on a loopback port: what ops
/// run, several of them on one database. Killed when dropped.
pub struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    /// Starts the binary over `database_url` on `port`, signing tokens with `jwt_secret`
    /// (instances of one deployment share it), with `env` added to its environment, and
    /// waits until `GET /readyz` answers 200.
    pub async fn start(
        database_url: &str,
        port: u16,
        jwt_secret: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let child = Command::new(server_binary())
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("FITKART_LISTEN", format!("127.0.0.1:{port}"))
            .env("FITKART_JWT_SECRET", jwt_secret)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server");
        let mut server = Self { child, port };
        let http = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(response) = http.get(format!("{}/readyz", server.url())).send().await
                && response.status().is_success()
            {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited before it was ready: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready");
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: no graceful shutdown, in-flight transactions die with the connections.
    pub fn kill(self) {
        drop(self);
    }

    /// SIGTERM, as a service manager stops it: it stops accepting connections, finishes the
    /// requests in flight and exits. Returns its exit status.
    pub async fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not stop within 30 s of SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fitkart-sync-server verify-ledger` on `database_url` and returns whether it passed
/// (exit 0) and what it printed.
pub fn verify_ledger_command(database_url: &str) -> (bool, String) {
    let output = Command::new(server_binary())
        .arg("verify-ledger")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "error")
        .output()
        .expect("run verify-ledger");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The password of every account the raw-HTTP helpers create.
pub const TEST_PASSWORD: &str = "e2e-walker-password";

/// An account driven over raw HTTP (no device): its id and access token.
#[derive(Debug, Clone)]
pub struct ApiUser {
    /// The account's id.
    pub id: uuid::Uuid,
    /// Its access token.
    pub token: String,
}

/// Registers `email` (password [`TEST_PASSWORD`]) at the server at `base_url`.
pub async fn register_user(base_url: &str, email: &str) -> ApiUser {
    let (status, body) = send_json(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        &format!("{base_url}/api/v1/auth/register"),
        None,
        Some(&serde_json::json!({
            "email": email,
            "password": TEST_PASSWORD,
            "display_name": "Walker",
        })),
    )
    .await
    .expect("register");
    assert_eq!(status, 201, "register {email}: {body}");
    ApiUser {
        id: body["user"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a user id"),
        token: body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned(),
    }
}

/// Sends one API request (with the sync protocol version header, so `/sync/*` accepts it)
/// and returns the status and the JSON body (`null` when there is none). A transport
/// failure (refused, reset, closed before the answer) is the `Err`: no answer.
pub async fn send_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let mut request = http.request(method, url).header(
        fitkart_protocol::sync::PROTOCOL_VERSION_HEADER,
        fitkart_protocol::PROTOCOL_VERSION.to_string(),
    );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

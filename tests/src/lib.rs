//! Shared helpers of the FitKart end-to-end tests: phones (real `FitKart` clients on temporary
//! SQLite files, behind a fault-injecting transport), a TCP proxy that cuts connections
//! mid-response, and the checks every test ends with.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use fitkart_core::protocol::steps::Wallet;
use fitkart_core::{
    Config, FaultyTransport, FitKart, HttpTransport, MemoryTokenStore, RetryPolicy, TokenStore as _,
};
use fitkart_sync_server::testing::TestServer;
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

    fn open_skewed(
        dir: Arc<tempfile::TempDir>,
        base_url: &str,
        tokens: Arc<MemoryTokenStore>,
        skew: chrono::Duration,
    ) -> Self {
        let mut config = Config::new(dir.path().join("fitkart.db"), base_url);
        config.retry = quick_retries();
        config.request_timeout = Duration::from_secs(10);
        let http = HttpTransport::new(base_url, config.request_timeout).expect("transport");
        let faults = Arc::new(FaultyTransport::new(Arc::new(http)));
        let app = FitKart::open_with(
            config,
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
    /// reopened on the same file, with the same session.
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

/// What a day total pays with the seeded rate (10 per 1,000) and cap (200).
pub fn day_coins(total: i64) -> i64 {
    (total * 10 / 1000).min(200)
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
    use fitkart_sync_server::ledger::{self, Entry, EntryKind};
    let mut client = server.db().client().await.expect("db");
    let tx = client.transaction().await.expect("tx");
    let version = fitkart_sync_server::accounts::next_user_version(&tx, user_id)
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

/// What every test ends with: the server's ledger verifies, and each phone (fully synced)
/// has an empty queue and shows exactly the server's wallet and coin history.
pub async fn assert_converged(server: &TestServer, phones: &[&Phone]) {
    let client = server.db().client().await.expect("db");
    let report = fitkart_sync_server::ledger::verify(&client)
        .await
        .expect("verify");
    assert!(report.is_ok(), "ledger problems: {:?}", report.problems);
    for phone in phones {
        assert_eq!(
            phone.app.pending_changes().expect("pending"),
            0,
            "outbox not empty"
        );
        let user = phone
            .app
            .current_user()
            .expect("profile")
            .expect("signed in")
            .id;
        let row = client
            .query_one(
                "SELECT available_coins, frozen_coins, lifetime_earned, lifetime_spent
                 FROM wallets WHERE user_id = $1",
                &[&user],
            )
            .await
            .expect("wallet row");
        let server = Wallet {
            available_coins: row.get(0),
            frozen_coins: row.get(1),
            lifetime_earned: row.get(2),
            lifetime_spent: row.get(3),
        };
        let view = phone.app.wallet().expect("wallet");
        assert_eq!(view.pending_hold_coins, 0);
        assert_eq!(view.available_coins, server.available_coins, "available");
        assert_eq!(view.held_coins, server.frozen_coins, "held");
        assert_eq!(view.lifetime_earned, server.lifetime_earned, "earned");
        assert_eq!(view.lifetime_spent, server.lifetime_spent, "spent");
        let history = phone.app.coin_history(10_000, None).expect("history");
        let sum: i64 = history.iter().map(|t| t.available_delta).sum();
        assert_eq!(sum, server.available_coins, "history sums to the balance");
    }
}

/// A TCP proxy in front of the server that can cut connections mid-response: the request
/// reaches the server (which acts on it), the first bytes of the answer are read, and then
/// both sides are closed, so the client sees a connection closed before the answer arrived.
pub struct CuttingProxy {
    /// The proxy's address.
    pub addr: std::net::SocketAddr,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Starts a proxy to `upstream` on an ephemeral loopback port.
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cuts = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let cuts = cuts.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream, cuts.clone()));
                }
            }
        });
        Self { addr, cuts, task }
    }

    /// Cuts the next `n` requests mid-response (on whichever connection carries them).
    pub fn cut_next(&self, n: usize) {
        self.cuts.store(n, Ordering::SeqCst);
    }

    /// Cuts still waiting.
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

/// Relays one connection both ways. When a request arrives while cuts are pending, one is
/// claimed: the request is forwarded, and once the server starts answering (so it acted on
/// the request) both sides are closed without forwarding the answer.
async fn relay(mut client: TcpStream, upstream: std::net::SocketAddr, cuts: Arc<AtomicUsize>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut from_client = vec![0_u8; 64 * 1024];
    let mut from_server = vec![0_u8; 64 * 1024];
    let mut cutting = false;
    loop {
        tokio::select! {
            read = client_read.read(&mut from_client) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !cutting {
                        cutting = cuts
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    }
                    if server_write.write_all(&from_client[..n]).await.is_err() {
                        return;
                    }
                }
            },
            read = server_read.read(&mut from_server) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) if cutting => return,
                Ok(n) => {
                    if client_write.write_all(&from_server[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}

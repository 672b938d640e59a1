//! Device benchmarks: each figure next to the raw limit of the same work, measured in the
//! same run. Prints its figures; asserts nothing about speed.
//!
//! ```sh
//! cargo bench -p fitkart-e2e --bench device
//! ```
//!
//! Needs PostgreSQL at DATABASE_URL (default: the local one), like the tests.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use fitkart_core::protocol::steps::StepReport;
use fitkart_core::transport::{BoxFuture, HttpRequest, HttpResponse};
use fitkart_core::{
    Config, FitKart, HttpTransport, Listener, MemoryTokenStore, Part, SyncPhase, SyncStatus,
    SystemClock, Transport, TransportError,
};
use fitkart_sync_server::testing::TestServer;
use rusqlite::{Connection, params};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("FitKart device benchmarks ({} cores)\n", num_cpus());
    record_steps_against_raw_inserts();
    runtime.block_on(sync_of_queued_records());
    runtime.block_on(restore_a_year());
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn report(date: NaiveDate, source: String, steps: i64) -> StepReport {
    StepReport {
        date,
        source,
        steps,
        recorded_at: date.and_hms_opt(21, 0, 0).unwrap_or_default().and_utc(),
    }
}

/// A raw SQLite file with the same pragmas as the device store's writer.
fn raw_connection(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join("raw.db")).expect("open");
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn.execute_batch(
        "CREATE TABLE steps (user_id TEXT NOT NULL, local_date TEXT NOT NULL,
             source TEXT NOT NULL, steps INTEGER NOT NULL, recorded_at TEXT NOT NULL,
             PRIMARY KEY (user_id, local_date, source)) STRICT, WITHOUT ROWID;",
    )
    .expect("schema");
    conn
}

fn signed_in_phone(dir: &std::path::Path) -> FitKart {
    let app = FitKart::open(
        Config::new(dir.join("fitkart.db"), "http://127.0.0.1:9"),
        Arc::new(MemoryTokenStore::new()),
    )
    .expect("open");
    app.store()
        .write(|tx| -> Result<(), fitkart_core::Error> {
            tx.execute(
                "UPDATE sync_state SET user_id = '00000000-0000-7000-8000-000000000001'",
                [],
            )?;
            Ok(())
        })
        .expect("user");
    app
}

/// The default HTTP transport, timing each exchange (request sent to answer read), so a
/// sync's time splits into the server's and network's share and the device's own. With a
/// round trip, each exchange first waits that long, as over a mobile network.
struct TimedTransport {
    inner: HttpTransport,
    round_trip: Duration,
    exchanges: Mutex<Vec<Exchange>>,
}

/// One timed exchange.
struct Exchange {
    /// The path without `/api/v1` and the query.
    kind: String,
    start: Instant,
    took: Duration,
    /// Bytes of the (decompressed) answer.
    bytes: usize,
}

impl TimedTransport {
    fn new(base_url: &str, round_trip: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: HttpTransport::new(base_url, Duration::from_secs(60)).expect("transport"),
            round_trip,
            exchanges: Mutex::new(Vec::new()),
        })
    }

    /// The exchanges so far, and forgets them.
    fn take(&self) -> Vec<Exchange> {
        std::mem::take(
            &mut *self
                .exchanges
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// How long at least one of the exchanges was in flight (those a sync makes at once
/// counted once).
fn in_flight(exchanges: &[Exchange]) -> Duration {
    let mut spans: Vec<(Instant, Instant)> = exchanges
        .iter()
        .map(|e| (e.start, e.start + e.took))
        .collect();
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (start, end) in spans {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                total += to - from;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(Duration::ZERO, |(from, to)| to - from)
}

/// Prints the exchanges of one sync grouped by kind (the time of each kind summed) and
/// returns how long any exchange was in flight.
fn print_breakdown(exchanges: &[Exchange], whole: Duration) -> Duration {
    let mut kinds: Vec<(String, usize, Duration, usize)> = Vec::new();
    for Exchange {
        kind, took, bytes, ..
    } in exchanges
    {
        match kinds.iter_mut().find(|k| &k.0 == kind) {
            Some(k) => {
                k.1 += 1;
                k.2 += *took;
                k.3 += bytes;
            }
            None => kinds.push((kind.clone(), 1, *took, *bytes)),
        }
    }
    let network = in_flight(exchanges);
    for (kind, count, took, bytes) in kinds {
        println!(
            "    {kind:<22} {count:>3} exchange(s) {:>7.1} ms  {:>8} KiB answered",
            ms(took),
            bytes / 1024
        );
    }
    println!(
        "    {:<22} {:>7.1} ms (SQLite transactions, JSON, bookkeeping; no exchange in flight)",
        "device's own share",
        ms(whole.saturating_sub(network))
    );
    network
}

impl Transport for TimedTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let path = request.path.split('?').next().unwrap_or_default();
            let kind = path.trim_start_matches("/api/v1").to_owned();
            let start = Instant::now();
            if !self.round_trip.is_zero() {
                tokio::time::sleep(self.round_trip).await;
            }
            let answer = self.inner.send(request).await;
            let took = start.elapsed();
            let bytes = answer.as_ref().map_or(0, |a| a.body.len());
            self.exchanges
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Exchange {
                    kind,
                    start,
                    took,
                    bytes,
                });
            answer
        })
    }
}

/// Listens to the sync status and notes when each phase starts, so a sync's time splits by
/// phase (registering, pushing, pulling, refreshing).
#[derive(Default)]
struct Phases(Mutex<Vec<(String, Instant)>>);

impl Listener for Phases {
    fn on_change(&self, _parts: &[Part]) {}

    fn on_status(&self, status: &SyncStatus) {
        let name = match status {
            SyncStatus::Syncing { phase, .. } => match phase {
                SyncPhase::Registering => "registering",
                SyncPhase::Pushing => "pushing",
                SyncPhase::Pulling => "pulling",
                SyncPhase::Refreshing => "refreshing",
            },
            _ => "done",
        };
        let mut phases = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if phases.last().is_none_or(|(last, _)| last != name) {
            phases.push((name.to_owned(), Instant::now()));
        }
    }
}

impl Phases {
    /// Time from the start of `phase` to the start of the next one.
    fn took(&self, phase: &str) -> Option<Duration> {
        let phases = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let at = phases.iter().position(|(name, _)| name == phase)?;
        Some(phases.get(at + 1)?.1 - phases[at].1)
    }

    /// Each phase's time, as one line.
    fn summary(&self) -> String {
        let line: Vec<String> = ["registering", "pushing", "pulling", "refreshing"]
            .iter()
            .filter_map(|phase| Some(format!("{phase} {:.1} ms", ms(self.took(phase)?))))
            .collect();
        line.join(", ")
    }

    fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn print_phases(phases: &Phases) {
    println!("    phases: {}", phases.summary());
}

fn ms(took: Duration) -> f64 {
    took.as_secs_f64() * 1000.0
}

fn per_second(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

fn record_steps_against_raw_inserts() {
    const CALLS: usize = 2_000;
    const BATCH: usize = 10_000;
    let dir = tempfile::tempdir().expect("dir");
    let app = signed_in_phone(dir.path());
    let raw = raw_connection(dir.path());
    let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let reports: Vec<StepReport> = (0..CALLS)
        .map(|i| report(day, format!("source-{i}"), 1_000 + i as i64))
        .collect();

    // One report per transaction, as an app records one reading at a time.
    let start = Instant::now();
    for r in &reports {
        app.record_steps(r.date, &r.source, r.steps, r.recorded_at)
            .expect("record");
    }
    let ours = start.elapsed();
    let mut insert = raw
        .prepare(
            "INSERT INTO steps (user_id, local_date, source, steps, recorded_at)
             VALUES ('00000000-0000-7000-8000-000000000001', ?1, ?2, ?3, ?4)",
        )
        .expect("prepare");
    let start = Instant::now();
    for r in &reports {
        raw.execute_batch("BEGIN IMMEDIATE").expect("begin");
        insert
            .execute(params![
                r.date.to_string(),
                r.source,
                r.steps,
                r.recorded_at.to_rfc3339()
            ])
            .expect("insert");
        raw.execute_batch("COMMIT").expect("commit");
    }
    let raw_took = start.elapsed();
    println!("record_steps, one report per call ({CALLS} calls, WAL, synchronous=FULL):");
    println!(
        "  fitkart-core {:>9.0} calls/s   raw rusqlite insert {:>9.0}/s   ratio {:.2}x",
        per_second(CALLS, ours),
        per_second(CALLS, raw_took),
        raw_took.as_secs_f64() / ours.as_secs_f64()
    );

    // A backfill: many reports in one transaction.
    let day = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap_or_default();
    let batch: Vec<StepReport> = (0..BATCH)
        .map(|i| report(day, format!("source-{i}"), 1_000 + i as i64))
        .collect();
    let start = Instant::now();
    app.record_steps_batch(&batch).expect("batch");
    let ours = start.elapsed();
    let start = Instant::now();
    raw.execute_batch("BEGIN IMMEDIATE").expect("begin");
    for r in &batch {
        insert
            .execute(params![
                r.date.to_string(),
                r.source,
                r.steps,
                r.recorded_at.to_rfc3339()
            ])
            .expect("insert");
    }
    raw.execute_batch("COMMIT").expect("commit");
    let raw_took = start.elapsed();
    // The raw limit of the same writes: the rows record_steps stores (the device total and
    // its queued record, with the schema's keys, index, checks and foreign key), inserted
    // with bare statements into the device's own database for another user.
    let same_tables = Connection::open(dir.path().join("fitkart.db")).expect("open");
    same_tables
        .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .expect("pragmas");
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
    let batch: Vec<StepReport> = (0..BATCH)
        .map(|i| report(day, format!("source-{i}"), 1_000 + i as i64))
        .collect();
    let start = Instant::now();
    {
        let tx = same_tables.unchecked_transaction().expect("begin");
        let mutation = uuid::Uuid::now_v7().to_string();
        tx.execute(
            "INSERT INTO outbox (mutation_id, user_id, sequence, kind, created_at)
             VALUES (?1, '00000000-0000-7000-8000-000000000002',
                     (SELECT coalesce(max(sequence), 0) + 1 FROM outbox), 'record_steps', ?2)",
            params![mutation, Utc::now().to_rfc3339()],
        )
        .expect("mutation");
        let mut total = tx
            .prepare(
                "INSERT INTO device_steps (user_id, local_date, source, steps, recorded_at)
                 VALUES ('00000000-0000-7000-8000-000000000002', ?1, ?2, ?3, ?4)",
            )
            .expect("prepare");
        let mut queued = tx
            .prepare(
                "INSERT INTO outbox_steps (mutation_id, local_date, source, steps, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .expect("prepare");
        for r in &batch {
            let date = r.date.to_string();
            let at = r.recorded_at.to_rfc3339();
            total
                .execute(params![date, r.source, r.steps, at])
                .expect("insert");
            queued
                .execute(params![mutation, date, r.source, r.steps, at])
                .expect("insert");
        }
        drop((total, queued));
        tx.commit().expect("commit");
    }
    let same_took = start.elapsed();
    println!("record_steps_batch, {BATCH} reports in one transaction:");
    println!(
        "  fitkart-core {:>9.0} reports/s raw rusqlite insert {:>9.0}/s   ratio {:.2}x",
        per_second(BATCH, ours),
        per_second(BATCH, raw_took),
        raw_took.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  raw inserts of the same rows into the device's tables (total + queued record) {:>9.0}/s   ratio {:.2}x\n",
        per_second(BATCH, same_took),
        same_took.as_secs_f64() / ours.as_secs_f64()
    );
}

async fn new_phone(
    server: &TestServer,
    dir: &std::path::Path,
    email: &str,
) -> (FitKart, Arc<TimedTransport>) {
    let transport = TimedTransport::new(&server.url(""), Duration::ZERO);
    let app = FitKart::open_with(
        Config::new(dir.join("fitkart.db"), server.url("")),
        Arc::new(MemoryTokenStore::new()),
        transport.clone(),
        Arc::new(SystemClock),
    )
    .expect("open");
    app.register(email, "benchmark-password", "Bench")
        .await
        .expect("register");
    (app, transport)
}

async fn sync_of_queued_records() {
    const RECORDS: usize = 10_000;
    let server = TestServer::start().await.expect("server");
    let today = Utc::now().date_naive();
    // 10,000 distinct (date, source) totals inside the 7-day backfill window: many sources a
    // day (a source is free text), totals a day's anti-cheat rules accept.
    let per_day = RECORDS.div_ceil(7);
    let records: Vec<StepReport> = (0..RECORDS)
        .map(|i| {
            let date = today - Days::new(1 + (i / per_day) as u64);
            report(
                date,
                format!("sensor-{}", i % per_day),
                3_000 + (i % 500) as i64,
            )
        })
        .collect();

    let dir = tempfile::tempdir().expect("dir");
    let (app, transport) = new_phone(&server, dir.path(), "bench-sync@example.com").await;
    app.sync().await.expect("first sync");
    app.record_steps_batch(&records).expect("queue");
    let phases = Arc::new(Phases::default());
    app.add_listener(phases.clone());
    transport.take();
    let start = Instant::now();
    let report = app.sync().await.expect("sync");
    let ours = start.elapsed();
    assert_eq!(app.pending_changes().expect("pending"), 0);

    // The raw limit: the same records pushed by a bare HTTP client for another user, then
    // the same changes pulled back, page by page, without storing them.
    let http = reqwest::Client::builder().gzip(true).build().expect("http");
    let other_dir = tempfile::tempdir().expect("dir");
    let (other, _) = new_phone(&server, other_dir.path(), "bench-raw@example.com").await;
    other
        .sync()
        .await
        .expect("register the device and take a cursor");
    let token = raw_token(&server, &http, "bench-raw@example.com").await;
    let device = register_device(&server, &http, &token).await;
    let cursor = other
        .store()
        .read(fitkart_core::engine::pull_cursor)
        .expect("cursor");
    let mutations: Vec<serde_json::Value> = records
        .chunks(1000)
        .map(|chunk| {
            serde_json::json!({
                "id": uuid::Uuid::now_v7(), "kind": "record_steps",
                "payload": {"records": chunk}, "created_at": Utc::now(),
            })
        })
        .collect();
    let body =
        serde_json::to_vec(&serde_json::json!({"device_id": device, "mutations": mutations}))
            .expect("body");
    let start = Instant::now();
    let response = http
        .post(server.url("/api/v1/sync/push"))
        .bearer_auth(&token)
        .header("x-fitkart-protocol-version", "1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("push");
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.bytes().await;
    let raw_push = start.elapsed();
    let start = Instant::now();
    let (pages, raw_rows) = raw_pull(&server, &http, &token, cursor, Duration::ZERO).await;
    let raw_pull_took = start.elapsed();
    let raw_took = raw_push + raw_pull_took;

    println!("sync of {RECORDS} queued step records (release server on PostgreSQL, loopback):");
    println!(
        "  fitkart-core sync {:>7.0} ms ({:.0} records/s; pushed {} mutations, pulled {} rows in {} pages)",
        ms(ours),
        per_second(RECORDS, ours),
        report.pushed,
        report.pulled.total(),
        report.pulled.pages,
    );
    print_phases(&phases);
    print_breakdown(&transport.take(), ours);
    println!(
        "  raw HTTP push of the same records {:>7.0} ms + raw pull of the {raw_rows} changed rows ({pages} pages) {:>5.0} ms = {:.0} ms   ratio {:.2}x\n",
        ms(raw_push),
        ms(raw_pull_took),
        ms(raw_took),
        raw_took.as_secs_f64() / ours.as_secs_f64()
    );
    server.stop().await.expect("stop");
}

/// Pulls every change after `cursor` with a bare HTTP client, each page first waiting
/// `round_trip`; returns (pages, rows).
async fn raw_pull(
    server: &TestServer,
    http: &reqwest::Client,
    token: &str,
    mut cursor: Option<String>,
    round_trip: Duration,
) -> (usize, usize) {
    let (mut pages, mut rows) = (0, 0);
    loop {
        if !round_trip.is_zero() {
            tokio::time::sleep(round_trip).await;
        }
        let mut url = server.url("/api/v1/sync/pull?limit=1000");
        if let Some(cursor) = &cursor {
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let page: fitkart_core::protocol::sync::PullResponse = http
            .get(url)
            .bearer_auth(token)
            .header("x-fitkart-protocol-version", "1")
            .send()
            .await
            .expect("pull")
            .json()
            .await
            .expect("page");
        pages += 1;
        let c = &page.changes;
        rows += c.step_records.len()
            + c.coin_transactions.len()
            + c.orders.len()
            + c.products.len()
            + c.achievements.len()
            + c.achievements_unlocked.len()
            + c.settings.len()
            + usize::from(c.wallet.is_some())
            + usize::from(c.profile.is_some());
        if !page.has_more {
            return (pages, rows);
        }
        cursor = Some(page.next_cursor);
    }
}

async fn raw_token(server: &TestServer, http: &reqwest::Client, email: &str) -> String {
    let answer: serde_json::Value = http
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": "benchmark-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    answer["access_token"].as_str().expect("token").to_owned()
}

async fn register_device(server: &TestServer, http: &reqwest::Client, token: &str) -> uuid::Uuid {
    let device = uuid::Uuid::now_v7();
    let response = http
        .post(server.url("/api/v1/devices"))
        .bearer_auth(token)
        .header("x-fitkart-protocol-version", "1")
        .json(&serde_json::json!({"device_id": device, "platform": "other"}))
        .send()
        .await
        .expect("device");
    assert!(response.status().is_success(), "{}", response.status());
    device
}

async fn restore_a_year() {
    let server = TestServer::start().await.expect("server");
    // Bench set-up only: let the server accept a year of backfill (the admin API caps the
    // window at 31 days), and make sure the year's step partitions exist.
    let db = server.db().client().await.expect("db");
    db.batch_execute(
        "UPDATE settings SET value = '400' WHERE key = 'steps.backfill_days';
         SELECT ensure_step_record_partitions(
             date_trunc('month', now() - interval '13 months')::date, 15);",
    )
    .await
    .expect("setup");

    let dir = tempfile::tempdir().expect("dir");
    let (app, _) = new_phone(&server, dir.path(), "bench-year@example.com").await;
    let today = Utc::now().date_naive();
    let year: Vec<StepReport> = (1..=365_u64)
        .flat_map(|d| {
            let date = today - Days::new(d);
            [
                report(date, "phone".into(), 6_000 + (d as i64 * 37) % 6_000),
                report(date, "watch".into(), 5_000 + (d as i64 * 53) % 7_000),
            ]
        })
        .collect();
    app.record_steps_batch(&year).expect("queue");
    app.sync().await.expect("upload a year");

    // The server's connections and caches warm for both contenders: one bare pull first.
    let http = reqwest::Client::builder().gzip(true).build().expect("http");
    let token = raw_token(&server, &http, "bench-year@example.com").await;
    raw_pull(&server, &http, &token, None, Duration::ZERO).await;

    // One restore lasts some 20 ms, so a single one says little on a shared machine: fresh
    // phones restore in turn with the raw limit's rounds, and the medians are compared.
    restore_rounds(&server, &http, &token, Duration::ZERO, RESTORE_ROUNDS).await;
    // Over loopback an exchange costs the server's time only; over a phone's network each
    // costs a round trip too, and the exchanges a sync makes one after another add up.
    restore_rounds(&server, &http, &token, MOBILE_ROUND_TRIP, MOBILE_ROUNDS).await;
    server.stop().await.expect("stop");
}

/// Restores `rounds` fresh phones, each beside a raw round, every exchange of both first
/// waiting `round_trip`, and prints the medians.
async fn restore_rounds(
    server: &TestServer,
    http: &reqwest::Client,
    token: &str,
    round_trip: Duration,
    rounds: usize,
) {
    let mut ours = Vec::new();
    let mut raws = Vec::new();
    for _ in 0..rounds {
        ours.push(restore_once(server, round_trip).await);
        raws.push(raw_restore_once(server, http, token, round_trip).await);
    }
    ours.sort_by_key(|round| round.whole);
    raws.sort_by_key(|round| round.whole());
    let (median, raw) = (&ours[ours.len() / 2], &raws[raws.len() / 2]);
    let rows = median.rows;
    let spread =
        |took: Duration| format!("{:.1} ms: {:.0} rows/s", ms(took), per_second(rows, took));
    let network = if round_trip.is_zero() {
        "loopback".to_owned()
    } else {
        format!(
            "each exchange {:.0} ms longer, as over a mobile network",
            ms(round_trip)
        )
    };
    println!(
        "restoring a fresh phone from a pull of a year of history ({network}; median of {rounds} fresh phones, each round beside a raw one):"
    );
    println!(
        "  fitkart-core: {rows} rows in {} page(s); whole sync {}; pull phase {:.1} ms: {:.0} rows/s; fastest {}, slowest {}",
        median.pages,
        spread(median.whole),
        ms(median.pulling),
        per_second(rows, median.pulling),
        spread(ours[0].whole),
        spread(ours[ours.len() - 1].whole),
    );
    println!("    phases: {}", median.phases);
    print_breakdown(&median.exchanges, median.whole);
    println!(
        "  raw HTTP pull of the same {} rows ({} pages) {:.1} ms + raw SQLite insert {:.1} ms = {} ({:.1}-{:.1} ms)   ratio {:.2}x\n",
        raw.rows,
        raw.pages,
        ms(raw.pull),
        ms(raw.insert),
        spread(raw.whole()),
        ms(raws[0].whole()),
        ms(raws[raws.len() - 1].whole()),
        raw.whole().as_secs_f64() / median.whole.as_secs_f64()
    );
}

/// Fresh phones restored from the year of history, each beside a raw round.
const RESTORE_ROUNDS: usize = 9;

/// A mobile network's round trip, added to every exchange of the second set of restores
/// (4G's is some 30-70 ms).
const MOBILE_ROUND_TRIP: Duration = Duration::from_millis(50);

/// Fresh phones restored over [`MOBILE_ROUND_TRIP`] (each round lasts some 0.5 s).
const MOBILE_ROUNDS: usize = 5;

/// One fresh phone's restore: what it pulled, its time, and where the time went.
struct Restore {
    rows: usize,
    pages: u64,
    whole: Duration,
    pulling: Duration,
    phases: String,
    exchanges: Vec<Exchange>,
}

/// Signs a fresh phone in (untimed) and times its first sync.
async fn restore_once(server: &TestServer, round_trip: Duration) -> Restore {
    let dir = tempfile::tempdir().expect("dir");
    let transport = TimedTransport::new(&server.url(""), round_trip);
    let fresh = FitKart::open_with(
        Config::new(dir.path().join("fitkart.db"), server.url("")),
        Arc::new(MemoryTokenStore::new()),
        transport.clone(),
        Arc::new(SystemClock),
    )
    .expect("open");
    fresh
        .login("bench-year@example.com", "benchmark-password")
        .await
        .expect("login");
    let phases = Arc::new(Phases::default());
    fresh.add_listener(phases.clone());
    phases.clear();
    transport.take();
    let start = Instant::now();
    let report = fresh.sync().await.expect("restore");
    let whole = start.elapsed();
    Restore {
        rows: report.pulled.total() as usize,
        pages: report.pulled.pages,
        whole,
        pulling: phases.took("pulling").unwrap_or(whole),
        phases: phases.summary(),
        exchanges: transport.take(),
    }
}

/// The raw limit of one restore: the same pages pulled by a bare HTTP client, and as many
/// rows inserted into a fresh SQLite file in one transaction at the same durability.
struct RawRestore {
    rows: usize,
    pages: usize,
    pull: Duration,
    insert: Duration,
}

impl RawRestore {
    fn whole(&self) -> Duration {
        self.pull + self.insert
    }
}

async fn raw_restore_once(
    server: &TestServer,
    http: &reqwest::Client,
    token: &str,
    round_trip: Duration,
) -> RawRestore {
    let start = Instant::now();
    let (pages, rows) = raw_pull(server, http, token, None, round_trip).await;
    let pull = start.elapsed();
    let dir = tempfile::tempdir().expect("dir");
    let raw = raw_connection(dir.path());
    let start = Instant::now();
    raw.execute_batch("BEGIN IMMEDIATE").expect("begin");
    {
        let mut insert = raw
            .prepare(
                "INSERT INTO steps (user_id, local_date, source, steps, recorded_at)
                 VALUES ('u', ?1, ?2, ?3, 'x')",
            )
            .expect("prepare");
        for i in 0..rows {
            insert
                .execute(params![format!("d{i}"), "s", i as i64])
                .expect("insert");
        }
    }
    raw.execute_batch("COMMIT").expect("commit");
    RawRestore {
        rows,
        pages,
        pull,
        insert: start.elapsed(),
    }
}

//! Device benchmarks: each figure next to the raw limit of the same work, measured in the
//! same run. Prints its figures; asserts nothing about speed.
//!
//! ```sh
//! CARGO_TARGET_DIR=target/bench cargo bench -p fitkart-e2e --bench device
//! ```
//!
//! Needs PostgreSQL at DATABASE_URL (default: the local one), like the tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use fitkart_core::protocol::steps::StepReport;
use fitkart_core::{Config, FitKart, MemoryTokenStore};
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

fn per_second(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

fn record_steps_against_raw_inserts() {
    const CALLS: usize = 1_000;
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
    println!("record_steps_batch, {BATCH} reports in one transaction:");
    println!(
        "  fitkart-core {:>9.0} reports/s raw rusqlite insert {:>9.0}/s   ratio {:.2}x\n",
        per_second(BATCH, ours),
        per_second(BATCH, raw_took),
        raw_took.as_secs_f64() / ours.as_secs_f64()
    );
}

async fn new_phone(server: &TestServer, dir: &std::path::Path, email: &str) -> FitKart {
    let app = FitKart::open(
        Config::new(dir.join("fitkart.db"), server.url("")),
        Arc::new(MemoryTokenStore::new()),
    )
    .expect("open");
    app.register(email, "benchmark-password", "Bench")
        .await
        .expect("register");
    app
}

async fn sync_of_queued_records() {
    const RECORDS: usize = 10_000;
    let server = TestServer::start().await.expect("server");
    let today = Utc::now().date_naive();
    // 10,000 distinct (date, source) totals inside the 7-day backfill window.
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
    let app = new_phone(&server, dir.path(), "bench-sync@example.com").await;
    app.sync().await.expect("first sync");
    app.record_steps_batch(&records).expect("queue");
    let start = Instant::now();
    let report = app.sync().await.expect("sync");
    let ours = start.elapsed();
    assert_eq!(app.pending_changes().expect("pending"), 0);

    // The raw limit: the same records pushed by a bare HTTP client for another user.
    let http = reqwest::Client::new();
    let other_dir = tempfile::tempdir().expect("dir");
    let other = new_phone(&server, other_dir.path(), "bench-raw@example.com").await;
    other.sync().await.expect("register the device");
    let token = raw_token(&server, &http, "bench-raw@example.com").await;
    let device = register_device(&server, &http, &token).await;
    let mutations: Vec<serde_json::Value> = records
        .chunks(1000)
        .map(|chunk| {
            serde_json::json!({
                "id": uuid::Uuid::now_v7(), "kind": "record_steps",
                "payload": {"records": chunk}, "created_at": Utc::now(),
            })
        })
        .collect();
    let start = Instant::now();
    let response = http
        .post(server.url("/api/v1/sync/push"))
        .bearer_auth(&token)
        .header("x-fitkart-protocol-version", "1")
        .json(&serde_json::json!({"device_id": device, "mutations": mutations}))
        .send()
        .await
        .expect("push");
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.bytes().await;
    let raw_took = start.elapsed();

    println!("sync of {RECORDS} queued step records (release server on PostgreSQL, loopback):");
    println!(
        "  fitkart-core sync {:>7.0} ms ({:.0} records/s; pushed {} mutations, pulled {} rows)",
        ours.as_secs_f64() * 1000.0,
        per_second(RECORDS, ours),
        report.pushed,
        report.pulled.total()
    );
    println!(
        "  raw HTTP push of the same records {:>7.0} ms   ratio {:.2}x\n",
        raw_took.as_secs_f64() * 1000.0,
        raw_took.as_secs_f64() / ours.as_secs_f64()
    );
    server.stop().await.expect("stop");
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
    let app = new_phone(&server, dir.path(), "bench-year@example.com").await;
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

    let fresh_dir = tempfile::tempdir().expect("dir");
    let fresh = FitKart::open(
        Config::new(fresh_dir.path().join("fitkart.db"), server.url("")),
        Arc::new(MemoryTokenStore::new()),
    )
    .expect("open");
    fresh
        .login("bench-year@example.com", "benchmark-password")
        .await
        .expect("login");
    let start = Instant::now();
    let report = fresh.sync().await.expect("restore");
    let ours = start.elapsed();
    let rows = report.pulled.total() as usize;

    // The raw limit on the device side: inserting the same number of rows into SQLite.
    let raw = raw_connection(fresh_dir.path());
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
    let raw_took = start.elapsed();

    println!("restoring a fresh phone from a pull of a year of history:");
    println!(
        "  {rows} rows in {} page(s), {:.0} ms: {:.0} rows/s (whole sync: register, pull, refresh)",
        report.pulled.pages,
        ours.as_secs_f64() * 1000.0,
        per_second(rows, ours)
    );
    println!(
        "  raw SQLite insert of {rows} rows {:.1} ms ({:.0} rows/s)",
        raw_took.as_secs_f64() * 1000.0,
        per_second(rows, raw_took)
    );
    server.stop().await.expect("stop");
}

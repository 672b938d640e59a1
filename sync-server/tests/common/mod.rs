//! Helpers shared by the integration tests: each `tests/*.rs` file says `mod common;`, each
//! `tests/<area>/main.rs` says `#[path = "../common/mod.rs"] mod common;`.

// Every test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Days, NaiveDate, Utc};
use deadpool_postgres::Pool;
use fitkart_protocol::auth::TokenResponse;
use fitkart_protocol::steps::StepReport;
use fitkart_sync_server::rewards::ledger::{self, Entry, EntryKind};
use fitkart_sync_server::testing::{TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// The password of every account the tests make.
pub const PASSWORD: &str = "walking is good for you";

/// The server binary Cargo built for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_fitkart-sync-server");

/// The server binary against `db`, logging warnings only, without stdin.
pub fn cli(db: &TestDb) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("DATABASE_URL", db.url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs `verify-ledger` against `db`.
pub fn verify_ledger_cli(db: &TestDb) -> Output {
    cli(db).arg("verify-ledger").output().unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// Sends `request` and answers its status and JSON body (`Null` when it has none).
pub async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The error code of an error envelope.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

/// A JSON client for one server, with paths given in full (`/api/v1/...`).
pub struct Api<'a> {
    pub server: &'a TestServer,
    pub http: reqwest::Client,
}

impl<'a> Api<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        Self {
            server,
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.server.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(Method::GET, path, None, token).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body), token).await
    }

    /// Registers `email` (display name "Walker"); expects 201.
    pub async fn register(&self, email: &str) -> TokenResponse {
        sign_up(&self.http, self.server, email, "Walker").await
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
            None,
        )
        .await
    }
}

/// A JSON client rooted at `base`, cheap to clone into concurrent tasks; each test file adds
/// the calls it needs.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    /// Paths given in full (`/api/v1/...`).
    pub fn new(server: &TestServer) -> Self {
        Self {
            base: server.url(""),
            http: reqwest::Client::new(),
        }
    }

    /// Paths relative to `/api/v1`.
    pub fn api_v1(server: &TestServer) -> Self {
        Self {
            base: server.url("/api/v1"),
            http: reqwest::Client::new(),
        }
    }

    /// A request to `path` under the base, with `token` as bearer when given.
    pub fn request_as(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

/// A signed-in account.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: Uuid,
    pub token: String,
}

/// The account of a register or login answer.
pub fn account(body: Value) -> Account {
    let session: TokenResponse = serde_json::from_value(body).unwrap();
    Account {
        id: session.user.id,
        token: session.access_token,
    }
}

/// Registers `email` with [`PASSWORD`]; expects 201.
pub async fn sign_up(
    http: &reqwest::Client,
    server: &TestServer,
    email: &str,
    display_name: &str,
) -> TokenResponse {
    let body = json!({"email": email, "password": PASSWORD, "display_name": display_name});
    let (status, body) = answer(http.post(server.url("/api/v1/auth/register")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Signs `email` in with [`PASSWORD`]; expects 200.
pub async fn sign_in(http: &reqwest::Client, server: &TestServer, email: &str) -> TokenResponse {
    let body = json!({"email": email, "password": PASSWORD});
    let (status, body) = answer(http.post(server.url("/api/v1/auth/login")).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Creates an administrator with [`PASSWORD`] straight in the database.
pub async fn create_admin(server: &TestServer, email: &str, display_name: &str) {
    let mut client = server.db().client().await.unwrap();
    fitkart_sync_server::auth::bootstrap::create_admin(
        &mut client,
        email,
        display_name,
        PASSWORD,
        false,
    )
    .await
    .unwrap();
}

/// Creates the administrator boss@example.com and signs it in.
pub async fn admin_session(http: &reqwest::Client, server: &TestServer) -> TokenResponse {
    create_admin(server, "boss@example.com", "Boss").await;
    sign_in(http, server, "boss@example.com").await
}

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

/// Gives a user coins the way an admin adjustment does: the next change version of the user
/// under its lock, then the ledger entry, in one transaction.
pub async fn grant(pool: &Pool, user_id: Uuid, coins: i64) {
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let version = fitkart_sync_server::sync::versions::next_user_version(&tx, user_id)
        .await
        .unwrap();
    ledger::post(
        &tx,
        user_id,
        version,
        &[Entry {
            kind: EntryKind::AdminAdjustment,
            available_delta: coins,
            frozen_delta: 0,
            reference: Some(("admin", "test".into())),
            idempotency_key: format!("test-grant:{}", Uuid::new_v4()),
            description: None,
            created_by: None,
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// One bigint from a query with one uuid parameter.
pub async fn count(server: &TestServer, sql: &str, param: Uuid) -> i64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(sql, &[&param])
        .await
        .unwrap()
        // The caller's query names its one column as it likes: read it by position.
        .get(0)
}

/// How many `admin_logs` rows record `action`.
pub async fn audit_rows(server: &TestServer, action: &str) -> i64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) AS logs FROM admin_logs WHERE action = $1",
            &[&action],
        )
        .await
        .unwrap()
        .get("logs")
}

/// How many `admin_logs` rows there are, whatever their action.
pub async fn admin_log_rows(server: &TestServer) -> i64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) AS logs FROM admin_logs", &[])
        .await
        .unwrap()
        .get("logs")
}

/// Products that came from a Shopify import.
pub async fn imported_products(server: &TestServer) -> i64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) AS products FROM reward_products WHERE shopify_product_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get("products")
}

/// The ledger proves every wallet.
pub async fn assert_ledger_ok(server: &TestServer) {
    let client = server.db().client().await.unwrap();
    let report = ledger::verify(&client).await.unwrap();
    assert!(report.is_ok(), "ledger problems: {:?}", report.problems);
}

// ---------------------------------------------------------------------------------------------
// Days and steps
// ---------------------------------------------------------------------------------------------

/// The UTC date `n` days before today (new users live in UTC).
pub fn days_ago(n: u64) -> NaiveDate {
    Utc::now().date_naive() - Days::new(n)
}

/// Yesterday's UTC date.
pub fn yesterday() -> NaiveDate {
    days_ago(1)
}

/// `hh:mm` UTC on `date`.
pub fn at(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    date.and_hms_opt(hour, minute, 0).unwrap().and_utc()
}

pub fn report(date: NaiveDate, source: &str, steps: i64, recorded_at: DateTime<Utc>) -> StepReport {
    StepReport {
        date,
        source: source.to_owned(),
        steps,
        recorded_at,
    }
}

/// What a day total is worth with the seeded rate and cap.
pub fn day_coins(total: i64) -> i64 {
    (total * 10 / 1000).min(200)
}

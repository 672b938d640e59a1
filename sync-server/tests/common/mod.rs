//! Helpers shared by the integration tests: each `tests/*.rs` file says `mod common;`, each
//! `tests/<area>/main.rs` says `#[path = "../common/mod.rs"] mod common;`.

// Every test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Days, NaiveDate, Utc};
use deadpool_postgres::Pool;
use fitkart_protocol::auth::TokenResponse;
use fitkart_protocol::steps::{
    RecordOutcome, RecordStepsRequest, RecordStepsResponse, StepReport, Wallet,
};
use fitkart_protocol::sync::PROTOCOL_VERSION_HEADER;
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

/// Who a request is sent as: a bearer token (`&str`, `&String`), a signed-in [`Account`] or
/// session ([`TokenResponse`]), or `None` for an anonymous caller.
pub trait Bearer {
    /// The bearer token, if any.
    fn bearer(&self) -> Option<&str>;
}

impl Bearer for str {
    fn bearer(&self) -> Option<&str> {
        Some(self)
    }
}

impl Bearer for String {
    fn bearer(&self) -> Option<&str> {
        Some(self)
    }
}

// The only `Option` impl, so that a bare `None` needs no annotation at the call site.
impl Bearer for Option<&str> {
    fn bearer(&self) -> Option<&str> {
        *self
    }
}

impl Bearer for Account {
    fn bearer(&self) -> Option<&str> {
        Some(&self.token)
    }
}

impl Bearer for TokenResponse {
    fn bearer(&self) -> Option<&str> {
        Some(&self.access_token)
    }
}

impl<T: Bearer + ?Sized> Bearer for &T {
    fn bearer(&self) -> Option<&str> {
        (**self).bearer()
    }
}

/// `request` with `who`'s token as bearer, if it has one.
fn as_caller(request: reqwest::RequestBuilder, who: impl Bearer) -> reqwest::RequestBuilder {
    match who.bearer() {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// The one JSON client of the integration tests, cheap to clone into concurrent tasks. Paths
/// are appended to its base: the server's root ([`Api::new`], paths given in full) or
/// `/api/v1` ([`Api::api_v1`]). Every call answers its status and JSON body.
#[derive(Clone)]
pub struct Api {
    /// What every path is appended to.
    pub base: String,
    /// The server's root, for the account routes whatever the base.
    root: String,
    /// The underlying HTTP client.
    pub http: reqwest::Client,
}

impl Api {
    /// Paths given in full (`/api/v1/...`).
    pub fn new(server: &TestServer) -> Self {
        Self::with_http(reqwest::Client::new(), server)
    }

    /// Paths relative to `/api/v1`.
    pub fn api_v1(server: &TestServer) -> Self {
        Self {
            base: server.url("/api/v1"),
            ..Self::new(server)
        }
    }

    /// Paths given in full, sent through `http`.
    pub fn with_http(http: reqwest::Client, server: &TestServer) -> Self {
        Self::at(server.url(""), http)
    }

    /// Paths given in full to a server the test started itself at `root` (`http://host:port`),
    /// sent through `http`.
    pub fn at(root: String, http: reqwest::Client) -> Self {
        Self {
            base: root.clone(),
            root,
            http,
        }
    }

    /// The same base with a new HTTP client sending `agent` as the `User-Agent` of every
    /// request.
    pub fn with_user_agent(self, agent: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .user_agent(agent)
                .build()
                .unwrap(),
            ..self
        }
    }

    /// The same base with a new HTTP client that neither asks for nor decodes gzip, so tests
    /// see the bodies as sent.
    pub fn without_gzip(self) -> Self {
        Self {
            http: reqwest::Client::builder().no_gzip().build().unwrap(),
            ..self
        }
    }

    /// The URL of `path` under the base.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` under the base, sent as `who`.
    pub fn request(&self, method: Method, path: &str, who: impl Bearer) -> reqwest::RequestBuilder {
        as_caller(self.http.request(method, self.url(path)), who)
    }

    /// A request to `path` given in full (`/api/v1/...`) whatever the base, sent as `who`.
    fn request_from_root(
        &self,
        method: Method,
        path: &str,
        who: impl Bearer,
    ) -> reqwest::RequestBuilder {
        as_caller(
            self.http.request(method, format!("{}{path}", self.root)),
            who,
        )
    }

    /// [`Api::request`] with the sync protocol version header, when given.
    pub fn versioned(
        &self,
        method: Method,
        path: &str,
        who: impl Bearer,
        version: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.request(method, path, who);
        match version {
            Some(version) => request.header(PROTOCOL_VERSION_HEADER, version),
            None => request,
        }
    }

    /// Sends `body` (none when `None`) to `path` as `who`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        who: impl Bearer,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, who);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    /// Sends `body` as JSON text exactly as given, well-formed or not.
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
        who: impl Bearer,
    ) -> (StatusCode, Value) {
        let request = self
            .request(method, path, who)
            .header("content-type", "application/json")
            .body(body);
        answer(request).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, who: impl Bearer) -> (StatusCode, Value) {
        self.send(Method::GET, path, None, who).await
    }

    /// `GET path` with `query`.
    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, String)],
        who: impl Bearer,
    ) -> (StatusCode, Value) {
        answer(self.request(Method::GET, path, who).query(query)).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: Value, who: impl Bearer) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body), who).await
    }

    /// `PUT path` with `body`.
    pub async fn put(&self, path: &str, body: Value, who: impl Bearer) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(body), who).await
    }

    /// `PATCH path` with `body`.
    pub async fn patch(&self, path: &str, body: Value, who: impl Bearer) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body), who).await
    }

    /// `DELETE path`, without a body.
    pub async fn delete(&self, path: &str, who: impl Bearer) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None, who).await
    }

    /// `POST` to an account route (`/api/v1/auth/...`) whatever the base.
    async fn post_account_route(&self, route: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/auth/{route}");
        answer(
            self.request_from_root(Method::POST, &path, None)
                .json(&body),
        )
        .await
    }

    /// Registers `email` with [`PASSWORD`] and `display_name`; expects 201.
    pub async fn sign_up(&self, email: &str, display_name: &str) -> TokenResponse {
        let body = json!({"email": email, "password": PASSWORD, "display_name": display_name});
        let (status, body) = self.post_account_route("register", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Registers `email` (display name "Walker"); expects 201.
    pub async fn register(&self, email: &str) -> TokenResponse {
        self.sign_up(email, "Walker").await
    }

    /// Registers `email` (display name "Walker") and answers its account; expects 201.
    pub async fn account(&self, email: &str) -> Account {
        Account::from(self.register(email).await)
    }

    /// Signs `email` in with [`PASSWORD`]; expects 200.
    pub async fn sign_in(&self, email: &str) -> TokenResponse {
        let body = json!({"email": email, "password": PASSWORD});
        let (status, body) = self.post_account_route("login", body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Signs `email` in with [`PASSWORD`] and answers a new session's account; expects 200.
    pub async fn signed_in(&self, email: &str) -> Account {
        Account::from(self.sign_in(email).await)
    }

    /// Creates the administrator boss@example.com and signs it in.
    pub async fn admin(&self, server: &TestServer) -> TokenResponse {
        create_admin(server, "boss@example.com", "Boss").await;
        self.sign_in("boss@example.com").await
    }

    /// [`Api::admin`] as an account.
    pub async fn admin_account(&self, server: &TestServer) -> Account {
        Account::from(self.admin(server).await)
    }

    /// Any sign-in attempt, answered as it comes.
    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        let body = json!({"email": email, "password": password});
        self.post_account_route("login", body).await
    }

    /// Any refresh attempt, answered as it comes.
    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let body = json!({"refresh_token": refresh_token});
        self.post_account_route("refresh", body).await
    }

    /// `GET /api/v1/wallet`; expects 200.
    pub async fn wallet(&self, who: impl Bearer) -> Wallet {
        let request = self.request_from_root(Method::GET, "/api/v1/wallet", who);
        let (status, body) = answer(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Steps over HTTP
// ---------------------------------------------------------------------------------------------

impl Api {
    /// `POST /api/v1/steps/record` with `reports`, answered as it comes.
    pub async fn record_raw(
        &self,
        who: impl Bearer,
        reports: &[StepReport],
    ) -> (StatusCode, Value) {
        let request = RecordStepsRequest {
            records: reports.to_vec(),
        };
        let path = "/api/v1/steps/record";
        answer(
            self.request_from_root(Method::POST, path, who)
                .json(&request),
        )
        .await
    }

    /// Sends reports and expects them to be processed (200).
    pub async fn record(&self, who: impl Bearer, reports: &[StepReport]) -> RecordStepsResponse {
        let (status, body) = self.record_raw(who, reports).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }
}

/// Each result's status and code, in request order.
pub fn outcomes(response: &RecordStepsResponse) -> Vec<(RecordOutcome, Option<&str>)> {
    response
        .results
        .iter()
        .map(|r| (r.status, r.code.as_deref()))
        .collect()
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

impl From<TokenResponse> for Account {
    fn from(session: TokenResponse) -> Self {
        Account {
            id: session.user.id,
            token: session.access_token,
        }
    }
}

/// Registers `email` with [`PASSWORD`]; expects 201.
pub async fn sign_up(
    http: &reqwest::Client,
    server: &TestServer,
    email: &str,
    display_name: &str,
) -> TokenResponse {
    Api::with_http(http.clone(), server)
        .sign_up(email, display_name)
        .await
}

/// Signs `email` in with [`PASSWORD`]; expects 200.
pub async fn sign_in(http: &reqwest::Client, server: &TestServer, email: &str) -> TokenResponse {
    Api::with_http(http.clone(), server).sign_in(email).await
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
    Api::with_http(http.clone(), server).admin(server).await
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

/// The rows of a query on the server's database (a fresh connection per call).
pub async fn rows(
    server: &TestServer,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<tokio_postgres::Row> {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query(sql, params)
        .await
        .unwrap()
}

/// Runs one statement on the server's database (a fresh connection per call): what an
/// operator, an older build or an import would have left there. Returns the rows it changed.
pub async fn execute(
    server: &TestServer,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> u64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .execute(sql, params)
        .await
        .unwrap()
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

//! The server as ops run it: it creates and migrates a brand-new database on start, answers
//! health and readiness, speaks the error envelope, and shuts down gracefully.

use fitkart_protocol::{ErrorEnvelope, HealthStatus};
use fitkart_sync_server::db;
use fitkart_sync_server::testing::TestServer;

#[tokio::test]
async fn a_new_server_on_a_brand_new_database_is_healthy_and_ready() {
    let server = TestServer::start().await.unwrap();
    let http = reqwest::Client::new();

    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<HealthStatus>().await.unwrap().status, "ok");

    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: HealthStatus = ready.json().await.unwrap();
    assert_eq!(ready.schema_version, Some(db::latest_migration_version()));

    // Seeds were loaded on start.
    let client = server.db().client().await.unwrap();
    let products: i64 = client
        .query_one("SELECT count(*) FROM reward_products", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(products, 8);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_fails_while_the_schema_is_missing() {
    let server = TestServer::start_with(|config| {
        config.migrate_on_start = false;
        config.seed_on_start = false;
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: ErrorEnvelope = ready.json().await.unwrap();
    assert_eq!(body.error.code, "unavailable");
}

#[tokio::test]
async fn unknown_routes_answer_the_error_envelope_with_a_request_id() {
    let server = TestServer::start().await.unwrap();
    let http = reqwest::Client::new();
    let response = http.get(server.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("a request id is returned")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!request_id.is_empty());
    let body: ErrorEnvelope = response.json().await.unwrap();
    assert_eq!(body.error.code, "not_found");

    // A request id the client sends is kept.
    let response = http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
}

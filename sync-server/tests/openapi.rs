//! `GET /openapi.json`: a valid OpenAPI 3 document built from the router's own registrations.
//! Every documented route is served, every admin route refuses users and anonymous callers,
//! and each route has the timeout of its group.

use std::collections::BTreeSet;
use std::time::Duration;

use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::Api;

/// The router's own 404 for a path it does not know.
const NO_SUCH_ROUTE: &str = "no such route";

/// Every route http/mod.rs registered when the document was introduced. New routes need not
/// be added here: the other tests enumerate the document itself.
const ROUTES_AT_INTRODUCTION: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("delete", "/api/v1/me"),
    ("post", "/api/v1/me/password"),
    ("post", "/api/v1/steps/record"),
    ("get", "/api/v1/steps/today"),
    ("get", "/api/v1/steps"),
    ("get", "/api/v1/wallet"),
    ("get", "/api/v1/wallet/transactions"),
    ("get", "/api/v1/achievements"),
    ("get", "/api/v1/products"),
    ("get", "/api/v1/products/{id}"),
    ("get", "/api/v1/orders"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{id}"),
    ("post", "/api/v1/orders/{id}/cancel"),
    ("get", "/api/v1/leaderboard"),
    ("get", "/api/v1/admin/orders"),
    ("post", "/api/v1/admin/orders/{id}/status"),
    ("post", "/api/v1/admin/products"),
    ("patch", "/api/v1/admin/products/{id}"),
    ("post", "/api/v1/admin/products/{id}/deactivate"),
    ("post", "/api/v1/admin/products/import"),
    ("post", "/api/v1/admin/leaderboard/refresh"),
    ("get", "/api/v1/admin/users"),
    ("get", "/api/v1/admin/users/{id}"),
    ("post", "/api/v1/admin/users/{id}/wallet/adjust"),
    ("get", "/api/v1/admin/analytics"),
    ("get", "/api/v1/admin/settings"),
    ("put", "/api/v1/admin/settings/{key}"),
    ("get", "/api/v1/admin/logs"),
    ("get", "/api/v1/admin/validations"),
    ("post", "/api/v1/admin/validations/{id}/approve"),
    ("post", "/api/v1/admin/validations/{id}/reject"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn fetch_document(server: &TestServer) -> Value {
    let response = reqwest::get(server.url("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the document is served as JSON"
    );
    response.json().await.unwrap()
}

/// Every `(method, path template, operation)` of the document.
fn operations(document: &Value) -> Vec<(Method, String, &Value)> {
    let paths = document["paths"].as_object().expect("paths");
    let mut all = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                all.push((method, path.clone(), operation));
            }
        }
    }
    all
}

/// `template` with each `{param}` filled with a plausible value: a random UUID, or a real
/// setting key for `{key}`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("key") => "rewards.coins_per_1000_steps".to_owned(),
                Some(_) => uuid::Uuid::new_v4().to_string(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` anywhere in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_and_every_reference_resolves() {
    let server = TestServer::start().await.unwrap();
    let document = fetch_document(&server).await;

    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi version {version:?}");
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": document["components"]["securitySchemes"]["bearer"]["description"]})
    );

    let operations = operations(&document);
    assert!(operations.len() >= ROUTES_AT_INTRODUCTION.len());
    for (method, path, operation) in &operations {
        let responses = operation["responses"].as_object();
        assert!(
            responses.is_some_and(|r| !r.is_empty()),
            "{method} {path} documents no response"
        );
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    document["components"]["securitySchemes"][scheme].is_object(),
                    "{method} {path} needs the undeclared scheme {scheme}"
                );
            }
        }
    }

    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(found.len() > 50, "the document references its schemas");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} is not a schema reference"));
        assert!(schemas.contains_key(name), "{target} does not resolve");
    }
    assert!(schemas.contains_key("ErrorEnvelope"));
}

#[tokio::test]
async fn the_router_serves_every_documented_route() {
    let server = TestServer::start_with(|config| {
        config.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    let document = fetch_document(&server).await;

    // The check below can tell: the router's own fallbacks look like this.
    let (status, body) = api.send(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::NOT_FOUND, Some(NO_SUCH_ROUTE))
    );
    let (status, body) = api.send(Method::DELETE, "/healthz", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    for (method, template, _) in operations(&document) {
        let path = concrete(&template);
        let (status, body) = api.send(method.clone(), &path, None, None).await;
        assert!(
            !(status == StatusCode::NOT_FOUND
                && body["error"]["message"].as_str() == Some(NO_SUCH_ROUTE)),
            "{method} {template} is documented but the router does not know it"
        );
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template} is documented but the router refuses the method"
        );
    }

    // Metrics still label requests by route template, in every group of routes.
    let metrics = api
        .http
        .get(server.metrics_url().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for route in [
        "/api/v1/orders/{id}",
        "/api/v1/admin/settings/{key}",
        "/api/v1/admin/products/import",
        "/openapi.json",
    ] {
        assert!(
            metrics.contains(&format!("route=\"{route}\"")),
            "no metrics for {route}"
        );
    }
}

#[tokio::test]
async fn every_admin_route_refuses_users_with_403_and_anonymous_callers_with_401() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let document = fetch_document(&server).await;
    let user = api.sign_up("walker@example.com", "Walker").await;

    let admin_operations: Vec<_> = operations(&document)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/api/v1/admin/"))
        .collect();
    assert!(
        admin_operations.len() >= 17,
        "the document lists {} admin operations",
        admin_operations.len()
    );
    for (method, template, operation) in admin_operations {
        let path = concrete(&template);
        let (status, body) = api
            .send(method.clone(), &path, None, &user.access_token)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {template} with a user token"
        );
        let (status, body) = api.send(method.clone(), &path, None, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("missing_token")),
            "{method} {template} without a token"
        );
        assert!(
            operation["security"].is_array(),
            "{method} {template} does not document its token"
        );
    }
}

#[tokio::test]
async fn every_route_of_the_router_before_the_document_is_documented() {
    let server = TestServer::start().await.unwrap();
    let document = fetch_document(&server).await;
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method.as_str().to_lowercase(), path))
        .collect();
    let missing: Vec<_> = ROUTES_AT_INTRODUCTION
        .iter()
        .filter(|(method, path)| !documented.contains(&((*method).to_owned(), (*path).to_owned())))
        .collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
}

/// A feed server whose every answer is a 404 after `delay`.
async fn slow_feed(delay: Duration) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        StatusCode::NOT_FOUND
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn import_from(server: &TestServer, token: &str, feed: std::net::SocketAddr) -> StatusCode {
    let body = json!({"url": format!("http://{feed}/products.json")});
    Api::new(server)
        .post("/api/v1/admin/products/import", body, token)
        .await
        .0
}

#[tokio::test]
async fn the_import_route_has_its_own_timeout() {
    let feed = slow_feed(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();

    // Longer than the default: a slow download finishes (and reports the feed's 404).
    let server = TestServer::start_with(|config| {
        config.request_timeout = Duration::from_secs(1);
        config.import_timeout = Duration::from_secs(20);
        // The slow feed is served on loopback, which imports refuse unless allow-listed.
        config.import_allowed_hosts = vec!["127.0.0.1".into()];
    })
    .await
    .unwrap();
    let token = Api::with_http(http.clone(), &server)
        .admin(&server)
        .await
        .access_token;
    assert_eq!(
        import_from(&server, &token, feed).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    drop(server);

    // And it is the import route's own: shorter than the default, it is what ends the request.
    let server = TestServer::start_with(|config| {
        config.request_timeout = Duration::from_secs(20);
        config.import_timeout = Duration::from_secs(1);
        config.import_allowed_hosts = vec!["127.0.0.1".into()];
    })
    .await
    .unwrap();
    let token = Api::with_http(http.clone(), &server)
        .admin(&server)
        .await
        .access_token;
    assert_eq!(
        import_from(&server, &token, feed).await,
        StatusCode::REQUEST_TIMEOUT
    );
}

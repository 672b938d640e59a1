//! Regressions of issue 10, part B: bad input answers a 4xx naming the field (never a 500 or a
//! dropped connection), query parameters are handled one way everywhere, an unavailable
//! database answers 503 with `Retry-After`, and a push never stores what no replay can read.

mod common;

use common::{Api, PASSWORD, answer, code, grant};
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn field(body: &Value) -> &str {
    body["error"]["details"]["field"]
        .as_str()
        .unwrap_or("<no field>")
}

async fn product(server: &TestServer) -> Uuid {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "INSERT INTO reward_products (name, category, coin_price, stock)
             VALUES ('Bottle', 'gear', 100, 10) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn address(line1: &str) -> Value {
    json!({"name": "Ann", "line1": line1, "city": "Berlin", "postal_code": "10115",
           "country": "DE"})
}

#[tokio::test]
async fn far_out_dates_are_refused_with_422_not_a_dropped_connection() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("dates@example.com").await;
    let admin = api.admin(&server).await;
    for (path, token) in [
        ("/api/v1/steps?to=-262143-01-15", &user.access_token),
        ("/api/v1/steps?from=-262143-01-15", &user.access_token),
        (
            "/api/v1/admin/analytics?to=-262143-01-15",
            &admin.access_token,
        ),
        (
            "/api/v1/admin/analytics?from=262142-01-15",
            &admin.access_token,
        ),
        (
            "/api/v1/admin/logs?from=-200000-01-01T00:00:00Z",
            &admin.access_token,
        ),
    ] {
        let (status, body) = api.get(path, token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        let expected = if path.contains("to=") { "to" } else { "from" };
        assert_eq!(field(&body), expected, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_minimal_wallet_adjustment_is_refused_with_422() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("min@example.com").await;
    let admin = api.admin(&server).await;
    let (status, body) = api
        .post(
            &format!("/api/v1/admin/users/{}/wallet/adjust", user.user.id),
            json!({"amount": i64::MIN, "reason": "overflow"}),
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn query_parameters_are_named_and_unknown_ones_refused_the_same_way_everywhere() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("query@example.com").await;
    let admin = api.admin(&server).await;
    let u = Some(user.access_token.as_str());
    let a = Some(admin.access_token.as_str());
    for (path, token, expected_field) in [
        ("/api/v1/steps?to=yesterday", u, "to"),
        (
            "/api/v1/wallet/transactions?cursor=x&limit=many",
            u,
            "limit",
        ),
        ("/api/v1/admin/users?limit=many", a, "limit"),
        ("/api/v1/admin/validations?offset=x", a, "offset"),
        ("/api/v1/admin/logs?limit=x", a, "limit"),
        ("/api/v1/products?offset=x", u, "offset"),
    ] {
        let (status, body) = api.get(path, token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(code(&body), "validation_failed", "{path}: {body}");
        assert_eq!(field(&body), expected_field, "{path}: {body}");
    }
    for (path, token) in [
        ("/api/v1/steps?bogus=1", u),
        ("/api/v1/wallet/transactions?bogus=1", u),
        ("/api/v1/products?bogus=1", u),
        ("/api/v1/leaderboard?bogus=1", u),
        ("/api/v1/admin/users?bogus=1", a),
        ("/api/v1/admin/validations?bogus=1", a),
        ("/api/v1/admin/analytics?bogus=1", a),
        ("/api/v1/admin/logs?bogus=1", a),
        ("/api/v1/admin/orders?bogus=1", a),
    ] {
        let (status, body) = api.get(path, token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(code(&body), "unknown_field", "{path}: {body}");
        assert_eq!(field(&body), "bogus", "{path}: {body}");
    }
    let pull = api.versioned(Method::GET, "/api/v1/sync/pull?bogus=1", &user, Some("1"));
    let (status, body) = answer(pull).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "unknown_field", "{body}");
}

#[tokio::test]
async fn nul_bytes_are_refused_with_the_field_named_on_every_route() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("nul@example.com").await;
    let admin = api.admin(&server).await;
    let u = Some(user.access_token.as_str());
    let a = Some(admin.access_token.as_str());
    let product = product(&server).await;
    let cases = [
        (
            "/api/v1/auth/login",
            json!({"email": "a\u{0}@example.com", "password": PASSWORD}),
            None,
            "email",
        ),
        (
            "/api/v1/devices",
            json!({"device_id": Uuid::new_v4(), "platform": "ios", "model": "x\u{0}"}),
            u,
            "model",
        ),
        (
            "/api/v1/steps/record",
            json!({"records": [{"date": "2026-01-01", "source": "p\u{0}",
                                "steps": 1, "recorded_at": "2026-01-01T10:00:00Z"}]}),
            u,
            "records[0].source",
        ),
        (
            "/api/v1/steps/record",
            json!({"records": [{"date": "2026-01-01", "source": "phone",
                                "steps": 1, "recorded_at": "+262000-01-01T10:00:00Z"}]}),
            u,
            "records[0].recorded_at",
        ),
        (
            "/api/v1/orders",
            json!({"client_order_id": Uuid::new_v4(),
                   "items": [{"product_id": product, "quantity": 1}],
                   "shipping_address": address("Main\u{0}street 1")}),
            u,
            "shipping_address.line1",
        ),
        (
            "/api/v1/admin/products",
            json!({"name": "Cup\u{0}", "category": "gear", "coin_price": 5, "stock": 1}),
            a,
            "name",
        ),
    ];
    for (path, body, token, expected) in cases {
        let (status, answer) = api.post(path, body, token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert_eq!(field(&answer), expected, "{path}: {answer}");
    }
    for (path, token, expected) in [
        ("/api/v1/admin/users?q=a%00b", a, "q"),
        ("/api/v1/admin/logs?action=x%00", a, "action"),
        ("/api/v1/products?category=x%00", u, "category"),
    ] {
        let (status, body) = api.get(path, token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(field(&body), expected, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_nul_in_a_rejection_message_is_stored_and_does_not_abort_the_push() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("push-nul@example.com").await;
    let push = json!({
        "device_id": Uuid::new_v4(),
        "mutations": [
            // serde names the unknown field verbatim in its message: a NUL reaches the outcome.
            {"id": Uuid::new_v4(), "kind": "update_profile",
             "payload": {"bogus\u{0}": 1}, "created_at": chrono::Utc::now()},
            {"id": Uuid::new_v4(), "kind": "update_profile",
             "payload": {"display_name": "Fine"}, "created_at": chrono::Utc::now()},
            {"id": Uuid::new_v4(), "kind": "update_profile",
             "payload": {"display_name": "Late"}, "created_at": "+200000-01-01T00:00:00Z"},
        ],
    });
    let send = || {
        api.versioned(Method::POST, "/api/v1/sync/push", &user, Some("1"))
            .json(&push)
    };
    let (status, body) = answer(send()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "rejected", "{body}");
    assert!(
        !results[0]["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains('\0')
    );
    assert_eq!(results[1]["status"], "applied", "{body}");
    assert_eq!(results[2]["status"], "rejected", "{body}");
    assert_eq!(results[2]["outcome"]["code"], "validation_failed", "{body}");
    // The replay answers the stored outcomes.
    let (status, again) = answer(send()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    assert_eq!(
        again["results"][0]["outcome"], results[0]["outcome"],
        "{again}"
    );
    assert_eq!(again["results"][1]["status"], "duplicate", "{again}");
}

#[tokio::test]
async fn an_unreadable_stored_outcome_does_not_wedge_the_device() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("wedged@example.com").await;
    let device = Uuid::new_v4();
    let mutation = json!({"id": Uuid::new_v4(), "kind": "update_profile",
                          "payload": {"display_name": "Once"},
                          "created_at": chrono::Utc::now()});
    let push = json!({"device_id": device, "mutations": [mutation]});
    let send = || {
        api.versioned(Method::POST, "/api/v1/sync/push", &user, Some("1"))
            .json(&push)
    };
    let (status, body) = answer(send()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // What an older build stored when an outcome failed to serialise.
    common::execute(
        &server,
        "UPDATE sync_mutations SET result = 'null'::jsonb WHERE user_id = $1",
        &[&user.user.id],
    )
    .await;
    let (status, body) = answer(send()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "duplicate", "{body}");
    assert_eq!(
        body["results"][0]["outcome"]["code"], "outcome_unavailable",
        "{body}"
    );
}

#[tokio::test]
async fn an_overlong_tracking_number_is_refused_on_every_transition() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("track@example.com").await;
    let admin = api.admin(&server).await;
    grant(server.db().pool(), user.user.id, 1000).await;
    let product = product(&server).await;
    let (status, order) = api
        .post(
            "/api/v1/orders",
            json!({"client_order_id": Uuid::new_v4(),
                   "items": [{"product_id": product, "quantity": 1}],
                   "shipping_address": address("Main street 1")}),
            &user.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (status, body) = api
        .post(
            &format!(
                "/api/v1/admin/orders/{}/status",
                order["id"].as_str().unwrap()
            ),
            json!({"status": "confirmed", "tracking_number": "T".repeat(5000)}),
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field(&body), "tracking_number", "{body}");
}

#[tokio::test]
async fn a_shipping_address_is_stored_as_it_was_checked_trimmed() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("trim@example.com").await;
    grant(server.db().pool(), user.user.id, 1000).await;
    let product = product(&server).await;
    let padded = format!("  Main street 1{}", " ".repeat(600));
    let (status, order) = api
        .post(
            "/api/v1/orders",
            json!({"client_order_id": Uuid::new_v4(),
                   "items": [{"product_id": product, "quantity": 1}],
                   "shipping_address": address(&padded)}),
            &user.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(
        order["shipping_address"]["line1"], "Main street 1",
        "{order}"
    );
    let stored: Value = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT shipping_address FROM orders WHERE user_id = $1",
            &[&user.user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored["line1"], "Main street 1");
    // Far more padding than any field could need is refused before anyone trims it.
    let (status, body) = api
        .post(
            "/api/v1/orders",
            json!({"client_order_id": Uuid::new_v4(),
                   "items": [{"product_id": product, "quantity": 1}],
                   "shipping_address": address(&format!("Main{}", " ".repeat(300_000)))}),
            &user.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field(&body), "shipping_address.line1", "{body}");
}

#[tokio::test]
async fn an_unavailable_database_answers_503_with_retry_after() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("outage@example.com").await;
    let (status, _) = api.get("/api/v1/wallet", &user.access_token).await;
    assert_eq!(status, StatusCode::OK);
    // The outage: the database refuses new connections and its sessions are cut (the
    // timeout waits until each session has ended: on a loaded machine a session may
    // otherwise still answer the next request).
    let mut admin = fitkart_sync_server::db::parse_url(server.db().url()).unwrap();
    admin.dbname("postgres");
    let admin = fitkart_sync_server::db::connect(&admin).await.unwrap();
    let name = server.db().name().to_owned();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
             WHERE datname = '{name}' AND pid <> pg_backend_pid();"
        ))
        .await
        .unwrap();
    let response = api
        .request(Method::GET, "/api/v1/wallet", &user)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "service_unavailable", "{body}");
    assert!(retry_after.is_some(), "no Retry-After");
    let (status, _) = api.get("/api/v1/wallet", &user.access_token).await;
    assert_eq!(status, StatusCode::OK, "the server recovers");
}

/// A one-route HTTP server on 127.0.0.1 answering every request with `response` (raw HTTP).
async fn tiny_server(response: String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buffer = [0_u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn imports_by_url_refuse_private_addresses_also_after_redirects_and_never_echo_the_feed() {
    let secret = "SECRET-INTERNAL-CONTENT";
    let body = format!("not json {secret}");
    let internal = tiny_server(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let redirect = tiny_server(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://localhost:{}/feed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        internal.port()
    ))
    .await;
    let server = TestServer::start_with(|config| {
        config.import_allowed_hosts = vec!["127.0.0.1".into()];
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    let admin = api.admin(&server).await;
    let import = |url: String| {
        let api = &api;
        let token = admin.access_token.clone();
        async move {
            api.post(
                "/api/v1/admin/products/import",
                json!({ "url": url }),
                &token,
            )
            .await
        }
    };
    // Not on the allow-list: refused before any connection.
    let (status, body) = import(format!("http://localhost:{}/feed", internal.port())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "url_not_allowed", "{body}");
    // An allowed host that redirects to one that is not.
    let (status, body) = import(format!("http://127.0.0.1:{}/feed", redirect.port())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "url_not_allowed", "{body}");
    // An allowed host whose document is not a feed: its content is never echoed.
    let (status, body) = import(format!("http://127.0.0.1:{}/feed", internal.port())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_feed", "{body}");
    assert!(!body.to_string().contains(secret), "{body}");
    // Every failure is audited.
    let failed: i64 = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM admin_logs WHERE action = 'product.import_failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 3);
}

/// Item 11: `/metrics` is not served to anyone. By default the public listener answers 404;
/// with a metrics token it serves only a caller presenting it; a metrics listener serves it
/// on its own address and nothing else.
#[tokio::test]
async fn metrics_are_kept_off_the_public_listener_unless_a_token_is_presented() {
    let http = reqwest::Client::new();

    let server = TestServer::start().await.unwrap();
    let response = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "not_found");
    assert!(server.metrics_url().is_none());
    drop(server);

    let token = "scrape-token-0123456789";
    let server = TestServer::start_with(|config| {
        config.metrics_token = Some(fitkart_sync_server::config::MetricsToken::new(token).unwrap());
    })
    .await
    .unwrap();
    for presented in [None, Some("Bearer wrong-token-0123456789"), Some(token)] {
        let mut request = http.get(server.url("/metrics"));
        if let Some(value) = presented {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{presented:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "unauthorized");
        assert!(!body.to_string().contains("fitkart_http_requests_total"));
    }
    let response = http
        .get(server.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("fitkart_http_requests_total")
    );
    drop(server);

    let server = TestServer::start_with(|config| {
        config.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await
    .unwrap();
    let response = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "public listener");
    let _ = http.get(server.url("/healthz")).send().await.unwrap();
    let metrics_url = server.metrics_url().unwrap();
    let text = http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"route="/healthz""#),
        "the metrics listener counts the public listener's requests:\n{text}"
    );
    // The metrics listener serves nothing else: not the API, not health.
    for path in ["/healthz", "/api/v1/me", "/openapi.json"] {
        let other = metrics_url.replace("/metrics", path);
        let response = http.get(&other).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

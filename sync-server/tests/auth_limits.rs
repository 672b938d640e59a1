//! Sign-in and sign-up limits under attack (issue 10): the client address behind trusted
//! proxies, parallel guesses, mass registration, and time zones refused on input.

use std::time::Duration;

use fitkart_sync_server::config::{LoginLimits, ServerConfig};
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

mod common;
use common::{Api, PASSWORD, answer, code};

fn limits(per_account: u32, per_address: u32, registrations_per_address: u32) -> LoginLimits {
    LoginLimits {
        per_account,
        per_address,
        window: Duration::from_secs(600),
        registrations_per_address,
        registration_window: Duration::from_secs(3600),
    }
}

async fn server_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start_with(adjust).await.unwrap()
}

/// Posts `body` to `path` as a client behind a proxy that sent `forwarded_for`.
async fn post_via(api: &Api, path: &str, body: Value, forwarded_for: &str) -> (StatusCode, Value) {
    answer(
        api.request(Method::POST, path, None)
            .header("x-forwarded-for", forwarded_for)
            .json(&body),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Item 2: the rightmost X-Forwarded-For address added by the trusted proxies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_forged_leftmost_forwarded_address_does_not_dodge_the_address_limit() {
    let server = server_with(|config| {
        config.login_limits = limits(100, 3, 100);
        config.trust_forwarded_for = true;
        config.trusted_proxy_hops = 1;
    })
    .await;
    let api = Api::new(&server);
    let mut statuses = Vec::new();
    for i in 0..6 {
        // The attacker writes a new address each time; the proxy appends the real one.
        let (status, _) = post_via(
            &api,
            "/api/v1/auth/login",
            json!({"email": format!("victim{i}@example.com"), "password": "guess guess guess"}),
            &format!("10.9.8.{i}, 198.51.100.7"),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            [StatusCode::UNAUTHORIZED; 3],
            [StatusCode::TOO_MANY_REQUESTS; 3]
        ]
        .concat()
    );
    // Another real client behind the same proxy is not affected.
    let (status, body) = post_via(
        &api,
        "/api/v1/auth/login",
        json!({"email": "someone@example.com", "password": "guess guess guess"}),
        "198.51.100.7, 198.51.100.8",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn with_two_trusted_proxies_the_address_the_outer_one_added_counts() {
    let server = server_with(|config| {
        config.login_limits = limits(100, 2, 100);
        config.trust_forwarded_for = true;
        config.trusted_proxy_hops = 2;
    })
    .await;
    let api = Api::new(&server);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let (status, _) = post_via(
            &api,
            "/api/v1/auth/login",
            json!({"email": format!("victim{i}@example.com"), "password": "guess guess guess"}),
            // forged, client (added by the CDN), CDN node (added by the load balancer)
            &format!("10.9.8.{i}, 198.51.100.7, 10.0.0.{i}"),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            [StatusCode::UNAUTHORIZED; 2],
            [StatusCode::TOO_MANY_REQUESTS; 2]
        ]
        .concat()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 3: check and count are atomic
// ---------------------------------------------------------------------------------------------

async fn parallel_statuses(
    requests: Vec<reqwest::RequestBuilder>,
) -> (usize, usize, Vec<StatusCode>) {
    let mut tasks = JoinSet::new();
    for request in requests {
        tasks.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = tasks.join_all().await;
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let checked = statuses.len() - refused;
    (checked, refused, statuses)
}

#[tokio::test]
async fn parallel_wrong_guesses_beyond_the_limit_are_refused() {
    let server = server_with(|config| config.login_limits = limits(3, 1000, 100)).await;
    let api = Api::new(&server);
    api.register("target@example.com").await;
    let requests = (0..20)
        .map(|i| {
            api.request(Method::POST, "/api/v1/auth/login", None).json(
                &json!({"email": "target@example.com", "password": format!("guess {i} guess")}),
            )
        })
        .collect();
    let (checked, refused, statuses) = parallel_statuses(requests).await;
    assert_eq!((checked, refused), (3, 17), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS))
    );
    // The right password is refused too now: the guesses were counted.
    let (status, body) = api.login("target@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

#[tokio::test]
async fn parallel_wrong_current_passwords_beyond_the_limit_are_refused() {
    let server = server_with(|config| config.login_limits = limits(3, 1000, 100)).await;
    let api = Api::new(&server);
    let session = api.register("changer@example.com").await;
    let requests = (0..20)
        .map(|i| {
            api.request(Method::POST, "/api/v1/me/password", &session)
                .json(&json!({
                    "current_password": format!("guess {i} guess"),
                    "new_password": "a brand new passphrase",
                }))
        })
        .collect();
    let (checked, refused, statuses) = parallel_statuses(requests).await;
    assert_eq!((checked, refused), (3, 17), "{statuses:?}");
}

#[tokio::test]
async fn a_successful_sign_in_does_not_count_against_the_address() {
    let server = server_with(|config| config.login_limits = limits(100, 2, 100)).await;
    let api = Api::new(&server);
    api.register("regular@example.com").await;
    for _ in 0..5 {
        let (status, body) = api.login("regular@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 18: registrations are limited per address
// ---------------------------------------------------------------------------------------------

fn sign_up_body(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "display_name": "Walker"})
}

#[tokio::test]
async fn one_address_cannot_mass_register() {
    let server = server_with(|config| {
        config.login_limits = limits(100, 100, 3);
        config.trust_forwarded_for = true;
    })
    .await;
    let api = Api::new(&server);
    let from = "203.0.113.50";
    let requests = (0..12)
        .map(|i| {
            api.request(Method::POST, "/api/v1/auth/register", None)
                .header("x-forwarded-for", from)
                .json(&sign_up_body(&format!("bot{i}@example.com")))
        })
        .collect();
    let (created, refused, statuses) = parallel_statuses(requests).await;
    assert_eq!((created, refused), (3, 9), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::CREATED));

    let response = api
        .request(Method::POST, "/api/v1/auth/register", None)
        .header("x-forwarded-for", from)
        .json(&sign_up_body("late@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "too_many_registrations");

    // Another address may still sign up; a refused sign-up created nothing.
    let (status, body) = post_via(
        &api,
        "/api/v1/auth/register",
        sign_up_body("human@example.com"),
        "203.0.113.51",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let users: i64 = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 4);
}

#[tokio::test]
async fn a_failed_registration_is_not_counted() {
    let server = server_with(|config| config.login_limits = limits(100, 100, 2)).await;
    let api = Api::new(&server);
    api.register("first@example.com").await;
    for _ in 0..3 {
        let (status, body) = api
            .post(
                "/api/v1/auth/register",
                sign_up_body("first@example.com"),
                None,
            )
            .await;
        assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "email_taken"));
    }
    api.register("second@example.com").await;
}

// ---------------------------------------------------------------------------------------------
// Item 10: a bad time zone is refused, never guessed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_time_zone_outside_the_iana_database_is_refused_naming_the_field() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let session = api.register("zoned@example.com").await;
    for zone in [
        "Mars/Olympus_Mons",
        "",
        "   ",
        "europe/berlin",
        "UTC+2",
        "Europe/Berlin\0",
    ] {
        let (status, body) = api
            .patch(
                "/api/v1/me",
                json!({"timezone": zone}),
                &session.access_token,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{zone:?}: {body}");
        assert_eq!(body["error"]["details"]["field"], "timezone", "{body}");
    }
    let (status, body) = api
        .patch(
            "/api/v1/me",
            json!({"timezone": "Asia/Kolkata"}),
            &session.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timezone"], "Asia/Kolkata");
}

#[tokio::test]
async fn a_stored_time_zone_outside_the_iana_database_is_never_taken_for_utc() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let session = api.register("imported@example.com").await;
    // An account imported from the old system with a zone PATCH /me would have refused.
    common::execute(
        &server,
        "UPDATE users SET timezone = 'Mars/Olympus_Mons' WHERE id = $1",
        &[&session.user.id],
    )
    .await;
    let token = Some(session.access_token.as_str());
    let (status, body) = api.get("/api/v1/steps/today", token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_timezone"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["field"], "timezone");
    let today = chrono::Utc::now().date_naive();
    let (status, body) = api
        .post(
            "/api/v1/steps/record",
            json!({"records": [{"date": today, "source": "healthkit", "steps": 10,
                                "recorded_at": chrono::Utc::now()}]}),
            token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_timezone"),
        "{body}"
    );
    // Setting a real zone fixes the account.
    let (status, _) = api
        .patch("/api/v1/me", json!({"timezone": "Europe/Berlin"}), token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/api/v1/steps/today", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

//! Failed sign-ins: a wrong password and an unknown email look the same, and repeated
//! failures are rate limited per account and per address.

use super::*;

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let server = start().await;
    let api = Api::new(&server);
    api.register("known@example.com").await;
    let (wrong_status, wrong) = api.login("known@example.com", "not the password!").await;
    let (unknown_status, unknown) = api.login("nobody@example.com", PASSWORD).await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&wrong), "invalid_credentials");
    assert_eq!(
        wrong, unknown,
        "the answers must not tell which case it was"
    );
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_account() {
    let server = TestServer::start_with(|config| {
        config.login_limits = LoginLimits {
            per_account: 3,
            per_address: 100,
            window: Duration::from_secs(600),
            ..LoginLimits::default()
        };
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    api.register("target@example.com").await;
    for _ in 0..3 {
        let (status, _) = api.login("target@example.com", "guess guess guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now, with a Retry-After.
    let response = api
        .request(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({"email": "TARGET@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    let body: ErrorEnvelope = response.json().await.unwrap();
    assert_eq!(body.error.code, "too_many_attempts");
    // Another account from the same address is not affected by this account's limit.
    api.register("other@example.com").await;
    let (status, _) = api.login("other@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_address() {
    let server = TestServer::start_with(|config| {
        config.login_limits = LoginLimits {
            per_account: 100,
            per_address: 4,
            window: Duration::from_secs(600),
            ..LoginLimits::default()
        };
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    api.register("sprayed@example.com").await;
    for i in 0..4 {
        let (status, _) = api.login(&format!("victim{i}@example.com"), PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = api.login("sprayed@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

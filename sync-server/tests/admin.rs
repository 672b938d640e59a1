//! The admin API: user detail, analytics, settings with validation, the audit log, wallet
//! adjustments; one audit row per admin mutation; and the Prometheus metrics.

use fitkart_protocol::auth::TokenResponse;
use fitkart_protocol::steps::Wallet;
use fitkart_sync_server::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;
use common::{Api, audit_rows, code, yesterday};

#[tokio::test]
async fn settings_are_validated_per_key_and_every_change_is_audited() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server).with_user_agent("admin-test/1.0");
    let admin = api.admin(&server).await;
    let token = admin.access_token.as_str();
    let put = |key: &str, value: Value| {
        let path = format!("/api/v1/admin/settings/{key}");
        let api = &api;
        async move {
            api.send(
                reqwest::Method::PUT,
                &path,
                Some(json!({ "value": value })),
                token,
            )
            .await
        }
    };

    let (status, list) = api
        .send(reqwest::Method::GET, "/api/v1/admin/settings", None, token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(list["settings"].as_array().unwrap().len() >= 10);

    for (key, value, expected) in [
        (
            "rewards.coins_per_1000_steps",
            json!(-1),
            "validation_failed",
        ),
        (
            "rewards.coins_per_1000_steps",
            json!(2.5),
            "validation_failed",
        ),
        (
            "rewards.coins_per_1000_steps",
            json!("ten"),
            "validation_failed",
        ),
        (
            "anticheat.soft_daily_max_steps",
            json!(200_000),
            "validation_failed",
        ),
        ("no.such.setting", json!(1), "unknown_setting"),
    ] {
        let (status, body) = put(key, value.clone()).await;
        assert!(status.is_client_error(), "{key}={value}: {status}");
        assert_eq!(code(&body), expected, "{key}={value}");
    }
    assert_eq!(
        audit_rows(&server, "setting.update").await,
        0,
        "refused changes are not audited"
    );

    let (status, body) = put("rewards.coins_per_1000_steps", json!(20)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], 20);
    let (status, _) = put("anticheat.outlier_zscore", json!(3.5)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit_rows(&server, "setting.update").await, 2);

    // The new rate applies at once.
    let user = api.register("rate@example.com").await;
    let yesterday = yesterday();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/steps/record",
            Some(
                json!({"records": [{"date": yesterday, "source": "phone", "steps": 900,
                                     "recorded_at": format!("{yesterday}T23:00:00Z")}]}),
            ),
            &user.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["coins_awarded"], 18);

    // The audit row names the admin, the before/after values and the client.
    let (status, logs) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/admin/logs?action=setting.update&entity_id=rewards.coins_per_1000_steps",
            None,
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let entry = &logs["logs"][0];
    assert_eq!(entry["admin_id"], json!(admin.user.id));
    assert_eq!(entry["before"]["value"], 10);
    assert_eq!(entry["after"]["value"], 20);
    assert_eq!(entry["user_agent"], "admin-test/1.0");
    assert_eq!(entry["ip_address"], "127.0.0.1");
}

#[tokio::test]
async fn wallet_adjustments_need_a_reason_never_go_negative_and_are_audited() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server).with_user_agent("admin-test/1.0");
    let admin = api.admin(&server).await;
    let token = admin.access_token.as_str();
    let user = api.register("adjust@example.com").await;
    let path = format!("/api/v1/admin/users/{}/wallet/adjust", user.user.id);

    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({"amount": 500, "reason": " "})),
            token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({"amount": 0, "reason": "x"})),
            token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );

    let grant =
        json!({"amount": 500, "reason": "support ticket 42", "idempotency_key": "ticket-42"});
    let (status, body) = api
        .send(reqwest::Method::POST, &path, Some(grant.clone()), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let wallet: Wallet = serde_json::from_value(body).unwrap();
    assert_eq!(wallet.available_coins, 500);
    // A retried request with the same key applies once.
    let (_, body) = api
        .send(reqwest::Method::POST, &path, Some(grant), token)
        .await;
    assert_eq!(body["available_coins"], 500);

    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({"amount": -600, "reason": "too much"})),
            token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "insufficient_coins")
    );
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({"amount": -200, "reason": "chargeback"})),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["available_coins"], 300);
    assert_eq!(audit_rows(&server, "wallet.adjust").await, 2);

    let (status, detail) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/admin/users/{}", user.user.id),
            None,
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["wallet"]["available_coins"], 300);
    assert_eq!(detail["email"], "adjust@example.com");

    // The user's own history shows the entries; the ledger is consistent.
    let (_, history) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/wallet/transactions",
            None,
            &user.access_token,
        )
        .await;
    let kinds: Vec<&str> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["admin_adjustment", "admin_adjustment"]);
    let client = server.db().client().await.unwrap();
    assert!(
        fitkart_sync_server::rewards::ledger::verify(&client)
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn analytics_and_user_detail_answer_from_the_views() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server).with_user_agent("admin-test/1.0");
    let admin = api.admin(&server).await;
    let user = api.register("stats@example.com").await;
    let yesterday = yesterday();
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/steps/record",
            Some(
                json!({"records": [{"date": yesterday, "source": "phone", "steps": 11_000,
                                     "recorded_at": format!("{yesterday}T23:00:00Z")}]}),
            ),
            &user.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/admin/analytics?from={yesterday}&to={yesterday}"),
            None,
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["days"][0]["walkers"], 1);
    assert_eq!(body["days"][0]["total_steps"], 11_000);
    assert_eq!(body["days"][0]["goals_met"], 1);
    assert!(body["active_users"].as_i64().unwrap() >= 1);

    let (_, detail) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/admin/users/{}", user.user.id),
            None,
            &admin.access_token,
        )
        .await;
    assert_eq!(detail["stats"]["total_steps"], 11_000);
    assert_eq!(detail["stats"]["active_days"], 1);

    let (status, body) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/admin/analytics?from=2026-02-01&to=2025-01-01",
            None,
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn metrics_count_requests_steps_and_pool_usage() {
    let server = TestServer::start_with(|config| {
        config.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await
    .unwrap();
    let api = Api::new(&server).with_user_agent("admin-test/1.0");
    let user = api.register("metrics@example.com").await;
    let yesterday = yesterday();
    api.send(
        reqwest::Method::POST,
        "/api/v1/steps/record",
        Some(json!({"records": [
            {"date": yesterday, "source": "phone", "steps": 3000, "recorded_at": format!("{yesterday}T23:00:00Z")},
            {"date": yesterday, "source": "phone", "steps": -1, "recorded_at": format!("{yesterday}T23:00:00Z")}
        ]})),
        &user.access_token,
    )
    .await;
    let response = reqwest::get(server.metrics_url().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"fitkart_http_requests_total{method="POST",route="/api/v1/steps/record",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fitkart_step_reports_total{outcome="accepted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fitkart_step_reports_total{outcome="rejected"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("fitkart_coins_awarded_total 40"),
        "30 for steps + 10 for steps_1k:\n{text}"
    );
    assert!(
        text.contains("fitkart_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("fitkart_db_pool_size"), "{text}");
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_refresh_or_call_until_an_admin_enables_it() {
    use common::PASSWORD;
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server).with_user_agent("admin-test/1.0");
    let admin = api.admin(&server).await;
    let token = admin.access_token.as_str();
    let walker = api.register("disabled@example.com").await;
    let id = walker.user.id;
    let disable = format!("/api/v1/admin/users/{id}/disable");
    let enable = format!("/api/v1/admin/users/{id}/enable");
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/admin/users/{id}/wallet/adjust"),
            Some(json!({"amount": 700, "reason": "welcome"})),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Refused without a change: a blank or NUL reason, an unknown user, the admin's own
    // account, a user's token.
    for body in [
        json!({"reason": "  "}),
        json!({"reason": "a\u{0}b"}),
        json!({}),
    ] {
        let (status, answer) = api
            .send(reqwest::Method::POST, &disable, Some(body.clone()), token)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/admin/users/{}/disable", uuid::Uuid::new_v4()),
            Some(json!({"reason": "fraud"})),
            token,
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/admin/users/{}/disable", admin.user.id),
            Some(json!({"reason": "oops"})),
            token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "cannot_disable_self")
    );
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &disable,
            Some(json!({"reason": "fraud"})),
            &walker.access_token,
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(audit_rows(&server, "user.disable").await, 0);
    let (status, _) = api.get("/api/v1/me", &walker.access_token).await;
    assert_eq!(status, StatusCode::OK, "nothing was disabled yet");

    // Disabled: the live access token, the refresh token and the right password all answer
    // 403 account_disabled; a wrong password still only hears invalid_credentials.
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &disable,
            Some(json!({"reason": " chargeback fraud "})),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["disabled_at"].is_string());
    assert_eq!(body["disabled_reason"], "chargeback fraud");
    for path in ["/api/v1/me", "/api/v1/wallet"] {
        let (status, body) = api.get(path, &walker.access_token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "account_disabled"),
            "{path}"
        );
    }
    let (status, body) = api.refresh(&walker.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "account_disabled")
    );
    let (status, body) = api.login("disabled@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "account_disabled")
    );
    let (status, body) = api.login("disabled@example.com", "not the password").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    // Disabling again changes nothing and writes no second audit row.
    let (status, again) = api
        .send(
            reqwest::Method::POST,
            &disable,
            Some(json!({"reason": "again"})),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["disabled_reason"], "chargeback fraud");
    assert_eq!(audit_rows(&server, "user.disable").await, 1);

    // The account and its money are kept; the admin sees why it is disabled.
    let (_, detail) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/admin/users/{id}"),
            None,
            token,
        )
        .await;
    assert_eq!(detail["disabled_reason"], "chargeback fraud");
    assert_eq!(detail["wallet"]["available_coins"], 700);
    let (_, list) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/admin/users?q=disabled",
            None,
            token,
        )
        .await;
    assert!(list["users"][0]["disabled_at"].is_string(), "{list}");
    let audit = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT before, after, reason, admin_id FROM admin_logs WHERE action = 'user.disable'",
            &[],
        )
        .await
        .unwrap();
    let (before, after): (Value, Value) = (audit.get(0), audit.get(1));
    assert!(before["disabled_at"].is_null());
    assert_eq!(after["disabled_reason"], "chargeback fraud");
    assert_eq!(audit.get::<_, String>(2), "chargeback fraud");
    assert_eq!(audit.get::<_, uuid::Uuid>(3), admin.user.id);

    // Enabled: the password signs in again; the sessions that ended stay ended.
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &enable,
            Some(json!({"reason": "cleared by the bank"})),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["disabled_at"].is_null());
    assert_eq!(audit_rows(&server, "user.enable").await, 1);
    let (status, body) = api.login("disabled@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh: TokenResponse = serde_json::from_value(body).unwrap();
    let (status, me) = api.get("/api/v1/me", &fresh.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], id.to_string());
    let (status, body) = api.get("/api/v1/me", &walker.access_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_revoked")
    );
    let (status, body) = api.refresh(&walker.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_revoked")
    );
    let client = server.db().client().await.unwrap();
    assert!(
        fitkart_sync_server::rewards::ledger::verify(&client)
            .await
            .unwrap()
            .is_ok()
    );
}

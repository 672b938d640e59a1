//! Admin writes under retries and races (issue 10): wallet adjustment idempotency compares
//! the body, and the soft and hard daily maxima cannot cross when changed at once.

use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::task::JoinSet;

mod common;
use common::{Api, assert_ledger_ok, code};

// ---------------------------------------------------------------------------------------------
// Item 4: the same key with another body is a conflict, not a silent no-op
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_wallet_adjustment_key_answers_its_first_result_and_refuses_another_body() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = api.admin(&server).await.access_token;
    let user = api.register("walker@example.com").await;
    let path = format!("/api/v1/admin/users/{}/wallet/adjust", user.user.id);
    let adjust = |amount: i64, reason: &str, key: &str| json!({"amount": amount, "reason": reason, "idempotency_key": key});

    let (status, first) = api
        .post(&path, adjust(500, "goodwill", "ticket-1"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["available_coins"], 500);
    // Another adjustment moves the wallet on.
    let (status, _) = api
        .post(&path, adjust(100, "bonus", "ticket-2"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);

    // A retry of the first (same key, same body) answers the first result, books nothing.
    let (status, replay) = api
        .post(&path, adjust(500, "goodwill", "ticket-1"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay, first);

    // The same key with another amount or reason is refused, and nothing moves.
    for body in [
        adjust(5000, "goodwill", "ticket-1"),
        adjust(-500, "goodwill", "ticket-1"),
        adjust(500, "another reason", "ticket-1"),
    ] {
        let (status, answer) = api.post(&path, body, &admin).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::CONFLICT, "idempotency_conflict"),
            "{answer}"
        );
        assert_eq!(answer["error"]["details"]["field"], "idempotency_key");
    }
    let (status, wallet) = api.get("/api/v1/wallet", &user.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wallet["available_coins"], 600);
    assert_ledger_ok(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Item 9: the soft and hard daily maxima are validated under a lock
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_changes_never_leave_the_soft_maximum_above_the_hard_one() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = api.admin(&server).await.access_token;
    let soft = "/api/v1/admin/settings/anticheat.soft_daily_max_steps";
    let hard = "/api/v1/admin/settings/anticheat.hard_daily_max_steps";
    for round in 0..15 {
        // Start each round valid: soft 50,000, hard 100,000.
        assert_eq!(
            api.put(hard, json!({"value": 100_000}), &admin).await.0,
            StatusCode::OK
        );
        assert_eq!(
            api.put(soft, json!({"value": 50_000}), &admin).await.0,
            StatusCode::OK
        );
        // Each change is valid against the pair as it was; together they would cross.
        let mut tasks = JoinSet::new();
        for (path, value) in [(soft, 90_000), (hard, 60_000)] {
            let (api, admin) = (api.clone(), admin.clone());
            tasks.spawn(async move {
                let response = api
                    .request(Method::PUT, path, &admin)
                    .json(&json!({ "value": value }))
                    .send()
                    .await
                    .unwrap();
                response.status()
            });
        }
        let statuses = tasks.join_all().await;
        assert!(
            statuses.contains(&StatusCode::OK),
            "round {round}: one of them applies: {statuses:?}"
        );
        let row = server
            .db()
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT (SELECT (value #>> '{}')::int FROM settings
                         WHERE key = 'anticheat.soft_daily_max_steps'),
                        (SELECT (value #>> '{}')::int FROM settings
                         WHERE key = 'anticheat.hard_daily_max_steps')",
                &[],
            )
            .await
            .unwrap();
        let (soft_now, hard_now): (i32, i32) = (row.get(0), row.get(1));
        assert!(
            soft_now <= hard_now,
            "round {round}: soft {soft_now} > hard {hard_now} ({statuses:?})"
        );
    }
}

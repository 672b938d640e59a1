//! Sessions: refresh rotation and reuse detection, concurrent refreshes, logout, password
//! changes and deleted accounts end what they must.

use super::*;

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let server = start().await;
    let api = Api::new(&server);
    let first = api.register("rotate@example.com").await;
    let (status, other_login) = api.login("rotate@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let other_login: TokenResponse = serde_json::from_value(other_login).unwrap();

    let (status, body) = api.refresh(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: TokenResponse = serde_json::from_value(body).unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let (status, _) = api.get("/api/v1/me", &second.access_token).await;
    assert_eq!(status, StatusCode::OK);

    // The spent token comes back: theft. The whole family dies, including the new token.
    let (status, body) = api.refresh(&first.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let (status, body) = api.refresh(&second.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_revoked")
    );
    // Another sign-in (another family) is untouched.
    let (status, _) = api.refresh(&other_login.refresh_token).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api.refresh("made-up-token").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_never_both_succeed() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("race@example.com").await;
    let (a, b) = tokio::join!(
        api.refresh(&session.refresh_token),
        api.refresh(&session.refresh_token)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    // The reuse revoked the family, so the winner's new token is dead too.
    let winner: TokenResponse =
        serde_json::from_value(if a.0 == StatusCode::OK { a.1 } else { b.1 }).unwrap();
    let (status, _) = api.refresh(&winner.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_and_refresh_after_it_fails() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("leaver@example.com").await;
    let (status, _) = api
        .post(
            "/api/v1/auth/logout",
            json!({"refresh_token": session.refresh_token}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.refresh(&session.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_revoked")
    );
    let (status, _) = api
        .post(
            "/api/v1/auth/logout",
            json!({"refresh_token": "unknown"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let server = start().await;
    let api = Api::new(&server);
    let phone = api.register("changer@example.com").await;
    let (_, tablet) = api.login("changer@example.com", PASSWORD).await;
    let tablet: TokenResponse = serde_json::from_value(tablet).unwrap();

    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": "not my password", "new_password": "a brand new passphrase"}),
            &phone.access_token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "1234567890"}),
            &phone.access_token,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password")
    );

    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
            &phone.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh: TokenResponse = serde_json::from_value(body).unwrap();

    for token in [&phone.access_token, &tablet.access_token] {
        for path in ["/api/v1/me", "/api/v1/wallet"] {
            let (status, body) = api.get(path, token).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, "token_revoked"),
                "{path}"
            );
        }
    }
    for refresh in [&phone.refresh_token, &tablet.refresh_token] {
        let (status, _) = api.refresh(refresh).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = api.get("/api/v1/me", &fresh.access_token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/api/v1/wallet", &fresh.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["available_coins"].is_i64(), "{body}");
    assert_eq!(
        api.login("changer@example.com", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("changer@example.com", "a brand new passphrase")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_deleted_account_cannot_sign_in_and_its_data_is_kept() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("gone@example.com").await;
    let (status, _) = api.delete("/api/v1/me", &session.access_token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    for path in ["/api/v1/me", "/api/v1/wallet"] {
        let (status, body) = api.get(path, &session.access_token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{path}"
        );
    }
    let (status, _) = api.refresh(&session.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api.login("gone@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    let db = server.db().client().await.unwrap();
    let row = db
        .query_one(
            "SELECT u.deleted_at IS NOT NULL, (SELECT count(*) FROM wallets w WHERE w.user_id = u.id),
                    (SELECT count(*) FROM refresh_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL)
             FROM users u WHERE u.id = $1",
            &[&session.user.id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i64>(1), 1, "the wallet is kept for audit");
    assert_eq!(row.get::<_, i64>(2), 0, "no live refresh token remains");
}

/// The step report checks the account in its own transaction (on the row it reads the time
/// zone from), not in a round trip of its own: it refuses whatever the other routes refuse,
/// with the same answers, and writes nothing for the account it refuses.
#[tokio::test]
async fn a_step_report_is_refused_and_writes_nothing_for_an_ended_gone_or_disabled_account() {
    let server = start().await;
    let api = Api::new(&server);
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let report = json!({"records": [{"date": yesterday, "source": "phone", "steps": 900,
                                     "recorded_at": format!("{yesterday}T23:00:00Z")}]});

    let (ended, fresh) = ended_session(&api, "ended@example.com").await;
    // A deleted account.
    let gone = api.register("gone-walker@example.com").await;
    let (status, _) = api.delete("/api/v1/me", &gone.access_token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let disabled = disabled_account(&api, &server, "disabled-walker@example.com").await;
    // A correctly signed token of an account that never existed.
    let never = Uuid::now_v7();
    let unknown = sign(&claims_for(never, "user", 600), SECRET.as_bytes());

    let refused = [ended.user.id, gone.user.id, disabled.user.id, never];
    let db = server.db().client().await.unwrap();
    let state = async || -> Vec<String> {
        db.query(
            "SELECT 'records', count(*)::text FROM step_records WHERE user_id = ANY($1)
             UNION ALL SELECT 'ledger', count(*)::text FROM coin_transactions WHERE user_id = ANY($1)
             UNION ALL SELECT user_id::text, version::text FROM change_versions
                       WHERE user_id = ANY($1)",
            &[&refused.as_slice()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| format!("{} {}", row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect()
    };
    let before = state().await;
    assert!(before.contains(&"records 0".to_owned()), "{before:?}");

    for (name, token, expected) in [
        (
            "ended session",
            ended.access_token.as_str(),
            (StatusCode::UNAUTHORIZED, "token_revoked"),
        ),
        (
            "deleted account",
            gone.access_token.as_str(),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
        ),
        (
            "disabled account",
            disabled.access_token.as_str(),
            (StatusCode::FORBIDDEN, "account_disabled"),
        ),
        (
            "unknown account",
            unknown.as_str(),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
        ),
    ] {
        // Whatever it sends: a report, no report, or a body that is not a request at all.
        for sent in [
            report.clone(),
            json!({"records": []}),
            json!({"records": "many"}),
        ] {
            let (status, body) = api.post("/api/v1/steps/record", sent.clone(), token).await;
            assert_eq!((status, code(&body)), expected, "{name}, {sent}: {body}");
        }
    }
    assert_eq!(state().await, before, "a refused report changed something");

    // The session the password change began hears what is wrong with a bad request...
    for sent in [json!({"records": []}), json!({"records": "many"})] {
        let (status, body) = api
            .post("/api/v1/steps/record", sent.clone(), &fresh.access_token)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{sent}: {body}");
    }
    // ...and is served, and paid, for a good one.
    let (status, body) = api
        .post("/api/v1/steps/record", report, &fresh.access_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["coins_awarded"].as_i64().unwrap() > 0, "{body}");
}

/// The push and the order check the account on the connection they then work on, in the
/// handler: still before anything else, so an ended session or a disabled account hears the
/// same refusal whatever it sends (a good request, a body that is not one, no protocol
/// version) and changes nothing, and only a live account hears what is wrong with its request.
#[tokio::test]
async fn a_push_and_an_order_are_refused_whatever_they_send_for_an_ended_or_disabled_account() {
    let server = start().await;
    let api = Api::new(&server);
    let (ended, fresh) = ended_session(&api, "ended-pusher@example.com").await;
    let disabled = disabled_account(&api, &server, "disabled-buyer@example.com").await;
    let (status, products) = api.get("/api/v1/products", &fresh.access_token).await;
    assert_eq!(status, StatusCode::OK, "{products}");
    let product = products["products"][0]["id"].clone();
    assert!(product.is_string(), "no product to order: {products}");

    let push = json!({"device_id": Uuid::now_v7(), "mutations": [{
        "id": Uuid::now_v7(), "kind": "update_profile",
        "payload": {"display_name": "Renamed"}, "created_at": chrono::Utc::now()}]});
    let order = json!({"client_order_id": Uuid::now_v7(),
        "items": [{"product_id": product, "quantity": 1}],
        "shipping_address": {"name": "A", "line1": "1 Main St", "city": "Springfield",
                             "postal_code": "12345", "country": "US"}});
    let not_a_request = json!({"mutations": "many"});
    let refused = [ended.user.id, disabled.user.id];
    let db = server.db().client().await.unwrap();
    let state = async || -> Vec<String> {
        db.query(
            "SELECT 'orders', count(*)::text FROM orders WHERE user_id = ANY($1)
             UNION ALL SELECT 'mutations', count(*)::text FROM sync_mutations
                       WHERE user_id = ANY($1)
             UNION ALL SELECT 'devices', count(*)::text FROM devices WHERE user_id = ANY($1)
             UNION ALL SELECT 'names', string_agg(display_name, ',' ORDER BY display_name)
                       FROM users WHERE id = ANY($1)",
            &[&refused.as_slice()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{} {:?}",
                row.get::<_, String>(0),
                row.get::<_, Option<String>>(1)
            )
        })
        .collect()
    };
    let before = state().await;

    for (name, token, expected) in [
        (
            "ended session",
            ended.access_token.as_str(),
            (StatusCode::UNAUTHORIZED, "token_revoked"),
        ),
        (
            "disabled account",
            disabled.access_token.as_str(),
            (StatusCode::FORBIDDEN, "account_disabled"),
        ),
    ] {
        for (path, sent, version) in [
            ("/api/v1/sync/push", &push, Some("1")),
            ("/api/v1/sync/push", &push, None),
            ("/api/v1/sync/push", &not_a_request, Some("1")),
            ("/api/v1/orders", &order, None),
            ("/api/v1/orders", &not_a_request, None),
        ] {
            let (status, body) =
                common::answer(api.versioned(Method::POST, path, token, version).json(sent)).await;
            assert_eq!(
                (status, code(&body)),
                expected,
                "{name}, {path} {version:?} {sent}: {body}"
            );
        }
    }
    assert_eq!(
        state().await,
        before,
        "a refused push or order changed something"
    );

    // The live session hears what is wrong with each request.
    for (path, sent, version, expected) in [
        ("/api/v1/sync/push", &push, None, StatusCode::BAD_REQUEST),
        (
            "/api/v1/sync/push",
            &not_a_request,
            Some("1"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/orders",
            &not_a_request,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, body) = common::answer(
            api.versioned(Method::POST, path, &fresh.access_token, version)
                .json(sent),
        )
        .await;
        assert_eq!(status, expected, "{path} {version:?} {sent}: {body}");
    }
}

/// An account whose session ended: its password was changed on another device. Returns the
/// ended session and the one the change began.
async fn ended_session(api: &Api, email: &str) -> (TokenResponse, TokenResponse) {
    let ended = api.register(email).await;
    let (_, other) = api.login(email, PASSWORD).await;
    let other: TokenResponse = serde_json::from_value(other).unwrap();
    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
            &other.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (ended, serde_json::from_value(body).unwrap())
}

/// An account an administrator disabled; its session is the one it signed up with.
async fn disabled_account(api: &Api, server: &TestServer, email: &str) -> TokenResponse {
    let disabled = api.register(email).await;
    let admin = api.admin(server).await;
    let (status, body) = api
        .post(
            &format!("/api/v1/admin/users/{}/disable", disabled.user.id),
            json!({"reason": "fraud"}),
            &admin.access_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    disabled
}

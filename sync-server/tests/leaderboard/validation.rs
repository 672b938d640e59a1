//! Input validation: bad limits, periods and fields are refused.

use super::*;

#[tokio::test]
async fn bad_limits_periods_and_fields_are_refused() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.sign_up("ann@example.com", "Ann").await;
    let token = &user.access_token;

    for (query, expected_code, field) in [
        ("?limit=0", "validation_failed", "limit"),
        ("?limit=-3", "validation_failed", "limit"),
        ("?limit=101", "validation_failed", "limit"),
        ("?limit=abc", "validation_failed", "limit"),
        ("?limit=1.5", "validation_failed", "limit"),
        ("?limit=", "validation_failed", "limit"),
        ("?period=daily", "validation_failed", "period"),
        ("?period=WEEKLY", "validation_failed", "period"),
        ("?period=weekly&user_id=x", "unknown_field", "user_id"),
        ("?offset=10", "unknown_field", "offset"),
    ] {
        let (status, body) = api.get(&format!("/api/v1/leaderboard{query}"), token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(code(&body), expected_code, "{query}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}");
    }
    for query in ["?limit=1", "?limit=100", "?period=monthly&limit=100"] {
        let board = api.board(query, token).await;
        assert!(board.entries.is_empty());
        assert_eq!(board.me, None);
    }

    // The upper bound is the leaderboard.size setting, read per request.
    common::execute(
        &server,
        "UPDATE settings SET value = '5' WHERE key = 'leaderboard.size'",
        &[],
    )
    .await;
    let (status, body) = api.get("/api/v1/leaderboard?limit=6", token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    api.board("?limit=5", token).await;

    let (status, body) = api
        .send(reqwest::Method::GET, "/api/v1/leaderboard", None, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
}

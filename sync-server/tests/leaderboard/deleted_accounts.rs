//! Deleted accounts leave the board before the next rebuild.

use super::*;

#[tokio::test]
async fn a_deleted_account_leaves_the_board_before_the_next_rebuild() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let today = leaderboard::today_utc();
    let mut sessions = Vec::new();
    for (name, steps) in [("Ann", 4000), ("Bob", 3000), ("Cat", 2000), ("Dan", 1000)] {
        let session = api
            .sign_up(&format!("{}@example.com", name.to_lowercase()), name)
            .await;
        set_steps(server.db(), session.user.id, today, steps).await;
        sessions.push(session);
    }
    leaderboard::refresh(server.db().pool(), None)
        .await
        .unwrap();

    let (status, _) = api.delete("/api/v1/me", &sessions[1].access_token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Still in the cache (no rebuild yet)...
    let cached: i64 = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM leaderboard_cache WHERE user_id = $1",
            &[&sessions[1].user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cached, 3);

    // ...but never shown, and the ranks below close up.
    let expected = vec![
        (1, "Ann".into(), 4000, false),
        (2, "Cat".into(), 2000, false),
        (3, "Dan".into(), 1000, true),
    ];
    for period in Period::ALL {
        let board = api
            .board(&format!("?period={period}"), &sessions[3].access_token)
            .await;
        assert_eq!(rows(&board), expected, "{period}");
        assert_eq!(board.me.map(|m| (m.rank, m.steps)), Some((3, 1000)));
        let board = api
            .board(
                &format!("?period={period}&limit=1"),
                &sessions[2].access_token,
            )
            .await;
        assert_eq!(board.me.map(|m| m.rank), Some(2));
    }

    // After the next rebuild the account is gone from the cache too; the board is the same.
    leaderboard::refresh(server.db().pool(), None)
        .await
        .unwrap();
    let board = api.board("", &sessions[3].access_token).await;
    assert_eq!(rows(&board), expected);
}

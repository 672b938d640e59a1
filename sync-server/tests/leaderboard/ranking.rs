//! Ranking: each period ranks the verified steps of its own days, ties go to the earliest
//! registration, and the caller's own place is given even outside the top.

use super::*;

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn each_period_ranks_the_verified_steps_of_its_own_days() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = api.admin(&server).await.access_token;
    let ann = api.sign_up("ann@example.com", "Ann").await;
    let bob = api.sign_up("bob@example.com", "Bob").await;
    let cat = api.sign_up("cat@example.com", "Cat").await;
    let dan = api.sign_up("dan@example.com", "Dan").await;

    let today = leaderboard::today_utc();
    // (who, day, steps). Eight days ago is never this ISO week; forty days ago is never this
    // month. Whether eight days ago is this month depends on the date, so expectations are
    // computed from the period bounds below.
    let steps = [
        (&ann, today, 5000),
        (&ann, days_ago(today, 8), 3000),
        (&ann, days_ago(today, 40), 1000),
        (&bob, days_ago(today, 8), 9000),
        (&cat, days_ago(today, 40), 20000),
        (&dan, today, 0),
    ];
    for (who, day, count) in &steps {
        set_steps(server.db(), who.user.id, *day, *count).await;
    }
    let (status, body) = api.refresh_board(&admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let registered = [&ann, &bob, &cat, &dan];
    for period in Period::ALL {
        let (start, end) = leaderboard::period_bounds(period, today);
        let mut expected: Vec<(usize, &str, i64)> = registered
            .iter()
            .enumerate()
            .map(|(order, who)| {
                let total = steps
                    .iter()
                    .filter(|(w, day, _)| {
                        w.user.id == who.user.id && *day >= start && end.is_none_or(|e| *day < e)
                    })
                    .map(|(_, _, count)| i64::from(*count))
                    .sum();
                (order, who.user.display_name.as_str(), total)
            })
            .filter(|(_, _, total)| *total > 0)
            .collect();
        // Steps first; a tie goes to the account registered first.
        expected.sort_by_key(|(order, _, total)| (-total, *order));
        let expected: Vec<_> = expected
            .iter()
            .enumerate()
            .map(|(i, (_, name, total))| (i as i64 + 1, name.to_string(), *total, *name == "Ann"))
            .collect();

        let board = api
            .board(&format!("?period={period}"), &ann.access_token)
            .await;
        assert_eq!(board.period, period);
        assert_eq!(board.period_start, start, "{period}");
        assert!(board.computed_at.is_some());
        assert_eq!(rows(&board), expected, "{period}");
        let mine = expected.iter().find(|(_, name, _, _)| name == "Ann");
        assert_eq!(
            board.me.map(|me| (me.rank, me.steps)),
            mine.map(|(rank, _, steps, _)| (*rank, *steps)),
            "{period}"
        );
        let dans = api
            .board(&format!("?period={period}"), &dan.access_token)
            .await;
        assert_eq!(dans.me, None, "zero steps are not on the board");
    }

    // The fixed cases: the week holds only today; all time holds everything, and Ann and
    // Bob tie at 9,000 with Ann registered first.
    let weekly = api.board("", &bob.access_token).await;
    assert_eq!(weekly.period, Period::Weekly, "weekly is the default");
    assert_eq!(rows(&weekly), vec![(1, "Ann".into(), 5000, false)]);
    assert_eq!(weekly.me, None);
    let all_time = api.board("?period=all_time", &bob.access_token).await;
    assert_eq!(
        rows(&all_time),
        vec![
            (1, "Cat".into(), 20000, false),
            (2, "Ann".into(), 9000, false),
            (3, "Bob".into(), 9000, true),
        ]
    );
    assert_eq!(
        all_time.period_start,
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
    );

    // The answer names nobody by id or email.
    let (_, raw) = api
        .get("/api/v1/leaderboard?period=all_time", &bob.access_token)
        .await;
    let text = raw.to_string();
    for who in registered {
        assert!(!text.contains(&who.user.id.to_string()));
        assert!(!text.contains(&who.user.email));
    }
}

#[tokio::test]
async fn ties_go_to_the_earliest_registration_then_the_lowest_id() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let viewer = api.sign_up("viewer@example.com", "Viewer").await;
    let db = server.db().client().await.unwrap();
    let today = leaderboard::today_utc();
    let mut ids = Vec::new();
    for name in ["A", "B", "C", "D"] {
        let id = insert_user(&db, name).await;
        set_steps(server.db(), id, today, 7000).await;
        ids.push((name, id));
    }
    // A registered last, B in the middle, C and D at the same instant (so the id decides).
    for (name, offset) in [("A", 20), ("B", 10), ("C", 0), ("D", 0)] {
        let id = ids.iter().find(|(n, _)| *n == name).unwrap().1;
        db.execute(
            "UPDATE users SET created_at = timestamptz '2024-01-01 00:00:00+00'
                                          + make_interval(secs => $2)
             WHERE id = $1",
            &[&id, &f64::from(offset)],
        )
        .await
        .unwrap();
    }
    leaderboard::refresh(server.db().pool(), None)
        .await
        .unwrap();

    let c = ids[2].1;
    let d = ids[3].1;
    let (first, second) = if c < d { ("C", "D") } else { ("D", "C") };
    for period in Period::ALL {
        let board = api
            .board(&format!("?period={period}"), &viewer.access_token)
            .await;
        let names: Vec<_> = board
            .entries
            .iter()
            .map(|e| (e.rank, e.display_name.as_str(), e.steps))
            .collect();
        assert_eq!(
            names,
            vec![
                (1, first, 7000),
                (2, second, 7000),
                (3, "B", 7000),
                (4, "A", 7000)
            ],
            "{period}"
        );
    }
}

#[tokio::test]
async fn my_place_is_given_even_outside_the_top() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = api.admin(&server).await.access_token;
    let today = leaderboard::today_utc();
    let mut sessions = Vec::new();
    for (i, steps) in [5000, 4000, 3000, 2000, 1000].into_iter().enumerate() {
        let session = api
            .sign_up(&format!("walker{i}@example.com"), &format!("Walker {i}"))
            .await;
        set_steps(server.db(), session.user.id, today, steps).await;
        sessions.push(session);
    }
    api.refresh_board(&admin, Some(r#"{"period": "weekly"}"#))
        .await;

    let board = api.board("?limit=2", &sessions[3].access_token).await;
    assert_eq!(
        rows(&board),
        vec![
            (1, "Walker 0".into(), 5000, false),
            (2, "Walker 1".into(), 4000, false)
        ]
    );
    let me = board.me.expect("the caller is on the board");
    assert_eq!((me.rank, me.steps), (4, 2000));

    // Inside the top, the caller's row is marked and `me` agrees.
    let board = api.board("?limit=2", &sessions[1].access_token).await;
    assert!(board.entries[1].is_me);
    assert_eq!(board.me.map(|m| m.rank), Some(2));

    // The default limit is 10: everyone fits.
    assert_eq!(
        api.board("", &sessions[0].access_token).await.entries.len(),
        5
    );
}

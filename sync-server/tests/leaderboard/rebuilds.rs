//! Rebuilds: the audited admin refresh, the CLI, the background job, and readers that see a
//! whole board while it is rebuilt.

use super::*;

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn only_admins_refresh_and_each_refresh_is_audited_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.sign_up("ann@example.com", "Ann").await;
    let other = api.sign_up("bob@example.com", "Bob").await;
    let today = leaderboard::today_utc();
    set_steps(server.db(), user.user.id, today, 1234).await;
    set_steps(server.db(), other.user.id, days_ago(today, 400), 99).await;
    let session = api.admin(&server).await;
    let (admin, admin_id) = (session.access_token, session.user.id);
    let audit_rows = || async {
        common::rows(
            &server,
            "SELECT admin_id, entity_id, after FROM admin_logs
                 WHERE action = 'leaderboard.refresh' ORDER BY created_at",
            &[],
        )
        .await
    };

    let (status, body) = api.refresh_board(&user.access_token, None).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/leaderboard/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    assert!(audit_rows().await.is_empty());

    let (status, body) = api.refresh_board(&admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"boards": [
            {"period": "weekly", "entries": 1},
            {"period": "monthly", "entries": 1},
            {"period": "all_time", "entries": 2},
        ]})
    );
    let logged = audit_rows().await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].get::<_, Option<Uuid>>(0), Some(admin_id));
    assert_eq!(
        logged[0].get::<_, Option<String>>(1).as_deref(),
        Some("all")
    );
    assert_eq!(
        logged[0].get::<_, Value>(2),
        json!({"entries": {"weekly": 1, "monthly": 1, "all_time": 2}})
    );

    let (status, body) = api
        .refresh_board(&admin, Some(r#"{"period": "all_time"}"#))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"boards": [{"period": "all_time", "entries": 2}]})
    );
    let (status, _) = api.refresh_board(&admin, Some("{}")).await;
    assert_eq!(status, StatusCode::OK);
    let logged = audit_rows().await;
    assert_eq!(logged.len(), 3, "one row per refresh");
    assert_eq!(
        logged[1].get::<_, Option<String>>(1).as_deref(),
        Some("all_time")
    );

    for (body, status, expected_code) in [
        (
            r#"{"period": "daily"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            r#"{"periods": ["weekly"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
        ),
        ("{not json", StatusCode::BAD_REQUEST, "malformed_json"),
    ] {
        let (got, answer) = api.refresh_board(&admin, Some(body)).await;
        assert_eq!((got, code(&answer)), (status, expected_code), "{body}");
    }
    assert_eq!(
        audit_rows().await.len(),
        3,
        "refused requests are not audited"
    );
}

#[tokio::test]
async fn the_cli_rebuilds_boards_and_prints_their_sizes() {
    let db = TestDb::seeded().await.unwrap();
    let client = db.client().await.unwrap();
    let today = leaderboard::today_utc();
    let ann = insert_user(&client, "Ann").await;
    let bob = insert_user(&client, "Bob").await;
    set_steps(&db, ann, today, 3000).await;
    set_steps(&db, bob, days_ago(today, 40), 5000).await;

    let out = cli(&db)
        .args(["refresh-leaderboard", "--period", "weekly"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "weekly: 1 entr(ies)\n"
    );
    let periods: Vec<String> = client
        .query(
            "SELECT DISTINCT period FROM leaderboard_cache ORDER BY period",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(periods, ["weekly"]);

    let out = cli(&db).arg("refresh-leaderboard").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "weekly: 1 entr(ies)\nmonthly: 1 entr(ies)\nall_time: 2 entr(ies)\n"
    );
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM admin_logs
             WHERE action = 'leaderboard.refresh' AND admin_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 2);

    let out = cli(&db)
        .args(["refresh-leaderboard", "--period", "daily"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown period");
}

#[tokio::test]
async fn the_job_builds_missing_boards_at_start_and_then_on_its_interval() {
    // At start, with no board yet: built at once, whatever the nightly time.
    let db = TestDb::seeded().await.unwrap();
    let ann = insert_user(&db.client().await.unwrap(), "Ann").await;
    set_steps(&db, ann, leaderboard::today_utc(), 4321).await;
    let at = chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap();
    let job = tokio::spawn(leaderboard::run_refresh_job(
        db.pool().clone(),
        RefreshSchedule::DailyAt(at),
        fitkart_sync_server::jobs::instance_name(),
    ));
    let client = db.client().await.unwrap();
    wait_for("the start-up rebuild", async || {
        client
            .query_one("SELECT count(*) FROM leaderboard_cache", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 3
    })
    .await;
    job.abort();

    // On an interval, new steps reach the board without anyone asking.
    let server = TestServer::start_with(|config| {
        config.leaderboard_refresh_interval = Some(Duration::from_secs(1));
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    let bob = api.sign_up("bob@example.com", "Bob").await;
    set_steps(server.db(), bob.user.id, leaderboard::today_utc(), 777).await;
    wait_for("the interval rebuild", async || {
        api.board("", &bob.access_token).await.me.map(|m| m.steps) == Some(777)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_a_whole_board_while_it_is_rebuilt() {
    const USERS: usize = 50;
    const SHRUNK: usize = 40;
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let reader = api.sign_up("reader@example.com", "Reader").await;
    let db = server.db().client().await.unwrap();
    let mut users = vec![reader.user.id];
    for i in 1..USERS {
        users.push(insert_user(&db, &format!("Walker{i:02}")).await);
    }
    let today = leaderboard::today_utc();
    // Two data sets whose orders differ completely: in the first everyone walks and the
    // reader leads; in the second ten users (not the reader) stop and the order reverses.
    let apply = async |round: usize| {
        for (i, user) in users.iter().enumerate() {
            let steps = if round.is_multiple_of(2) {
                100_000 - (i as i32) * 100
            } else if (SHRUNK..USERS).contains(&i) {
                0
            } else {
                1_000 + (i as i32) * 100 + round as i32
            };
            set_steps(server.db(), *user, today, steps).await;
        }
    };
    apply(0).await;
    leaderboard::refresh(server.db().pool(), None)
        .await
        .unwrap();

    let pool = server.db().pool().clone();
    let refresher = async {
        for round in 1..=6 {
            apply(round).await;
            // Concurrent rebuilds of the same periods queue up rather than collide.
            let (all, weekly) = tokio::join!(
                leaderboard::refresh(&pool, None),
                leaderboard::refresh(&pool, Some(Period::Weekly)),
            );
            assert_eq!(all.unwrap().len(), 3);
            assert_eq!(weekly.unwrap().len(), 1);
        }
    };
    let reads = async {
        let mut sizes = std::collections::BTreeSet::new();
        for read in 0..50 {
            let period = Period::ALL[read % 3];
            let board = api
                .board(&format!("?period={period}&limit=100"), &reader.access_token)
                .await;
            let n = board.entries.len();
            assert!(n == USERS || n == SHRUNK, "read {read}: {n} entries");
            let ranks: Vec<i64> = board.entries.iter().map(|e| e.rank).collect();
            assert_eq!(ranks, (1..=n as i64).collect::<Vec<_>>(), "read {read}");
            assert!(
                board.entries.windows(2).all(|w| w[0].steps >= w[1].steps),
                "read {read}: steps must not increase down the board"
            );
            assert_eq!(
                board.entries.iter().filter(|e| e.is_me).count(),
                1,
                "read {read}"
            );
            let me = board.me.expect("the reader is always on the board");
            assert_eq!(
                board.entries[(me.rank - 1) as usize].steps,
                me.steps,
                "read {read}: `me` is read from the same board"
            );
            sizes.insert(n);
        }
        sizes
    };
    let ((), sizes) = tokio::join!(refresher, reads);
    assert!(!sizes.is_empty());
}

//! Leaderboards, black-box over HTTP on a real server and PostgreSQL: ranks and steps per
//! period, tie-breaking, the caller's own place outside the top, deleted accounts, input
//! validation, the audited admin refresh, the CLI, the background job, and boards that stay
//! whole while they are rebuilt under concurrent reads.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fitkart_protocol::auth::TokenResponse;
use fitkart_protocol::leaderboard::Leaderboard;
use fitkart_sync_server::rewards::leaderboard::{self, Period, RefreshSchedule};
use fitkart_sync_server::testing::{TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

mod common;
use common::{admin_session, answer, cli, code, sign_up};

struct Api<'a> {
    server: &'a TestServer,
    http: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(server: &'a TestServer) -> Self {
        Self {
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.server.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None, Some(token))
            .await
    }

    async fn board(&self, query: &str, token: &str) -> Leaderboard {
        let (status, body) = self
            .get(&format!("/api/v1/leaderboard{query}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        serde_json::from_value(body).unwrap()
    }

    async fn register(&self, email: &str, display_name: &str) -> TokenResponse {
        sign_up(&self.http, self.server, email, display_name).await
    }

    /// Creates an administrator and signs in; returns the access token and the admin's id.
    async fn admin(&self) -> (String, Uuid) {
        let session = admin_session(&self.http, self.server).await;
        (session.access_token, session.user.id)
    }

    async fn refresh(&self, admin_token: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            "/api/v1/admin/leaderboard/refresh",
            body,
            Some(admin_token),
        )
        .await
    }
}

/// Sets a user's verified steps for a day, as the step pipeline would have stored them.
async fn set_steps(db: &TestDb, user: Uuid, day: NaiveDate, steps: i32) {
    db.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO step_days (user_id, day, verified_steps) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, day) DO UPDATE SET verified_steps = EXCLUDED.verified_steps",
            &[&user, &day, &steps],
        )
        .await
        .unwrap();
}

/// An account made straight in SQL (no password hashing), for boards with many users.
async fn insert_user(client: &impl deadpool_postgres::GenericClient, name: &str) -> Uuid {
    client
        .query_one(
            "INSERT INTO users (email, password_hash, display_name) VALUES ($1, 'x', $2)
             RETURNING id",
            &[&format!("{}@example.com", name.to_lowercase()), &name],
        )
        .await
        .unwrap()
        .get(0)
}

fn days_ago(today: NaiveDate, days: u64) -> NaiveDate {
    today - chrono::Days::new(days)
}

/// (rank, display_name, steps, is_me) of every entry.
fn rows(board: &Leaderboard) -> Vec<(i64, String, i64, bool)> {
    board
        .entries
        .iter()
        .map(|e| (e.rank, e.display_name.clone(), e.steps, e.is_me))
        .collect()
}

#[tokio::test]
async fn each_period_ranks_the_verified_steps_of_its_own_days() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let (admin, _) = api.admin().await;
    let ann = api.register("ann@example.com", "Ann").await;
    let bob = api.register("bob@example.com", "Bob").await;
    let cat = api.register("cat@example.com", "Cat").await;
    let dan = api.register("dan@example.com", "Dan").await;

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
    let (status, body) = api.refresh(&admin, None).await;
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
    let viewer = api.register("viewer@example.com", "Viewer").await;
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
    let (admin, _) = api.admin().await;
    let today = leaderboard::today_utc();
    let mut sessions = Vec::new();
    for (i, steps) in [5000, 4000, 3000, 2000, 1000].into_iter().enumerate() {
        let session = api
            .register(&format!("walker{i}@example.com"), &format!("Walker {i}"))
            .await;
        set_steps(server.db(), session.user.id, today, steps).await;
        sessions.push(session);
    }
    api.refresh(&admin, Some(r#"{"period": "weekly"}"#)).await;

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

#[tokio::test]
async fn a_deleted_account_leaves_the_board_before_the_next_rebuild() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let today = leaderboard::today_utc();
    let mut sessions = Vec::new();
    for (name, steps) in [("Ann", 4000), ("Bob", 3000), ("Cat", 2000), ("Dan", 1000)] {
        let session = api
            .register(&format!("{}@example.com", name.to_lowercase()), name)
            .await;
        set_steps(server.db(), session.user.id, today, steps).await;
        sessions.push(session);
    }
    leaderboard::refresh(server.db().pool(), None)
        .await
        .unwrap();

    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/me",
            None,
            Some(&sessions[1].access_token),
        )
        .await;
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

#[tokio::test]
async fn bad_limits_periods_and_fields_are_refused() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("ann@example.com", "Ann").await;
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
    server
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE settings SET value = '5' WHERE key = 'leaderboard.size'",
            &[],
        )
        .await
        .unwrap();
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

#[tokio::test]
async fn only_admins_refresh_and_each_refresh_is_audited_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("ann@example.com", "Ann").await;
    let other = api.register("bob@example.com", "Bob").await;
    let today = leaderboard::today_utc();
    set_steps(server.db(), user.user.id, today, 1234).await;
    set_steps(server.db(), other.user.id, days_ago(today, 400), 99).await;
    let (admin, admin_id) = api.admin().await;
    let audit_rows = || async {
        server
            .db()
            .client()
            .await
            .unwrap()
            .query(
                "SELECT admin_id, entity_id, after FROM admin_logs
                 WHERE action = 'leaderboard.refresh' ORDER BY created_at",
                &[],
            )
            .await
            .unwrap()
    };

    let (status, body) = api.refresh(&user.access_token, None).await;
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

    let (status, body) = api.refresh(&admin, None).await;
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

    let (status, body) = api.refresh(&admin, Some(r#"{"period": "all_time"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"boards": [{"period": "all_time", "entries": 2}]})
    );
    let (status, _) = api.refresh(&admin, Some("{}")).await;
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
        let (got, answer) = api.refresh(&admin, Some(body)).await;
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

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let bob = api.register("bob@example.com", "Bob").await;
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
    let reader = api.register("reader@example.com", "Reader").await;
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

/// Every board row as (period, period_start, user, rank, steps, display name), in rank order.
async fn boards(
    client: &impl deadpool_postgres::GenericClient,
) -> Vec<(String, NaiveDate, Uuid, i32, i64, String)> {
    client
        .query(
            "SELECT period, period_start, user_id, rank, steps, display_name
             FROM leaderboard_cache ORDER BY period, rank",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get("period"),
                row.get("period_start"),
                row.get("user_id"),
                row.get("rank"),
                row.get("steps"),
                row.get("display_name"),
            )
        })
        .collect()
}

/// The boards summed straight from `step_days` (the rebuild before month totals existed), in
/// the shape of [`boards`]: the oracle the incremental boards must equal.
async fn boards_from_step_days(
    client: &impl deadpool_postgres::GenericClient,
) -> Vec<(String, NaiveDate, Uuid, i32, i64, String)> {
    let today = leaderboard::today_utc();
    let mut all = Vec::new();
    for period in Period::ALL {
        let (start, end) = leaderboard::period_bounds(period, today);
        let rows = client
            .query(
                "SELECT totals.user_id,
                        (row_number() OVER (ORDER BY totals.steps DESC, u.created_at, u.id))::int
                            AS rank,
                        totals.steps, u.display_name
                 FROM (SELECT user_id, sum(verified_steps) AS steps FROM step_days
                       WHERE day >= $1 AND ($2::date IS NULL OR day < $2)
                       GROUP BY user_id) totals
                 JOIN users u ON u.id = totals.user_id
                 WHERE u.deleted_at IS NULL AND u.disabled_at IS NULL AND totals.steps > 0
                 ORDER BY rank",
                &[&start, &end],
            )
            .await
            .unwrap();
        all.extend(rows.iter().map(|row| {
            (
                period.as_str().to_owned(),
                start,
                row.get("user_id"),
                row.get("rank"),
                row.get("steps"),
                row.get("display_name"),
            )
        }));
    }
    all.sort_by(|a, b| (&a.0, a.3).cmp(&(&b.0, b.3)));
    all
}

/// Month totals that differ from a recomputation over `step_days` (months with steps), in
/// either direction.
async fn month_total_mismatches(client: &impl deadpool_postgres::GenericClient) -> i64 {
    client
        .query_one(
            "WITH actual AS (
                 SELECT date_trunc('month', day)::date AS month, user_id,
                        sum(verified_steps) AS steps
                 FROM step_days GROUP BY 1, 2 HAVING sum(verified_steps) > 0
             )
             SELECT count(*) AS mismatches
             FROM actual a FULL JOIN step_month_totals t USING (month, user_id)
             WHERE a.steps IS DISTINCT FROM t.steps",
            &[],
        )
        .await
        .unwrap()
        .get("mismatches")
}

/// Inserts `(user, day, verified steps)` rows in one statement.
async fn insert_days(
    client: &impl deadpool_postgres::GenericClient,
    days: &[(Uuid, NaiveDate, i32)],
) {
    let users: Vec<Uuid> = days.iter().map(|d| d.0).collect();
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.1).collect();
    let steps: Vec<i32> = days.iter().map(|d| d.2).collect();
    client
        .execute(
            "INSERT INTO step_days (user_id, day, verified_steps)
             SELECT u, d, s FROM unnest($1::uuid[], $2::date[], $3::int[]) AS t(u, d, s)",
            &[&users, &dates, &steps],
        )
        .await
        .unwrap();
}

/// Changes days of `users` (Ann, Bob, Cyd, Dee) the ways the writers of `step_days` do: a
/// review lowers Cyd's day of last year; a sync push raises Bob's day of last month after the
/// month ended and adds a new one in the same statement; Ann's today is rewritten unchanged
/// and her day of last year moved into last month; Cyd's today is deleted; Dee's only day
/// drops to zero.
async fn change_days_as_each_writer_does(
    db: &TestDb,
    [ann, bob, cyd, dee]: [Uuid; 4],
    today: NaiveDate,
    last_month: NaiveDate,
    last_year: NaiveDate,
) {
    let client = db.client().await.unwrap();
    // A review lowers a day of last year (the statement shape of the review path).
    client
        .execute(
            "INSERT INTO step_days (user_id, day, verified_steps, coins_paid, change_version)
             VALUES ($1, $2, $3, 0, 2)
             ON CONFLICT (user_id, day) DO UPDATE SET verified_steps = EXCLUDED.verified_steps,
                 coins_paid = EXCLUDED.coins_paid, change_version = EXCLUDED.change_version",
            &[&cyd, &last_year, &1_000],
        )
        .await
        .unwrap();
    // A sync push raises a day of last month after that month ended and adds a new day in
    // the same statement (the step path's upsert: one insert, one update).
    client
        .execute(
            "INSERT INTO step_days AS s (user_id, day, verified_steps, coins_paid, change_version)
             SELECT $1, day, verified, 0, 3
             FROM unnest($2::date[], $3::int[]) AS u(day, verified)
             ON CONFLICT (user_id, day) DO UPDATE SET
                 verified_steps = EXCLUDED.verified_steps, change_version = EXCLUDED.change_version",
            &[
                &bob,
                &vec![last_month + chrono::Days::new(3), last_month + chrono::Days::new(4)],
                &vec![45_000, 7_000],
            ],
        )
        .await
        .unwrap();
    // A day rewritten to the same value, a day moved to another month, a day deleted, and
    // a user whose only day drops to zero.
    set_steps(db, ann, today, 9_000).await;
    client
        .execute(
            "UPDATE step_days SET day = $3 WHERE user_id = $1 AND day = $2",
            &[&ann, &last_year, &last_month],
        )
        .await
        .unwrap_err(); // (ann, last_month) exists: the key is taken
    client
        .execute(
            "UPDATE step_days SET day = $3 WHERE user_id = $1 AND day = $2",
            &[&ann, &last_year, &(last_month + chrono::Days::new(9))],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM step_days WHERE user_id = $1 AND day = $2",
            &[&cyd, &today],
        )
        .await
        .unwrap();
    set_steps(db, dee, last_year, 0).await;
}

#[tokio::test]
async fn incremental_boards_equal_a_full_rebuild_after_old_days_change() {
    let db = TestDb::new().await.unwrap();
    let client = db.client().await.unwrap();
    let today = leaderboard::today_utc();
    let last_month = leaderboard::period_bounds(Period::Monthly, today).0 - chrono::Months::new(1);
    let last_year = last_month - chrono::Months::new(11);
    let (ann, bob, cyd, dee) = (
        insert_user(&client, "Ann").await,
        insert_user(&client, "Bob").await,
        insert_user(&client, "Cyd").await,
        insert_user(&client, "Dee").await,
    );
    // Several days of several users and months in one statement, as a bulk load writes them.
    insert_days(
        &client,
        &[
            (ann, today, 9_000),
            (ann, last_month, 30_000),
            (ann, last_year, 50_000),
            (bob, today, 12_000),
            (bob, last_month + chrono::Days::new(3), 20_000),
            (cyd, today, 4_000),
            (cyd, last_year, 80_000),
            (dee, last_year, 5_000),
        ],
    )
    .await;
    leaderboard::refresh(db.pool(), None).await.unwrap();
    assert_eq!(boards(&client).await, boards_from_step_days(&client).await);

    change_days_as_each_writer_does(&db, [ann, bob, cyd, dee], today, last_month, last_year).await;

    assert_eq!(month_total_mismatches(&client).await, 0);
    leaderboard::refresh(db.pool(), None).await.unwrap();
    let incremental = boards(&client).await;
    assert_eq!(incremental, boards_from_step_days(&client).await);
    assert!(
        !incremental.iter().any(|row| row.2 == dee),
        "a user without steps is not ranked"
    );
    let all_time: Vec<(Uuid, i64)> = incremental
        .iter()
        .filter(|row| row.0 == "all_time")
        .map(|row| (row.2, row.4))
        .collect();
    assert_eq!(
        all_time,
        vec![(ann, 89_000), (bob, 64_000), (cyd, 1_000)],
        "the lowered day of last year counts at its new value"
    );
    let mut conn = db.pool().get().await.unwrap();
    assert_eq!(
        leaderboard::repair_month_totals(&mut conn).await.unwrap(),
        0
    );
    leaderboard::refresh_full(db.pool(), None).await.unwrap();
    assert_eq!(boards(&client).await, incremental);

    // Month totals damaged by hand (a wrong total, a lost month, a month with no days) are
    // repaired by the full rebuild, which then ranks as the days say.
    client
        .batch_execute(&format!(
            "UPDATE step_month_totals SET steps = steps + 5 WHERE user_id = '{bob}';
             DELETE FROM step_month_totals WHERE user_id = '{cyd}';
             INSERT INTO step_month_totals (month, user_id, steps) VALUES ('2001-01-01', '{dee}', 7);"
        ))
        .await
        .unwrap();
    leaderboard::refresh(db.pool(), Some(Period::AllTime))
        .await
        .unwrap();
    assert_ne!(
        boards(&client).await,
        incremental,
        "the damage shows in an incremental rebuild"
    );
    leaderboard::refresh_full(db.pool(), None).await.unwrap();
    assert_eq!(month_total_mismatches(&client).await, 0);
    assert_eq!(boards(&client).await, incremental);
}

#[tokio::test]
async fn a_generated_world_has_exact_month_totals_and_boards() {
    let db = TestDb::new().await.unwrap();
    let plan = fitkart_sync_server::generate::plan(40, 90, 7, leaderboard::today_utc());
    fitkart_sync_server::generate::generate(db.url(), plan, false)
        .await
        .unwrap();
    let client = db.client().await.unwrap();
    assert_eq!(
        month_total_mismatches(&client).await,
        0,
        "the COPY kept them"
    );
    assert_eq!(boards(&client).await, boards_from_step_days(&client).await);
}

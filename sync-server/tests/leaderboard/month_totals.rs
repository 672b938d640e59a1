//! The month totals behind the monthly and all-time boards: kept exact by every writer of
//! `step_days`, so incremental boards equal a full rebuild; a full rebuild repairs them.

use super::*;

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

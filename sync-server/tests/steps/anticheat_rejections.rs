//! Anti-cheat rejections: future and too-old dates, malformed reports, impossible totals and
//! cadences are refused and the old total kept.

use super::*;

#[tokio::test]
async fn future_dates_are_rejected() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ivy = api.account("ivy@example.com").await;
    let today = days_ago(0);
    let future = today + Days::new(2);

    let answer = api
        .record(
            &ivy,
            &[
                report(future, PHONE, 500, Utc::now()),
                report(today + Days::new(30), PHONE, 500, Utc::now()),
            ],
        )
        .await;
    assert_eq!(outcomes(&answer), vec![(Rejected, Some("future_date")); 2]);
    assert_eq!(answer.coins_awarded, 0);
    assert_eq!(stored_records(&server, ivy.id).await, 0, "nothing stored");
    assert_eq!(api.wallet(&ivy).await.available_coins, 0);
}

#[tokio::test]
async fn dates_outside_the_backfill_window_are_rejected() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let jon = api.account("jon@example.com").await;
    let (oldest, too_old) = (days_ago(7), days_ago(9));

    let answer = api
        .record(
            &jon,
            &[
                report(too_old, PHONE, 3000, at(too_old, 20, 0)),
                report(oldest, PHONE, 3000, at(oldest, 20, 0)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![
            (Rejected, Some("outside_backfill_window")),
            (Accepted, None)
        ]
    );
    assert_eq!(record_coins(&answer), vec![0, 30]);
    assert_eq!(stored_records(&server, jon.id).await, 1);

    // The window follows the setting, read per request.
    set_setting(&server, "steps.backfill_days", json!(2)).await;
    let (in_window, outside) = (days_ago(2), days_ago(4));
    let answer = api
        .record(
            &jon,
            &[
                report(outside, PHONE, 3000, at(outside, 20, 0)),
                report(in_window, PHONE, 3000, at(in_window, 20, 0)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![
            (Rejected, Some("outside_backfill_window")),
            (Accepted, None)
        ]
    );
    assert_eq!(stored_records(&server, jon.id).await, 2);
}

#[tokio::test]
async fn negative_steps_and_malformed_sources_are_rejected() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let kim = api.account("kim@example.com").await;
    let day = days_ago(1);
    let noon = at(day, 12, 0);

    let answer = api
        .record(
            &kim,
            &[
                report(day, PHONE, -1, noon),
                report(day, "", 1000, noon),
                report(day, "health kit", 1000, noon),
                report(day, "wätch", 1000, noon),
                report(day, "watch/../x", 1000, noon),
                report(day, &"a".repeat(65), 1000, noon),
                report(day, &"a".repeat(64), 1000, noon),
                report(day, "Watch_2.mi:band-8", 1000, noon),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![
            (Rejected, Some("invalid_steps")),
            (Rejected, Some("invalid_source")),
            (Rejected, Some("invalid_source")),
            (Rejected, Some("invalid_source")),
            (Rejected, Some("invalid_source")),
            (Rejected, Some("invalid_source")),
            (Accepted, None),
            (Accepted, None),
        ]
    );
    assert_eq!(stored_records(&server, kim.id).await, 2);
}

#[tokio::test]
async fn impossible_totals_are_rejected() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let lea = api.account("lea@example.com").await;
    let (day, other) = (days_ago(1), days_ago(2));

    let answer = api
        .record(
            &lea,
            &[
                report(day, PHONE, 100_001, at(day, 23, 0)),
                report(day, WATCH, 1_000_000_000_000, at(day, 23, 0)),
                report(day, "fitbit", i64::MAX, at(day, 23, 0)),
                // At the hard maximum itself: suspicious (above the soft one), not impossible.
                report(other, PHONE, 100_000, at(other, 23, 59)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![
            (Rejected, Some("impossible_total")),
            (Rejected, Some("impossible_total")),
            (Rejected, Some("impossible_total")),
            (Flagged, Some("above_soft_daily_max")),
        ]
    );
    assert_eq!(answer.coins_awarded, 0);
    assert_eq!(stored_records(&server, lea.id).await, 1);
}

#[tokio::test]
async fn impossible_cadence_is_rejected_and_the_old_total_kept() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let max = api.account("max@example.com").await;
    let day = days_ago(1);

    // 5,000 steps five minutes after midnight: 1,000 a minute.
    let first = api
        .record(&max, &[report(day, PHONE, 5000, at(day, 0, 5))])
        .await;
    assert_eq!(
        outcomes(&first),
        vec![(Rejected, Some("impossible_cadence"))]
    );
    assert_eq!(stored_records(&server, max.id).await, 0);

    // 7,000 more steps in ten minutes: 700 a minute.
    let answer = api
        .record(
            &max,
            &[
                report(day, PHONE, 3000, at(day, 9, 0)),
                report(day, PHONE, 10000, at(day, 9, 10)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![(Accepted, None), (Rejected, Some("impossible_cadence"))]
    );
    assert_eq!(record_coins(&answer), vec![30, 0]);
    assert_eq!(
        (answer.results[1].steps, answer.results[1].verified_steps),
        (3000, 3000),
        "the server still holds the last good total"
    );

    // The same total reached at a plausible pace later is fine.
    let later = api
        .record(&max, &[report(day, PHONE, 10000, at(day, 12, 0))])
        .await;
    assert_eq!(outcomes(&later), vec![(Accepted, None)]);
    assert_eq!(later.results[0].coins_awarded, 70);
    assert_eq!(day_reward(&api.transactions(&max).await, day), 100);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn the_cadence_window_ends_at_midnight_and_is_the_whole_day_when_empty() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ned = api.account("ned@example.com").await;
    let today = days_ago(0);
    let (d1, d2, d3, d4) = (days_ago(1), days_ago(2), days_ago(3), days_ago(4));

    // Read the next morning, but only ten minutes of the day were left after 23:50.
    let answer = api
        .record(
            &ned,
            &[
                report(d1, PHONE, 5000, at(d1, 23, 50)),
                report(d1, PHONE, 20000, at(today, 0, 30)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![(Accepted, None), (Rejected, Some("impossible_cadence"))]
    );

    let answer = api
        .record(
            &ned,
            &[
                // First report of a day, read after it ended: the whole day, 28 a minute.
                report(d2, PHONE, 40000, at(d1, 10, 0)),
                // Read before the previous report: a clock that cannot be right, so it counts
                // as read on arrival, after the day ended: the twelve hours after noon.
                report(d3, PHONE, 5000, at(d3, 12, 0)),
                report(d3, PHONE, 30000, at(d3, 11, 0)),
                // Read "in the future": counts as now, after the day ended.
                report(d4, PHONE, 12000, Utc::now() + Days::new(365)),
            ],
        )
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 4]);
    assert_eq!(record_coins(&answer), vec![200, 50, 150, 120]);
    assert_ledger_consistent(&server).await;
}

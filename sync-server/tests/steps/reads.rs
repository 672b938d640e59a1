//! Requests and reads: batch size limits, the wallet and its transaction pages, today and
//! the step history.

use super::*;

#[tokio::test]
async fn a_request_carries_one_to_a_thousand_records() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let cal = api.account("cal@example.com").await;
    let day = days_ago(1);
    let one = report(day, PHONE, 5000, at(day, 20, 0));

    let (status, body) = api.record_raw(&cal, &vec![one.clone(); 1001]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (status, body) = api.record_raw(&cal, &[]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(stored_records(&server, cal.id).await, 0);

    let answer = api.record(&cal, &vec![one; 1000]).await;
    assert_eq!(answer.results.len(), 1000);
    assert_eq!(answer.results[0].status, Accepted);
    assert!(answer.results[1..].iter().all(|r| r.status == Unchanged));
    assert!(answer.results.iter().enumerate().all(|(i, r)| r.index == i));
    assert_eq!(answer.coins_awarded, 50 + 10 + 20);

    let (status, _) = api
        .post(
            "/api/v1/steps/record",
            json!({"records": [report(day, PHONE, 1, at(day, 1, 0))]}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_wallet_and_its_transactions_page_newest_first() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let dee = api.account("dee@example.com").await;
    for n in (1..=4).rev() {
        let date = days_ago(n);
        api.record(
            &dee,
            &[report(date, PHONE, 1000 * n as i64, at(date, 20, 0))],
        )
        .await;
    }
    // Step rewards of 40, 30, 20, 10 and the 1k bonus.
    let wallet = api.wallet(&dee).await;
    assert_eq!(
        wallet,
        Wallet {
            available_coins: 110,
            frozen_coins: 0,
            lifetime_earned: 110,
            lifetime_spent: 0,
        }
    );

    let all = api.transactions(&dee).await;
    assert_eq!(all.len() as i64, ledger_rows(&server, dee.id).await);
    assert_eq!(all.len(), 5);
    assert_eq!(all.iter().map(|t| t.available_delta).sum::<i64>(), 110);
    assert_eq!(all[0].available_after, 110, "newest first");
    for pair in all.windows(2) {
        assert!(pair[0].created_at >= pair[1].created_at);
        assert_eq!(
            pair[1].available_after + pair[0].available_delta,
            pair[0].available_after
        );
    }
    let mut ids: Vec<Uuid> = all.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no entry on two pages");

    let query = [("cursor", "not-a-cursor".to_owned())];
    let (status, body) = api
        .get_query("/api/v1/wallet/transactions", &query, &dee)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
}

#[tokio::test]
async fn today_and_history_show_what_each_day_is_worth() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let eli = api.account("eli@example.com").await;
    let (today, d1, d3) = (days_ago(0), days_ago(1), days_ago(3));

    // 100 steps today cannot be too fast at any hour (at most 100 a minute).
    api.record(&eli, &[report(today, PHONE, 100, Utc::now())])
        .await;
    let (status, body) = api.get("/api/v1/steps/today", &eli).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let now: TodaySteps = serde_json::from_value(body).unwrap();
    assert_eq!(now.day.date, today);
    assert_eq!(
        (now.day.total_steps, now.day.coins_earned, now.day.goal_met),
        (100, 1, false)
    );
    assert_eq!(now.daily_goal, 10000);
    assert_eq!(now.day.sources.len(), 1);
    assert_eq!(
        (now.day.sources[0].steps, now.day.sources[0].verified_steps),
        (100, 100)
    );
    assert_eq!(now.day.sources[0].status, "accepted");

    api.record(
        &eli,
        &[
            report(d1, PHONE, 12000, at(d1, 20, 0)),
            report(d3, WATCH, 9000, at(d3, 20, 0)),
            report(d3, PHONE, 8000, at(d3, 20, 0)),
        ],
    )
    .await;
    let days = api.history(&eli, days_ago(5), d1).await.days;
    let summary: Vec<(NaiveDate, i64, i64, bool, usize)> = days
        .iter()
        .map(|d| {
            (
                d.date,
                d.total_steps,
                d.coins_earned,
                d.goal_met,
                d.sources.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(d3, 9000, 90, false, 2), (d1, 12000, 120, true, 1)],
        "days with steps, oldest first"
    );

    let (status, _) = api.history_raw(&eli, d1, d3).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "from after to");
    let (status, _) = api.history_raw(&eli, days_ago(400), today).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "over 366 days");
}

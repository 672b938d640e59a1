//! Step coins: the daily cap and partial thousands carried over within the day.

use super::*;

#[tokio::test]
async fn the_daily_cap_limits_step_coins() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let sam = api.account("sam@example.com").await;
    let (d1, d2, d3) = (days_ago(1), days_ago(2), days_ago(3));

    let answer = api
        .record(
            &sam,
            &[
                // 30,000 steps would be 300 coins: the day pays 200.
                report(d1, PHONE, 30000, at(d1, 20, 0)),
                // A second source cannot go past the cap.
                report(d1, WATCH, 35000, at(d1, 21, 0)),
                // Paid incrementally, the day still stops at 200.
                report(d2, PHONE, 15000, at(d2, 12, 0)),
                report(d2, PHONE, 30000, at(d2, 22, 0)),
            ],
        )
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 4]);
    assert_eq!(record_coins(&answer), vec![200, 0, 150, 50]);

    // Rate and cap come from the settings, read per request.
    set_setting(&server, "rewards.coins_per_1000_steps", json!(20)).await;
    set_setting(&server, "rewards.daily_coin_cap", json!(50)).await;
    let answer = api
        .record(
            &sam,
            &[
                report(d3, PHONE, 2000, at(d3, 12, 0)),
                report(d3, PHONE, 5000, at(d3, 20, 0)),
            ],
        )
        .await;
    assert_eq!(record_coins(&answer), vec![40, 10]);

    let ledger = api.transactions(&sam).await;
    assert_eq!(day_reward(&ledger, d1), 200);
    assert_eq!(day_reward(&ledger, d2), 200);
    assert_eq!(day_reward(&ledger, d3), 50);
    for entry in ledger.iter().filter(|t| t.kind == "step_reward") {
        assert_eq!(entry.reference_type.as_deref(), Some("step_day"));
    }
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn partial_thousands_carry_over_within_the_day() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let tom = api.account("tom@example.com").await;
    let day = days_ago(1);

    let steps = [150, 250, 999, 1000, 1499, 1500];
    let reports: Vec<StepReport> = steps
        .iter()
        .zip(9..)
        .map(|(&steps, hour)| report(day, PHONE, steps, at(day, hour, 0)))
        .collect();
    let answer = api.record(&tom, &reports).await;
    assert_eq!(record_coins(&answer), vec![1, 1, 7, 1, 4, 1]);
    assert_eq!(day_reward(&api.transactions(&tom).await, day), 15);
}

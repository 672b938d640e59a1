//! Honest days pass the anti-cheat rules: walking, running up to the cap, and short sprints
//! are accepted and paid.

use super::*;

#[tokio::test]
async fn a_normal_walking_day_is_accepted_and_paid() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let fay = api.account("fay@example.com").await;
    let day = days_ago(1);

    // 1,000 steps an hour from 09:00 to 20:00, reported each hour.
    let reports: Vec<StepReport> = (1..=12u32)
        .map(|hour| report(day, PHONE, 1000 * i64::from(hour), at(day, 8 + hour, 0)))
        .collect();
    let answer = api.record(&fay, &reports).await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 12]);
    assert_eq!(record_coins(&answer), vec![10; 12]);
    let last = answer.results.last().unwrap();
    assert_eq!((last.steps, last.verified_steps), (12000, 12000));
    assert_eq!(unlocked(&answer), vec!["steps_10k", "steps_1k", "steps_5k"]);
    assert_eq!(answer.coins_awarded, 120 + 10 + 20 + 50);
    assert_eq!(api.wallet(&fay).await.available_coins, 200);
    assert_eq!(validations(&server, fay.id).await.len(), 0);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn a_running_day_is_accepted_and_paid_up_to_the_cap() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let gus = api.account("gus@example.com").await;
    let day = days_ago(1);

    // A walk, then a 45-minute run at 170 steps a minute, then the rest of the day.
    let reports = [
        report(day, PHONE, 4000, at(day, 8, 30)),
        report(day, PHONE, 4500, at(day, 9, 0)),
        report(day, PHONE, 4500 + 45 * 170, at(day, 9, 45)),
        report(day, PHONE, 16000, at(day, 13, 0)),
        report(day, PHONE, 25000, at(day, 21, 0)),
    ];
    let answer = api.record(&gus, &reports).await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 5]);
    // 12,150 steps are worth 121 coins; the cap stops the day at 200.
    assert_eq!(record_coins(&answer), vec![40, 5, 76, 39, 40]);
    assert_eq!(answer.results[4].verified_steps, 25000);
    assert_eq!(validations(&server, gus.id).await.len(), 0);
    assert_eq!(day_reward(&api.transactions(&gus).await, day), 200);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn a_short_sprint_above_running_cadence_is_accepted() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let hal = api.account("hal@example.com").await;
    let day = days_ago(1);

    // Ten minutes at 300 steps a minute is fast but not sustained; exactly 600 a minute
    // for ten minutes is at the hard limit, not above it.
    let answer = api
        .record(
            &hal,
            &[
                report(day, PHONE, 3000, at(day, 9, 0)),
                report(day, PHONE, 6000, at(day, 9, 10)),
                report(day, PHONE, 12000, at(day, 9, 20)),
            ],
        )
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 3]);
    assert_eq!(answer.results[2].verified_steps, 12000);
    assert_eq!(validations(&server, hal.id).await.len(), 0);
}

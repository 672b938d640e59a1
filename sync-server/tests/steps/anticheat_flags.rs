//! Anti-cheat flags: the soft maximum, sustained running cadence and outliers against the
//! user's own history are flagged and their coins withheld.

use super::*;

#[tokio::test]
async fn totals_above_the_soft_maximum_are_flagged_and_their_coins_withheld() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ola = api.account("ola@example.com").await;
    let (day, other) = (days_ago(1), days_ago(2));

    let answer = api
        .record(&ola, &[report(day, PHONE, 60000, at(day, 23, 0))])
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![(Flagged, Some("above_soft_daily_max"))]
    );
    let result = &answer.results[0];
    assert_eq!(
        (result.steps, result.verified_steps, result.coins_awarded),
        (60000, 0, 0)
    );
    assert_eq!(answer.coins_awarded, 0);
    assert_eq!(api.wallet(&ola).await.available_coins, 0);

    let rows = validations(&server, ola.id).await;
    assert_eq!(rows.len(), 1);
    let (status, previous, claimed, score, reasons) = &rows[0];
    assert_eq!(
        (status.as_str(), *previous, *claimed),
        ("pending_review", 0, 60000)
    );
    assert!(*score >= 0.0);
    assert!(
        reasons.to_string().contains("above_soft_daily_max"),
        "{reasons}"
    );

    // A later increase of the flagged record waits for the same review.
    let later = api
        .record(&ola, &[report(day, PHONE, 61000, at(day, 23, 30))])
        .await;
    assert_eq!(outcomes(&later), vec![(Flagged, Some("pending_review"))]);
    assert_eq!(
        (later.results[0].steps, later.results[0].verified_steps),
        (61000, 0)
    );
    assert_eq!(later.coins_awarded, 0);

    // Another source of the same day is judged on its own.
    let watch = api
        .record(&ola, &[report(day, WATCH, 12000, at(day, 20, 0))])
        .await;
    assert_eq!(outcomes(&watch), vec![(Accepted, None)]);
    assert_eq!(watch.results[0].coins_awarded, 120);

    // Exactly the soft maximum is fine.
    let edge = api
        .record(&ola, &[report(other, PHONE, 50000, at(other, 23, 0))])
        .await;
    assert_eq!(outcomes(&edge), vec![(Accepted, None)]);
    assert_eq!(edge.results[0].coins_awarded, 200);

    let ledger = api.transactions(&ola).await;
    assert_eq!(day_reward(&ledger, day), 120);
    assert_eq!(day_reward(&ledger, other), 200);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn sustained_running_cadence_is_flagged() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let pam = api.account("pam@example.com").await;
    let day = days_ago(1);

    // Forty minutes at 250 steps a minute.
    let answer = api
        .record(
            &pam,
            &[
                report(day, PHONE, 3000, at(day, 9, 0)),
                report(day, PHONE, 13000, at(day, 9, 40)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![
            (Accepted, None),
            (Flagged, Some("sustained_running_cadence"))
        ]
    );
    assert_eq!(record_coins(&answer), vec![30, 0]);
    assert_eq!(
        (answer.results[1].steps, answer.results[1].verified_steps),
        (13000, 3000),
        "the verified total stays at the last good one"
    );
    let rows = validations(&server, pam.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2),
        ("pending_review", 3000, 13000)
    );
    assert!(
        rows[0].4.to_string().contains("sustained_running_cadence"),
        "{}",
        rows[0].4
    );
    assert_eq!(day_reward(&api.transactions(&pam).await, day), 30);
}

/// `days` days of 8,000 steps each, the last one three days ago.
async fn build_history(api: &Api, walker: &Walker, days: u64) {
    let reports: Vec<StepReport> = (3..3 + days)
        .rev()
        .map(|n| {
            let date = days_ago(n);
            report(date, PHONE, 8000, at(date, 20, 0))
        })
        .collect();
    let answer = api.record(walker, &reports).await;
    assert_eq!(
        outcomes(&answer),
        vec![(Accepted, None); reports.len()],
        "a steady history is not suspicious"
    );
}

#[tokio::test]
async fn statistical_outliers_against_the_users_own_history_are_flagged() {
    let server = TestServer::start().await.unwrap();
    set_setting(&server, "steps.backfill_days", json!(40)).await;
    let api = Api::new(&server);
    let (d2, d1) = (days_ago(2), days_ago(1));

    let quinn = api.account("quinn@example.com").await;
    build_history(&api, &quinn, 8).await;
    // A good day (z about 3) passes; a day far above the usual (z about 7) is flagged.
    let good = api
        .record(&quinn, &[report(d2, PHONE, 10500, at(d2, 20, 0))])
        .await;
    assert_eq!(outcomes(&good), vec![(Accepted, None)]);
    let odd = api
        .record(&quinn, &[report(d1, PHONE, 14000, at(d1, 20, 0))])
        .await;
    assert_eq!(outcomes(&odd), vec![(Flagged, Some("statistical_outlier"))]);
    assert_eq!(
        (odd.results[0].verified_steps, odd.results[0].coins_awarded),
        (0, 0)
    );
    let rows = validations(&server, quinn.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].2), ("pending_review", 14000));
    assert!(rows[0].3 >= 0.0);
    assert!(rows[0].4.to_string().contains("statistical_outlier"));
    assert_eq!(day_reward(&api.transactions(&quinn).await, d1), 0);

    // With only six days of history the score does not apply yet.
    let rae = api.account("rae@example.com").await;
    build_history(&api, &rae, 6).await;
    let new = api
        .record(&rae, &[report(d1, PHONE, 14000, at(d1, 20, 0))])
        .await;
    assert_eq!(outcomes(&new), vec![(Accepted, None)]);
    assert_eq!(new.results[0].coins_awarded, 140);
    assert_ledger_consistent(&server).await;
}

//! Exactly-once rewards: replayed, parallel and out-of-order batches, and devices racing
//! on one day, pay once and keep the maximum.

use super::*;

/// Two days of reports from a phone and a watch: 80 + 40 step coins, and the 1k and 5k
/// achievements (10 + 20).
fn two_day_batch() -> Vec<StepReport> {
    let (yesterday, before) = (days_ago(1), days_ago(2));
    vec![
        report(yesterday, PHONE, 3000, at(yesterday, 9, 0)),
        report(yesterday, PHONE, 7000, at(yesterday, 12, 0)),
        report(yesterday, WATCH, 8000, at(yesterday, 18, 0)),
        report(before, PHONE, 4000, at(before, 20, 0)),
    ]
}

#[tokio::test]
async fn a_batch_sent_five_times_in_a_row_pays_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ann = api.account("ann@example.com").await;
    let batch = two_day_batch();

    let first = api.record(&ann, &batch).await;
    assert_eq!(outcomes(&first), vec![(Accepted, None); 4]);
    assert_eq!(record_coins(&first), vec![30, 40, 10, 40]);
    assert_eq!(first.coins_awarded, 120 + 10 + 20);
    assert_eq!(unlocked(&first), vec!["steps_1k", "steps_5k"]);
    let rows = ledger_rows(&server, ann.id).await;

    for _ in 0..4 {
        let replay = api.record(&ann, &batch).await;
        assert_eq!(outcomes(&replay), vec![(Unchanged, None); 4]);
        assert_eq!(record_coins(&replay), vec![0; 4]);
        assert_eq!(replay.coins_awarded, 0);
        assert!(replay.achievements_unlocked.is_empty());
        let held: Vec<(i64, i64)> = replay
            .results
            .iter()
            .map(|r| (r.steps, r.verified_steps))
            .collect();
        assert_eq!(
            held,
            vec![(7000, 7000), (7000, 7000), (8000, 8000), (4000, 4000)]
        );
        let indices: Vec<usize> = replay.results.iter().map(|r| r.index).collect();
        assert_eq!(indices, vec![0, 1, 2, 3]);
    }

    assert_eq!(api.wallet(&ann).await.available_coins, 150);
    assert_eq!(
        ledger_rows(&server, ann.id).await,
        rows,
        "replays add no rows"
    );
    let ledger = api.transactions(&ann).await;
    assert_eq!(day_reward(&ledger, days_ago(1)), 80);
    assert_eq!(day_reward(&ledger, days_ago(2)), 40);
    assert_eq!(
        ledger
            .iter()
            .filter(|t| t.kind == "achievement_bonus")
            .count(),
        2
    );
    assert_ledger_consistent(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_sent_five_times_in_parallel_pays_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ben = api.account("ben@example.com").await;
    let batch = two_day_batch();

    let answers = api.record_in_parallel(&ben, &batch, 5).await;
    let paid: i64 = answers.iter().map(|a| a.coins_awarded).sum();
    assert_eq!(paid, 150, "the five answers together paid the batch once");
    let step_coins: i64 = answers.iter().flat_map(record_coins).sum();
    assert_eq!(step_coins, 120);
    let mut unlocks: Vec<&str> = answers.iter().flat_map(unlocked).collect();
    unlocks.sort_unstable();
    assert_eq!(unlocks, vec!["steps_1k", "steps_5k"], "each unlocks once");
    for answer in &answers {
        for result in &answer.results {
            assert!(matches!(result.status, Accepted | Unchanged), "{result:?}");
        }
    }
    assert_eq!(api.wallet(&ben).await.available_coins, 150);
    let rows = ledger_rows(&server, ben.id).await;

    // Another wave of parallel replays changes nothing.
    let again = api.record_in_parallel(&ben, &batch, 5).await;
    assert!(again.iter().all(|a| a.coins_awarded == 0));
    assert_eq!(ledger_rows(&server, ben.id).await, rows);
    let wallet = api.wallet(&ben).await;
    assert_eq!((wallet.available_coins, wallet.lifetime_earned), (150, 150));
    let ledger = api.transactions(&ben).await;
    assert_eq!(day_reward(&ledger, days_ago(1)), 80);
    assert_eq!(day_reward(&ledger, days_ago(2)), 40);
    assert_eq!(
        booked(&ledger, "achievement_bonus").values().sum::<i64>(),
        30
    );
    assert_ledger_consistent(&server).await;
    assert_cli_verifies_ledger(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_reporting_one_source_concurrently_keep_the_maximum() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    api.account("cat@example.com").await;
    let phone = api.signed_in("cat@example.com").await;
    let tablet = api.signed_in("cat@example.com").await;
    let day = days_ago(1);

    let mut paid = 0;
    for round in 0..5u32 {
        let steps = 2000 * i64::from(round) + 500;
        let from_phone = [report(day, PHONE, steps, at(day, 9 + round, 0))];
        let from_tablet = [report(day, PHONE, steps + 500, at(day, 9 + round, 30))];
        let (a, b) = tokio::join!(
            api.record(&phone, &from_phone),
            api.record(&tablet, &from_tablet)
        );
        paid += a.results[0].coins_awarded + b.results[0].coins_awarded;
        let held = a.results[0].steps.max(b.results[0].steps);
        assert_eq!(
            held,
            steps + 500,
            "the larger report wins, whatever the order"
        );
    }
    assert_eq!(paid, day_coins(9000), "the day paid once for its maximum");
    let ledger = api.transactions(&phone).await;
    assert_eq!(day_reward(&ledger, day), 90);
    let days = api.history(&phone, day, day).await.days;
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].total_steps, 9000);
    assert_eq!(days[0].sources.len(), 1);
    assert_eq!(days[0].sources[0].steps, 9000);
    assert_ledger_consistent(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phone_and_watch_reporting_concurrently_pay_for_the_larger_source() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    api.account("dan@example.com").await;
    let phone = api.signed_in("dan@example.com").await;
    let watch = api.signed_in("dan@example.com").await;
    let day = days_ago(1);

    for round in 1..=4u32 {
        let steps = 2000 * i64::from(round);
        let from_phone = [report(day, PHONE, steps, at(day, 9 + round, 0))];
        let from_watch = [report(day, WATCH, steps + 1000, at(day, 9 + round, 0))];
        let (a, b) = tokio::join!(
            api.record(&phone, &from_phone),
            api.record(&watch, &from_watch)
        );
        assert_eq!(a.results[0].status, Accepted);
        assert_eq!(b.results[0].status, Accepted);
    }
    // Phone 8000, watch 9000: the day is worth 9000 steps, not 17000.
    let ledger = api.transactions(&phone).await;
    assert_eq!(day_reward(&ledger, day), 90);
    let days = api.history(&phone, day, day).await.days;
    assert_eq!(days[0].total_steps, 9000);
    assert_eq!(days[0].coins_earned, 90);
    let mut sources: Vec<(String, i64)> = days[0]
        .sources
        .iter()
        .map(|s| (s.source.clone(), s.steps))
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        vec![(PHONE.to_owned(), 8000), (WATCH.to_owned(), 9000)]
    );
    // 1k and 5k unlocked once; 9000 is short of the 10k day.
    assert_eq!(api.wallet(&phone).await.available_coins, 90 + 10 + 20);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn out_of_order_and_duplicate_reports_keep_the_maximum() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let eve = api.account("eve@example.com").await;
    let day = days_ago(2);

    let scrambled = [
        report(day, PHONE, 7000, at(day, 12, 0)),
        report(day, PHONE, 3000, at(day, 9, 0)),
        report(day, PHONE, 7000, at(day, 12, 0)),
        report(day, PHONE, 9000, at(day, 18, 0)),
        report(day, PHONE, 5000, at(day, 10, 0)),
    ];
    let answer = api.record(&eve, &scrambled).await;
    assert_eq!(
        outcomes(&answer),
        vec![
            (Accepted, None),
            (Unchanged, None),
            (Unchanged, None),
            (Accepted, None),
            (Unchanged, None)
        ]
    );
    assert_eq!(record_coins(&answer), vec![70, 0, 0, 20, 0]);
    let held: Vec<i64> = answer.results.iter().map(|r| r.steps).collect();
    assert_eq!(held, vec![7000, 7000, 7000, 9000, 9000]);

    // A late, smaller report in its own request changes nothing either.
    let late = api
        .record(&eve, &[report(day, PHONE, 8999, at(day, 17, 0))])
        .await;
    assert_eq!(outcomes(&late), vec![(Unchanged, None)]);
    assert_eq!(
        (late.results[0].steps, late.results[0].coins_awarded),
        (9000, 0)
    );

    let ledger = api.transactions(&eve).await;
    assert_eq!(day_reward(&ledger, day), 90);
    assert_eq!(api.history(&eve, day, day).await.days[0].total_steps, 9000);
    assert_ledger_consistent(&server).await;
}

/// A batch of one month's days reads the stored records from that month's partition; a batch
/// across two months reads them through `step_records`. Each sees what the other stored, so
/// the same days sent both ways pay once.
#[tokio::test]
async fn days_of_two_months_sent_together_and_apart_pay_once() {
    let server = TestServer::start().await.unwrap();
    set_setting(&server, "steps.backfill_days", json!(40)).await;
    let api = Api::new(&server);
    let cy = api.account("cy@example.com").await;
    // 32 days apart: never in the same month.
    let (recent, older) = (days_ago(1), days_ago(33));
    let together = [
        report(older, PHONE, 4000, at(older, 20, 0)),
        report(recent, PHONE, 4000, at(recent, 20, 0)),
    ];

    let first = api.record(&cy, &together).await;
    assert_eq!(outcomes(&first), vec![(Accepted, None); 2]);
    assert_eq!(record_coins(&first), vec![40, 40]);
    for alone in [&together[..1], &together[1..]] {
        let replay = api.record(&cy, alone).await;
        assert_eq!(outcomes(&replay), vec![(Unchanged, None)], "{alone:?}");
        assert_eq!(replay.coins_awarded, 0);
    }

    let more = [
        report(older, PHONE, 6000, at(older, 21, 0)),
        report(recent, PHONE, 6000, at(recent, 21, 0)),
    ];
    for one in &more {
        let answer = api.record(&cy, std::slice::from_ref(one)).await;
        assert_eq!(outcomes(&answer), vec![(Accepted, None)], "{one:?}");
        assert_eq!(record_coins(&answer), vec![20], "{one:?}");
    }
    let replay = api.record(&cy, &more).await;
    assert_eq!(outcomes(&replay), vec![(Unchanged, None); 2]);
    assert_eq!(replay.coins_awarded, 0);

    let ledger = api.transactions(&cy).await;
    assert_eq!(day_reward(&ledger, older), 60);
    assert_eq!(day_reward(&ledger, recent), 60);
    assert_ledger_consistent(&server).await;
}

/// A month's partition renamed under the running server (by an operator, say): the batch
/// that still reads it by its old name fails and changes nothing, and the batches after it
/// read through `step_records` and pay what is owed, once.
#[tokio::test]
async fn a_renamed_month_partition_costs_at_most_one_failed_batch() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let dee = api.account("dee@example.com").await;
    let day = days_ago(1);
    let first = api
        .record(&dee, &[report(day, PHONE, 4000, at(day, 20, 0))])
        .await;
    assert_eq!(record_coins(&first), vec![40]);

    let partition = format!("step_records_{}", day.format("%Y_%m"));
    server
        .db()
        .client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "ALTER TABLE {partition} RENAME TO {partition}_renamed"
        ))
        .await
        .unwrap();

    let more = [report(day, PHONE, 6000, at(day, 21, 0))];
    let mut failed = 0;
    let answer = loop {
        let (status, body) = api.record_raw(&dee, &more).await;
        if status == StatusCode::OK {
            break serde_json::from_value::<RecordStepsResponse>(body).unwrap();
        }
        failed += 1;
        assert!(failed <= 1, "a second batch failed: {status} {body}");
        assert_eq!(api.wallet(&dee).await.available_coins, first.coins_awarded);
    };
    assert_eq!(outcomes(&answer), vec![(Accepted, None)]);
    assert_eq!(record_coins(&answer), vec![20]);
    let replay = api.record(&dee, &more).await;
    assert_eq!(outcomes(&replay), vec![(Unchanged, None)]);
    assert_eq!(day_reward(&api.transactions(&dee).await, day), 60);
    assert_ledger_consistent(&server).await;
}

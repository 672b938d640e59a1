//! Group commit of step reports: small reports of different users that wait together are
//! recorded in one transaction, each paid exactly as alone, and a request that fails in a
//! group fails alone while the others are paid.
//!
//! To make a group form for certain, the tests run one group worker and hold the change-version
//! row of a first user from a connection of their own: the worker waits on it with that user's
//! report, the other users' reports queue behind, and when the row is released the worker takes
//! them all as one group.

use std::time::Duration;

use super::*;

/// A report of 3,000 steps yesterday: 30 coins and the 1k achievement's 10.
fn three_thousand() -> Vec<StepReport> {
    let yesterday = days_ago(1);
    vec![report(yesterday, PHONE, 3000, at(yesterday, 9, 0))]
}

/// A server with one group worker and a metrics listener.
async fn one_worker() -> TestServer {
    TestServer::start_with(|config| {
        config.step_report_groups = 1;
        config.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await
    .unwrap()
}

/// The count of step-report requests recorded in `transaction` (a label of
/// `fitkart_step_report_transactions_total`).
async fn recorded_in(server: &TestServer, transaction: &str) -> u64 {
    let text = reqwest::get(server.metrics_url().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix =
        format!("fitkart_step_report_transactions_total{{transaction=\"{transaction}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

/// Sends `holder` three thousand steps while its change-version row is held, so that the group
/// worker waits on it, then each of `sends` at once, so that they queue behind it; releases
/// the row and answers every request (the holder's first).
async fn send_while_held(
    server: &TestServer,
    api: &Api,
    holder: &Walker,
    sends: &[(Walker, Vec<StepReport>)],
) -> Vec<(StatusCode, Value)> {
    let mut blocker = server.db().client().await.unwrap();
    let lock = blocker.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM change_versions WHERE user_id = $1 FOR UPDATE",
        &[&holder.id],
    )
    .await
    .unwrap();
    let first = {
        let (api, holder) = (api.clone(), holder.clone());
        tokio::spawn(async move { api.record_raw(&holder, &three_thousand()).await })
    };
    // The worker is waiting on the row once PostgreSQL shows a backend waiting on a lock.
    let watcher = server.db().client().await.unwrap();
    for _ in 0..200 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let others: Vec<_> = sends
        .iter()
        .map(|(walker, reports)| {
            let (api, walker, reports) = (api.clone(), walker.clone(), reports.clone());
            tokio::spawn(async move { api.record_raw(&walker, &reports).await })
        })
        .collect();
    // Long enough for a debug build to take each request to the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.rollback().await.unwrap();
    let mut answers = vec![first.await.unwrap()];
    for other in others {
        answers.push(other.await.unwrap());
    }
    answers
}

/// Each of `walkers` with three thousand steps.
fn each_three_thousand(walkers: &[Walker]) -> Vec<(Walker, Vec<StepReport>)> {
    walkers
        .iter()
        .map(|walker| (walker.clone(), three_thousand()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_of_users_that_wait_together_are_recorded_in_one_group_and_each_pays_once() {
    let server = one_worker().await;
    let api = Api::new(&server);
    let holder = api.account("holder@example.com").await;
    let mut walkers = Vec::new();
    for i in 0..5 {
        walkers.push(api.account(&format!("walker{i}@example.com")).await);
    }

    let answers = send_while_held(&server, &api, &holder, &each_three_thousand(&walkers)).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        let answer: RecordStepsResponse = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(outcomes(&answer), vec![(Accepted, None)]);
        assert_eq!(answer.coins_awarded, 30 + 10, "{body}");
        assert_eq!(unlocked(&answer), vec!["steps_1k"]);
    }
    assert_eq!(
        recorded_in(&server, "group").await,
        5,
        "the five that queued"
    );
    assert_eq!(recorded_in(&server, "own").await, 1, "the holder's, alone");
    assert_eq!(recorded_in(&server, "own_after_group_failed").await, 0);

    // The same reports again, grouped again: nothing more is paid.
    let replays = send_while_held(&server, &api, &holder, &each_three_thousand(&walkers)).await;
    for (status, body) in &replays {
        assert_eq!(*status, StatusCode::OK, "{body}");
        let answer: RecordStepsResponse = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(outcomes(&answer), vec![(Unchanged, None)]);
        assert_eq!(answer.coins_awarded, 0);
    }
    assert_eq!(recorded_in(&server, "group").await, 10);
    for walker in walkers.iter().chain([&holder]) {
        assert_eq!(api.wallet(walker).await.available_coins, 40);
        assert_eq!(
            ledger_rows(&server, walker.id).await,
            2,
            "step reward + 1k bonus"
        );
    }
    assert_ledger_consistent(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_fails_in_a_group_fails_alone_and_the_others_are_paid() {
    let server = one_worker().await;
    let api = Api::new(&server);
    let holder = api.account("holder@example.com").await;
    let mut walkers = Vec::new();
    for i in 0..4 {
        walkers.push(api.account(&format!("walker{i}@example.com")).await);
    }
    // One of the queued accounts is disabled after its token was issued: its check fails in
    // the group, after the group had taken its change version.
    let disabled = walkers[2].clone();
    let versions_before = count(
        &server,
        "SELECT coalesce(sum(version), 0)::bigint FROM change_versions WHERE user_id = $1",
        disabled.id,
    )
    .await;
    server
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE users SET disabled_at = now(), disabled_reason = 'a test' WHERE id = $1",
            &[&disabled.id],
        )
        .await
        .unwrap();

    let answers = send_while_held(&server, &api, &holder, &each_three_thousand(&walkers)).await;
    for ((status, body), walker) in answers.iter().zip([&holder].into_iter().chain(&walkers)) {
        if walker.id == disabled.id {
            assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(error_code(body), "account_disabled");
        } else {
            assert_eq!(*status, StatusCode::OK, "{body}");
            let answer: RecordStepsResponse = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(outcomes(&answer), vec![(Accepted, None)]);
            assert_eq!(answer.coins_awarded, 40, "{body}");
        }
    }
    assert_eq!(recorded_in(&server, "group").await, 0);
    assert_eq!(
        recorded_in(&server, "own_after_group_failed").await,
        4,
        "the group of four was recorded again, each alone"
    );
    // Nothing of the disabled account's report was written, not even its change version.
    assert_eq!(stored_records(&server, disabled.id).await, 0);
    assert_eq!(ledger_rows(&server, disabled.id).await, 0);
    assert_eq!(
        count(
            &server,
            "SELECT coalesce(sum(version), 0)::bigint FROM change_versions WHERE user_id = $1",
            disabled.id,
        )
        .await,
        versions_before
    );
    for walker in walkers.iter().filter(|w| w.id != disabled.id) {
        assert_eq!(ledger_rows(&server, walker.id).await, 2);
    }
    assert_ledger_consistent(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_reports_of_one_user_that_wait_together_are_judged_one_after_the_other() {
    let server = one_worker().await;
    let api = Api::new(&server);
    let holder = api.account("holder@example.com").await;
    let ann = api.account("ann@example.com").await;
    let bob = api.account("bob@example.com").await;
    let yesterday = days_ago(1);
    // Two readings of one day of Ann's and one of Bob's queue together: Bob and one of Ann's
    // are grouped, Ann's other runs alone after the group. The larger reading pays the day
    // once, whichever was judged first.
    let sends = [
        (
            ann.clone(),
            vec![report(yesterday, PHONE, 4000, at(yesterday, 10, 0))],
        ),
        (
            ann.clone(),
            vec![report(yesterday, PHONE, 6000, at(yesterday, 14, 0))],
        ),
        (
            bob.clone(),
            vec![report(yesterday, PHONE, 4000, at(yesterday, 10, 0))],
        ),
    ];
    let answers = send_while_held(&server, &api, &holder, &sends).await;
    let paid: Vec<i64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["coins_awarded"].as_i64().unwrap()
        })
        .collect();
    let paid = &paid[1..];
    // Ann: 60 step coins for the day and the 1k and 5k achievements (10 + 20), over her two
    // answers; Bob: 40 step coins and the 1k achievement.
    assert_eq!(paid[0] + paid[1], 60 + 10 + 20, "{paid:?}");
    assert_eq!(paid[2], 40 + 10);
    assert_eq!(api.wallet(&ann).await.available_coins, 90);
    assert_eq!(api.wallet(&bob).await.available_coins, 50);
    assert_eq!(
        recorded_in(&server, "group").await,
        2,
        "Bob and one of Ann's"
    );
    assert_eq!(
        recorded_in(&server, "own").await,
        2,
        "the holder's, Ann's other"
    );
    assert_ledger_consistent(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_records_and_pays_exactly_what_each_batch_would_alone() {
    let server = one_worker().await;
    let api = Api::new(&server);
    let holder = api.account("holder@example.com").await;
    let day = days_ago;
    // Batches that take every path of a group's statements: several days and sources, months
    // apart; several achievements at once; a flag, and a flagged record extended; an early
    // bird; refusals; a replay that changes nothing.
    let batches: Vec<(Vec<StepReport>, Vec<StepReport>)> = vec![
        (vec![], three_thousand()),
        (
            vec![],
            (1..=7)
                .map(|n| report(day(n), PHONE, 10_000, at(day(n), 20, 0)))
                .collect(),
        ),
        (
            vec![],
            vec![
                report(day(2), PHONE, 60_000, at(day(2), 23, 0)),
                report(day(3), WATCH, 5_000, at(day(3), 18, 0)),
                report(day(40), WATCH, 7_000, at(day(40), 18, 0)),
            ],
        ),
        (
            vec![],
            vec![
                report(day(1), WATCH, 2_500, at(day(1), 7, 0)),
                report(day(1), WATCH, 6_000, at(day(1), 12, 0)),
            ],
        ),
        (
            vec![],
            vec![
                report(
                    day(0) + chrono::Days::new(3),
                    PHONE,
                    4_000,
                    at(day(1), 12, 0),
                ),
                report(day(1), PHONE, 0, at(day(1), 12, 0)),
                report(day(3), PHONE, 4_000, at(day(3), 12, 0)),
            ],
        ),
        (
            vec![report(day(4), PHONE, 60_000, at(day(4), 23, 0))],
            vec![
                report(day(4), PHONE, 61_000, at(day(4), 23, 30)),
                report(day(5), PHONE, 3_000, at(day(5), 12, 0)),
            ],
        ),
        (
            vec![report(day(1), PHONE, 4_000, at(day(1), 12, 0))],
            vec![report(day(1), PHONE, 4_000, at(day(1), 12, 0))],
        ),
    ];
    let mut grouped = Vec::new();
    let mut alone = Vec::new();
    for i in 0..batches.len() {
        grouped.push(api.account(&format!("grouped{i}@example.com")).await);
        alone.push(api.account(&format!("alone{i}@example.com")).await);
    }
    for (i, (before, _)) in batches.iter().enumerate() {
        if !before.is_empty() {
            api.record(&grouped[i], before).await;
            api.record(&alone[i], before).await;
        }
    }
    let groups_before = recorded_in(&server, "group").await;

    let mut alone_answers = Vec::new();
    for (walker, (_, batch)) in alone.iter().zip(&batches) {
        alone_answers.push(api.record_raw(walker, batch).await);
    }
    let sends: Vec<(Walker, Vec<StepReport>)> = grouped
        .iter()
        .zip(&batches)
        .map(|(walker, (_, batch))| (walker.clone(), batch.clone()))
        .collect();
    let grouped_answers = send_while_held(&server, &api, &holder, &sends).await;

    assert_eq!(
        recorded_in(&server, "group").await - groups_before,
        batches.len() as u64,
        "every batch in the group"
    );
    assert_eq!(recorded_in(&server, "own_after_group_failed").await, 0);
    for i in 0..batches.len() {
        let (status, body) = &grouped_answers[i + 1];
        assert_eq!(*status, StatusCode::OK, "batch {i}: {body}");
        assert_eq!(
            (status, body),
            (&alone_answers[i].0, &alone_answers[i].1),
            "batch {i}: grouped, then alone"
        );
        assert_eq!(
            stored_state(&server, grouped[i].id, Ledger::InOrder).await,
            stored_state(&server, alone[i].id, Ledger::InOrder).await,
            "batch {i}: what it stored, grouped, then alone"
        );
    }
    // The batches did pay, flag and unlock: the comparison is not of empty answers.
    let paid: Vec<i64> = grouped_answers[1..]
        .iter()
        .map(|(_, body)| body["coins_awarded"].as_i64().unwrap())
        .collect();
    assert!(
        paid.iter().filter(|&&coins| coins > 0).count() >= 4,
        "{paid:?}"
    );
    let week = grouped_answers[2].1["achievements_unlocked"]
        .as_array()
        .unwrap();
    assert!(week.len() >= 3, "{}", grouped_answers[2].1);
    // A week of 10,000-step days is a 7-day streak, whatever order the days are stored in.
    assert!(
        week.iter().any(|code| code == "streak_7"),
        "{}",
        grouped_answers[2].1
    );
    assert_eq!(validations(&server, grouped[2].id).await.len(), 1);
    assert_ledger_consistent(&server).await;
}

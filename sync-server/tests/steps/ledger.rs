//! Everything together: a mixed workload, then the ledger and the operator's CLI verify.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_verifies_after_a_mixed_workload() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let walkers = [
        api.account("one@example.com").await,
        api.account("two@example.com").await,
        api.account("three@example.com").await,
    ];
    let week: Vec<StepReport> = (1..=7)
        .rev()
        .flat_map(|n| {
            let date = days_ago(n);
            [
                report(date, PHONE, 6000, at(date, 7, 0)),
                report(date, PHONE, 11000, at(date, 19, 0)),
                report(date, WATCH, 12000, at(date, 20, 0)),
            ]
        })
        .collect();
    let mut tasks = JoinSet::new();
    for walker in &walkers {
        let (api, walker, week) = (api.clone(), walker.clone(), week.clone());
        tasks.spawn(async move {
            let answers = api.record_in_parallel(&walker, &week, 3).await;
            answers.iter().map(|a| a.coins_awarded).sum::<i64>()
        });
    }
    let paid = tasks.join_all().await;
    // 7 days of 120 coins; 1k, 5k, 10k, 50k, streak and early bird (100k not reached).
    let expected = 7 * 120 + 10 + 20 + 50 + 100 + 150 + 25;
    assert_eq!(paid, vec![expected; 3]);

    flag_a_run(&api, &walkers[0], days_ago(1), "band").await;
    let id = pending_of(&api, &admin, walkers[0].id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = api.review(&admin, &id, "approve").await;
    assert_eq!(status, StatusCode::OK);

    for walker in &walkers {
        let wallet = api.wallet(walker).await;
        let ledger = api.transactions(walker).await;
        assert_eq!(
            wallet.available_coins,
            ledger.iter().map(|t| t.available_delta).sum::<i64>()
        );
    }
    assert_ledger_consistent(&server).await;
    assert_cli_verifies_ledger(&server);
}

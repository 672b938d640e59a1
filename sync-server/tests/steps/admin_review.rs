//! Admin review of flagged records: approval pays once within the cap, rejection never pays,
//! concurrent reviews decide once, and only admins may review.

use super::*;

#[tokio::test]
async fn approval_pays_the_withheld_coins_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let yan = api.account("yan@example.com").await;
    let (d1, d2) = (days_ago(1), days_ago(2));

    // Unlock the daily achievements first so the approval pays steps only.
    api.record(&yan, &[report(d2, PHONE, 12000, at(d2, 20, 0))])
        .await;
    flag_a_run(&api, &yan, d1, PHONE).await;
    let before = api.wallet(&yan).await.available_coins;
    assert_eq!(before, 120 + 80 + 30);

    let pending = pending_of(&api, &admin, yan.id).await;
    assert_eq!(pending["date"], json!(d1.to_string()));
    assert_eq!(pending["source"], json!(PHONE));
    assert_eq!(
        (&pending["previous_steps"], &pending["claimed_steps"]),
        (&json!(3000), &json!(13000))
    );
    assert_eq!(pending["status"], json!("pending_review"));
    assert!(pending["anomaly_score"].as_f64().is_some());
    assert!(
        pending["reasons"]
            .to_string()
            .contains("sustained_running_cadence")
    );
    let id = pending["id"].as_str().unwrap().to_owned();

    let logs = admin_log_rows(&server).await;
    let (status, body) = api.review(&admin, &id, "approve").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(reviewed(&body)["status"], json!("approved"));
    assert_eq!(body["coins_awarded"], json!(100));
    assert_eq!(api.wallet(&yan).await.available_coins, before + 100);
    assert_eq!(admin_log_rows(&server).await, logs + 1);
    assert!(
        api.pending_validations(&admin)
            .await
            .iter()
            .all(|v| v["user_id"] != json!(yan.id)),
        "no longer pending"
    );

    // A second decision is refused and changes nothing.
    for decision in ["approve", "reject"] {
        let (status, body) = api.review(&admin, &id, decision).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::CONFLICT, "already_reviewed")
        );
    }
    assert_eq!(api.wallet(&yan).await.available_coins, before + 100);
    assert_eq!(admin_log_rows(&server).await, logs + 1);

    // The record is verified now, and grows normally again.
    let history = api.history(&yan, d1, d1).await;
    let day = &history.days[0];
    assert_eq!(day.sources[0].status, "accepted");
    assert_eq!(
        (day.total_steps, day.sources[0].verified_steps),
        (13000, 13000)
    );
    let later = api
        .record(&yan, &[report(d1, PHONE, 15000, at(d1, 20, 0))])
        .await;
    assert_eq!(outcomes(&later), vec![(Accepted, None)]);
    assert_eq!(later.results[0].coins_awarded, 20);
    assert_eq!(day_reward(&api.transactions(&yan).await, d1), 150);
    assert_ledger_consistent(&server).await;
    assert_cli_verifies_ledger(&server);
}

#[tokio::test]
async fn approval_pays_within_the_daily_cap() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let zoe = api.account("zoe@example.com").await;
    let day = days_ago(1);

    let answer = api
        .record(
            &zoe,
            &[
                report(day, PHONE, 15000, at(day, 9, 0)),
                report(day, PHONE, 60000, at(day, 23, 59)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        vec![(Accepted, None), (Flagged, Some("above_soft_daily_max"))]
    );
    let before = api.wallet(&zoe).await.available_coins;
    let id = pending_of(&api, &admin, zoe.id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = api.review(&admin, &id, "approve").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = api.wallet(&zoe).await.available_coins;
    assert_eq!(body["coins_awarded"], json!(after - before));
    assert_eq!(
        day_reward(&api.transactions(&zoe).await, day),
        200,
        "150 paid before, 50 on approval: the cap"
    );
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn rejection_never_pays_and_the_record_stays_rejected() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let abe = api.account("abe@example.com").await;
    let day = days_ago(1);

    flag_a_run(&api, &abe, day, PHONE).await;
    let before = api.wallet(&abe).await.available_coins;
    let id = pending_of(&api, &admin, abe.id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let logs = admin_log_rows(&server).await;
    let (status, body) = api.review(&admin, &id, "reject").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(reviewed(&body)["status"], json!("rejected"));
    assert_eq!(admin_log_rows(&server).await, logs + 1);
    let rows = validations(&server, abe.id).await;
    assert_eq!(rows[0].0, "rejected");

    for decision in ["reject", "approve"] {
        let (status, body) = api.review(&admin, &id, decision).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::CONFLICT, "already_reviewed")
        );
    }

    let later = api
        .record(
            &abe,
            &[
                report(day, PHONE, 20000, at(day, 20, 0)),
                report(day, PHONE, 20000, at(day, 20, 0)),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&later),
        vec![(Rejected, Some("record_rejected")); 2]
    );
    assert_eq!(later.coins_awarded, 0);
    assert_eq!(api.wallet(&abe).await.available_coins, before);
    assert_eq!(day_reward(&api.transactions(&abe).await, day), 30);
    assert_eq!(admin_log_rows(&server).await, logs + 1);
    assert_ledger_consistent(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reviews_of_one_validation_decide_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let ida = api.account("ida@example.com").await;
    let (d1, d2) = (days_ago(1), days_ago(2));
    api.record(&ida, &[report(d2, PHONE, 12000, at(d2, 20, 0))])
        .await;
    flag_a_run(&api, &ida, d1, PHONE).await;
    let before = api.wallet(&ida).await.available_coins;
    let id = pending_of(&api, &admin, ida.id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs = admin_log_rows(&server).await;

    let mut tasks = JoinSet::new();
    for decision in ["approve", "reject", "approve", "reject", "approve"] {
        let (api, admin, id) = (api.clone(), admin.clone(), id.clone());
        tasks.spawn(async move {
            let (status, body) = api.review(&admin, &id, decision).await;
            (decision, status, body)
        });
    }
    let answers = tasks.join_all().await;
    let decided: Vec<&str> = answers
        .iter()
        .filter(|(_, status, _)| *status == StatusCode::OK)
        .map(|(decision, _, _)| *decision)
        .collect();
    assert_eq!(decided.len(), 1, "one decision wins: {answers:?}");
    for (_, status, body) in answers.iter().filter(|a| a.1 != StatusCode::OK) {
        assert_eq!(
            (*status, error_code(body)),
            (StatusCode::CONFLICT, "already_reviewed")
        );
    }
    let paid = if decided[0] == "approve" { 100 } else { 0 };
    assert_eq!(api.wallet(&ida).await.available_coins, before + paid);
    assert_eq!(day_reward(&api.transactions(&ida).await, d1), 30 + paid);
    assert_eq!(admin_log_rows(&server).await, logs + 1);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn review_routes_are_for_admins_only() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let bea = api.account("bea@example.com").await;
    flag_a_run(&api, &bea, days_ago(1), PHONE).await;
    let id = pending_of(&api, &admin, bea.id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let query = [("status", "pending_review".to_owned())];
    let (status, _) = api
        .get_query("/api/v1/admin/validations", &query, &bea)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for decision in ["approve", "reject"] {
        let (status, _) = api.review(&bea, &id, decision).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{decision} by a user");
    }
    let (status, _) = api
        .post(
            &format!("/api/v1/admin/validations/{id}/approve"),
            json!({}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        pending_of(&api, &admin, bea.id).await["status"],
        json!("pending_review")
    );
    assert_eq!(api.wallet(&bea).await.available_coins, 30 + 10);
}

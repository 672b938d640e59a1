//! Steps to coins, black-box over HTTP: the max-register of day totals, exactly-once rewards
//! under replays and concurrency, every anti-cheat rule (and the honest days that must pass),
//! the daily cap, each seeded achievement, admin review of flagged records, the reads, and
//! the ledger check after all of it.
//!
//! Dates are yesterday or older with explicit `recorded_at` times inside the day, so the
//! cadence windows do not depend on the hour the tests run at.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, Utc};
use fitkart_protocol::steps::{
    AchievementList, CoinTransaction, RecordOutcome, RecordStepsRequest, RecordStepsResponse,
    StepHistory, StepReport, TodaySteps, TransactionPage, Wallet,
};
use fitkart_sync_server::testing::TestServer;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use RecordOutcome::{Accepted, Flagged, Rejected, Unchanged};

mod common;
use common::Account as Walker;
use common::Client as Api;
use common::code as error_code;
use common::{
    PASSWORD, account, answer, at, count, create_admin, day_coins, days_ago, report,
    verify_ledger_cli,
};

const PHONE: &str = "healthkit";
const WATCH: &str = "watch:garmin";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.request_as(method, path, token).query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    async fn get(&self, path: &str, query: &[(&str, String)], token: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, query, None, Some(token))
            .await
    }

    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, &[], Some(body), token)
            .await
    }

    async fn register(&self, email: &str) -> Walker {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": PASSWORD, "display_name": "Walker"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        account(body)
    }

    async fn login(&self, email: &str) -> Walker {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        account(body)
    }

    /// Sends reports and expects them to be processed (200).
    async fn record(&self, walker: &Walker, reports: &[StepReport]) -> RecordStepsResponse {
        let (status, body) = self.record_raw(walker, reports).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn record_raw(&self, walker: &Walker, reports: &[StepReport]) -> (StatusCode, Value) {
        let request = RecordStepsRequest {
            records: reports.to_vec(),
        };
        self.post(
            "/api/v1/steps/record",
            serde_json::to_value(request).unwrap(),
            Some(&walker.token),
        )
        .await
    }

    /// Sends the same batch `copies` times at once.
    async fn record_in_parallel(
        &self,
        walker: &Walker,
        reports: &[StepReport],
        copies: usize,
    ) -> Vec<RecordStepsResponse> {
        let mut tasks = JoinSet::new();
        for _ in 0..copies {
            let (api, walker, reports) = (self.clone(), walker.clone(), reports.to_vec());
            tasks.spawn(async move { api.record(&walker, &reports).await });
        }
        tasks.join_all().await
    }

    async fn wallet(&self, walker: &Walker) -> Wallet {
        let (status, body) = self.get("/api/v1/wallet", &[], &walker.token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Every ledger entry of the walker, newest first, read page by page.
    async fn transactions(&self, walker: &Walker) -> Vec<CoinTransaction> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "3".to_owned())];
            if let Some(cursor) = cursor.take() {
                query.push(("cursor", cursor));
            }
            let (status, body) = self
                .get("/api/v1/wallet/transactions", &query, &walker.token)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page: TransactionPage = serde_json::from_value(body).unwrap();
            assert!(page.transactions.len() <= 3);
            all.extend(page.transactions);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
    }

    async fn history(&self, walker: &Walker, from: NaiveDate, to: NaiveDate) -> StepHistory {
        let (status, body) = self.history_raw(walker, from, to).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn history_raw(
        &self,
        walker: &Walker,
        from: NaiveDate,
        to: NaiveDate,
    ) -> (StatusCode, Value) {
        let query = [("from", from.to_string()), ("to", to.to_string())];
        self.get("/api/v1/steps", &query, &walker.token).await
    }

    async fn achievements(&self, walker: &Walker) -> AchievementList {
        let (status, body) = self.get("/api/v1/achievements", &[], &walker.token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn patch_me(&self, walker: &Walker, patch: Value) {
        let (status, body) = self
            .send(
                reqwest::Method::PATCH,
                "/api/v1/me",
                &[],
                Some(patch),
                Some(&walker.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn pending_validations(&self, admin: &Walker) -> Vec<Value> {
        let query = [("status", "pending_review".to_owned())];
        let (status, body) = self
            .get("/api/v1/admin/validations", &query, &admin.token)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["validations"].as_array().cloned().unwrap_or_default()
    }

    async fn review(&self, admin: &Walker, id: &str, decision: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/admin/validations/{id}/{decision}"),
            json!({"note": format!("{decision} by the test")}),
            Some(&admin.token),
        )
        .await
    }
}

/// Each result's status and code, in request order.
fn outcomes(response: &RecordStepsResponse) -> Vec<(RecordOutcome, Option<&str>)> {
    response
        .results
        .iter()
        .map(|r| (r.status, r.code.as_deref()))
        .collect()
}

fn record_coins(response: &RecordStepsResponse) -> Vec<i64> {
    response.results.iter().map(|r| r.coins_awarded).collect()
}

fn unlocked(response: &RecordStepsResponse) -> Vec<&str> {
    let mut codes: Vec<&str> = response
        .achievements_unlocked
        .iter()
        .map(String::as_str)
        .collect();
    codes.sort_unstable();
    codes
}

/// Coins of `kind` booked for the walker, summed per reference id.
fn booked(transactions: &[CoinTransaction], kind: &str) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for entry in transactions.iter().filter(|t| t.kind == kind) {
        let reference = entry.reference_id.clone().unwrap_or_default();
        *sums.entry(reference).or_default() += entry.available_delta;
    }
    sums
}

/// Step-reward coins booked for one day.
fn day_reward(transactions: &[CoinTransaction], date: NaiveDate) -> i64 {
    booked(transactions, "step_reward")
        .get(&date.to_string())
        .copied()
        .unwrap_or(0)
}

async fn set_setting(server: &TestServer, key: &str, value: Value) {
    let updated = server
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE settings SET value = $2 WHERE key = $1",
            &[&key, &value],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1, "setting {key} exists");
}

async fn ledger_rows(server: &TestServer, user: Uuid) -> i64 {
    count(
        server,
        "SELECT count(*) FROM coin_transactions WHERE user_id = $1",
        user,
    )
    .await
}

async fn stored_records(server: &TestServer, user: Uuid) -> i64 {
    count(
        server,
        "SELECT count(*) FROM step_records WHERE user_id = $1",
        user,
    )
    .await
}

async fn admin_log_rows(server: &TestServer) -> i64 {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM admin_logs", &[])
        .await
        .unwrap()
        .get(0)
}

/// The walker's validation rows: (status, previous_steps, claimed_steps, anomaly_score, reasons).
async fn validations(server: &TestServer, user: Uuid) -> Vec<(String, i32, i32, f64, Value)> {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query(
            "SELECT status, previous_steps, claimed_steps, anomaly_score, reasons
             FROM step_validations WHERE user_id = $1 ORDER BY created_at, claimed_steps",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect()
}

/// The ledger proves every wallet, and the operator's CLI agrees.
async fn assert_ledger_consistent(server: &TestServer) {
    let client = server.db().client().await.unwrap();
    let report = fitkart_sync_server::rewards::ledger::verify(&client)
        .await
        .unwrap();
    assert!(report.is_ok(), "ledger problems: {:?}", report.problems);
    assert!(report.wallets_checked >= 1);
}

fn assert_cli_verifies_ledger(server: &TestServer) {
    let out = verify_ledger_cli(server.db());
    assert!(
        out.status.success(),
        "verify-ledger failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn make_admin(server: &TestServer, api: &Api) -> Walker {
    create_admin(server, "reviewer@example.com", "Reviewer").await;
    api.login("reviewer@example.com").await
}

/// The pending validation of `user` (there must be exactly one).
async fn pending_of(api: &Api, admin: &Walker, user: Uuid) -> Value {
    let mine: Vec<Value> = api
        .pending_validations(admin)
        .await
        .into_iter()
        .filter(|v| v["user_id"] == json!(user))
        .collect();
    assert_eq!(mine.len(), 1, "one pending validation: {mine:?}");
    mine.into_iter().next().unwrap()
}

/// The validation in a review answer, whether it is the body or nested under `validation`.
fn reviewed(body: &Value) -> &Value {
    body.get("validation").unwrap_or(body)
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

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
    let ann = api.register("ann@example.com").await;
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
    let ben = api.register("ben@example.com").await;
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
    api.register("cat@example.com").await;
    let phone = api.login("cat@example.com").await;
    let tablet = api.login("cat@example.com").await;
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
    api.register("dan@example.com").await;
    let phone = api.login("dan@example.com").await;
    let watch = api.login("dan@example.com").await;
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
    let eve = api.register("eve@example.com").await;
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

// ---------------------------------------------------------------------------------------------
// Honest days pass
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_normal_walking_day_is_accepted_and_paid() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let fay = api.register("fay@example.com").await;
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
    let gus = api.register("gus@example.com").await;
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
    let hal = api.register("hal@example.com").await;
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

// ---------------------------------------------------------------------------------------------
// Anti-cheat: rejections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn future_dates_are_rejected() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ivy = api.register("ivy@example.com").await;
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
    let jon = api.register("jon@example.com").await;
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
    let kim = api.register("kim@example.com").await;
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
    let lea = api.register("lea@example.com").await;
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
    let max = api.register("max@example.com").await;
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
    let ned = api.register("ned@example.com").await;
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

// ---------------------------------------------------------------------------------------------
// Anti-cheat: flags
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn totals_above_the_soft_maximum_are_flagged_and_their_coins_withheld() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let ola = api.register("ola@example.com").await;
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
    let pam = api.register("pam@example.com").await;
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

    let quinn = api.register("quinn@example.com").await;
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
    let rae = api.register("rae@example.com").await;
    build_history(&api, &rae, 6).await;
    let new = api
        .record(&rae, &[report(d1, PHONE, 14000, at(d1, 20, 0))])
        .await;
    assert_eq!(outcomes(&new), vec![(Accepted, None)]);
    assert_eq!(new.results[0].coins_awarded, 140);
    assert_ledger_consistent(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Rewards
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_daily_cap_limits_step_coins() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let sam = api.register("sam@example.com").await;
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
    let tom = api.register("tom@example.com").await;
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

// ---------------------------------------------------------------------------------------------
// Achievements
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn daily_step_achievements_unlock_at_their_thresholds_and_pay_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let uma = api.register("uma@example.com").await;
    let day = days_ago(1);

    let steps_and_unlocks: [(i64, &[&str], i64); 6] = [
        (999, &[], 9),
        (1000, &["steps_1k"], 1 + 10),
        (4999, &[], 39),
        (5000, &["steps_5k"], 1 + 20),
        (9999, &[], 49),
        (10000, &["steps_10k"], 1 + 50),
    ];
    for (i, (steps, unlocks, coins)) in steps_and_unlocks.into_iter().enumerate() {
        let hour = 9 + i as u32;
        let answer = api
            .record(&uma, &[report(day, PHONE, steps, at(day, hour, 0))])
            .await;
        assert_eq!(unlocked(&answer), unlocks, "at {steps} steps");
        assert_eq!(answer.coins_awarded, coins, "at {steps} steps");
    }
    // Replays and a second source over the same thresholds unlock nothing again.
    let replay = api
        .record(
            &uma,
            &[
                report(day, PHONE, 10000, at(day, 15, 0)),
                report(day, WATCH, 10500, at(day, 18, 0)),
            ],
        )
        .await;
    assert!(replay.achievements_unlocked.is_empty());
    assert_eq!(replay.coins_awarded, 5);
    assert_eq!(api.wallet(&uma).await.available_coins, 105 + 80);

    let list = api.achievements(&uma).await.achievements;
    let find = |code: &str| list.iter().find(|a| a.code == code).unwrap().clone();
    for code in ["steps_1k", "steps_5k", "steps_10k"] {
        assert!(find(code).unlocked_at.is_some(), "{code}");
    }
    let fifty = find("steps_50k");
    assert_eq!(
        (fifty.progress, fifty.target, fifty.unlocked_at),
        (10500, 50000, None)
    );
    assert_eq!(fifty.bonus_coins, 100);
    assert!(find("streak_7").unlocked_at.is_none());
    assert!(find("early_bird").unlocked_at.is_none());
    assert_eq!(list.len(), 7, "every seeded achievement is listed");
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn total_step_achievements_and_the_week_streak_unlock_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let vic = api.register("vic@example.com").await;

    // Five days of 10,000 (the last one first at 9,999): 50,000 in total.
    for n in (2..=5).rev() {
        let date = days_ago(n);
        api.record(&vic, &[report(date, PHONE, 10000, at(date, 20, 0))])
            .await;
    }
    let d1 = days_ago(1);
    let short = api
        .record(&vic, &[report(d1, PHONE, 9999, at(d1, 20, 0))])
        .await;
    assert!(short.achievements_unlocked.is_empty(), "49,999 in total");
    let fifty = api
        .record(&vic, &[report(d1, PHONE, 10000, at(d1, 21, 0))])
        .await;
    assert_eq!(unlocked(&fifty), vec!["steps_50k"]);
    assert_eq!(fifty.coins_awarded, 1 + 100);

    // Two more days of 25,000 make 100,000 steps and seven days at the goal in a row.
    let (d7, d6) = (days_ago(7), days_ago(6));
    let first = api
        .record(&vic, &[report(d7, PHONE, 25000, at(d7, 20, 0))])
        .await;
    assert!(first.achievements_unlocked.is_empty());
    let both = api
        .record(&vic, &[report(d6, PHONE, 25000, at(d6, 20, 0))])
        .await;
    assert_eq!(unlocked(&both), vec!["steps_100k", "streak_7"]);
    assert_eq!(both.coins_awarded, 200 + 200 + 150);

    let replay = api
        .record(
            &vic,
            &[
                report(d6, PHONE, 25000, at(d6, 20, 0)),
                report(d6, WATCH, 26000, at(d6, 21, 0)),
            ],
        )
        .await;
    assert!(replay.achievements_unlocked.is_empty());
    assert_eq!(replay.coins_awarded, 0, "the day is already capped");

    let list = api.achievements(&vic).await.achievements;
    let hundred = list.iter().find(|a| a.code == "steps_100k").unwrap();
    assert!(hundred.unlocked_at.is_some());
    assert!(hundred.progress >= hundred.target);
    let bonuses = booked(&api.transactions(&vic).await, "achievement_bonus");
    assert_eq!(
        bonuses.values().sum::<i64>(),
        10 + 20 + 50 + 100 + 200 + 150
    );
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn the_streak_follows_the_users_goal_and_breaks_on_a_short_day() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let week = |steps_on: &dyn Fn(u64) -> i64| -> Vec<StepReport> {
        (1..=7)
            .rev()
            .map(|n| {
                let date = days_ago(n);
                report(date, PHONE, steps_on(n), at(date, 20, 0))
            })
            .collect()
    };

    // A goal of 6,000 a day, met seven days in a row.
    let wes = api.register("wes@example.com").await;
    api.patch_me(&wes, json!({"daily_step_goal": 6000})).await;
    let answer = api.record(&wes, &week(&|_| 6000)).await;
    assert_eq!(unlocked(&answer), vec!["steps_1k", "steps_5k", "streak_7"]);

    // The default goal of 10,000, missed by one step in the middle of the week.
    let xan = api.register("xan@example.com").await;
    let answer = api
        .record(&xan, &week(&|n| if n == 4 { 9999 } else { 10000 }))
        .await;
    assert!(!unlocked(&answer).contains(&"streak_7"));
    let streak = api
        .achievements(&xan)
        .await
        .achievements
        .into_iter()
        .find(|a| a.code == "streak_7")
        .unwrap();
    assert_eq!((streak.target, streak.unlocked_at), (7, None));
    assert!(streak.progress < 7);

    // Making up the short day completes the streak, once.
    let d4 = days_ago(4);
    let fixed = api
        .record(&xan, &[report(d4, PHONE, 10000, at(d4, 21, 0))])
        .await;
    assert_eq!(unlocked(&fixed), vec!["streak_7"]);
    assert_eq!(fixed.coins_awarded, 1 + 150);
    assert_ledger_consistent(&server).await;
}

#[tokio::test]
async fn early_bird_needs_2000_steps_before_eight_local_time() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let (d1, d2, d3) = (days_ago(1), days_ago(2), days_ago(3));

    let late = api.register("late@example.com").await;
    let answer = api
        .record(
            &late,
            &[
                report(d1, PHONE, 2500, at(d1, 8, 30)),
                // Before eight, but on another day than the steps' date.
                report(d2, PHONE, 2500, at(d3, 7, 0)),
            ],
        )
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None); 2]);
    assert!(!unlocked(&answer).contains(&"early_bird"));

    let lark = api.register("lark@example.com").await;
    let short = api
        .record(&lark, &[report(d1, PHONE, 1999, at(d1, 7, 30))])
        .await;
    assert!(!unlocked(&short).contains(&"early_bird"));
    let enough = api
        .record(&lark, &[report(d1, PHONE, 2000, at(d1, 7, 45))])
        .await;
    assert_eq!(unlocked(&enough), vec!["early_bird"]);
    assert_eq!(enough.coins_awarded, 1 + 25);
    let again = api
        .record(&lark, &[report(d2, PHONE, 3000, at(d2, 6, 0))])
        .await;
    assert!(again.achievements_unlocked.is_empty(), "unlocks once");

    // In India (UTC+05:30) 01:00 UTC is 06:30 and 03:00 UTC is 08:30.
    let mumbai = api.register("mumbai@example.com").await;
    api.patch_me(&mumbai, json!({"timezone": "Asia/Kolkata"}))
        .await;
    let answer = api
        .record(&mumbai, &[report(d2, PHONE, 2500, at(d2, 1, 0))])
        .await;
    assert!(unlocked(&answer).contains(&"early_bird"));
    let delhi = api.register("delhi@example.com").await;
    api.patch_me(&delhi, json!({"timezone": "Asia/Kolkata"}))
        .await;
    let answer = api
        .record(&delhi, &[report(d2, PHONE, 2500, at(d2, 3, 0))])
        .await;
    assert_eq!(outcomes(&answer), vec![(Accepted, None)]);
    assert!(!unlocked(&answer).contains(&"early_bird"));
    assert_ledger_consistent(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Admin review
// ---------------------------------------------------------------------------------------------

/// A day of 3,000 verified steps, then 10,000 more in forty minutes (flagged).
async fn flag_a_run(api: &Api, walker: &Walker, day: NaiveDate, source: &str) {
    let answer = api
        .record(
            walker,
            &[
                report(day, source, 3000, at(day, 9, 0)),
                report(day, source, 13000, at(day, 9, 40)),
            ],
        )
        .await;
    assert_eq!(answer.results[1].status, Flagged);
}

#[tokio::test]
async fn approval_pays_the_withheld_coins_once() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let yan = api.register("yan@example.com").await;
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
    let zoe = api.register("zoe@example.com").await;
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
    let abe = api.register("abe@example.com").await;
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
    let ida = api.register("ida@example.com").await;
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
    let bea = api.register("bea@example.com").await;
    flag_a_run(&api, &bea, days_ago(1), PHONE).await;
    let id = pending_of(&api, &admin, bea.id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let query = [("status", "pending_review".to_owned())];
    let (status, _) = api
        .get("/api/v1/admin/validations", &query, &bea.token)
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

// ---------------------------------------------------------------------------------------------
// Requests and reads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_carries_one_to_a_thousand_records() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let cal = api.register("cal@example.com").await;
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
    let dee = api.register("dee@example.com").await;
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
        .get("/api/v1/wallet/transactions", &query, &dee.token)
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
    let eli = api.register("eli@example.com").await;
    let (today, d1, d3) = (days_ago(0), days_ago(1), days_ago(3));

    // 100 steps today cannot be too fast at any hour (at most 100 a minute).
    api.record(&eli, &[report(today, PHONE, 100, Utc::now())])
        .await;
    let (status, body) = api.get("/api/v1/steps/today", &[], &eli.token).await;
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

// ---------------------------------------------------------------------------------------------
// Everything together, then the ledger
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_verifies_after_a_mixed_workload() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let admin = make_admin(&server, &api).await;
    let walkers = [
        api.register("one@example.com").await,
        api.register("two@example.com").await,
        api.register("three@example.com").await,
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

// ---------------------------------------------------------------------------------------------
// Property: any interleaving and duplication of a day's reports pays exactly once
// ---------------------------------------------------------------------------------------------

/// Reports of one day from up to three sources, sent in shuffled batches, some duplicated.
#[derive(Debug, Clone)]
struct DayPlan {
    /// (source index, steps), in sending order, duplicates included.
    sends: Vec<(usize, i64)>,
    /// Start a new batch before this send.
    cuts: Vec<bool>,
    /// Send all batches at once instead of one after the other.
    parallel: bool,
}

fn day_plans() -> impl Strategy<Value = DayPlan> {
    (1..=3usize)
        .prop_flat_map(|sources| prop::collection::vec((0..sources, 1..=40_000i64), 1..=8))
        .prop_flat_map(|reports| {
            let n = reports.len();
            (Just(reports), prop::collection::vec(0..n, 0..=n))
        })
        .prop_flat_map(|(reports, duplicates)| {
            let mut sends = reports.clone();
            sends.extend(duplicates.iter().map(|&i| reports[i]));
            let len = sends.len();
            (
                Just(sends).prop_shuffle(),
                prop::collection::vec(any::<bool>(), len),
                any::<bool>(),
            )
        })
        .prop_map(|(sends, cuts, parallel)| DayPlan {
            sends,
            cuts,
            parallel,
        })
}

impl DayPlan {
    fn batches(&self, date: NaiveDate) -> Vec<Vec<StepReport>> {
        // Read after the day ended: every cadence window is the whole day (at most 28/min).
        let read_at = at(date + Days::new(1), 12, 0);
        let sources = [PHONE, WATCH, "health_connect"];
        let mut batches: Vec<Vec<StepReport>> = Vec::new();
        for (i, &(source, steps)) in self.sends.iter().enumerate() {
            if i == 0 || self.cuts[i] {
                batches.push(Vec::new());
            }
            let batch = batches.last_mut().unwrap();
            batch.push(report(date, sources[source], steps, read_at));
        }
        batches
    }

    fn largest(&self) -> i64 {
        self.sends
            .iter()
            .map(|&(_, steps)| steps)
            .max()
            .unwrap_or(0)
    }
}

/// The bonuses a single day of `total` steps unlocks for a new user (1k, 5k and 10k).
fn first_day_bonuses(total: i64) -> i64 {
    [(1000, 10), (5000, 20), (10000, 50)]
        .iter()
        .filter(|&&(threshold, _)| total >= threshold)
        .map(|&(_, bonus)| bonus)
        .sum()
}

#[test]
fn any_interleaving_and_duplication_of_a_days_reports_pays_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start()).unwrap();
    let api = Api::new(&server);
    let date = days_ago(2);

    let mut runner = TestRunner::new(ProptestConfig::with_cases(12));
    let outcome = runner.run(&day_plans(), |plan| {
        let email = format!("walker.{}@example.com", Uuid::new_v4().simple());
        let (paid, step_reward, wallet) = runtime.block_on(async {
            let walker = api.register(&email).await;
            let mut paid = 0;
            if plan.parallel {
                let mut tasks = JoinSet::new();
                for batch in plan.batches(date) {
                    let (api, walker) = (api.clone(), walker.clone());
                    tasks.spawn(async move { api.record(&walker, &batch).await.coins_awarded });
                }
                paid = tasks.join_all().await.iter().sum();
            } else {
                for batch in plan.batches(date) {
                    paid += api.record(&walker, &batch).await.coins_awarded;
                }
            }
            let ledger = api.transactions(&walker).await;
            let wallet = api.wallet(&walker).await.available_coins;
            (paid, day_reward(&ledger, date), wallet)
        });
        let expected = day_coins(plan.largest());
        prop_assert_eq!(step_reward, expected, "step coins booked for the day");
        prop_assert_eq!(wallet, expected + first_day_bonuses(plan.largest()));
        prop_assert_eq!(paid, wallet, "the answers add up to the wallet");
        Ok::<(), TestCaseError>(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    runtime.block_on(assert_ledger_consistent(&server));
    drop(server);
}

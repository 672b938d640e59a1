//! Steps to coins, black-box over HTTP: the max-register of day totals, exactly-once rewards
//! under replays and concurrency, every anti-cheat rule (and the honest days that must pass),
//! the daily cap, each seeded achievement, admin review of flagged records, the reads, and
//! the ledger check after all of it.
//!
//! Dates are yesterday or older with explicit `recorded_at` times inside the day, so the
//! cadence windows do not depend on the hour the tests run at.
//!
//! One test binary: each behaviour is a module of this directory; this file holds the helpers
//! they share beside `common`.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, Utc};
use fitkart_protocol::steps::{
    AchievementList, CoinTransaction, RecordOutcome, RecordStepsResponse, StepHistory, StepReport,
    TodaySteps, TransactionPage, Wallet,
};
use fitkart_sync_server::testing::TestServer;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use RecordOutcome::{Accepted, Flagged, Rejected, Unchanged};

mod achievements;
mod admin_review;
mod anticheat_flags;
mod anticheat_rejections;
#[path = "../common/mod.rs"]
mod common;
mod exactly_once;
mod groups;
mod honest_days;
mod interleaving_property;
mod large_batches;
mod ledger;
mod reads;
mod rewards;

use common::Account as Walker;
use common::Api;
use common::code as error_code;
use common::{
    admin_log_rows, at, count, create_admin, day_coins, days_ago, outcomes, report,
    verify_ledger_cli,
};

const PHONE: &str = "healthkit";
const WATCH: &str = "watch:garmin";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

impl Api {
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
                .get_query("/api/v1/wallet/transactions", &query, walker)
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
        self.get_query("/api/v1/steps", &query, walker).await
    }

    async fn achievements(&self, walker: &Walker) -> AchievementList {
        let (status, body) = self.get("/api/v1/achievements", walker).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn patch_me(&self, walker: &Walker, patch: Value) {
        let (status, body) = self.patch("/api/v1/me", patch, walker).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn pending_validations(&self, admin: &Walker) -> Vec<Value> {
        let query = [("status", "pending_review".to_owned())];
        let (status, body) = self
            .get_query("/api/v1/admin/validations", &query, admin)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["validations"].as_array().cloned().unwrap_or_default()
    }

    async fn review(&self, admin: &Walker, id: &str, decision: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/admin/validations/{id}/{decision}"),
            json!({"note": format!("{decision} by the test")}),
            admin,
        )
        .await
    }
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

/// The walker's validation rows: (status, previous_steps, claimed_steps, anomaly_score, reasons).
async fn validations(server: &TestServer, user: Uuid) -> Vec<(String, i32, i32, f64, Value)> {
    common::rows(
        server,
        "SELECT status, previous_steps, claimed_steps, anomaly_score, reasons
             FROM step_validations WHERE user_id = $1 ORDER BY created_at, claimed_steps",
        &[&user],
    )
    .await
    .iter()
    .map(|row| {
        (
            row.get("status"),
            row.get("previous_steps"),
            row.get("claimed_steps"),
            row.get("anomaly_score"),
            row.get("reasons"),
        )
    })
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
    api.signed_in("reviewer@example.com").await
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

/// How [`stored_state`] lists a user's ledger entries.
enum Ledger {
    /// Each entry, in the order booked.
    InOrder,
    /// The coins booked per kind and reference: a day paid in several batches books several
    /// entries that add up to what one batch books.
    PerReference,
}

/// What a user's batches left stored, without ids and keys (which differ between users):
/// records, day accounts, ledger entries as `ledger` lists them, validations, unlocked
/// achievements and the wallet.
async fn stored_state(server: &TestServer, user: Uuid, ledger: Ledger) -> Vec<String> {
    let ledger = match ledger {
        Ledger::InOrder => {
            "SELECT kind || ' ' || available_delta || ' ' || available_after || ' '
                    || coalesce(reference_id, '-') || ' ' || coalesce(description, '-')
             FROM coin_transactions WHERE user_id = $1 ORDER BY ledger_seq"
        }
        Ledger::PerReference => {
            "SELECT kind || ' ' || coalesce(reference_id, '-') || ' ' || sum(available_delta)
             FROM coin_transactions WHERE user_id = $1 GROUP BY kind, reference_id
             ORDER BY kind, reference_id"
        }
    };
    let queries = [
        "SELECT day::text || ' ' || source || ' ' || steps || ' ' || verified_steps || ' '
                || status || ' ' || report_count
         FROM step_records WHERE user_id = $1 ORDER BY day, source",
        "SELECT day::text || ' ' || verified_steps || ' ' || coins_paid
         FROM step_days WHERE user_id = $1 ORDER BY day",
        ledger,
        "SELECT status || ' ' || step_day || ' ' || previous_steps || ' ' || claimed_steps
                || ' ' || anomaly_score || ' ' || reasons::text
         FROM step_validations WHERE user_id = $1 ORDER BY step_day, claimed_steps",
        "SELECT a.code FROM user_achievements ua JOIN achievements a ON a.id = ua.achievement_id
         WHERE ua.user_id = $1 ORDER BY a.code",
        "SELECT available_coins || ' ' || frozen_coins || ' ' || lifetime_earned
         FROM wallets WHERE user_id = $1",
    ];
    let mut state = Vec::new();
    for query in queries {
        for row in common::rows(server, query, &[&user]).await {
            state.push(row.get::<_, String>(0));
        }
        state.push("--".to_owned());
    }
    state
}

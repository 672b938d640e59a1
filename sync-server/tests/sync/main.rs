//! The sync protocol, black-box over HTTP: pushes applied exactly once whatever the replays,
//! reorders and partial failures, conflicts on reused ids, two devices pushing at once, and
//! pulls that never miss or repeat a change while writers race them (paging, snapshots equal
//! to the sum of incremental pulls, privacy, cursors, protocol versions, compression).
//!
//! Step dates are yesterday or older (within the seeded seven-day backfill window) with
//! explicit `recorded_at` times of about 1,000 steps an hour, so no anti-cheat rule fires.
//!
//! One test binary: each behaviour is a module of this directory; this file holds the helpers
//! they share beside `common`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use fitkart_protocol::auth::UserProfile;
use fitkart_protocol::orders::{Order, Product};
use fitkart_protocol::steps::{
    CoinTransaction, RecordOutcome, RecordStepsResponse, StepReport, Wallet,
};
use fitkart_protocol::sync::{
    Changes, Mutation, MutationResult, MutationStatus, PullResponse, PushResponse, StoredOutcome,
    SyncAchievement, SyncStepRecord,
};
use fitkart_sync_server::rewards::ledger;
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use MutationStatus::{Applied, Duplicate, Rejected};

#[path = "../common/mod.rs"]
mod common;
mod protocol_limits;
mod pull;
mod push;

use common::Api;
use common::code as error_code;
use common::{Account, answer, assert_ledger_ok, at, count, day_coins, days_ago, grant, report};

const PHONE: &str = "healthkit";
const WATCH: &str = "watch:garmin";
/// Most pages one drain may take before the test calls it an endless loop.
const MAX_PAGES: usize = 20_000;

// ---------------------------------------------------------------------------------------------
// Helpers: the device's side of the wire
// ---------------------------------------------------------------------------------------------

impl Api {
    async fn me(&self, who: &Account) -> UserProfile {
        let (status, body) = self.get("/me", who).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn register_device(&self, who: &Account, body: Value) -> (StatusCode, Value) {
        self.post("/devices", body, who).await
    }

    /// `POST /sync/push` with any body and protocol version.
    async fn push_raw(
        &self,
        who: &Account,
        body: &Value,
        version: Option<&str>,
    ) -> (StatusCode, Value) {
        answer(
            self.versioned(Method::POST, "/sync/push", who, version)
                .json(body),
        )
        .await
    }

    /// Pushes `mutations` from `device` and expects an answer for each (200).
    async fn push(&self, who: &Account, device: Uuid, mutations: &[Mutation]) -> PushResponse {
        let body = json!({"device_id": device, "mutations": mutations});
        let (status, body) = self.push_raw(who, &body, Some("1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let response: PushResponse = serde_json::from_value(body).unwrap();
        assert_eq!(response.results.len(), mutations.len(), "one result each");
        for (result, mutation) in response.results.iter().zip(mutations) {
            assert_eq!(result.id, mutation.id, "results come in push order");
        }
        response
    }

    /// `GET /sync/pull` with any query and protocol version.
    async fn pull_raw(
        &self,
        who: &Account,
        query: &[(&str, String)],
        version: Option<&str>,
    ) -> (StatusCode, Value) {
        answer(
            self.versioned(Method::GET, "/sync/pull", who, version)
                .query(query),
        )
        .await
    }

    /// One page after `cursor` (a snapshot without one); expects 200.
    async fn pull(&self, who: &Account, cursor: Option<&str>, limit: Option<i64>) -> PullResponse {
        let mut query = Vec::new();
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let (status, body) = self.pull_raw(who, &query, Some("1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: mutations
// ---------------------------------------------------------------------------------------------

fn mutation(kind: &str, payload: Value) -> Mutation {
    Mutation {
        id: Uuid::new_v4(),
        kind: kind.to_owned(),
        payload,
        created_at: Utc::now(),
    }
}

fn record_steps(reports: &[StepReport]) -> Mutation {
    mutation("record_steps", json!({ "records": reports }))
}

fn place_order(client_order_id: Uuid, lines: &[(Uuid, i32)]) -> Mutation {
    mutation("place_order", order_body(client_order_id, lines))
}

fn cancel_by_client_id(client_order_id: Uuid) -> Mutation {
    mutation(
        "cancel_order",
        json!({ "client_order_id": client_order_id }),
    )
}

fn cancel_by_order_id(order_id: Uuid) -> Mutation {
    mutation("cancel_order", json!({ "order_id": order_id }))
}

fn update_profile(patch: Value) -> Mutation {
    mutation("update_profile", patch)
}

fn order_body(client_order_id: Uuid, lines: &[(Uuid, i32)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(product_id, quantity)| json!({"product_id": product_id, "quantity": quantity}))
        .collect();
    json!({
        "client_order_id": client_order_id,
        "items": items,
        "shipping_address": {
            "name": "Ann Walker",
            "line1": "Hauptstrasse 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
    })
}

/// A total of `thousands` × 1,000 steps walked at 1,000 an hour from 08:00.
fn walked(date: NaiveDate, source: &str, thousands: u32) -> StepReport {
    report(
        date,
        source,
        1000 * i64::from(thousands),
        at(date, 8 + thousands, 0),
    )
}

fn statuses(response: &PushResponse) -> Vec<MutationStatus> {
    response.results.iter().map(|r| r.status).collect()
}

/// Each result's status and rejection code, in push order.
fn verdicts(response: &PushResponse) -> Vec<(MutationStatus, Option<&str>)> {
    response
        .results
        .iter()
        .map(|r| (r.status, r.outcome.code.as_deref()))
        .collect()
}

fn outcomes(response: &PushResponse) -> Vec<StoredOutcome> {
    response.results.iter().map(|r| r.outcome.clone()).collect()
}

/// The effect an applied mutation reports.
fn effect<T: serde::de::DeserializeOwned>(result: &MutationResult) -> T {
    assert_eq!(result.outcome.status, Applied, "{result:?}");
    serde_json::from_value(result.outcome.result.clone().expect("an applied effect")).unwrap()
}

/// Asserts `again` answers every mutation of `first` as a duplicate with its stored outcome.
fn assert_all_duplicates_of(first: &PushResponse, again: &PushResponse) {
    assert_eq!(statuses(again), vec![Duplicate; first.results.len()]);
    assert_eq!(
        outcomes(again),
        outcomes(first),
        "a duplicate carries the first outcome"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers: the database as the truth
// ---------------------------------------------------------------------------------------------

async fn start() -> (TestServer, Api) {
    let server = TestServer::start().await.unwrap();
    let api = Api::api_v1(&server).without_gzip();
    (server, api)
}

/// Adds a catalogue product with the next shared change version, as the admin API does.
async fn add_product(server: &TestServer, name: &str, price: i64, stock: i32) -> Uuid {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "WITH v AS (UPDATE shared_change_version SET version = version + 1
                        WHERE singleton RETURNING version)
             INSERT INTO reward_products (name, category, coin_price, stock, change_version)
             SELECT $1, 'test', $2, $3, v.version FROM v RETURNING id",
            &[&name, &price, &stock],
        )
        .await
        .unwrap()
        .get("id")
}

/// Deactivates a product with the next shared change version.
async fn deactivate_product(server: &TestServer, product: Uuid) {
    let updated = server
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "WITH v AS (UPDATE shared_change_version SET version = version + 1
                        WHERE singleton RETURNING version)
             UPDATE reward_products SET is_active = false, change_version = v.version
             FROM v WHERE id = $1",
            &[&product],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
}

async fn db_wallet(server: &TestServer, user: Uuid) -> Wallet {
    let client = server.db().client().await.unwrap();
    ledger::wallet(&client, user).await.unwrap()
}

async fn db_ledger_ids(server: &TestServer, user: Uuid) -> BTreeSet<Uuid> {
    common::rows(
        server,
        "SELECT id FROM coin_transactions WHERE user_id = $1",
        &[&user],
    )
    .await
    .iter()
    .map(|row| row.get("id"))
    .collect()
}

/// Step-reward coins booked per day.
async fn db_step_rewards(server: &TestServer, user: Uuid) -> BTreeMap<String, i64> {
    common::rows(
        server,
        "SELECT reference_id, sum(available_delta)::bigint AS coins FROM coin_transactions
             WHERE user_id = $1 AND kind = 'step_reward' GROUP BY reference_id",
        &[&user],
    )
    .await
    .iter()
    .map(|row| (row.get("reference_id"), row.get("coins")))
    .collect()
}

/// (date, source) → (steps, verified steps, status).
type StepState = BTreeMap<(NaiveDate, String), (i64, i64, String)>;

async fn db_step_records(server: &TestServer, user: Uuid) -> StepState {
    common::rows(
        server,
            "SELECT day, source, steps::bigint AS steps, verified_steps::bigint AS verified_steps, status
             FROM step_records WHERE user_id = $1",
            &[&user],
        )
        .await
        .iter()
        .map(|row| {
            (
                (row.get("day"), row.get("source")),
                (
                    row.get("steps"),
                    row.get("verified_steps"),
                    row.get("status"),
                ),
            )
        })
        .collect()
}

/// Order id → status.
async fn db_orders(server: &TestServer, user: Uuid) -> BTreeMap<Uuid, String> {
    common::rows(
        server,
        "SELECT id, status FROM orders WHERE user_id = $1",
        &[&user],
    )
    .await
    .iter()
    .map(|row| (row.get("id"), row.get("status")))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers: a device's cache, filled by pulls
// ---------------------------------------------------------------------------------------------

/// What a device holds after applying pulled changes, and what it noticed on the way.
#[derive(Debug, Default)]
struct Replica {
    cursor: Option<String>,
    pages: usize,
    profile: Option<UserProfile>,
    wallet: Option<Wallet>,
    ledger: BTreeMap<Uuid, CoinTransaction>,
    steps: BTreeMap<(NaiveDate, String), SyncStepRecord>,
    unlocks: BTreeMap<String, DateTime<Utc>>,
    orders: BTreeMap<Uuid, Order>,
    products: BTreeMap<Uuid, Product>,
    achievements: BTreeMap<String, SyncAchievement>,
    settings: BTreeMap<String, Value>,
    /// Ledger entries delivered more than once.
    repeated_entries: Vec<Uuid>,
    /// Step records delivered again at the same or an older version.
    stale_steps: Vec<SyncStepRecord>,
    /// (order id, status) delivered more than once.
    repeated_orders: Vec<(Uuid, String)>,
    seen_order_states: BTreeSet<(Uuid, String)>,
}

impl Replica {
    fn apply(&mut self, changes: Changes) {
        if let Some(profile) = changes.profile {
            self.profile = Some(profile);
        }
        if let Some(wallet) = changes.wallet {
            self.wallet = Some(wallet);
        }
        for entry in changes.coin_transactions {
            if self.ledger.insert(entry.id, entry.clone()).is_some() {
                self.repeated_entries.push(entry.id);
            }
        }
        for record in changes.step_records {
            let key = (record.date, record.source.clone());
            if let Some(old) = self.steps.get(&key)
                && old.version >= record.version
            {
                self.stale_steps.push(record.clone());
            }
            self.steps.insert(key, record);
        }
        for unlock in changes.achievements_unlocked {
            self.unlocks.insert(unlock.code, unlock.unlocked_at);
        }
        for order in changes.orders {
            if !self
                .seen_order_states
                .insert((order.id, order.status.clone()))
            {
                self.repeated_orders.push((order.id, order.status.clone()));
            }
            self.orders.insert(order.id, order);
        }
        for product in changes.products {
            self.products.insert(product.id, product);
        }
        for achievement in changes.achievements {
            self.achievements
                .insert(achievement.code.clone(), achievement);
        }
        for setting in changes.settings {
            self.settings.insert(setting.key, setting.value);
        }
    }

    /// Pulls one page after the replica's cursor and applies it; returns `has_more`.
    async fn pull_once(&mut self, api: &Api, who: &Account, limit: Option<i64>) -> bool {
        let page = api.pull(who, self.cursor.as_deref(), limit).await;
        self.pages += 1;
        self.cursor = Some(page.next_cursor);
        self.apply(page.changes);
        page.has_more
    }

    /// Pulls until nothing more waits.
    async fn sync(&mut self, api: &Api, who: &Account, limit: Option<i64>) {
        for _ in 0..MAX_PAGES {
            if !self.pull_once(api, who, limit).await {
                return;
            }
        }
        panic!("pull never reported has_more = false");
    }

    /// A fresh device's full snapshot.
    async fn snapshot(api: &Api, who: &Account) -> Self {
        let mut replica = Self::default();
        replica.sync(api, who, None).await;
        replica
    }

    fn step_state(&self) -> StepState {
        self.steps
            .iter()
            .map(|(key, r)| (key.clone(), (r.steps, r.verified_steps, r.status.clone())))
            .collect()
    }

    fn order_states(&self) -> BTreeMap<Uuid, String> {
        self.orders
            .iter()
            .map(|(id, order)| (*id, order.status.clone()))
            .collect()
    }

    fn assert_nothing_repeated(&self) {
        assert!(
            self.repeated_entries.is_empty(),
            "ledger entries delivered twice: {:?}",
            self.repeated_entries
        );
        assert!(
            self.stale_steps.is_empty(),
            "step records delivered again at an old version: {:?}",
            self.stale_steps
        );
        assert!(
            self.repeated_orders.is_empty(),
            "order states delivered twice: {:?}",
            self.repeated_orders
        );
    }
}

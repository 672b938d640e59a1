//! The sync protocol, black-box over HTTP: pushes applied exactly once whatever the replays,
//! reorders and partial failures, conflicts on reused ids, two devices pushing at once, and
//! pulls that never miss or repeat a change while writers race them (paging, snapshots equal
//! to the sum of incremental pulls, privacy, cursors, protocol versions, compression).
//!
//! Step dates are yesterday or older (within the seeded seven-day backfill window) with
//! explicit `recorded_at` times of about 1,000 steps an hour, so no anti-cheat rule fires.

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
    Changes, Mutation, MutationResult, MutationStatus, PROTOCOL_VERSION_HEADER, PullResponse,
    PushResponse, StoredOutcome, SyncAchievement, SyncStepRecord,
};
use fitkart_sync_server::rewards::ledger;
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use MutationStatus::{Applied, Duplicate, Rejected};

mod common;
use common::Client as Api;
use common::code as error_code;
use common::{
    Account, PASSWORD, account, answer, assert_ledger_ok, at, count, day_coins, days_ago, grant,
    report,
};

const PHONE: &str = "healthkit";
const WATCH: &str = "watch:garmin";
/// Most pages one drain may take before the test calls it an endless loop.
const MAX_PAGES: usize = 20_000;

// ---------------------------------------------------------------------------------------------
// Helpers: the device's side of the wire
// ---------------------------------------------------------------------------------------------

impl Api {
    /// A request to `/api/v1{path}` with the caller's token and, when given, the protocol
    /// version header.
    fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        version: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.request_as(method, path, token);
        match version {
            Some(version) => request.header(PROTOCOL_VERSION_HEADER, version),
            None => request,
        }
    }

    async fn register(&self, email: &str) -> Account {
        let body = json!({"email": email, "password": PASSWORD, "display_name": "Walker"});
        let (status, body) = answer(
            self.request(Method::POST, "/auth/register", None, None)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        account(body)
    }

    async fn login(&self, email: &str) -> Account {
        let body = json!({"email": email, "password": PASSWORD});
        let (status, body) = answer(
            self.request(Method::POST, "/auth/login", None, None)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        account(body)
    }

    async fn get(&self, path: &str, who: &Account) -> (StatusCode, Value) {
        answer(self.request(Method::GET, path, Some(&who.token), None)).await
    }

    async fn wallet(&self, who: &Account) -> Wallet {
        let (status, body) = self.get("/wallet", who).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn me(&self, who: &Account) -> UserProfile {
        let (status, body) = self.get("/me", who).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn register_device(&self, who: &Account, body: Value) -> (StatusCode, Value) {
        answer(
            self.request(Method::POST, "/devices", Some(&who.token), None)
                .json(&body),
        )
        .await
    }

    /// `POST /sync/push` with any body and protocol version.
    async fn push_raw(
        &self,
        who: &Account,
        body: &Value,
        version: Option<&str>,
    ) -> (StatusCode, Value) {
        answer(
            self.request(Method::POST, "/sync/push", Some(&who.token), version)
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
            self.request(Method::GET, "/sync/pull", Some(&who.token), version)
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
    let api = Api {
        base: server.url("/api/v1"),
        http: reqwest::Client::builder().no_gzip().build().unwrap(),
    };
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
        .get(0)
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
    server
        .db()
        .client()
        .await
        .unwrap()
        .query(
            "SELECT id FROM coin_transactions WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Step-reward coins booked per day.
async fn db_step_rewards(server: &TestServer, user: Uuid) -> BTreeMap<String, i64> {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query(
            "SELECT reference_id, sum(available_delta)::bigint FROM coin_transactions
             WHERE user_id = $1 AND kind = 'step_reward' GROUP BY reference_id",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// (date, source) → (steps, verified steps, status).
type StepState = BTreeMap<(NaiveDate, String), (i64, i64, String)>;

async fn db_step_records(server: &TestServer, user: Uuid) -> StepState {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query(
            "SELECT day, source, steps::bigint, verified_steps::bigint, status
             FROM step_records WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                (row.get(0), row.get(1)),
                (row.get(2), row.get(3), row.get(4)),
            )
        })
        .collect()
}

/// Order id → status.
async fn db_orders(server: &TestServer, user: Uuid) -> BTreeMap<Uuid, String> {
    server
        .db()
        .client()
        .await
        .unwrap()
        .query("SELECT id, status FROM orders WHERE user_id = $1", &[&user])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
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

// ---------------------------------------------------------------------------------------------
// Push: exactly-once effects
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn replaying_a_push_three_times_applies_it_once() {
    let (server, api) = start().await;
    let ann = api.register("ann@example.com").await;
    grant(server.db().pool(), ann.id, 500).await;
    let mug = add_product(&server, "Mug", 120, 10).await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let batch = vec![
        record_steps(&[walked(day, PHONE, 8)]),
        place_order(Uuid::new_v4(), &[(mug, 2)]),
        update_profile(json!({"display_name": "Ann Runner", "daily_step_goal": 9000})),
    ];
    let first = api.push(&ann, device, &batch).await;
    assert_eq!(verdicts(&first), vec![(Applied, None); 3]);
    let steps: RecordStepsResponse = effect(&first.results[0]);
    assert_eq!(steps.results[0].status, RecordOutcome::Accepted);
    assert_eq!(steps.results[0].coins_awarded, 80);
    let order: Order = effect(&first.results[1]);
    assert_eq!((order.status.as_str(), order.total_coins), ("pending", 240));
    let profile: UserProfile = effect(&first.results[2]);
    assert_eq!(profile.display_name, "Ann Runner");
    let wallet = api.wallet(&ann).await;
    let rows = count(
        &server,
        "SELECT count(*) FROM coin_transactions WHERE user_id = $1",
        ann.id,
    )
    .await;

    for _ in 0..2 {
        let again = api.push(&ann, device, &batch).await;
        assert_all_duplicates_of(&first, &again);
    }

    assert_eq!(api.wallet(&ann).await, wallet, "replays move no coins");
    assert_eq!(wallet.frozen_coins, 240, "one order's hold");
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM coin_transactions WHERE user_id = $1",
            ann.id
        )
        .await,
        rows
    );
    assert_eq!(db_orders(&server, ann.id).await.len(), 1, "one order");
    assert_eq!(
        count(
            &server,
            "SELECT stock::bigint FROM reward_products WHERE id = $1",
            mug
        )
        .await,
        8,
        "stock taken once"
    );
    assert_eq!(
        db_step_rewards(&server, ann.id).await,
        BTreeMap::from([(day.to_string(), 80)])
    );
    let me = api.me(&ann).await;
    assert_eq!(
        (me.display_name.as_str(), me.daily_step_goal),
        ("Ann Runner", 9000)
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn step_totals_of_one_day_pushed_in_reverse_order_reach_the_same_state() {
    let (server, api) = start().await;
    let day = days_ago(2);
    let totals: Vec<StepReport> = (2..=9).step_by(2).map(|k| walked(day, PHONE, k)).collect();

    // One device syncs the day's readings as they were taken, another (for a second user
    // with the same walk) syncs them newest first, each reading in its own push.
    let forward = api.register("fwd@example.com").await;
    let backward = api.register("bwd@example.com").await;
    for reading in &totals {
        let answer = api
            .push(
                &forward,
                Uuid::new_v4(),
                &[record_steps(std::slice::from_ref(reading))],
            )
            .await;
        assert_eq!(statuses(&answer), vec![Applied]);
    }
    let device = Uuid::new_v4();
    for reading in totals.iter().rev() {
        let answer = api
            .push(
                &backward,
                device,
                &[record_steps(std::slice::from_ref(reading))],
            )
            .await;
        assert_eq!(statuses(&answer), vec![Applied]);
    }

    let (a, b) = (
        Replica::snapshot(&api, &forward).await,
        Replica::snapshot(&api, &backward).await,
    );
    let expected = BTreeMap::from([((day, PHONE.to_owned()), (8000, 8000, "accepted".to_owned()))]);
    assert_eq!(a.step_state(), expected);
    assert_eq!(b.step_state(), expected);
    assert_eq!(db_step_records(&server, backward.id).await, expected);
    assert_eq!(
        db_step_rewards(&server, forward.id).await,
        db_step_rewards(&server, backward.id).await
    );
    assert_eq!(
        db_step_rewards(&server, backward.id).await[&day.to_string()],
        day_coins(8000)
    );
    assert_eq!(a.wallet, b.wallet, "the same coins either way");
    assert_eq!(
        a.unlocks.keys().collect::<Vec<_>>(),
        b.unlocks.keys().collect::<Vec<_>>()
    );
    assert_eq!(api.wallet(&backward).await, b.wallet.unwrap());
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_rejected_mutation_never_blocks_the_rest_of_its_push() {
    let (server, api) = start().await;
    let bea = api.register("bea@example.com").await;
    let bike = add_product(&server, "Bike", 100_000, 3).await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let batch = vec![
        record_steps(&[walked(day, PHONE, 8)]),
        place_order(Uuid::new_v4(), &[(bike, 1)]),
        update_profile(json!({"display_name": "Bea Strider"})),
        cancel_by_client_id(Uuid::new_v4()),
    ];
    let first = api.push(&bea, device, &batch).await;
    assert_eq!(
        verdicts(&first),
        vec![
            (Applied, None),
            (Rejected, Some("insufficient_coins")),
            (Applied, None),
            (Rejected, Some("not_found")),
        ]
    );
    for rejected in [&first.results[1], &first.results[3]] {
        assert_eq!(rejected.outcome.status, Rejected);
        assert!(rejected.outcome.message.is_some(), "{rejected:?}");
    }

    // Exactly the applied mutations show: the steps' coins, the new name, no order, no hold.
    let wallet = api.wallet(&bea).await;
    assert_eq!(wallet.frozen_coins, 0);
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(wallet.available_coins, wallet.lifetime_earned);
    assert!(wallet.available_coins >= 80, "{wallet:?}");
    assert_eq!(
        db_step_rewards(&server, bea.id).await,
        BTreeMap::from([(day.to_string(), 80)])
    );
    assert_eq!(api.me(&bea).await.display_name, "Bea Strider");
    assert!(db_orders(&server, bea.id).await.is_empty());
    assert_eq!(
        count(
            &server,
            "SELECT stock::bigint FROM reward_products WHERE id = $1",
            bike
        )
        .await,
        3
    );

    // The device retries the whole push: every answer is the stored one, nothing moves,
    // and the order that could not be afforded stays rejected.
    let again = api.push(&bea, device, &batch).await;
    assert_all_duplicates_of(&first, &again);
    assert_eq!(api.wallet(&bea).await, wallet);
    assert!(db_orders(&server, bea.id).await.is_empty());
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn reusing_a_mutation_id_for_a_different_body_is_a_conflict() {
    let (server, api) = start().await;
    let cal = api.register("cal@example.com").await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let original = record_steps(&[walked(day, PHONE, 5)]);
    let first = api
        .push(&cal, device, std::slice::from_ref(&original))
        .await;
    assert_eq!(statuses(&first), vec![Applied]);

    let mut other_payload = original.clone();
    other_payload.payload = json!({"records": [walked(day, PHONE, 9)]});
    let mut other_kind = original.clone();
    other_kind.kind = "update_profile".into();
    other_kind.payload = json!({"display_name": "Cal"});
    let answer = api
        .push(&cal, device, &[other_payload.clone(), other_kind])
        .await;
    assert_eq!(
        verdicts(&answer),
        vec![
            (Rejected, Some("mutation_conflict")),
            (Rejected, Some("mutation_conflict")),
        ]
    );
    assert_eq!(
        db_step_records(&server, cal.id).await[&(day, PHONE.to_owned())].0,
        5000,
        "the conflicting body was not applied"
    );
    assert_eq!(api.me(&cal).await.display_name, "Walker");

    // The original is still known for what it was.
    let replay = api.push(&cal, device, &[original]).await;
    assert_all_duplicates_of(&first, &replay);
    // A conflicting copy in the same push as a fresh id is refused too.
    let fresh = update_profile(json!({"display_name": "Cal One"}));
    let mut clash = fresh.clone();
    clash.payload = json!({"display_name": "Cal Two"});
    let answer = api.push(&cal, device, &[fresh, clash]).await;
    assert_eq!(
        verdicts(&answer),
        vec![(Applied, None), (Rejected, Some("mutation_conflict"))]
    );
    assert_eq!(api.me(&cal).await.display_name, "Cal One");
    assert_eq!(db_step_rewards(&server, cal.id).await[&day.to_string()], 50);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_repeated_id_later_in_the_same_push_is_a_duplicate_of_its_first_copy() {
    let (server, api) = start().await;
    let dee = api.register("dee@example.com").await;
    grant(server.db().pool(), dee.id, 300).await;
    let cap = add_product(&server, "Cap", 100, 5).await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let steps = record_steps(&[walked(day, PHONE, 6)]);
    let order = place_order(Uuid::new_v4(), &[(cap, 1)]);
    let answer = api
        .push(
            &dee,
            device,
            &[steps.clone(), order.clone(), steps.clone(), order.clone()],
        )
        .await;
    assert_eq!(
        statuses(&answer),
        vec![Applied, Applied, Duplicate, Duplicate]
    );
    assert_eq!(answer.results[2].outcome, answer.results[0].outcome);
    assert_eq!(answer.results[3].outcome, answer.results[1].outcome);
    assert_eq!(db_orders(&server, dee.id).await.len(), 1);
    assert_eq!(api.wallet(&dee).await.frozen_coins, 100);
    assert_eq!(db_step_rewards(&server, dee.id).await[&day.to_string()], 60);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn unknown_kinds_and_malformed_payloads_reject_only_their_mutation() {
    let (server, api) = start().await;
    let eli = api.register("eli@example.com").await;
    let device = Uuid::new_v4();
    let day = days_ago(1);

    let batch = vec![
        mutation("teleport", json!({"to": "mars"})),
        mutation("record_steps", json!({"records": "many"})),
        mutation("record_steps", json!({"records": []})),
        mutation(
            "cancel_order",
            json!({"order_id": Uuid::new_v4(), "client_order_id": Uuid::new_v4()}),
        ),
        mutation("cancel_order", json!({})),
        mutation("place_order", json!({"items": []})),
        update_profile(json!({"daily_step_goal": -5})),
        record_steps(&[walked(day, PHONE, 3)]),
    ];
    let answer = api.push(&eli, device, &batch).await;
    assert_eq!(
        verdicts(&answer),
        vec![
            (Rejected, Some("unknown_kind")),
            (Rejected, Some("invalid_payload")),
            (Rejected, Some("validation_failed")),
            (Rejected, Some("validation_failed")),
            (Rejected, Some("validation_failed")),
            (Rejected, Some("invalid_payload")),
            (Rejected, Some("validation_failed")),
            (Applied, None),
        ]
    );
    assert_eq!(api.me(&eli).await.daily_step_goal, 10_000);
    assert_eq!(db_step_rewards(&server, eli.id).await[&day.to_string()], 30);

    // Sent again, every refusal is answered the same way and nothing applies twice. (An
    // unknown kind has nothing to remember, so it may be refused afresh instead.)
    let again = api.push(&eli, device, &batch).await;
    assert_eq!(statuses(&again)[1..], vec![Duplicate; batch.len() - 1]);
    assert_eq!(outcomes(&again)[1..], outcomes(&answer)[1..]);
    assert!(matches!(again.results[0].status, Duplicate | Rejected));
    assert_eq!(again.results[0].outcome, answer.results[0].outcome);
    assert_eq!(db_step_rewards(&server, eli.id).await[&day.to_string()], 30);
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn an_order_after_steps_in_the_same_push_spends_the_coins_they_earned() {
    let (server, api) = start().await;
    let fay = api.register("fay@example.com").await;
    // 9,000 steps pay 90 coins, and the 1k and 5k achievements 10 and 20 more.
    let shoes = add_product(&server, "Shoes", 115, 4).await;
    let device = Uuid::new_v4();
    let client_order_id = Uuid::new_v4();
    let (d1, d2) = (days_ago(1), days_ago(2));

    let batch = vec![
        record_steps(&[walked(d2, PHONE, 4)]),
        record_steps(&[walked(d1, PHONE, 5)]),
        place_order(client_order_id, &[(shoes, 1)]),
    ];
    let answer = api.push(&fay, device, &batch).await;
    assert_eq!(verdicts(&answer), vec![(Applied, None); 3]);
    let earned: i64 = answer.results[..2]
        .iter()
        .map(|r| effect::<RecordStepsResponse>(r).coins_awarded)
        .sum();
    let order: Order = effect(&answer.results[2]);
    assert_eq!((order.status.as_str(), order.total_coins), ("pending", 115));
    assert_eq!(order.client_order_id, client_order_id);
    let wallet = api.wallet(&fay).await;
    assert_eq!((wallet.available_coins, wallet.frozen_coins), (5, 115));

    // The order placed offline is cancelled by the id the device knows; cancelling it again
    // (a new mutation) is an invalid transition, and by a server id nobody has is not found.
    let cancel = cancel_by_client_id(client_order_id);
    let answer = api
        .push(
            &fay,
            device,
            &[
                cancel.clone(),
                cancel_by_order_id(order.id),
                cancel_by_order_id(Uuid::new_v4()),
            ],
        )
        .await;
    assert_eq!(
        verdicts(&answer),
        vec![
            (Applied, None),
            (Rejected, Some("invalid_transition")),
            (Rejected, Some("not_found")),
        ]
    );
    let cancelled: Order = effect(&answer.results[0]);
    assert_eq!(
        (cancelled.id, cancelled.status.as_str()),
        (order.id, "cancelled")
    );
    let wallet = api.wallet(&fay).await;
    assert_eq!((wallet.available_coins, wallet.frozen_coins), (120, 0));
    assert_eq!(
        count(
            &server,
            "SELECT stock::bigint FROM reward_products WHERE id = $1",
            shoes
        )
        .await,
        4
    );
    let again = api.push(&fay, device, &[cancel]).await;
    assert_eq!(statuses(&again), vec![Duplicate]);
    assert_eq!(api.wallet(&fay).await, wallet);
    assert_ledger_ok(&server).await;
    // What the step mutations say they paid is what the wallet received (9,000 steps pay 90,
    // the 1k and 5k achievements 10 and 20).
    assert_eq!(
        earned,
        40 + 50 + 10 + 20,
        "coins_awarded of the step mutations, achievement bonuses included"
    );
}

#[tokio::test]
async fn a_push_carries_1_to_500_mutations() {
    let (server, api) = start().await;
    let gil = api.register("gil@example.com").await;
    let device = Uuid::new_v4();

    let empty = json!({"device_id": device, "mutations": []});
    let (status, body) = api.push_raw(&gil, &empty, Some("1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let too_many: Vec<Mutation> = (0..501)
        .map(|i| update_profile(json!({"display_name": format!("Gil {i}")})))
        .collect();
    let body = json!({"device_id": device, "mutations": too_many});
    let (status, answer) = api.push_raw(&gil, &body, Some("1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(api.me(&gil).await.display_name, "Walker", "nothing applied");

    let most = &too_many[..500];
    let answer = api.push(&gil, device, most).await;
    assert_eq!(statuses(&answer), vec![Applied; 500]);
    assert_eq!(
        api.me(&gil).await.display_name,
        "Gil 499",
        "applied in order"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM sync_mutations WHERE user_id = $1",
            gil.id
        )
        .await,
        500
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_of_one_user_pushing_at_once_apply_every_effect_once() {
    let (server, api) = start().await;
    api.register("hal@example.com").await;
    let phone_session = api.login("hal@example.com").await;
    let watch_session = api.login("hal@example.com").await;
    let user = phone_session.id;
    grant(server.db().pool(), user, 1000).await;
    let mug = add_product(&server, "Mug", 100, 10).await;
    let (phone, watch) = (Uuid::new_v4(), Uuid::new_v4());
    let (d1, d2, d3) = (days_ago(1), days_ago(2), days_ago(3));

    // Both devices saw day 2 (different totals); each has a day of its own and an order.
    let phone_batch = vec![
        record_steps(&[walked(d3, PHONE, 4)]),
        record_steps(&[walked(d2, PHONE, 6)]),
        place_order(Uuid::new_v4(), &[(mug, 1)]),
        record_steps(&[walked(d2, PHONE, 7)]),
    ];
    let watch_batch = vec![
        record_steps(&[walked(d2, PHONE, 9)]),
        place_order(Uuid::new_v4(), &[(mug, 2)]),
        record_steps(&[walked(d1, PHONE, 3), walked(d2, PHONE, 5)]),
    ];

    // Each device sends its push twice at once (a retry racing the first attempt).
    let mut tasks = JoinSet::new();
    for (session, device, batch) in [
        (&phone_session, phone, &phone_batch),
        (&watch_session, watch, &watch_batch),
    ] {
        for _ in 0..2 {
            let (api, session, batch) = (api.clone(), session.clone(), batch.clone());
            tasks.spawn(async move {
                let answer = api.push(&session, device, &batch).await;
                (device, answer)
            });
        }
    }
    let answers = tasks.join_all().await;

    for (device, batch) in [(phone, &phone_batch), (watch, &watch_batch)] {
        let mine: Vec<&PushResponse> = answers
            .iter()
            .filter(|(d, _)| *d == device)
            .map(|(_, a)| a)
            .collect();
        for (index, mutation) in batch.iter().enumerate() {
            let results: Vec<&MutationResult> = mine.iter().map(|a| &a.results[index]).collect();
            let applied = results.iter().filter(|r| r.status == Applied).count();
            let duplicate = results.iter().filter(|r| r.status == Duplicate).count();
            assert_eq!((applied, duplicate), (1, 1), "{mutation:?}: {results:?}");
            assert_eq!(results[0].outcome, results[1].outcome);
        }
    }

    let orders = db_orders(&server, user).await;
    assert_eq!(orders.len(), 2, "one order per device");
    let wallet = db_wallet(&server, user).await;
    assert_eq!(wallet.frozen_coins, 300);
    assert_eq!(
        db_step_records(&server, user)
            .await
            .into_iter()
            .map(|((day, _), (steps, ..))| (day, steps))
            .collect::<BTreeMap<_, _>>(),
        BTreeMap::from([(d3, 4000), (d2, 9000), (d1, 3000)]),
        "each day holds its largest total"
    );
    assert_eq!(
        db_step_rewards(&server, user).await,
        BTreeMap::from([
            (d3.to_string(), day_coins(4000)),
            (d2.to_string(), day_coins(9000)),
            (d1.to_string(), day_coins(3000)),
        ]),
        "every day paid once for its maximum"
    );
    let bonuses = count(
        &server,
        "SELECT count(*) FROM coin_transactions WHERE user_id = $1 AND kind = 'achievement_bonus'",
        user,
    )
    .await;
    assert_eq!(bonuses, 2, "1k and 5k unlocked once");
    assert_eq!(
        wallet.available_coins,
        1000 - 300 + 40 + 90 + 30 + 10 + 20,
        "{wallet:?}"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(DISTINCT device_id) FROM sync_mutations WHERE user_id = $1",
            user
        )
        .await,
        2
    );
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_device_id_belongs_to_one_account() {
    let (_server, api) = start().await;
    let ivy = api.register("ivy@example.com").await;
    let jon = api.register("jon@example.com").await;
    let device = Uuid::new_v4();

    let registration = json!({
        "device_id": device, "platform": "ios", "os_version": "17.4",
        "app_version": "1.0.0", "model": "iPhone15,2",
    });
    let (status, body) = api.register_device(&ivy, registration.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Registering again (an app update) is fine for the owner.
    let (status, body) = api
        .register_device(
            &ivy,
            json!({"device_id": device, "platform": "ios", "app_version": "1.1.0"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (status, body) = api.register_device(&jon, registration).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "device_taken");
    let push =
        json!({"device_id": device, "mutations": [update_profile(json!({"display_name": "Jon"}))]});
    let (status, body) = api.push_raw(&jon, &push, Some("1")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "device_taken");
    assert_eq!(api.me(&jon).await.display_name, "Walker");

    let (status, body) = api
        .register_device(
            &jon,
            json!({"device_id": Uuid::new_v4(), "platform": "windows"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The owner's pushes from it work.
    let answer = api
        .push(
            &ivy,
            device,
            &[update_profile(json!({"display_name": "Ivy"}))],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied]);
}

// ---------------------------------------------------------------------------------------------
// Pull: nothing missed, nothing twice
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_make_a_puller_miss_or_repeat_a_change() {
    let (server, api) = start().await;
    api.register("kim@example.com").await;
    let kim = api.login("kim@example.com").await;
    let pool = server.db().pool().clone();
    grant(&pool, kim.id, 2000).await;
    let pin = add_product(&server, "Pin", 10, 1000).await;
    let done = Arc::new(AtomicBool::new(false));

    let mut pullers = JoinSet::new();
    for limit in [3, 7, 500] {
        let (api, kim, done) = (api.clone(), kim.clone(), done.clone());
        pullers.spawn(async move {
            let mut replica = Replica::default();
            let mut pulls_during_writes = 0;
            for _ in 0..MAX_PAGES {
                // Only a pull that started after every write finished may end the loop.
                let writers_finished = done.load(Ordering::SeqCst);
                let has_more = replica.pull_once(&api, &kim, Some(limit)).await;
                if !writers_finished {
                    pulls_during_writes += 1;
                }
                if writers_finished && !has_more {
                    return (replica, pulls_during_writes);
                }
                if !has_more {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            panic!("the puller never caught up");
        });
    }

    let mut writers = JoinSet::new();
    // Steps from two devices: rising totals over four days, one push per reading.
    for (device, source) in [(Uuid::new_v4(), PHONE), (Uuid::new_v4(), WATCH)] {
        let (api, kim) = (api.clone(), kim.clone());
        writers.spawn(async move {
            for thousands in 1..=8 {
                let readings: Vec<StepReport> = (1..=4)
                    .map(|n| walked(days_ago(n), source, thousands))
                    .collect();
                let answer = api.push(&kim, device, &[record_steps(&readings)]).await;
                assert_eq!(statuses(&answer), vec![Applied]);
            }
        });
    }
    // Orders placed and some cancelled, from a third device.
    {
        let (api, kim) = (api.clone(), kim.clone());
        writers.spawn(async move {
            let device = Uuid::new_v4();
            for i in 0..8 {
                let client_order_id = Uuid::new_v4();
                let answer = api
                    .push(&kim, device, &[place_order(client_order_id, &[(pin, 1)])])
                    .await;
                assert_eq!(verdicts(&answer), vec![(Applied, None)]);
                if i % 2 == 0 {
                    let answer = api
                        .push(&kim, device, &[cancel_by_client_id(client_order_id)])
                        .await;
                    assert_eq!(verdicts(&answer), vec![(Applied, None)]);
                }
            }
        });
    }
    // An admin adjusting the wallet, straight through the ledger.
    {
        let pool = pool.clone();
        writers.spawn(async move {
            for _ in 0..15 {
                grant(&pool, kim.id, 7).await;
            }
        });
    }
    // Profile edits.
    {
        let (api, kim) = (api.clone(), kim.clone());
        writers.spawn(async move {
            let device = Uuid::new_v4();
            for i in 0..5 {
                let answer = api
                    .push(
                        &kim,
                        device,
                        &[update_profile(json!({"display_name": format!("Kim {i}")}))],
                    )
                    .await;
                assert_eq!(statuses(&answer), vec![Applied]);
            }
        });
    }
    writers.join_all().await;
    done.store(true, Ordering::SeqCst);
    let replicas = pullers.join_all().await;

    let ledger_ids = db_ledger_ids(&server, kim.id).await;
    let wallet = db_wallet(&server, kim.id).await;
    let steps = db_step_records(&server, kim.id).await;
    let orders = db_orders(&server, kim.id).await;
    assert_eq!(orders.len(), 8);
    assert_eq!(steps.len(), 8, "four days from two sources");
    for (replica, pulls_during_writes) in &replicas {
        assert!(*pulls_during_writes > 1, "the puller raced the writers");
        replica.assert_nothing_repeated();
        assert_eq!(
            replica.ledger.keys().copied().collect::<BTreeSet<_>>(),
            ledger_ids,
            "a puller saw exactly the ledger the database holds"
        );
        assert_eq!(replica.wallet.as_ref(), Some(&wallet));
        assert_eq!(replica.step_state(), steps);
        assert_eq!(replica.order_states(), orders);
        assert_eq!(
            replica.profile.as_ref().map(|p| p.display_name.as_str()),
            Some("Kim 4")
        );
    }
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn pull_pages_whole_versions_until_has_more_is_false() {
    let (server, api) = start().await;
    let lea = api.register("lea@example.com").await;
    let device = Uuid::new_v4();
    // Many versions: a push per day and per rising total, and admin adjustments between.
    for n in 1..=5 {
        for thousands in [2, 4] {
            let answer = api
                .push(
                    &lea,
                    device,
                    &[record_steps(&[walked(days_ago(n), PHONE, thousands)])],
                )
                .await;
            assert_eq!(statuses(&answer), vec![Applied]);
        }
        grant(server.db().pool(), lea.id, 3).await;
    }

    for limit in [1, 4] {
        let mut replica = Replica::default();
        let mut step_versions_by_page: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
        let mut page_index = 0;
        loop {
            let page = api.pull(&lea, replica.cursor.as_deref(), Some(limit)).await;
            for record in &page.changes.step_records {
                step_versions_by_page
                    .entry(record.version)
                    .or_default()
                    .insert(page_index);
            }
            replica.cursor = Some(page.next_cursor.clone());
            replica.apply(page.changes);
            page_index += 1;
            assert!(page_index < MAX_PAGES, "paging never ends");
            if !page.has_more {
                break;
            }
        }
        assert!(page_index > 5, "limit {limit}: only {page_index} pages");
        replica.assert_nothing_repeated();
        for (version, pages) in &step_versions_by_page {
            assert_eq!(
                pages.len(),
                1,
                "version {version} split across pages {pages:?}"
            );
        }
        assert_eq!(
            replica.ledger.keys().copied().collect::<BTreeSet<_>>(),
            db_ledger_ids(&server, lea.id).await
        );
        assert_eq!(replica.step_state(), db_step_records(&server, lea.id).await);
        assert_eq!(replica.wallet, Some(db_wallet(&server, lea.id).await));
        assert!(replica.profile.is_some());
        assert_eq!(replica.achievements.len(), 7, "the seeded achievements");
        assert!(!replica.products.is_empty());

        // Resuming from the last cursor: nothing new, and still no more.
        let tail = api.pull(&lea, replica.cursor.as_deref(), Some(limit)).await;
        assert!(!tail.has_more);
        assert_eq!(tail.changes, Changes::default(), "nothing after the end");
    }

    // With limit 1 every page carries at most one version of the user's rows.
    let mut cursor: Option<String> = None;
    loop {
        let page = api.pull(&lea, cursor.as_deref(), Some(1)).await;
        let versions: BTreeSet<i64> = page
            .changes
            .step_records
            .iter()
            .map(|r| r.version)
            .collect();
        assert!(versions.len() <= 1, "{versions:?}");
        cursor = Some(page.next_cursor);
        if !page.has_more {
            break;
        }
    }
}

#[tokio::test]
async fn a_snapshot_equals_the_sum_of_incremental_pulls() {
    let (server, api) = start().await;
    let max = api.register("max@example.com").await;
    let pool = server.db().pool().clone();
    let device = Uuid::new_v4();
    let (d1, d2) = (days_ago(1), days_ago(2));
    let mut device_cache = Replica::default();
    device_cache.sync(&api, &max, Some(5)).await;

    grant(&pool, max.id, 400).await;
    device_cache.sync(&api, &max, Some(5)).await;
    let answer = api
        .push(&max, device, &[record_steps(&[walked(d2, PHONE, 3)])])
        .await;
    assert_eq!(statuses(&answer), vec![Applied]);
    device_cache.sync(&api, &max, Some(5)).await;
    let mug = add_product(&server, "Mug", 50, 10).await;
    device_cache.sync(&api, &max, Some(5)).await;
    let keep = Uuid::new_v4();
    let drop = Uuid::new_v4();
    let answer = api
        .push(
            &max,
            device,
            &[
                place_order(keep, &[(mug, 1)]),
                place_order(drop, &[(mug, 2)]),
                record_steps(&[walked(d2, PHONE, 6), walked(d1, WATCH, 2)]),
            ],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied; 3]);
    device_cache.sync(&api, &max, Some(5)).await;
    let answer = api
        .push(
            &max,
            device,
            &[
                cancel_by_client_id(drop),
                update_profile(json!({"display_name": "Max Pace", "daily_step_goal": 8000})),
            ],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied; 2]);
    device_cache.sync(&api, &max, Some(5)).await;
    deactivate_product(&server, mug).await;
    grant(&pool, max.id, -25).await;
    let answer = api
        .push(&max, device, &[record_steps(&[walked(d1, WATCH, 7)])])
        .await;
    assert_eq!(statuses(&answer), vec![Applied]);
    device_cache.sync(&api, &max, Some(5)).await;

    let fresh = Replica::snapshot(&api, &max).await;
    device_cache.assert_nothing_repeated();
    fresh.assert_nothing_repeated();
    assert_eq!(device_cache.profile, fresh.profile);
    assert_eq!(
        fresh.profile.as_ref().map(|p| p.display_name.as_str()),
        Some("Max Pace")
    );
    assert_eq!(device_cache.wallet, fresh.wallet);
    assert_eq!(fresh.wallet, Some(db_wallet(&server, max.id).await));
    assert_eq!(device_cache.ledger, fresh.ledger, "the same ledger entries");
    assert_eq!(
        fresh.ledger.keys().copied().collect::<BTreeSet<_>>(),
        db_ledger_ids(&server, max.id).await
    );
    assert_eq!(device_cache.step_state(), fresh.step_state());
    assert_eq!(fresh.step_state(), db_step_records(&server, max.id).await);
    assert_eq!(device_cache.unlocks, fresh.unlocks);
    assert_eq!(
        device_cache.orders, fresh.orders,
        "the same orders, same states"
    );
    assert_eq!(
        fresh.order_states().into_values().collect::<BTreeSet<_>>(),
        BTreeSet::from(["cancelled".to_owned(), "pending".to_owned()])
    );
    assert_eq!(
        device_cache.products.keys().collect::<Vec<_>>(),
        fresh.products.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        device_cache.products[&mug].is_active,
        fresh.products[&mug].is_active
    );
    assert!(!fresh.products[&mug].is_active, "inactive products say so");
    assert_eq!(device_cache.achievements, fresh.achievements);
    assert_eq!(device_cache.settings, fresh.settings);
}

#[tokio::test]
async fn a_fresh_snapshot_holds_the_whole_account_and_the_shared_catalogue() {
    let (server, api) = start().await;
    let nia = api.register("nia@example.com").await;
    grant(server.db().pool(), nia.id, 100).await;
    let mat = add_product(&server, "Yoga mat", 60, 2).await;
    let old = add_product(&server, "Old shirt", 10, 2).await;
    deactivate_product(&server, old).await;
    let day = days_ago(1);
    let answer = api
        .push(
            &nia,
            Uuid::new_v4(),
            &[
                record_steps(&[walked(day, PHONE, 6)]),
                place_order(Uuid::new_v4(), &[(mat, 1)]),
            ],
        )
        .await;
    assert_eq!(statuses(&answer), vec![Applied; 2]);

    let snapshot = Replica::snapshot(&api, &nia).await;
    snapshot.assert_nothing_repeated();
    let profile = snapshot.profile.as_ref().expect("the profile");
    assert_eq!(
        (profile.id, profile.email.as_str()),
        (nia.id, "nia@example.com")
    );
    assert_eq!(snapshot.wallet, Some(api.wallet(&nia).await));
    let kinds: BTreeSet<&str> = snapshot.ledger.values().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "admin_adjustment",
            "step_reward",
            "achievement_bonus",
            "order_hold"
        ])
    );
    let record = &snapshot.steps[&(day, PHONE.to_owned())];
    assert_eq!(
        (record.steps, record.verified_steps, record.status.as_str()),
        (6000, 6000, "accepted")
    );
    assert_eq!(
        snapshot
            .unlocks
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["steps_1k", "steps_5k"]
    );
    let order = snapshot.orders.values().next().expect("the order");
    assert_eq!(snapshot.orders.len(), 1);
    assert_eq!(order.items.len(), 1);
    assert_eq!(
        (order.items[0].product_id, order.items[0].quantity),
        (mat, 1)
    );
    assert!(snapshot.products[&mat].is_active);
    assert!(!snapshot.products[&old].is_active);
    assert!(snapshot.products.len() >= 10, "the seeded catalogue too");
    assert_eq!(snapshot.achievements.len(), 7);
    let public: BTreeSet<String> = server
        .db()
        .client()
        .await
        .unwrap()
        .query("SELECT key FROM settings WHERE is_public", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(!public.is_empty());
    assert_eq!(
        snapshot.settings.keys().cloned().collect::<BTreeSet<_>>(),
        public,
        "public settings only"
    );
}

#[tokio::test]
async fn a_user_never_receives_another_users_data() {
    let (server, api) = start().await;
    let ola = api.register("ola@example.com").await;
    let pia = api.register("pia@example.com").await;
    let cup = add_product(&server, "Cup", 20, 10).await;
    let day = days_ago(1);
    for (who, thousands) in [(&ola, 4), (&pia, 7)] {
        grant(server.db().pool(), who.id, 100).await;
        let answer = api
            .push(
                who,
                Uuid::new_v4(),
                &[
                    record_steps(&[walked(day, PHONE, thousands)]),
                    place_order(Uuid::new_v4(), &[(cup, 1)]),
                    update_profile(json!({"display_name": format!("Walker {thousands}")})),
                ],
            )
            .await;
        assert_eq!(statuses(&answer), vec![Applied; 3]);
    }

    for (me, other) in [(&ola, &pia), (&pia, &ola)] {
        // Both a snapshot and an incremental chain.
        let snapshot = Replica::snapshot(&api, me).await;
        let mut paged = Replica::default();
        paged.sync(&api, me, Some(2)).await;
        for replica in [&snapshot, &paged] {
            assert_eq!(replica.profile.as_ref().map(|p| p.id), Some(me.id));
            assert_eq!(
                replica.ledger.keys().copied().collect::<BTreeSet<_>>(),
                db_ledger_ids(&server, me.id).await
            );
            let theirs = db_ledger_ids(&server, other.id).await;
            assert!(!theirs.is_empty());
            assert!(
                replica.ledger.keys().all(|id| !theirs.contains(id)),
                "another user's ledger entry"
            );
            let their_orders = db_orders(&server, other.id).await;
            assert!(
                replica
                    .orders
                    .keys()
                    .all(|id| !their_orders.contains_key(id)),
                "another user's order"
            );
            assert_eq!(
                replica.order_states(),
                db_orders(&server, me.id).await,
                "own orders only"
            );
            assert_eq!(replica.step_state(), db_step_records(&server, me.id).await);
            assert_eq!(replica.wallet, Some(db_wallet(&server, me.id).await));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cursors, versions, limits, compression
// ---------------------------------------------------------------------------------------------

fn crafted_cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn invalid_and_foreign_cursors_are_refused_and_a_future_cursor_has_expired() {
    let (_server, api) = start().await;
    let quin = api.register("quin@example.com").await;
    let rex = api.register("rex@example.com").await;
    let rex_cursor = api.pull(&rex, None, None).await.next_cursor;
    let own_cursor = api.pull(&quin, None, None).await.next_cursor;

    let invalid = [
        "garbage".to_owned(),
        "!!!".to_owned(),
        crafted_cursor("c1:not-a-uuid:1:1"),
        crafted_cursor(&format!("c2:{}:1:1", quin.id)),
        crafted_cursor(&format!("c1:{}:1", quin.id)),
        crafted_cursor(&format!("c1:{}:-5:0", quin.id)),
        rex_cursor.clone(),
    ];
    for cursor in invalid {
        let (status, body) = api
            .pull_raw(&quin, &[("cursor", cursor.clone())], Some("1"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cursor}: {body}");
        assert_eq!(error_code(&body), "invalid_cursor", "{cursor}");
    }

    let big = i64::MAX / 2;
    for future in [
        crafted_cursor(&format!("c1:{}:{big}:{big}", quin.id)),
        crafted_cursor(&format!("c1:{}:{big}:0", quin.id)),
        crafted_cursor(&format!("c1:{}:0:{big}", quin.id)),
    ] {
        let (status, body) = api
            .pull_raw(&quin, &[("cursor", future.clone())], Some("1"))
            .await;
        assert_eq!(status, StatusCode::GONE, "{future}: {body}");
        assert_eq!(error_code(&body), "cursor_expired");
    }

    // The device's own cursor still works, and so does a fresh snapshot after a 410.
    let page = api.pull(&quin, Some(&own_cursor), None).await;
    assert!(!page.has_more);
    let snapshot = api.pull(&quin, None, None).await;
    assert_eq!(snapshot.changes.profile.map(|p| p.id), Some(quin.id));
}

#[tokio::test]
async fn sync_requests_must_name_a_supported_protocol_version() {
    let (_server, api) = start().await;
    let sam = api.register("sam@example.com").await;
    let push = json!({
        "device_id": Uuid::new_v4(),
        "mutations": [update_profile(json!({"display_name": "Sam"}))],
    });

    for (version, status, code) in [
        (None, StatusCode::BAD_REQUEST, "missing_protocol_version"),
        (
            Some("0"),
            StatusCode::UPGRADE_REQUIRED,
            "protocol_version_unsupported",
        ),
        (
            Some("99"),
            StatusCode::BAD_REQUEST,
            "protocol_version_unknown",
        ),
    ] {
        let (got, body) = api.push_raw(&sam, &push, version).await;
        assert_eq!(got, status, "push with {version:?}: {body}");
        assert_eq!(error_code(&body), code);
        let (got, body) = api.pull_raw(&sam, &[], version).await;
        assert_eq!(got, status, "pull with {version:?}: {body}");
        assert_eq!(error_code(&body), code);
        if status == StatusCode::UPGRADE_REQUIRED {
            assert_eq!(body["error"]["details"], json!({"min": 1, "max": 1}));
        }
    }
    let (got, body) = api.pull_raw(&sam, &[], Some("one")).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(api.me(&sam).await.display_name, "Walker", "nothing applied");

    let (got, body) = api.push_raw(&sam, &push, Some("1")).await;
    assert_eq!(got, StatusCode::OK, "{body}");
    assert_eq!(api.me(&sam).await.display_name, "Sam");
}

#[tokio::test]
async fn pull_limits_outside_1_to_1000_are_refused() {
    let (_server, api) = start().await;
    let tia = api.register("tia@example.com").await;
    for limit in ["0", "1001", "-3", "many"] {
        let (status, body) = api
            .pull_raw(&tia, &[("limit", limit.to_owned())], Some("1"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{limit}: {body}");
        assert_eq!(error_code(&body), "validation_failed");
    }
    for limit in [1, 1000] {
        api.pull(&tia, None, Some(limit)).await;
    }
}

#[tokio::test]
async fn sync_responses_are_gzip_compressed_for_clients_that_accept_it() {
    let (_server, api) = start().await;
    let uma = api.register("uma@example.com").await;

    let plain = api
        .request(Method::GET, "/sync/pull", Some(&uma.token), Some("1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    serde_json::from_slice::<PullResponse>(&plain).unwrap();

    let gzipped = api
        .request(Method::GET, "/sync/pull", Some(&uma.token), Some("1"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), StatusCode::OK);
    assert_eq!(
        gzipped
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let body = gzipped.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(
        body.len() < plain.len(),
        "{} compressed vs {} plain bytes",
        body.len(),
        plain.len()
    );

    let push = json!({
        "device_id": Uuid::new_v4(),
        "mutations": [update_profile(json!({"display_name": "Uma"}))],
    });
    let pushed = api
        .request(Method::POST, "/sync/push", Some(&uma.token), Some("1"))
        .header("accept-encoding", "gzip")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK);
    assert_eq!(
        pushed
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
}

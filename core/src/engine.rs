//! The sans-I/O sync engine: it decides the next request from the outbox and sync state, and
//! applies each answer inside one SQLite transaction. It performs no I/O, reads no clock and
//! never sleeps: [`crate::client`] drives it with a [`crate::Transport`] and a [`crate::Clock`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fitkart_protocol::steps::StepReport;
use fitkart_protocol::sync::{
    Mutation, MutationKind, MutationStatus, PullResponse, PushRequest, PushResponse,
    RecordStepsPayload,
};
use rusqlite::{Transaction, params};
use uuid::Uuid;

use crate::Error;
use crate::cache;
use crate::events::Part;
use crate::outbox::timestamp;

/// Most mutations one push carries.
pub const PUSH_BATCH: usize = fitkart_protocol::sync::MAX_MUTATIONS_PER_PUSH;
/// Changes asked for per pulled page.
pub const PULL_LIMIT: i64 = fitkart_protocol::sync::MAX_PULL_LIMIT;
/// Most payload bytes one push carries: well under the server's 4 MiB body limit for pushes,
/// so a long backfill (many full record_steps mutations) never makes a push too large.
pub const PUSH_BYTES: usize = 3 * 1024 * 1024;

/// How failed exchanges are retried: exponential backoff with full jitter, capped, and the
/// server's `Retry-After` honoured up to a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay's upper bound.
    pub base: Duration,
    /// The largest delay.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Retries of one exchange before a sync gives up (and reports offline or the error).
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_retries: 5,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first retry). `unit` is a random
    /// number in [0, 1) (full jitter); `retry_after` is the server's request, which wins when
    /// longer (capped).
    pub fn delay(&self, attempt: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2_u32.saturating_pow(attempt.min(30)))
            .min(self.max_delay);
        let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        match retry_after {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        }
    }
}

/// A push the engine prepared: its mutations are marked sent (frozen) before it leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct PushBatch {
    /// The request body.
    pub request: PushRequest,
    /// Kind of each mutation, by id.
    pub kinds: BTreeMap<Uuid, MutationKind>,
}

/// Takes the next push: the user's oldest unsettled mutations, up to `limit`. Each one that
/// was still open is frozen here (its payload written once, its state `sent`), in the same
/// transaction, so what may reach the server is never edited afterwards.
pub fn take_push_batch(
    tx: &Transaction<'_>,
    user_id: &str,
    device_id: Uuid,
    limit: usize,
) -> Result<Option<PushBatch>, Error> {
    let rows: Vec<(String, String, Option<String>, String, String)> = tx
        .prepare_cached(
            "SELECT mutation_id, kind, payload, state, created_at FROM outbox
             WHERE user_id = ?1 AND state IN ('queued', 'sent')
             ORDER BY sequence LIMIT ?2",
        )?
        .query_map(
            params![user_id, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut records = tx.prepare_cached(
        "SELECT local_date, source, steps, recorded_at FROM outbox_steps
         WHERE mutation_id = ?1 ORDER BY local_date, source",
    )?;
    let mut mutations = Vec::with_capacity(rows.len());
    let mut bytes = 0;
    let mut kinds = BTreeMap::new();
    for (id, kind_name, payload, state, created_at) in rows {
        let kind = MutationKind::parse(&kind_name)
            .ok_or_else(|| Error::invalid("outbox", "a queued mutation has an unknown kind"))?;
        let payload = match payload {
            Some(text) => text,
            None => {
                let reports = records
                    .query_map([&id], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, String>(3)?,
                        ))
                    })?
                    .map(|row| {
                        let (date, source, steps, recorded_at) = row?;
                        Ok(StepReport {
                            date: date.parse().map_err(|_| {
                                Error::invalid("outbox", "a queued date is unreadable")
                            })?,
                            source,
                            steps,
                            recorded_at: parse_time(&recorded_at)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                serde_json::to_string(&RecordStepsPayload { records: reports })?
            }
        };
        bytes += payload.len();
        if bytes > PUSH_BYTES && !mutations.is_empty() {
            break; // the rest goes in the next push
        }
        if state == "queued" {
            tx.prepare_cached(
                "UPDATE outbox SET payload = ?2, state = 'sent' WHERE mutation_id = ?1",
            )?
            .execute(params![id, payload])?;
            tx.prepare_cached("DELETE FROM outbox_steps WHERE mutation_id = ?1")?
                .execute([&id])?;
        }
        tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE mutation_id = ?1")?
            .execute([&id])?;
        let uuid: Uuid = id
            .parse()
            .map_err(|_| Error::invalid("outbox", "a queued id is unreadable"))?;
        kinds.insert(uuid, kind);
        mutations.push(Mutation {
            id: uuid,
            kind: kind_name,
            payload: serde_json::from_str(&payload)?,
            created_at: parse_time(&created_at)?,
        });
    }
    Ok(Some(PushBatch {
        request: PushRequest {
            device_id,
            mutations,
        },
        kinds,
    }))
}

/// What one push settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Mutations applied now.
    pub applied: u64,
    /// Mutations the server had applied before (a retried push).
    pub duplicates: u64,
    /// Refusals: (kind, code).
    pub rejected: Vec<(String, String)>,
    /// Parts of the app's data this changed.
    pub parts: Vec<Part>,
}

/// Applies a push's answer: applied and duplicate mutations are settled with the stored
/// outcome (their effect written into the cache), rejected ones leave the queue and are
/// recorded. A place_order stays as `applied` (its hold still counted) until a pulled wallet
/// includes it. Mutations the answer does not mention stay queued.
pub fn apply_push(
    tx: &Transaction<'_>,
    batch: &PushBatch,
    response: &PushResponse,
    now: DateTime<Utc>,
) -> Result<PushOutcome, Error> {
    let mut outcome = PushOutcome::default();
    let mut parts = std::collections::BTreeSet::new();
    for result in &response.results {
        let Some(kind) = batch.kinds.get(&result.id) else {
            continue;
        };
        let id = result.id.to_string();
        match result.status {
            MutationStatus::Applied => outcome.applied += 1,
            MutationStatus::Duplicate => outcome.duplicates += 1,
            MutationStatus::Rejected => {}
        }
        if result.outcome.status == MutationStatus::Rejected {
            let code = result
                .outcome
                .code
                .clone()
                .unwrap_or_else(|| "rejected".into());
            let message = result.outcome.message.clone().unwrap_or_default();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rejections
                     (mutation_id, user_id, kind, code, message, order_ref, rejected_at)
                 SELECT mutation_id, user_id, kind, ?2, ?3, order_ref, ?4 FROM outbox
                 WHERE mutation_id = ?1",
            )?
            .execute(params![id, code, message, timestamp(now)])?;
            tx.prepare_cached("DELETE FROM outbox WHERE mutation_id = ?1")?
                .execute([&id])?;
            outcome.rejected.push((kind.as_str().to_owned(), code));
            parts.insert(Part::Rejections);
            parts.extend(effect_parts(*kind));
            continue;
        }
        let result_body = result.outcome.result.as_ref();
        match kind {
            MutationKind::PlaceOrder | MutationKind::CancelOrder => {
                if let Some(body) = result_body
                    && let Ok(order) =
                        serde_json::from_value::<fitkart_protocol::orders::Order>(body.clone())
                {
                    cache::upsert_orders(tx, std::slice::from_ref(&order))?;
                }
            }
            MutationKind::UpdateProfile => {
                if let Some(body) = result_body
                    && let Ok(profile) =
                        serde_json::from_value::<fitkart_protocol::auth::UserProfile>(body.clone())
                {
                    cache::upsert_profile(tx, &profile)?;
                }
            }
            MutationKind::RecordSteps => {}
        }
        if *kind == MutationKind::PlaceOrder {
            tx.prepare_cached("UPDATE outbox SET state = 'applied' WHERE mutation_id = ?1")?
                .execute([&id])?;
        } else {
            tx.prepare_cached("DELETE FROM outbox WHERE mutation_id = ?1")?
                .execute([&id])?;
        }
        parts.extend(effect_parts(*kind));
    }
    outcome.parts = parts.into_iter().collect();
    Ok(outcome)
}

/// The parts of the app's data a mutation of `kind` touches.
fn effect_parts(kind: MutationKind) -> Vec<Part> {
    match kind {
        MutationKind::RecordSteps => vec![Part::Steps, Part::Wallet],
        MutationKind::PlaceOrder | MutationKind::CancelOrder => vec![Part::Orders, Part::Wallet],
        MutationKind::UpdateProfile => vec![Part::Profile],
    }
}

/// Records a failed exchange on the mutations of a push (for diagnostics).
pub fn note_push_failure(tx: &Transaction<'_>, batch: &PushBatch, code: &str) -> Result<(), Error> {
    let mut stmt =
        tx.prepare_cached("UPDATE outbox SET last_error_code = ?2 WHERE mutation_id = ?1")?;
    for id in batch.kinds.keys() {
        stmt.execute(params![id.to_string(), code])?;
    }
    Ok(())
}

/// The cursor the next pull sends (None: a snapshot).
pub fn pull_cursor(conn: &rusqlite::Connection) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached("SELECT pull_cursor FROM sync_state")?
        .query_row([], |row| row.get(0))?)
}

/// What pulls applied, per kind of row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullCounts {
    /// Pages applied.
    pub pages: u64,
    /// Rows by kind (`coin_transactions`, `orders`, ...).
    pub rows: BTreeMap<String, u64>,
}

impl PullCounts {
    /// Adds another count.
    pub fn add(&mut self, other: &PullCounts) {
        self.pages += other.pages;
        for (kind, count) in &other.rows {
            *self.rows.entry(kind.clone()).or_default() += count;
        }
    }

    /// All rows.
    pub fn total(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// Applies one pulled page and its cursor in one transaction. A pending cache reset (after
/// an unservable cursor) empties the cache first, in the same transaction, so the app never
/// sees a half-replaced cache. The last page (`has_more` false) settles applied orders (the
/// pulled wallet includes their holds) and marks the device as synced.
pub fn apply_pull(
    tx: &Transaction<'_>,
    user_id: &str,
    page: &PullResponse,
    now: DateTime<Utc>,
) -> Result<(PullCounts, Vec<Part>), Error> {
    let reset: bool = tx
        .prepare_cached("SELECT reset_cache FROM sync_state")?
        .query_row([], |row| row.get(0))?;
    if reset {
        cache::clear(tx)?;
    }
    let (rows, mut parts) = cache::apply_changes(tx, &page.changes)?;
    if page.changes.wallet.is_some() || !page.has_more {
        let settled = tx
            .prepare_cached("DELETE FROM outbox WHERE user_id = ?1 AND state = 'applied'")?
            .execute([user_id])?;
        if settled > 0 {
            parts.push(Part::Wallet);
            parts.push(Part::Orders);
        }
    }
    tx.prepare_cached(
        "UPDATE sync_state SET pull_cursor = ?1, reset_cache = 0,
             has_synced = CASE WHEN ?2 THEN 1 ELSE has_synced END,
             last_synced_at = CASE WHEN ?2 THEN ?3 ELSE last_synced_at END,
             last_error_code = NULL",
    )?
    .execute(params![page.next_cursor, !page.has_more, timestamp(now)])?;
    if reset {
        parts.extend(Part::ALL_DATA);
    }
    parts.sort();
    parts.dedup();
    Ok((PullCounts { pages: 1, rows }, parts))
}

/// After the server refused the cursor (`invalid_cursor`, `cursor_expired`): the next pull
/// fetches a snapshot, which replaces the cache when its first page commits. The outbox is
/// not touched.
pub fn restart_from_snapshot(tx: &Transaction<'_>) -> Result<(), Error> {
    tx.execute(
        "UPDATE sync_state SET pull_cursor = NULL, reset_cache = 1",
        [],
    )?;
    Ok(())
}

/// Parses a stored RFC 3339 timestamp.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::invalid("timestamp", "a stored timestamp is unreadable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, 1.0, None), Duration::from_millis(250));
        assert_eq!(policy.delay(3, 1.0, None), Duration::from_secs(2));
        assert_eq!(policy.delay(20, 1.0, None), policy.max_delay);
        assert_eq!(policy.delay(3, 0.0, None), Duration::ZERO);
        assert_eq!(policy.delay(3, 0.5, None), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(0, 0.0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(0, 0.0, Some(Duration::from_secs(3600))),
            policy.max_retry_after
        );
    }

    use fitkart_protocol::steps::Wallet;
    use fitkart_protocol::sync::{Changes, MutationResult, StoredOutcome};

    use crate::Store;

    const USER: &str = "00000000-0000-7000-8000-000000000001";

    fn signed_in_store() -> Store {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| -> Result<(), Error> {
                tx.execute("INSERT INTO sync_state (user_id) VALUES (?1)", [USER])?;
                tx.execute(
                    "INSERT INTO products (id, name, category, coin_price, is_active, body)
                     VALUES ('00000000-0000-7000-8000-0000000000aa', 'Bottle', 'gear', 50, 1, '{}')",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        store
    }

    fn queue_steps_and_order(store: &Store) {
        let report = StepReport {
            date: "2025-03-01".parse().unwrap(),
            source: "healthkit".into(),
            steps: 6000,
            recorded_at: "2025-03-01T20:00:00Z".parse().unwrap(),
        };
        store
            .write(|tx| crate::outbox::record_steps(tx, USER, Utc::now(), &[report]))
            .unwrap();
        let line = fitkart_protocol::orders::OrderLine {
            product_id: "00000000-0000-7000-8000-0000000000aa".parse().unwrap(),
            quantity: 1,
        };
        let address = fitkart_protocol::orders::ShippingAddress {
            name: "Ann".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            region: None,
            postal_code: "12345".into(),
            country: "US".into(),
            phone: None,
        };
        store
            .write(|tx| crate::outbox::place_order(tx, USER, Utc::now(), &[line], &address))
            .unwrap();
    }

    fn take(store: &Store) -> PushBatch {
        store
            .write(|tx| take_push_batch(tx, USER, Uuid::now_v7(), PUSH_BATCH))
            .unwrap()
            .unwrap()
    }

    fn outcome(status: MutationStatus, code: Option<&str>) -> StoredOutcome {
        StoredOutcome {
            status,
            code: code.map(Into::into),
            message: code.map(|c| format!("refused: {c}")),
            result: None,
        }
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store
            .read(|conn| -> Result<i64, Error> { Ok(conn.query_row(sql, [], |row| row.get(0))?) })
            .unwrap()
    }

    #[test]
    fn a_retried_push_sends_the_same_mutations_byte_for_byte() {
        let store = signed_in_store();
        queue_steps_and_order(&store);

        let first = take(&store);
        let second = take(&store);

        assert_eq!(first.request.mutations, second.request.mutations);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox_steps"), 0);
        assert_eq!(count(&store, "SELECT min(attempts) FROM outbox"), 2);
    }

    #[test]
    fn applied_and_duplicate_settle_rejected_leaves_and_is_recorded() {
        let store = signed_in_store();
        queue_steps_and_order(&store);
        let batch = take(&store);
        let ids: Vec<Uuid> = batch.request.mutations.iter().map(|m| m.id).collect();
        let response = PushResponse {
            results: vec![
                MutationResult {
                    id: ids[0],
                    status: MutationStatus::Duplicate,
                    outcome: outcome(MutationStatus::Applied, None),
                },
                MutationResult {
                    id: ids[1],
                    status: MutationStatus::Rejected,
                    outcome: outcome(MutationStatus::Rejected, Some("insufficient_coins")),
                },
            ],
        };

        let settled = store
            .write(|tx| apply_push(tx, &batch, &response, Utc::now()))
            .unwrap();

        assert_eq!(settled.duplicates, 1);
        assert_eq!(
            settled.rejected,
            [("place_order".to_owned(), "insufficient_coins".to_owned())]
        );
        assert_eq!(count(&store, "SELECT count(*) FROM outbox"), 0);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM rejections WHERE code = 'insufficient_coins'"
            ),
            1
        );
        assert_eq!(
            store
                .read(|c| crate::outbox::pending_holds(c, USER))
                .unwrap(),
            0,
            "a refused order holds nothing"
        );
    }

    #[test]
    fn an_applied_order_keeps_its_hold_until_a_pulled_wallet_includes_it() {
        let store = signed_in_store();
        queue_steps_and_order(&store);
        let batch = take(&store);
        let response = PushResponse {
            results: batch
                .request
                .mutations
                .iter()
                .map(|m| MutationResult {
                    id: m.id,
                    status: MutationStatus::Applied,
                    outcome: outcome(MutationStatus::Applied, None),
                })
                .collect(),
        };
        store
            .write(|tx| apply_push(tx, &batch, &response, Utc::now()))
            .unwrap();
        assert_eq!(
            store
                .read(|c| crate::outbox::pending_holds(c, USER))
                .unwrap(),
            50
        );
        assert_eq!(
            store
                .read(|c| crate::outbox::pending_count(c, USER))
                .unwrap(),
            0
        );

        let page = PullResponse {
            changes: Changes {
                wallet: Some(Wallet {
                    available_coins: 10,
                    frozen_coins: 50,
                    lifetime_earned: 60,
                    lifetime_spent: 0,
                }),
                ..Changes::default()
            },
            next_cursor: "cursor-1".into(),
            has_more: false,
        };
        let (counts, parts) = store
            .write(|tx| apply_pull(tx, USER, &page, Utc::now()))
            .unwrap();

        assert_eq!(counts.rows.get("wallet"), Some(&1));
        assert!(parts.contains(&Part::Wallet));
        assert_eq!(
            store
                .read(|c| crate::outbox::pending_holds(c, USER))
                .unwrap(),
            0
        );
        assert_eq!(count(&store, "SELECT count(*) FROM outbox"), 0);
        assert_eq!(
            store.read(pull_cursor).unwrap().as_deref(),
            Some("cursor-1")
        );
        assert_eq!(count(&store, "SELECT has_synced FROM sync_state"), 1);
    }

    #[test]
    fn a_refetched_snapshot_replaces_the_cache_in_one_commit_and_keeps_the_outbox() {
        let store = signed_in_store();
        queue_steps_and_order(&store);
        store.write(restart_from_snapshot).unwrap();
        assert_eq!(store.read(pull_cursor).unwrap(), None);
        assert_eq!(
            count(&store, "SELECT count(*) FROM products"),
            1,
            "kept until the page"
        );

        let page = PullResponse {
            changes: Changes::default(),
            next_cursor: "fresh".into(),
            has_more: true,
        };
        store
            .write(|tx| apply_pull(tx, USER, &page, Utc::now()))
            .unwrap();

        assert_eq!(count(&store, "SELECT count(*) FROM products"), 0);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox"), 2);
        assert_eq!(count(&store, "SELECT reset_cache FROM sync_state"), 0);
    }

    #[test]
    fn a_long_backfill_is_pushed_in_pushes_that_fit_the_servers_body_limit() {
        let store = signed_in_store();
        let reports: Vec<StepReport> = (0..40_000)
            .map(|i| StepReport {
                date: "2025-03-01".parse().unwrap(),
                source: format!("sensor-{i}"),
                steps: 1000 + i,
                recorded_at: "2025-03-01T20:00:00Z".parse().unwrap(),
            })
            .collect();
        store
            .write(|tx| crate::outbox::record_steps(tx, USER, Utc::now(), &reports))
            .unwrap();

        let first = take(&store);
        let body = serde_json::to_vec(&first.request).unwrap();

        assert!(
            first.request.mutations.len() < 40,
            "{}",
            first.request.mutations.len()
        );
        assert!(body.len() < 4 * 1024 * 1024, "{} bytes", body.len());
        let second = take(&store);
        let ids = |b: &PushBatch| b.request.mutations.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&second)[..],
            ids(&first)[..],
            "unanswered mutations are re-sent first"
        );
    }
}

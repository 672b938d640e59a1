//! The sync protocol on the server. Push applies each offline mutation at most once: its
//! outcome is stored in `sync_mutations` in the same transaction as its effect, and a repeated
//! id is answered with the stored outcome. Pull returns every change after a cursor, read in
//! one snapshot, by per-user (and shared) change versions taken under row locks, so a cursor
//! never skips a change that commits late (docs/adr/0001-per-user-change-versions.md).

pub mod cursor;
pub mod versions;

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use fitkart_protocol::auth::ProfilePatch;
use fitkart_protocol::orders::{OrderStatusRequest, PlaceOrderRequest};
use fitkart_protocol::steps::{CoinTransaction, RecordStepsResponse, StepReport};
use fitkart_protocol::sync::{
    CancelOrderPayload, Changes, DeviceRegistration, MAX_MUTATIONS_PER_PUSH, MAX_PULL_LIMIT,
    Mutation, MutationKind, MutationResult, MutationStatus, PullResponse, PushResponse,
    RecordStepsPayload, StoredOutcome, SyncAchievement, SyncSetting, SyncStepRecord, SyncUnlock,
};
use fitkart_protocol::validate::Validate;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::auth::accounts::{ClientInfo, update_profile_in};
use crate::db::CachedStatements as _;
use crate::error::ApiError;
use crate::rewards::steps::record_steps_in;
use crate::shop::orders::{self, Actor};

/// Registers (or refreshes) a device of the caller. A device id belongs to one user.
pub async fn register_device(
    client: &impl GenericClient,
    user_id: Uuid,
    device: &DeviceRegistration,
) -> Result<(), ApiError> {
    if !matches!(device.platform.as_str(), "ios" | "android" | "other") {
        return Err(ApiError::validation(
            "platform",
            "platform must be ios, android or other",
        ));
    }
    for (field, value) in [
        ("os_version", &device.os_version),
        ("app_version", &device.app_version),
        ("model", &device.model),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > if field == "model" { 128 } else { 64 })
        {
            return Err(ApiError::validation(field, format!("{field} is too long")));
        }
    }
    let claimed = client
        .query_opt_cached(
            "INSERT INTO devices (id, user_id, platform, os_version, app_version, model)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET platform = EXCLUDED.platform,
                 os_version = EXCLUDED.os_version, app_version = EXCLUDED.app_version,
                 model = EXCLUDED.model, last_seen_at = now()
             WHERE devices.user_id = EXCLUDED.user_id
             RETURNING id",
            &[
                &device.device_id,
                &user_id,
                &device.platform,
                &device.os_version,
                &device.app_version,
                &device.model,
            ],
        )
        .await?;
    claimed.map(|_| ()).ok_or_else(device_taken)
}

fn device_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "device_taken",
        "this device id belongs to another account",
    )
}

/// Marks the device as seen (registering it as `other` on first use).
async fn touch_device(
    client: &impl GenericClient,
    user_id: Uuid,
    device_id: Uuid,
) -> Result<(), ApiError> {
    client
        .query_opt_cached(
            "INSERT INTO devices (id, user_id, platform) VALUES ($1, $2, 'other')
             ON CONFLICT (id) DO UPDATE SET last_seen_at = now()
             WHERE devices.user_id = EXCLUDED.user_id
             RETURNING id",
            &[&device_id, &user_id],
        )
        .await?
        .map(|_| ())
        .ok_or_else(device_taken)
}

/// The digest that tells a repeated mutation from a different one under the same id.
fn payload_hash(kind: &str, payload: &serde_json::Value) -> Vec<u8> {
    // serde_json's maps are sorted, so this serialisation is canonical.
    let canonical = serde_json::to_vec(&(kind, payload)).unwrap_or_default();
    Sha256::digest(&canonical).to_vec()
}

fn rejected(code: &str, message: impl Into<String>) -> StoredOutcome {
    StoredOutcome {
        status: MutationStatus::Rejected,
        code: Some(code.to_owned()),
        message: Some(message.into()),
        result: None,
    }
}

fn applied(result: serde_json::Value) -> StoredOutcome {
    StoredOutcome {
        status: MutationStatus::Applied,
        code: None,
        message: None,
        result: Some(result),
    }
}

/// A 4xx from a domain function becomes a stored rejection; anything else aborts the push.
fn outcome_of(result: Result<serde_json::Value, ApiError>) -> Result<StoredOutcome, ApiError> {
    match result {
        Ok(value) => Ok(applied(value)),
        Err(err) if err.status().is_client_error() => Ok(StoredOutcome {
            status: MutationStatus::Rejected,
            code: Some(err.code().to_owned()),
            message: Some(err.message().to_owned()),
            result: err.details().cloned(),
        }),
        Err(err) => Err(err),
    }
}

/// Runs `work` inside a savepoint: rolled back when it fails, so a rejected mutation leaves
/// no trace and never blocks the ones after it.
async fn in_savepoint<T>(
    tx: &impl GenericClient,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<Result<T, ApiError>, ApiError> {
    tx.batch_execute("SAVEPOINT mutation").await?;
    let result = work.await;
    match &result {
        Ok(_) => tx.batch_execute("RELEASE SAVEPOINT mutation").await?,
        Err(_) => tx.batch_execute("ROLLBACK TO SAVEPOINT mutation").await?,
    }
    Ok(result)
}

enum Parsed {
    Steps(Vec<StepReport>),
    Order(PlaceOrderRequest),
    Cancel(CancelOrderPayload),
    Profile(ProfilePatch),
}

fn parse(mutation: &Mutation) -> Result<(MutationKind, Parsed), StoredOutcome> {
    let kind = MutationKind::parse(&mutation.kind).ok_or_else(|| {
        rejected(
            "unknown_kind",
            format!("unknown mutation kind `{}`", mutation.kind),
        )
    })?;
    let invalid = |e: serde_json::Error| rejected("invalid_payload", e.to_string());
    let invalid_field =
        |e: fitkart_protocol::validate::Invalid| rejected("validation_failed", e.to_string());
    let body = match kind {
        MutationKind::RecordSteps => {
            let payload: RecordStepsPayload =
                serde_json::from_value(mutation.payload.clone()).map_err(invalid)?;
            if payload.records.is_empty()
                || payload.records.len() > fitkart_protocol::steps::MAX_RECORDS_PER_REQUEST
            {
                return Err(rejected("validation_failed", "send 1 to 1000 records"));
            }
            payload.validate().map_err(invalid_field)?;
            Parsed::Steps(payload.records)
        }
        MutationKind::PlaceOrder => {
            let request: PlaceOrderRequest =
                serde_json::from_value(mutation.payload.clone()).map_err(invalid)?;
            request.validate().map_err(invalid_field)?;
            Parsed::Order(request)
        }
        MutationKind::CancelOrder => {
            let payload: CancelOrderPayload =
                serde_json::from_value(mutation.payload.clone()).map_err(invalid)?;
            if payload.order_id.is_none() == payload.client_order_id.is_none() {
                return Err(rejected(
                    "validation_failed",
                    "name the order by exactly one of order_id and client_order_id",
                ));
            }
            Parsed::Cancel(payload)
        }
        MutationKind::UpdateProfile => {
            let patch: ProfilePatch =
                serde_json::from_value(mutation.payload.clone()).map_err(invalid)?;
            patch.validate().map_err(invalid_field)?;
            Parsed::Profile(patch)
        }
    };
    Ok((kind, body))
}

/// The rejection code of a mutation created longer ago than the replay window that the
/// server has no stored outcome for: it may have been applied and its outcome pruned, so it
/// is never applied (see [`crate::retention::replay_cutoff`]).
pub const MUTATION_EXPIRED: &str = "mutation_expired";

/// Applies a push: every mutation at most once, in order, in one transaction. A mutation
/// created before the `replay_window` whose outcome is not stored is rejected
/// [`MUTATION_EXPIRED`].
pub async fn push(
    pool: &Pool,
    user_id: Uuid,
    device_id: Uuid,
    mutations: &[Mutation],
    replay_window: std::time::Duration,
    client: &ClientInfo,
) -> Result<PushResponse, ApiError> {
    if mutations.is_empty() || mutations.len() > MAX_MUTATIONS_PER_PUSH {
        return Err(ApiError::validation(
            "mutations",
            format!("send 1 to {MAX_MUTATIONS_PER_PUSH} mutations"),
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    touch_device(&tx, user_id, device_id).await?;
    // The user's lock for the whole push: pushes of one user (from any device) go one by one.
    versions::next_user_version(&tx, user_id).await?;

    let ids: Vec<Uuid> = mutations.iter().map(|m| m.id).collect();
    // Outcomes stored by earlier pushes.
    let mut earlier: HashMap<Uuid, (Vec<u8>, StoredOutcome)> = HashMap::new();
    for row in tx
        .query_cached(
            "SELECT mutation_id, payload_hash, result FROM sync_mutations
             WHERE user_id = $1 AND mutation_id = ANY($2)",
            &[&user_id, &ids],
        )
        .await?
    {
        let id: Uuid = row.get(0);
        let stored = serde_json::from_value::<StoredOutcome>(row.get(2)).unwrap_or_else(|err| {
            // A row no longer readable (stored by an older build) must not wedge the device
            // that keeps resending it: answer it as settled, with a code that says why.
            tracing::error!(mutation_id = %id, error = %err, "unreadable stored sync outcome");
            rejected(
                "outcome_unavailable",
                "this mutation was processed before, but its result can no longer be shown; pull to see the current state",
            )
        });
        earlier.insert(id, (row.get(1), stored));
    }

    let replay_cutoff = crate::retention::replay_cutoff(Utc::now(), replay_window);
    let mut push = PushState {
        results: vec![None; mutations.len()],
        first_seen: HashMap::new(),
        to_store: Vec::new(),
        step_group: Vec::new(),
    };
    for (index, mutation) in mutations.iter().enumerate() {
        let hash = payload_hash(&mutation.kind, &mutation.payload);
        let conflict = || MutationResult {
            id: mutation.id,
            status: MutationStatus::Rejected,
            outcome: rejected(
                "mutation_conflict",
                "this mutation id was already used with a different body",
            ),
        };
        if let Some((stored_hash, stored)) = earlier.get(&mutation.id) {
            push.results[index] = Some(if *stored_hash == hash {
                MutationResult {
                    id: mutation.id,
                    status: MutationStatus::Duplicate,
                    outcome: stored.clone(),
                }
            } else {
                conflict()
            });
            continue;
        }
        if let Some((first_hash, _)) = push.first_seen.get(&mutation.id) {
            // A second copy in this push: a duplicate of the first, answered at the end.
            if *first_hash != hash {
                push.results[index] = Some(conflict());
            }
            continue;
        }
        push.first_seen.insert(mutation.id, (hash.clone(), None));
        if let Err(invalid) = mutation.validate() {
            // Not stored: its kind or time cannot be, and it can never apply.
            push.settle(
                index,
                mutation.id,
                None,
                hash,
                rejected("validation_failed", invalid.to_string()),
            );
            continue;
        }
        if mutation.created_at < replay_cutoff {
            // Stored like any rejection, so a replay within the window is a `duplicate`.
            push.settle(
                index,
                mutation.id,
                MutationKind::parse(&mutation.kind),
                hash,
                rejected(
                    MUTATION_EXPIRED,
                    "this change was queued longer ago than the server's replay window and cannot be applied any more; pull to see the current state",
                ),
            );
            continue;
        }
        let (kind, body) = match parse(mutation) {
            Ok(parsed) => parsed,
            Err(outcome) => {
                push.settle(
                    index,
                    mutation.id,
                    MutationKind::parse(&mutation.kind),
                    hash,
                    outcome,
                );
                continue;
            }
        };
        if let Parsed::Steps(records) = body {
            let pending: usize = push.step_group.iter().map(|(_, _, r)| r.len()).sum();
            if pending + records.len() > fitkart_protocol::steps::MAX_RECORDS_PER_REQUEST {
                flush_steps(&tx, user_id, &mut push, mutations).await?;
            }
            push.step_group.push((index, hash, records));
            continue;
        }
        // Anything else must see the steps queued before it.
        flush_steps(&tx, user_id, &mut push, mutations).await?;
        let outcome = match body {
            Parsed::Order(request) => outcome_of(
                in_savepoint(&tx, async {
                    let (order, _) = orders::place_in(&tx, user_id, &request).await?;
                    serde_json::to_value(order).map_err(ApiError::internal_because)
                })
                .await?,
            )?,
            Parsed::Cancel(payload) => outcome_of(
                in_savepoint(&tx, async {
                    let order_id = match (payload.order_id, payload.client_order_id) {
                        (Some(id), _) => id,
                        (None, Some(client_id)) => tx
                            .query_opt_cached(
                                "SELECT id FROM orders WHERE user_id = $1 AND client_order_id = $2",
                                &[&user_id, &client_id],
                            )
                            .await?
                            .map(|r| r.get(0))
                            .ok_or_else(|| ApiError::not_found("no such order"))?,
                        (None, None) => return Err(ApiError::not_found("no such order")),
                    };
                    let request = OrderStatusRequest {
                        status: "cancelled".into(),
                        tracking_number: None,
                        reason: Some("cancelled by the customer".into()),
                    };
                    let order = orders::transition_in(
                        &tx,
                        Actor::Owner(user_id),
                        order_id,
                        &request,
                        client,
                    )
                    .await?;
                    serde_json::to_value(order).map_err(ApiError::internal_because)
                })
                .await?,
            )?,
            Parsed::Profile(patch) => outcome_of(
                in_savepoint(&tx, async {
                    let profile = update_profile_in(&tx, user_id, &patch).await?;
                    serde_json::to_value(profile).map_err(ApiError::internal_because)
                })
                .await?,
            )?,
            Parsed::Steps(_) => {
                return Err(ApiError::internal_because(
                    "a step mutation reached the single-mutation path",
                ));
            }
        };
        push.settle(index, mutation.id, Some(kind), hash, outcome);
    }
    flush_steps(&tx, user_id, &mut push, mutations).await?;

    // Later copies of an id in this push repeat its first copy's outcome.
    let mut results = Vec::with_capacity(mutations.len());
    for (index, mutation) in mutations.iter().enumerate() {
        let result = match push.results[index].take() {
            Some(result) => result,
            None => MutationResult {
                id: mutation.id,
                status: MutationStatus::Duplicate,
                outcome: push
                    .first_seen
                    .get(&mutation.id)
                    .and_then(|(_, outcome)| outcome.clone())
                    .ok_or_else(|| {
                        ApiError::internal_because("a repeated mutation has no first outcome")
                    })?,
            },
        };
        results.push(result);
    }
    store_outcomes(&tx, user_id, device_id, mutations, &push.to_store).await?;
    tx.commit().await?;
    Ok(PushResponse { results })
}

/// What a push has decided so far.
struct PushState {
    results: Vec<Option<MutationResult>>,
    /// First copy of each new id in this push: its hash and, once decided, its outcome.
    first_seen: HashMap<Uuid, (Vec<u8>, Option<StoredOutcome>)>,
    /// Outcomes to store: (index, kind, hash, outcome).
    to_store: Vec<(usize, MutationKind, Vec<u8>, StoredOutcome)>,
    /// Step mutations waiting to be applied together: (index, hash, records).
    step_group: Vec<(usize, Vec<u8>, Vec<StepReport>)>,
}

impl PushState {
    /// Records the outcome of the first copy of a mutation. Mutations of an unknown kind are
    /// answered but not stored (there is nothing to apply, now or ever).
    fn settle(
        &mut self,
        index: usize,
        id: Uuid,
        kind: Option<MutationKind>,
        hash: Vec<u8>,
        mut outcome: StoredOutcome,
    ) {
        // What is answered is what is stored, and `jsonb` holds no NUL.
        if let Some(message) = &mut outcome.message {
            *message = message.replace('\0', "\u{fffd}");
        }
        if let Some(result) = &mut outcome.result {
            strip_nul(result);
        }
        if let Some((_, slot)) = self.first_seen.get_mut(&id) {
            *slot = Some(outcome.clone());
        }
        if let Some(kind) = kind {
            self.to_store.push((index, kind, hash, outcome.clone()));
        }
        self.results[index] = Some(MutationResult {
            id,
            status: outcome.status,
            outcome,
        });
    }
}

/// Applies the queued step mutations with one set-based call and splits its results back.
async fn flush_steps(
    tx: &Transaction<'_>,
    user_id: Uuid,
    push: &mut PushState,
    mutations: &[Mutation],
) -> Result<(), ApiError> {
    if push.step_group.is_empty() {
        return Ok(());
    }
    let group = std::mem::take(&mut push.step_group);
    let all: Vec<StepReport> = group
        .iter()
        .flat_map(|(_, _, r)| r.iter().cloned())
        .collect();
    let response = in_savepoint(tx, record_steps_in(tx, user_id, &all)).await?;
    let mut offset = 0;
    let last = group.len() - 1;
    for (position, (index, hash, records)) in group.into_iter().enumerate() {
        let outcome = match &response {
            Ok(response) => {
                let mut own: Vec<_> = response.results[offset..offset + records.len()].to_vec();
                for (i, result) in own.iter_mut().enumerate() {
                    result.index = i;
                }
                // Achievement bonuses the group earned count on its last mutation.
                let bonuses = if position == last {
                    response.coins_awarded
                        - response
                            .results
                            .iter()
                            .map(|r| r.coins_awarded)
                            .sum::<i64>()
                } else {
                    0
                };
                let part = RecordStepsResponse {
                    coins_awarded: own.iter().map(|r| r.coins_awarded).sum::<i64>() + bonuses,
                    // Achievements the group unlocked are reported on its last mutation.
                    achievements_unlocked: if position == last {
                        response.achievements_unlocked.clone()
                    } else {
                        Vec::new()
                    },
                    results: own,
                };
                applied(serde_json::to_value(part).map_err(ApiError::internal_because)?)
            }
            Err(err) if err.status().is_client_error() => rejected(err.code(), err.message()),
            Err(err) => {
                tracing::error!(code = err.code(), "recording the steps of a push failed");
                return Err(ApiError::internal());
            }
        };
        offset += records.len();
        push.settle(
            index,
            mutations[index].id,
            Some(MutationKind::RecordSteps),
            hash,
            outcome,
        );
    }
    Ok(())
}

/// An outcome as `sync_mutations.result` stores it: a JSON object PostgreSQL's `jsonb`
/// accepts (`\u0000` is not, so a NUL in a message or result becomes U+FFFD).
fn storable_outcome(outcome: &StoredOutcome) -> Result<serde_json::Value, ApiError> {
    let mut value = serde_json::to_value(outcome).map_err(ApiError::internal_because)?;
    if !value.is_object() {
        return Err(ApiError::internal_because(
            "a mutation outcome did not serialise to a JSON object",
        ));
    }
    strip_nul(&mut value);
    Ok(value)
}

/// Replaces every NUL in the strings (and keys) of `value` with U+FFFD.
pub fn strip_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains('\0') => {
            *text = text.replace('\0', "\u{fffd}");
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nul),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    strip_nul(&mut item);
                    map.insert(key.replace('\0', "\u{fffd}"), item);
                }
            } else {
                map.values_mut().for_each(strip_nul);
            }
        }
        _ => {}
    }
}

/// Stores the outcome of every mutation seen for the first time (one statement).
async fn store_outcomes(
    tx: &impl GenericClient,
    user_id: Uuid,
    device_id: Uuid,
    mutations: &[Mutation],
    stored: &[(usize, MutationKind, Vec<u8>, StoredOutcome)],
) -> Result<(), ApiError> {
    if stored.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = stored.iter().map(|(i, ..)| mutations[*i].id).collect();
    let kinds: Vec<&str> = stored.iter().map(|(_, k, ..)| k.as_str()).collect();
    let hashes: Vec<&[u8]> = stored.iter().map(|(_, _, h, _)| h.as_slice()).collect();
    let outcomes: Vec<&str> = stored
        .iter()
        .map(|(.., o)| {
            if o.status == MutationStatus::Applied {
                "applied"
            } else {
                "rejected"
            }
        })
        .collect();
    // Serialised before anything is stored: an outcome that cannot be stored fails the whole
    // push (nothing commits, the device retries) instead of storing a result no replay can read.
    let results = stored
        .iter()
        .map(|(.., o)| storable_outcome(o))
        .collect::<Result<Vec<_>, _>>()?;
    let created: Vec<DateTime<Utc>> = stored
        .iter()
        .map(|(i, ..)| mutations[*i].created_at)
        .collect();
    tx.execute_cached(
        "INSERT INTO sync_mutations
             (user_id, mutation_id, device_id, kind, payload_hash, outcome, result, client_created_at)
         SELECT $1, m.id, $2, m.kind, m.hash, m.outcome, m.result, m.created
         FROM unnest($3::uuid[], $4::text[], $5::bytea[], $6::text[], $7::jsonb[], $8::timestamptz[])
              AS m(id, kind, hash, outcome, result, created)
         ON CONFLICT (user_id, mutation_id) DO NOTHING",
        &[&user_id, &device_id, &ids, &kinds, &hashes, &outcomes, &results, &created],
    )
    .await?;
    Ok(())
}

/// A position in the change stream of one user: the user's and the shared versions already
/// delivered. Opaque to devices; bound to the user it was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The user it belongs to.
    pub user_id: Uuid,
    /// The user's change version delivered (-1: nothing yet).
    pub user_version: i64,
    /// The shared catalogue version delivered (-1: nothing yet).
    pub shared_version: i64,
}

impl Cursor {
    /// The start of the stream: a full snapshot.
    pub fn start(user_id: Uuid) -> Self {
        Self {
            user_id,
            user_version: -1,
            shared_version: -1,
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        crate::sync::cursor::encode(
            TAG,
            &[&self.user_id, &self.user_version, &self.shared_version],
        )
    }

    /// Parses a cursor given to `user_id`; anything else is 400 `invalid_cursor`.
    pub fn decode(text: &str, user_id: Uuid) -> Result<Self, ApiError> {
        let [user, user_version, shared_version] =
            crate::sync::cursor::decode::<String, 3>(text, TAG)?;
        let cursor = Self {
            user_id: user.parse().map_err(|_| crate::sync::cursor::invalid())?,
            user_version: user_version
                .parse()
                .map_err(|_| crate::sync::cursor::invalid())?,
            shared_version: shared_version
                .parse()
                .map_err(|_| crate::sync::cursor::invalid())?,
        };
        if cursor.user_id != user_id || cursor.user_version < -1 || cursor.shared_version < -1 {
            return Err(crate::sync::cursor::invalid());
        }
        Ok(cursor)
    }
}

/// The tag of sync pull cursors (format version 1).
const TAG: &str = "c1";

/// The user-owned tables pull reads, as `SELECT change_version` sources.
const USER_VERSION_SOURCES: &str = "
    SELECT change_version AS v FROM users WHERE id = $1
    UNION ALL SELECT change_version FROM wallets WHERE user_id = $1
    UNION ALL SELECT change_version FROM coin_transactions WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
    UNION ALL SELECT change_version FROM step_records WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
    UNION ALL SELECT change_version FROM user_achievements WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
    UNION ALL SELECT change_version FROM orders WHERE user_id = $1 AND change_version > $2 AND change_version <= $3";

const SHARED_VERSION_SOURCES: &str = "
    SELECT change_version AS v FROM reward_products WHERE change_version > $1 AND change_version <= $2
    UNION ALL SELECT change_version FROM achievements WHERE change_version > $1 AND change_version <= $2
    UNION ALL SELECT change_version FROM settings WHERE is_public AND change_version > $1 AND change_version <= $2";

/// The highest version `v` in `(after, ..]` such that the rows of versions up to `v` fit in
/// `budget` (at least one version, so a page always moves on). `counts` are (version, rows)
/// sorted by version.
fn cutoff(counts: &[(i64, i64)], budget: i64) -> Option<(i64, i64)> {
    let mut used = 0;
    let mut last = None;
    for &(version, rows) in counts {
        if last.is_some() && used + rows > budget {
            break;
        }
        used += rows;
        last = Some((version, used));
    }
    last
}

/// Every change after `cursor`, in one snapshot, paged by whole versions (a version is never
/// split across pages). `limit` is the target number of changed rows per page. `conn` may be
/// a read replica's that has caught up with the user (see [`crate::replica`]).
pub async fn pull(
    conn: &mut deadpool_postgres::Client,
    cursor: Cursor,
    limit: i64,
) -> Result<PullResponse, ApiError> {
    if !(1..=MAX_PULL_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("limit must be between 1 and {MAX_PULL_LIMIT}"),
        ));
    }
    let user_id = cursor.user_id;
    let tx = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // Versions commit in order under their row locks, so everything up to the committed
    // versions read here is complete in this snapshot.
    let (user_now, shared_now) = versions::committed(&tx, user_id).await?;
    if cursor.user_version > user_now || cursor.shared_version > shared_now {
        return Err(ApiError::new(
            StatusCode::GONE,
            "cursor_expired",
            "the server can no longer serve this cursor; pull a fresh snapshot (no cursor)",
        ));
    }

    let user_counts: Vec<(i64, i64)> = tx
        .query_cached(
            &format!(
                "SELECT v, count(*) FROM ({USER_VERSION_SOURCES}) s
                 WHERE v > $2 AND v <= $3 GROUP BY v ORDER BY v"
            ),
            &[&user_id, &cursor.user_version, &user_now],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The user's changes first; a version past the last one with rows has nothing to send.
    let (user_to, used, user_more) = match cutoff(&user_counts, limit) {
        Some((version, used)) => {
            let last = user_counts.last().map_or(version, |(v, _)| *v);
            if version == last {
                (user_now, used, false)
            } else {
                (version, used, true)
            }
        }
        None => (user_now, 0, false),
    };
    // Then the shared catalogue, in the room the page has left.
    let shared_to = if user_more || (used >= limit && used > 0) {
        cursor.shared_version
    } else {
        let shared_counts: Vec<(i64, i64)> = tx
            .query_cached(
                &format!(
                    "SELECT v, count(*) FROM ({SHARED_VERSION_SOURCES}) s GROUP BY v ORDER BY v"
                ),
                &[&cursor.shared_version, &shared_now],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let budget = limit - used;
        match cutoff(&shared_counts, budget) {
            // A first shared version bigger than the room left waits for the next page,
            // unless the page is otherwise empty.
            Some((_, rows)) if used > 0 && rows > budget => cursor.shared_version,
            Some((version, _)) if shared_counts.last().is_some_and(|(v, _)| *v > version) => {
                version
            }
            _ => shared_now,
        }
    };

    let changes = read_changes(&tx, user_id, cursor, user_to, shared_to).await?;
    tx.commit().await?;
    let next = Cursor {
        user_id,
        user_version: user_to,
        shared_version: shared_to,
    };
    Ok(PullResponse {
        changes,
        next_cursor: next.encode(),
        has_more: user_to < user_now || shared_to < shared_now,
    })
}

/// Reads the rows changed in `(cursor, to]` of each scope.
async fn read_changes(
    tx: &impl GenericClient,
    user_id: Uuid,
    cursor: Cursor,
    user_to: i64,
    shared_to: i64,
) -> Result<Changes, ApiError> {
    let (after_u, after_s) = (cursor.user_version, cursor.shared_version);
    let mut changes = Changes::default();
    if user_to > after_u {
        let user_changed = tx
            .query_opt_cached(
                "SELECT 1 FROM users WHERE id = $1 AND change_version > $2 AND change_version <= $3",
                &[&user_id, &after_u, &user_to],
            )
            .await?
            .is_some();
        if user_changed {
            changes.profile =
                Some(crate::auth::accounts::profile_including_deleted(tx, user_id).await?);
        }
        let wallet_changed = tx
            .query_opt_cached(
                "SELECT 1 FROM wallets WHERE user_id = $1 AND change_version > $2 AND change_version <= $3",
                &[&user_id, &after_u, &user_to],
            )
            .await?
            .is_some();
        if wallet_changed {
            changes.wallet = Some(crate::rewards::ledger::wallet(tx, user_id).await?);
        }
        changes.coin_transactions = tx
            .query_cached(
                "SELECT id, kind, available_delta, frozen_delta, available_after, frozen_after,
                        reference_type, reference_id, description, created_at
                 FROM coin_transactions
                 WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
                 ORDER BY ledger_seq",
                &[&user_id, &after_u, &user_to],
            )
            .await?
            .iter()
            .map(|row| CoinTransaction {
                id: row.get(0),
                kind: row.get(1),
                available_delta: row.get(2),
                frozen_delta: row.get(3),
                available_after: row.get(4),
                frozen_after: row.get(5),
                reference_type: row.get(6),
                reference_id: row.get(7),
                description: row.get(8),
                created_at: row.get(9),
            })
            .collect();
        changes.step_records = tx
            .query_cached(
                "SELECT day, source, steps, verified_steps, status, change_version
                 FROM step_records
                 WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
                 ORDER BY change_version, day, source",
                &[&user_id, &after_u, &user_to],
            )
            .await?
            .iter()
            .map(|row| SyncStepRecord {
                date: row.get(0),
                source: row.get(1),
                steps: i64::from(row.get::<_, i32>(2)),
                verified_steps: i64::from(row.get::<_, i32>(3)),
                status: row.get(4),
                version: row.get(5),
            })
            .collect();
        changes.achievements_unlocked = tx
            .query_cached(
                "SELECT a.code, ua.unlocked_at FROM user_achievements ua
                 JOIN achievements a ON a.id = ua.achievement_id
                 WHERE ua.user_id = $1 AND ua.change_version > $2 AND ua.change_version <= $3
                 ORDER BY ua.change_version, a.code",
                &[&user_id, &after_u, &user_to],
            )
            .await?
            .iter()
            .map(|row| SyncUnlock {
                code: row.get(0),
                unlocked_at: row.get(1),
            })
            .collect();
        changes.orders = orders::changed_since(tx, user_id, after_u, user_to).await?;
    }
    if shared_to > after_s {
        changes.products = crate::shop::catalogue::changed_since(tx, after_s, shared_to).await?;
        changes.achievements = tx
            .query_cached(
                "SELECT code, name, description, icon, criteria, bonus_coins,
                        is_active AND deleted_at IS NULL
                 FROM achievements WHERE change_version > $1 AND change_version <= $2
                 ORDER BY sort_order, code",
                &[&after_s, &shared_to],
            )
            .await?
            .iter()
            .map(|row| SyncAchievement {
                code: row.get(0),
                name: row.get(1),
                description: row.get(2),
                icon: row.get(3),
                criteria: row.get(4),
                bonus_coins: row.get(5),
                is_active: row.get(6),
            })
            .collect();
        changes.settings = tx
            .query_cached(
                "SELECT key, value FROM settings
                 WHERE is_public AND change_version > $1 AND change_version <= $2 ORDER BY key",
                &[&after_s, &shared_to],
            )
            .await?
            .iter()
            .map(|row| SyncSetting {
                key: row.get(0),
                value: row.get(1),
            })
            .collect();
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_user() {
        let user = Uuid::now_v7();
        let cursor = Cursor {
            user_id: user,
            user_version: 42,
            shared_version: 7,
        };
        assert_eq!(Cursor::decode(&cursor.encode(), user).unwrap(), cursor);
        assert!(Cursor::decode(&cursor.encode(), Uuid::now_v7()).is_err());
        assert!(Cursor::decode("garbage", user).is_err());
        assert!(Cursor::decode(&crate::sync::cursor::encode("c1", &[&"x", &1, &2]), user).is_err());
    }

    #[test]
    fn pages_end_on_whole_versions() {
        let counts = [(1, 3), (2, 5), (3, 1)];
        assert_eq!(cutoff(&counts, 4), Some((1, 3)));
        assert_eq!(cutoff(&counts, 8), Some((2, 8)));
        assert_eq!(cutoff(&counts, 100), Some((3, 9)));
        // A version larger than the page still moves the cursor on.
        assert_eq!(cutoff(&[(5, 50)], 10), Some((5, 50)));
        assert_eq!(cutoff(&[], 10), None);
    }
}

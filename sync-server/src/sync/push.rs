//! Push: applying a batch of offline mutations, each at most once, in order, in one
//! transaction; every outcome is stored beside its effect so a repeated id is answered with
//! the stored outcome.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use fitkart_protocol::auth::ProfilePatch;
use fitkart_protocol::orders::{OrderStatusRequest, PlaceOrderRequest};
use fitkart_protocol::steps::{RecordStepsResponse, StepReport};
use fitkart_protocol::sync::{
    CancelOrderPayload, MAX_MUTATIONS_PER_PUSH, Mutation, MutationKind, MutationResult,
    MutationStatus, PushResponse, RecordStepsPayload, StoredOutcome,
};
use fitkart_protocol::validate::Validate;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{touch_device, versions};
use crate::auth::accounts::{ClientInfo, update_profile_in};
use crate::db::CachedStatements as _;
use crate::error::DomainError;
use crate::rewards::steps::record_steps_in;
use crate::shop::orders::{self, Actor};

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
fn outcome_of(
    result: Result<serde_json::Value, DomainError>,
) -> Result<StoredOutcome, DomainError> {
    match result {
        Ok(value) => Ok(applied(value)),
        Err(err) if err.kind().is_refusal() => Ok(StoredOutcome {
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
    work: impl Future<Output = Result<T, DomainError>>,
) -> Result<Result<T, DomainError>, DomainError> {
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

/// Applies a push: every mutation at most once, in order, in one transaction on `conn` (the
/// connection the route checked the caller's account on: a request queues for the pool
/// once). A mutation created before the `replay_window` whose outcome is not stored is
/// rejected [`MUTATION_EXPIRED`].
pub async fn push(
    conn: &mut deadpool_postgres::Client,
    user_id: Uuid,
    device_id: Uuid,
    mutations: &[Mutation],
    replay_window: std::time::Duration,
    client: &ClientInfo,
) -> Result<PushResponse, DomainError> {
    if mutations.is_empty() || mutations.len() > MAX_MUTATIONS_PER_PUSH {
        return Err(DomainError::validation(
            "mutations",
            format!("send 1 to {MAX_MUTATIONS_PER_PUSH} mutations"),
        ));
    }
    let tx = conn.transaction().await?;
    touch_device(&tx, user_id, device_id).await?;
    // The user's lock for the whole push: pushes of one user (from any device) go one by one.
    versions::next_user_version(&tx, user_id).await?;

    let earlier = stored_outcomes(&tx, user_id, mutations).await?;
    let replay_cutoff = crate::retention::replay_cutoff(Utc::now(), replay_window);
    let mut push = PushState {
        results: vec![None; mutations.len()],
        first_seen: HashMap::new(),
        to_store: Vec::new(),
        step_group: Vec::new(),
    };
    for (index, mutation) in mutations.iter().enumerate() {
        let Some((kind, body, hash)) = push.screen(&earlier, index, mutation, replay_cutoff) else {
            continue;
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
        let outcome = apply_one(&tx, user_id, body, client).await?;
        push.settle(index, mutation.id, Some(kind), hash, outcome);
    }
    flush_steps(&tx, user_id, &mut push, mutations).await?;

    let results = push.answers(mutations)?;
    store_outcomes(&tx, user_id, device_id, mutations, &push.to_store).await?;
    tx.commit().await?;
    Ok(PushResponse { results })
}

/// The outcomes earlier pushes stored for these mutation ids: (payload hash, outcome) by id.
async fn stored_outcomes(
    tx: &Transaction<'_>,
    user_id: Uuid,
    mutations: &[Mutation],
) -> Result<HashMap<Uuid, (Vec<u8>, StoredOutcome)>, DomainError> {
    let ids: Vec<Uuid> = mutations.iter().map(|m| m.id).collect();
    let mut earlier = HashMap::new();
    for row in tx
        .query_cached(
            "SELECT mutation_id, payload_hash, result FROM sync_mutations
             WHERE user_id = $1 AND mutation_id = ANY($2)",
            &[&user_id, &ids],
        )
        .await?
    {
        let id: Uuid = row.get("mutation_id");
        let stored =
            serde_json::from_value::<StoredOutcome>(row.get("result")).unwrap_or_else(|err| {
                // A row no longer readable (stored by an older build) must not wedge the device
                // that keeps resending it: answer it as settled, with a code that says why.
                tracing::error!(mutation_id = %id, error = %err, "unreadable stored sync outcome");
                rejected(
                    "outcome_unavailable",
                    "this mutation was processed before, but its result can no longer be shown; pull to see the current state",
                )
            });
        earlier.insert(id, (row.get("payload_hash"), stored));
    }
    Ok(earlier)
}

/// Applies one mutation that is not a step report, in its own savepoint; a 4xx becomes its
/// stored rejection.
async fn apply_one(
    tx: &Transaction<'_>,
    user_id: Uuid,
    body: Parsed,
    client: &ClientInfo,
) -> Result<StoredOutcome, DomainError> {
    let result = match body {
        Parsed::Order(request) => {
            in_savepoint(tx, async {
                let (order, _) = orders::place_in(tx, user_id, &request).await?;
                serde_json::to_value(order).map_err(DomainError::internal_because)
            })
            .await?
        }
        Parsed::Cancel(payload) => {
            in_savepoint(tx, cancel_own_order(tx, user_id, &payload, client)).await?
        }
        Parsed::Profile(patch) => {
            in_savepoint(tx, async {
                let profile = update_profile_in(tx, user_id, &patch).await?;
                serde_json::to_value(profile).map_err(DomainError::internal_because)
            })
            .await?
        }
        Parsed::Steps(_) => {
            return Err(DomainError::internal_because(
                "a step mutation reached the single-mutation path",
            ));
        }
    };
    outcome_of(result)
}

/// Cancels one of the user's orders, named by its id or by the device's order id.
async fn cancel_own_order(
    tx: &Transaction<'_>,
    user_id: Uuid,
    payload: &CancelOrderPayload,
    client: &ClientInfo,
) -> Result<serde_json::Value, DomainError> {
    let order_id = match (payload.order_id, payload.client_order_id) {
        (Some(id), _) => id,
        (None, Some(client_id)) => tx
            .query_opt_cached(
                "SELECT id FROM orders WHERE user_id = $1 AND client_order_id = $2",
                &[&user_id, &client_id],
            )
            .await?
            .map(|r| r.get("id"))
            .ok_or_else(|| DomainError::not_found("no such order"))?,
        (None, None) => return Err(DomainError::not_found("no such order")),
    };
    let request = OrderStatusRequest {
        status: "cancelled".into(),
        tracking_number: None,
        reason: Some("cancelled by the customer".into()),
    };
    let order =
        orders::transition_in(tx, Actor::Owner(user_id), order_id, &request, client).await?;
    serde_json::to_value(order).map_err(DomainError::internal_because)
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
    /// Decides a mutation that needs no database: a repeat of a stored or earlier copy, an
    /// invalid one, one past the replay window, one that does not parse. Answers the parsed
    /// mutation still to apply, with its payload hash.
    fn screen(
        &mut self,
        earlier: &HashMap<Uuid, (Vec<u8>, StoredOutcome)>,
        index: usize,
        mutation: &Mutation,
        replay_cutoff: DateTime<Utc>,
    ) -> Option<(MutationKind, Parsed, Vec<u8>)> {
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
            self.results[index] = Some(if *stored_hash == hash {
                MutationResult {
                    id: mutation.id,
                    status: MutationStatus::Duplicate,
                    outcome: stored.clone(),
                }
            } else {
                conflict()
            });
            return None;
        }
        if let Some((first_hash, _)) = self.first_seen.get(&mutation.id) {
            // A second copy in this push: a duplicate of the first, answered at the end.
            if *first_hash != hash {
                self.results[index] = Some(conflict());
            }
            return None;
        }
        self.first_seen.insert(mutation.id, (hash.clone(), None));
        if let Err(invalid) = mutation.validate() {
            // Not stored: its kind or time cannot be, and it can never apply.
            self.settle(
                index,
                mutation.id,
                None,
                hash,
                rejected("validation_failed", invalid.to_string()),
            );
            return None;
        }
        if mutation.created_at < replay_cutoff {
            // Stored like any rejection, so a replay within the window is a `duplicate`.
            self.settle(
                index,
                mutation.id,
                MutationKind::parse(&mutation.kind),
                hash,
                rejected(
                    MUTATION_EXPIRED,
                    "this change was queued longer ago than the server's replay window and cannot be applied any more; pull to see the current state",
                ),
            );
            return None;
        }
        match parse(mutation) {
            Ok((kind, body)) => Some((kind, body, hash)),
            Err(outcome) => {
                let kind = MutationKind::parse(&mutation.kind);
                self.settle(index, mutation.id, kind, hash, outcome);
                None
            }
        }
    }

    /// The answer to every mutation, in order: later copies of an id in this push repeat its
    /// first copy's outcome.
    fn answers(&mut self, mutations: &[Mutation]) -> Result<Vec<MutationResult>, DomainError> {
        let mut results = Vec::with_capacity(mutations.len());
        for (index, mutation) in mutations.iter().enumerate() {
            let result = match self.results[index].take() {
                Some(result) => result,
                None => MutationResult {
                    id: mutation.id,
                    status: MutationStatus::Duplicate,
                    outcome: self
                        .first_seen
                        .get(&mutation.id)
                        .and_then(|(_, outcome)| outcome.clone())
                        .ok_or_else(|| {
                            DomainError::internal_because(
                                "a repeated mutation has no first outcome",
                            )
                        })?,
                },
            };
            results.push(result);
        }
        Ok(results)
    }

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
) -> Result<(), DomainError> {
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
                applied(serde_json::to_value(part).map_err(DomainError::internal_because)?)
            }
            Err(err) if err.kind().is_refusal() => rejected(err.code(), err.message()),
            Err(err) => {
                tracing::error!(code = err.code(), "recording the steps of a push failed");
                return Err(DomainError::internal());
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
fn storable_outcome(outcome: &StoredOutcome) -> Result<serde_json::Value, DomainError> {
    let mut value = serde_json::to_value(outcome).map_err(DomainError::internal_because)?;
    if !value.is_object() {
        return Err(DomainError::internal_because(
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
) -> Result<(), DomainError> {
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

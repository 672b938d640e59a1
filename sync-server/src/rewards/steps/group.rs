//! Several users' batches recorded in one transaction with set-based statements: each batch is
//! judged and settled exactly as alone ([`super::record_checked`]), but a group reads and writes
//! all its users' rows of a kind in one statement (their change versions, accounts, records,
//! days, day accounts, wallets and ledger entries), so PostgreSQL binds, plans and executes a
//! statement per kind and group instead of per kind and request (`docs/benchmarks.md`, tuning
//! step 16). Only the rare writes (a flag's validation, an unlock) go per user.
//!
//! [`crate::rewards::groups`] forms the groups and handles their failure: any error here,
//! including a batch's failed account check, drops the group's transaction, and the caller
//! records every batch of it again alone.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use fitkart_protocol::steps::{RecordStepsResponse, StepReport};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{
    Context, FlagRows, Judged, RecordColumns, STORED_RECORD_COLUMNS, Snapshot, forget_if_missing,
    read_days, records_table,
};
use crate::auth::accounts::Standing;
use crate::db::{self, CachedStatements as _};
use crate::error::DomainError;
use crate::rewards::achievements::{self, GroupEvaluation, GroupMember, Unlock};
use crate::rewards::ledger::{self, LOCK_WALLETS, LockedWallet};
use crate::rewards::settings::RewardSettings;
use crate::rewards::settlement::{self, GROUP_STORE_ACCOUNTS};

/// Why a group was not recorded together; each of its batches is then recorded alone.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupFailed {
    /// The database failed, or a row a batch needs was missing.
    #[error("the database: {0}")]
    Database(#[from] DomainError),
    /// A batch's account check failed.
    #[error("a request of the group failed its account check")]
    Request,
}

impl From<tokio_postgres::Error> for GroupFailed {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Database(err.into())
    }
}

/// Takes the next change version of each user (parameter: the users, sorted), locking their
/// rows in that order: a group's first lock, before any of its reads.
const NEXT_GROUP_VERSIONS: &str = "INSERT INTO change_versions AS c (user_id, version)
 SELECT u, 1 FROM unnest($1::uuid[]) AS u ORDER BY u
 ON CONFLICT (user_id) DO UPDATE SET version = c.version + 1
 RETURNING c.user_id, c.version";

/// [`super::USER_RULES`] for several users (parameter: the users), with their ids.
const GROUP_USER_RULES: &str = "SELECT id, timezone, daily_step_goal,
        role, session_epoch, disabled_at IS NOT NULL AS disabled, deleted_at IS NULL AS live
 FROM users WHERE id = ANY($1)";

/// [`super::STORED_DAYS`] for several users, each its own range (parameters: the users, the
/// first and the last day of each).
const GROUP_STORED_DAYS: &str = "SELECT d.user_id, d.day, d.verified_steps, d.coins_paid
 FROM unnest($1::uuid[], $2::date[], $3::date[]) AS k(user_id, first, last)
 JOIN step_days d ON d.user_id = k.user_id AND d.day BETWEEN k.first AND k.last";

/// The stored records of several users' days in `table` (parameters: the users and days as
/// pairs of arrays, then the first and last of all the days, for the partitions' pruning as in
/// [`super::stored_records_sql`]), with their users.
fn group_records_sql(table: &str) -> String {
    format!(
        "SELECT r.user_id, {STORED_RECORD_COLUMNS}
 FROM unnest($1::uuid[], $2::date[]) AS k(user_id, day)
 JOIN {table} r ON r.user_id = k.user_id AND r.day = k.day
 WHERE r.day BETWEEN $3 AND $4"
    )
}

/// Upserts several users' records (parameters: the records' ids, users, days, sources,
/// steps, verified steps, statuses, first and last reading times, report counts, change
/// versions, cadence anchors' times and steps, all arrays).
const GROUP_UPSERT_RECORDS: &str = concat!(
    "INSERT INTO step_records AS r
         (id, user_id, day, source, steps, verified_steps, status, first_recorded_at,
          last_recorded_at, report_count, change_version, cadence_anchor_at,
          cadence_anchor_steps)
     SELECT id, user_id, day, source, steps, verified, status, first_at, last_at, reports,
            version, anchor_at, anchor_steps
     FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::text[], $5::int[], $6::int[],
                 $7::text[], $8::timestamptz[], $9::timestamptz[], $10::int[], $11::bigint[],
                 $12::timestamptz[], $13::int[])
          AS u(id, user_id, day, source, steps, verified, status, first_at, last_at, reports,
               version, anchor_at, anchor_steps)",
    upsert_record_tail!(),
    " RETURNING user_id, id, day, source"
);

/// One batch of a group: its user, its reports and the caller's account check.
pub(crate) type GroupBatch<'a, C> = (Uuid, &'a [StepReport], &'a C);

/// Records `batches` (of distinct users, sorted by user) in the caller's transaction, which it
/// does not commit, and answers each as [`super::record_checked`] would have alone. Thirteen
/// statements in three round trips, whatever the group's size: the locks and reads, the
/// writes of records and days with the achievement reads and the wallets' locks, then the
/// ledger (a fourth when a batch flags a record or unlocks an achievement).
pub(crate) async fn record_group<E, C>(
    tx: &Transaction<'_>,
    batches: &[GroupBatch<'_, C>],
) -> Result<Vec<RecordStepsResponse>, GroupFailed>
where
    C: Fn(Option<&Standing>) -> Result<(), E>,
{
    let judged = read_and_judge(tx, batches).await?;
    let users: Vec<Uuid> = batches.iter().map(|(user, _, _)| *user).collect();

    // The records and the day accounts first, then the achievement reads that see them, then
    // the wallets' locks: one round trip.
    let records = GroupRecords::collect(&users, &judged);
    let accounts = GroupAccounts::collect(&users, &judged);
    let [upsert, store, lock] = tx
        .prepare_in_order([GROUP_UPSERT_RECORDS, GROUP_STORE_ACCOUNTS, LOCK_WALLETS])
        .await?;
    let evaluation = GroupEvaluation::prepare(tx)
        .await
        .map_err(DomainError::from)?;
    let members: Vec<GroupMember<'_>> = users
        .iter()
        .zip(&judged)
        .map(|(user, judged)| {
            (
                *user,
                judged.streak_day_steps,
                judged.batch.early.as_slice(),
            )
        })
        .collect();
    let by_users: [&(dyn ToSql + Sync); 1] = [&users];
    let (stored_ids, stored_accounts, unlocks, wallets) = tokio::join!(
        biased;
        records.write(tx, &upsert),
        accounts.write(tx, &store),
        evaluation.run(tx, &members),
        tx.query(&lock, &by_users),
    );
    let stored_ids = stored_ids?;
    stored_accounts?;
    let unlocks: Vec<Vec<Unlock>> = unlocks.map_err(DomainError::from)?;
    let wallets: HashMap<Uuid, LockedWallet> = wallets?
        .iter()
        .map(|row| {
            let wallet = LockedWallet::from_row(row);
            (wallet.user_id(), wallet)
        })
        .collect();

    // The ledger, and the validations of flagged records (few batches have any).
    let entries: Vec<Vec<ledger::Entry>> = users
        .iter()
        .zip(&judged)
        .zip(&unlocks)
        .map(|((user, judged), unlocks)| settlement::entries(*user, &judged.settled, unlocks))
        .collect();
    let mut bookings = Vec::with_capacity(users.len());
    for ((user, judged), entries) in users.iter().zip(&judged).zip(&entries) {
        let wallet = wallets.get(user).ok_or_else(DomainError::internal)?;
        bookings.push((wallet, judged.version, entries.as_slice()));
    }
    let no_ids = HashMap::new();
    let flags = users
        .iter()
        .zip(&judged)
        .map(|(user, judged)| {
            let ids = stored_ids.get(user).unwrap_or(&no_ids);
            Ok((
                *user,
                judged.version,
                FlagRows::collect(&judged.batch.records, ids)?,
            ))
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    let (booked, flagged) = tokio::join!(
        ledger::book_group(tx, &bookings),
        futures_util::future::join_all(
            flags
                .iter()
                .map(|(user, version, flags)| flags.write(tx, *user, *version))
        ),
    );
    booked.map_err(DomainError::from)?;
    for written in flagged {
        written?;
    }
    // The unlocks reference their bonuses' entries, booked above; those of every user go out
    // together (a user without one sends nothing).
    let recorded = futures_util::future::join_all(users.iter().zip(&judged).zip(&unlocks).map(
        |((user, judged), unlocks)| {
            achievements::record_unlocks(tx, *user, judged.version, unlocks)
        },
    ))
    .await;
    for unlocks in recorded {
        unlocks.map_err(DomainError::from)?;
    }
    Ok(judged
        .into_iter()
        .zip(entries)
        .zip(unlocks)
        .map(|((judged, entries), unlocks)| RecordStepsResponse {
            coins_awarded: entries.iter().map(|e| e.available_delta).sum(),
            achievements_unlocked: achievements::codes(&unlocks),
            results: judged.results,
        })
        .collect())
}

/// Takes the users' change versions, reads what their batches are judged with (one round
/// trip, as [`Snapshot::read`] does for one user), runs their account checks and judges them.
async fn read_and_judge<E, C>(
    tx: &Transaction<'_>,
    batches: &[GroupBatch<'_, C>],
) -> Result<Vec<Judged>, GroupFailed>
where
    C: Fn(Option<&Standing>) -> Result<(), E>,
{
    let today = Utc::now().date_naive();
    let users: Vec<Uuid> = batches.iter().map(|(user, _, _)| *user).collect();
    let mut record_keys: (Vec<Uuid>, Vec<NaiveDate>) = Default::default();
    let mut ranges: (Vec<Uuid>, Vec<NaiveDate>, Vec<NaiveDate>) = Default::default();
    for (user, reports, _) in batches {
        let days = read_days(reports);
        let (first, last) = (
            days.first().copied().unwrap_or(today),
            days.last().copied().unwrap_or(today),
        );
        ranges.0.push(*user);
        ranges.1.push(first - Duration::days(30));
        ranges.2.push(last);
        record_keys.0.extend(days.iter().map(|_| *user));
        record_keys.1.extend(days);
    }
    let first = record_keys.1.iter().min().copied().unwrap_or(today);
    let last = record_keys.1.iter().max().copied().unwrap_or(today);
    let partition = records_table(tx, first, last).await?;
    let forget_missing = |err: &tokio_postgres::Error| forget_if_missing(&partition, err);
    let [generic_plans, versions, settings, rules, days] = &tx
        .prepare_in_order([
            db::GENERIC_PLANS,
            NEXT_GROUP_VERSIONS,
            RewardSettings::QUERY,
            GROUP_USER_RULES,
            GROUP_STORED_DAYS,
        ])
        .await?;
    let records = tx
        .prepare_cached(&group_records_sql(
            &partition
                .as_deref()
                .map_or_else(|| "step_records".to_owned(), db::quote_ident),
        ))
        .await
        .inspect_err(forget_missing)?;
    let keys = RewardSettings::keys();
    let by_users: [&(dyn ToSql + Sync); 1] = [&users];
    let by_keys: [&(dyn ToSql + Sync); 1] = [&keys];
    let record_params: [&(dyn ToSql + Sync); 4] = [&record_keys.0, &record_keys.1, &first, &last];
    let day_params: [&(dyn ToSql + Sync); 3] = [&ranges.0, &ranges.1, &ranges.2];
    let (plans, versions, settings, rules, records, days) = tokio::join!(
        biased;
        tx.query_one(generic_plans, &[]),
        tx.query(versions, &by_users),
        tx.query(settings, &by_keys),
        tx.query(rules, &by_users),
        tx.query(&records, &record_params),
        tx.query(days, &day_params),
    );
    // The account checks first, as alone.
    let rules: HashMap<Uuid, Row> = rules?.into_iter().map(|row| (row.get("id"), row)).collect();
    for (user, _, check) in batches {
        let standing = rules
            .get(user)
            .filter(|row| row.get::<_, bool>("live"))
            .map(Standing::from_row);
        check(standing.as_ref()).map_err(|_| GroupFailed::Request)?;
    }
    plans?;
    let mut versions: HashMap<Uuid, i64> = versions?
        .iter()
        .map(|row| (row.get("user_id"), row.get("version")))
        .collect();
    let settings = settings?;
    let mut records = by_user(records.inspect_err(forget_missing)?);
    let mut days = by_user(days?);
    batches
        .iter()
        .map(|(user, reports, _)| {
            let snapshot = Snapshot {
                version: versions.remove(user).ok_or_else(DomainError::internal)?,
                context: Context::from_rows(
                    &settings,
                    rules.get(user).ok_or_else(DomainError::internal)?,
                )?,
                records: records.remove(user).unwrap_or_default(),
                days: days.remove(user).unwrap_or_default(),
            };
            Ok(Judged::of(&snapshot, reports))
        })
        .collect()
}

/// Rows with a `user_id` column, by user.
fn by_user(rows: Vec<Row>) -> HashMap<Uuid, Vec<Row>> {
    let mut grouped: HashMap<Uuid, Vec<Row>> = HashMap::new();
    for row in rows {
        grouped.entry(row.get("user_id")).or_default().push(row);
    }
    grouped
}

/// The changed records of a group's batches, as the columns of [`GROUP_UPSERT_RECORDS`].
#[derive(Default)]
struct GroupRecords<'a> {
    ids: Vec<Uuid>,
    users: Vec<Uuid>,
    days: Vec<NaiveDate>,
    sources: Vec<&'a str>,
    steps: Vec<i32>,
    verified: Vec<i32>,
    statuses: Vec<&'a str>,
    first: Vec<chrono::DateTime<Utc>>,
    last: Vec<chrono::DateTime<Utc>>,
    reports: Vec<i32>,
    versions: Vec<i64>,
    anchors_at: Vec<Option<chrono::DateTime<Utc>>>,
    anchors_steps: Vec<Option<i32>>,
}

impl<'a> GroupRecords<'a> {
    /// The records `judged` changed, each batch's of its user.
    fn collect(users: &[Uuid], judged: &'a [Judged]) -> Self {
        let mut columns = Self::default();
        for (user, judged) in users.iter().zip(judged) {
            let changed = judged.batch.records.iter().filter(|(_, r)| r.changed);
            for record in changed {
                let c = RecordColumns::of(&record);
                columns.ids.push(c.id);
                columns.users.push(*user);
                columns.days.push(c.day);
                columns.sources.push(c.source);
                columns.steps.push(c.steps);
                columns.verified.push(c.verified);
                columns.statuses.push(c.status);
                columns.first.push(c.first);
                columns.last.push(c.last);
                columns.reports.push(c.reports);
                columns.versions.push(judged.version);
                columns.anchors_at.push(c.anchor_at);
                columns.anchors_steps.push(c.anchor_steps);
            }
        }
        columns
    }

    /// Upserts them (one statement, none if there are none) and returns the id each record is
    /// stored under, by user.
    async fn write(
        &self,
        tx: &Transaction<'_>,
        upsert: &tokio_postgres::Statement,
    ) -> Result<StoredIds, GroupFailed> {
        if self.ids.is_empty() {
            return Ok(HashMap::new());
        }
        let params: [&(dyn ToSql + Sync); 13] = [
            &self.ids,
            &self.users,
            &self.days,
            &self.sources,
            &self.steps,
            &self.verified,
            &self.statuses,
            &self.first,
            &self.last,
            &self.reports,
            &self.versions,
            &self.anchors_at,
            &self.anchors_steps,
        ];
        let mut ids: StoredIds = HashMap::new();
        for row in tx.query(upsert, &params).await? {
            ids.entry(row.get("user_id"))
                .or_default()
                .insert((row.get("day"), row.get("source")), row.get("id"));
        }
        Ok(ids)
    }
}

/// The id each upserted record is stored under, by user and (day, source).
type StoredIds = HashMap<Uuid, HashMap<(NaiveDate, String), Uuid>>;

/// The day accounts a group's batches changed, as the columns of [`GROUP_STORE_ACCOUNTS`].
#[derive(Default)]
struct GroupAccounts {
    users: Vec<Uuid>,
    days: Vec<NaiveDate>,
    verified: Vec<i32>,
    paid: Vec<i64>,
    versions: Vec<i64>,
}

impl GroupAccounts {
    /// The days `judged` settled, each batch's of its user.
    fn collect(users: &[Uuid], judged: &[Judged]) -> Self {
        let mut columns = Self::default();
        for (user, judged) in users.iter().zip(judged) {
            for day in &judged.settled {
                columns.users.push(*user);
                columns.days.push(day.day);
                columns.verified.push(day.after.verified_steps as i32);
                columns.paid.push(day.after.coins_paid);
                columns.versions.push(judged.version);
            }
        }
        columns
    }

    /// Upserts them (one statement, none if there are none).
    async fn write(
        &self,
        tx: &Transaction<'_>,
        store: &tokio_postgres::Statement,
    ) -> Result<(), GroupFailed> {
        if self.users.is_empty() {
            return Ok(());
        }
        let params: [&(dyn ToSql + Sync); 5] = [
            &self.users,
            &self.days,
            &self.verified,
            &self.paid,
            &self.versions,
        ];
        tx.execute(store, &params).await?;
        Ok(())
    }
}

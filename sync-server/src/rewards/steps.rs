//! Steps to coins: recording day totals (a max-register per user, date and source), the
//! anti-cheat judgement of every increase ([`crate::rewards::anticheat`]), exactly-once
//! rewards within the daily cap ([`crate::rewards::settlement`]) and achievements, all in one
//! transaction per batch with set-based SQL; and the step reads.
//!
//! Rewards are computed on totals: a day pays `coins_for_day(largest verified source)` minus
//! what it already paid (kept in `step_days`), so replays, reorders and duplicates pay nothing
//! more. The user's change-version row lock serialises concurrent batches of one user.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chrono::{DateTime, Datelike as _, Duration, Months, NaiveDate, Timelike as _, Utc};
use chrono_tz::Tz;
use deadpool_postgres::{GenericClient, Pool, StatementCache, Transaction};
use fitkart_protocol::steps::{
    DaySteps, MAX_RECORDS_PER_REQUEST, RecordOutcome, RecordResult, RecordStepsResponse,
    SourceSteps, StepReport,
};
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::auth::accounts::Standing;
use crate::db::{self, CachedStatements as _};
use crate::error::{DomainError, ErrorKind};
use crate::rewards::achievements::{self, EarlyReport};
use crate::rewards::anticheat::{self, Anchor, FlagReason, RecordState, RecordStatus, Verdict};
use crate::rewards::settings::RewardSettings;
use crate::rewards::settlement::{self, Cause, DayAccount, SettledDay};
use crate::sync::versions::{NEXT_USER_VERSION, next_user_version_on};

/// The stored time zone of a user. One that is not in the IANA database (`PATCH /me` refuses
/// those; an import or a hand edit may not have) is an error the user can fix, never a guess:
/// guessing UTC would put steps on the wrong days.
pub fn user_time_zone(name: &str) -> Result<Tz, DomainError> {
    name.parse().map_err(|_| {
        tracing::warn!(
            timezone = name,
            "an account's stored time zone is not in the IANA database"
        );
        DomainError::new(
            ErrorKind::Conflict,
            "invalid_timezone",
            "the account's time zone is not an IANA time zone; set one with PATCH /api/v1/me",
        )
        .with_details(serde_json::json!({ "field": "timezone" }))
    })
}

/// A flag a batch raised on a record: the validation to open, or to add to the one pending.
struct Flag {
    claimed: i64,
    score: f64,
    reasons: Vec<FlagReason>,
}

/// A step record as stored, and what this batch changed of it.
struct StoredRecord {
    id: Option<Uuid>,
    steps: i64,
    verified: i64,
    status: RecordStatus,
    first_recorded_at: Option<DateTime<Utc>>,
    last_recorded_at: Option<DateTime<Utc>>,
    anchor: Option<Anchor>,
    reports: i32,
    changed: bool,
    pending_validation: Option<Uuid>,
    new_flag: Option<Flag>,
}

impl StoredRecord {
    /// A record never reported before.
    fn new() -> Self {
        Self {
            id: None,
            steps: 0,
            verified: 0,
            status: RecordStatus::Accepted,
            first_recorded_at: None,
            last_recorded_at: None,
            anchor: None,
            reports: 0,
            changed: false,
            pending_validation: None,
            new_flag: None,
        }
    }

    /// A row of the batch's record query, with its (date, source) key.
    fn from_row(row: &Row) -> ((NaiveDate, String), Self) {
        let anchor = row
            .get::<_, Option<DateTime<Utc>>>("cadence_anchor_at")
            .zip(row.get::<_, Option<i32>>("cadence_anchor_steps"))
            .map(|(at, steps)| Anchor {
                at,
                steps: i64::from(steps),
            });
        let record = Self {
            id: Some(row.get("id")),
            steps: i64::from(row.get::<_, i32>("steps")),
            verified: i64::from(row.get::<_, i32>("verified_steps")),
            status: RecordStatus::parse_or_rejected(row.get("status")),
            first_recorded_at: Some(row.get("first_recorded_at")),
            last_recorded_at: Some(row.get("last_recorded_at")),
            anchor,
            reports: 0,
            changed: false,
            pending_validation: row.get("pending_validation_id"),
            new_flag: None,
        };
        ((row.get("day"), row.get("source")), record)
    }

    /// What the anti-cheat judgement needs of it.
    fn state(&self) -> RecordState {
        RecordState {
            status: self.status,
            steps: self.steps,
            anchor: self.anchor,
        }
    }

    /// Stores a reading the judgement let through (accepted or flagged), taken at
    /// `recorded_at`, leaving `anchor` for the next one.
    fn take_reading(&mut self, steps: i64, recorded_at: DateTime<Utc>, anchor: Anchor) {
        self.steps = steps;
        self.first_recorded_at.get_or_insert(recorded_at);
        self.last_recorded_at = Some(recorded_at);
        self.anchor = Some(anchor);
        self.reports += 1;
        self.changed = true;
    }

    /// Flags the record at `claimed` steps: opens a validation, or adds to the one this batch
    /// opened (the larger claim, the higher score, every reason).
    fn flag(&mut self, claimed: i64, score: f64, reasons: Vec<FlagReason>) {
        self.status = RecordStatus::Flagged;
        match self.new_flag.as_mut() {
            Some(flag) => {
                flag.claimed = claimed;
                flag.score = flag.score.max(score);
                flag.reasons.extend(reasons);
            }
            None => {
                self.new_flag = Some(Flag {
                    claimed,
                    score,
                    reasons,
                })
            }
        }
    }
}

/// A day of the batch: its account as stored, and as settled so far.
#[derive(Default)]
struct BatchDay {
    stored: DayAccount,
    settled: DayAccount,
}

/// What a batch is judged with: the settings, the user's time zone and goal, the clock.
struct Context {
    settings: RewardSettings,
    tz: Tz,
    goal: i64,
    now: DateTime<Utc>,
}

impl Context {
    /// The context in the rows of [`RewardSettings::QUERY`] and [`USER_RULES`].
    fn from_rows(settings: &[Row], user: &Row) -> Result<Self, DomainError> {
        Ok(Self {
            settings: RewardSettings::from_rows(settings)?,
            tz: user_time_zone(user.get("timezone"))?,
            goal: i64::from(user.get::<_, i32>("daily_step_goal")),
            now: Utc::now(),
        })
    }
}

/// The user's time zone and daily goal, and the account's [`Standing`] (its
/// [`crate::auth::accounts::STANDING_COLUMNS`]) and whether it is live, for the caller's
/// account check (parameter: the user).
const USER_RULES: &str = "SELECT timezone, daily_step_goal,
        role, session_epoch, disabled_at IS NOT NULL AS disabled, deleted_at IS NULL AS live
 FROM users WHERE id = $1";

/// The stored records of some days in `table` (`step_records` or one month's partition of it;
/// parameters: the user, the first and last of the days, the days), each with the validation
/// pending on it. The range lets a generic plan on `step_records` skip, when the executor
/// starts, every partition outside it: `day = ANY($4)` alone prunes nothing at run time on
/// PostgreSQL 15, so a generic plan would scan every month's partition and the default plan
/// choice re-plans the query on each call instead (half a millisecond at 22 partitions).
/// Skipped partitions are still locked, though (see [`records_table`]).
fn stored_records_sql(table: &str) -> String {
    format!(
        "SELECT {STORED_RECORD_COLUMNS}
 FROM {table} r WHERE r.user_id = $1 AND r.day BETWEEN $2 AND $3 AND r.day = ANY($4)"
    )
}

/// What the reads of stored records select of a record `r`: what [`StoredRecord::from_row`]
/// reads, with the validation pending on it.
const STORED_RECORD_COLUMNS: &str = "r.id, r.day, r.source, r.steps, r.verified_steps, r.status,
        r.first_recorded_at, r.last_recorded_at,
        (SELECT v.id FROM step_validations v
         WHERE v.step_record_id = r.id AND v.step_day = r.day
           AND v.status = 'pending_review' LIMIT 1) AS pending_validation_id,
        r.cadence_anchor_at, r.cadence_anchor_steps";

/// Whether the relation named by the first parameter (as `to_regclass` resolves it) is the
/// partition of `step_records` for the month from the second parameter to the third.
const IS_MONTH_PARTITION: &str = "SELECT EXISTS (
     SELECT FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
     WHERE c.oid = to_regclass($1) AND i.inhparent = 'step_records'::regclass
       AND pg_get_expr(c.relpartbound, c.oid)
           = format('FOR VALUES FROM (%L) TO (%L)', $2::date, $3::date))";

/// The month partitions of `step_records` found attached (by name: `step_records_YYYY_MM`, as
/// `ensure_step_record_partitions` names them), per pooled connection: a connection is bound
/// to one database, and its statement cache stands for it. The weak reference keeps a closed
/// connection's cache from being freed, so its address cannot come back as another's; such
/// entries are dropped when a new one is added.
static MONTH_PARTITIONS: Mutex<Vec<(Weak<StatementCache>, HashSet<String>)>> =
    Mutex::new(Vec::new());

/// The table the stored-records read of the days `first..=last` names: the month's partition
/// of `step_records` when both days fall in one month and it is attached, else `step_records`.
///
/// A generic plan of a query on the partitioned table locks every partition and each of its
/// indexes when the executor starts, before it skips those outside the days: 141 relation
/// locks per report at 22 months of partitions, 219 at 35, of which a backend keeps only 16
/// in its fast-path slots; the rest go through the shared lock manager on every report. Read
/// by name, the month's partition takes its own and its indexes' locks only
/// (`docs/benchmarks.md`, tuning step 14). The catalog is asked once per connection and
/// month; should the partition be renamed or archived later, the read fails with
/// `undefined_table` (as writing to an archived month fails through `step_records`), and
/// [`forget_partition`] sends the next batches back to the catalog.
async fn records_table(
    tx: &Transaction<'_>,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Option<String>, DomainError> {
    let month = first.with_day(1).ok_or_else(DomainError::internal)?;
    if last.with_day(1) != Some(month) {
        return Ok(None);
    }
    let name = format!("step_records_{}", month.format("%Y_%m"));
    let known = MONTH_PARTITIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|(cache, names)| same_connection(cache, tx) && names.contains(&name));
    if known {
        return Ok(Some(name));
    }
    let next_month = month
        .checked_add_months(Months::new(1))
        .ok_or_else(DomainError::internal)?;
    let attached: bool = tx
        .query_one_cached(IS_MONTH_PARTITION, &[&name, &month, &next_month])
        .await
        .map_err(DomainError::from)?
        .get(0);
    if !attached {
        return Ok(None);
    }
    let mut known = MONTH_PARTITIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    known.retain(|(cache, _)| cache.strong_count() > 0);
    match known
        .iter_mut()
        .find(|(cache, _)| same_connection(cache, tx))
    {
        Some((_, names)) => {
            names.insert(name.clone());
        }
        None => known.push((
            Arc::downgrade(&tx.statement_cache),
            HashSet::from([name.clone()]),
        )),
    }
    Ok(Some(name))
}

/// Whether `cache` is the statement cache of `tx`'s connection.
fn same_connection(cache: &Weak<StatementCache>, tx: &Transaction<'_>) -> bool {
    std::ptr::eq(cache.as_ptr(), Arc::as_ptr(&tx.statement_cache))
}

/// [`forget_partition`] of `partition` (the table [`records_table`] named, if a partition)
/// when `err` says a read found it missing.
fn forget_if_missing(partition: &Option<String>, err: &tokio_postgres::Error) {
    if let Some(name) = partition
        && err.code() == Some(&SqlState::UNDEFINED_TABLE)
    {
        forget_partition(name);
    }
}

/// Forgets, on every connection, a month partition that [`records_table`] named and a read
/// found missing.
fn forget_partition(name: &str) {
    for (_, names) in MONTH_PARTITIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter_mut()
    {
        names.remove(name);
    }
}

/// The stored day accounts in a range (parameters: the user, the first and last day).
const STORED_DAYS: &str = "SELECT day, verified_steps, coins_paid FROM step_days
 WHERE user_id = $1 AND day BETWEEN $2 AND $3";

/// Everything a batch reads, and its change version.
struct Snapshot {
    version: i64,
    context: Context,
    records: Vec<Row>,
    days: Vec<Row>,
}

impl Snapshot {
    /// Takes the user's next change version, whose row lock serialises the user's batches, and
    /// reads behind it, in one round trip, what the batch is judged with: the settings, the
    /// user's time zone and goal, the records of `days` (sorted, distinct) and the day
    /// accounts from 30 days before the first of them to the last. A connection runs what it
    /// receives in order, so every read runs after the lock is taken. The rest of the
    /// transaction runs generic plans ([`db::GENERIC_PLANS`]).
    ///
    /// `check` is the caller's account check, on the [`Standing`] read with the time zone
    /// (`None`: no live account). It runs before any other result is looked at, and its error
    /// is the batch's: the caller then drops the transaction, so the version taken is rolled
    /// back and nothing is written.
    async fn read<E: From<DomainError>>(
        tx: &Transaction<'_>,
        user_id: Uuid,
        days: &[NaiveDate],
        check: impl FnOnce(Option<&Standing>) -> Result<(), E>,
    ) -> Result<Self, E> {
        let today = Utc::now().date_naive();
        let (first, last) = (
            days.first().copied().unwrap_or(today),
            days.last().copied().unwrap_or(today),
        );
        let partition = records_table(tx, first, last).await?;
        let statements = tx
            .prepare_in_order([
                db::GENERIC_PLANS,
                NEXT_USER_VERSION,
                RewardSettings::QUERY,
                USER_RULES,
                STORED_DAYS,
            ])
            .await
            .map_err(DomainError::from)?;
        let [generic_plans, version, settings, user, stored_days] = &statements;
        let forget_missing = |err: &tokio_postgres::Error| forget_if_missing(&partition, err);
        let records = tx
            .prepare_cached(&stored_records_sql(
                &partition
                    .as_deref()
                    .map_or_else(|| "step_records".to_owned(), db::quote_ident),
            ))
            .await
            .inspect_err(forget_missing)
            .map_err(DomainError::from)?;
        let keys = RewardSettings::keys();
        let history_from = first - Duration::days(30);
        let settings_params: [&(dyn ToSql + Sync); 1] = [&keys];
        let user_params: [&(dyn ToSql + Sync); 1] = [&user_id];
        let record_params: [&(dyn ToSql + Sync); 4] = [&user_id, &first, &last, &days];
        let day_params: [&(dyn ToSql + Sync); 3] = [&user_id, &history_from, &last];
        let (plans, version, settings, user, records, days) = tokio::join!(
            biased;
            async { tx.query_one(generic_plans, &[]).await.map(drop) },
            next_user_version_on(tx, version, user_id),
            tx.query(settings, &settings_params),
            tx.query_opt(user, &user_params),
            tx.query(&records, &record_params),
            tx.query(stored_days, &day_params),
        );
        // The account check first. An account that does not exist fails the version's insert
        // (its foreign key), and every statement after it, so its user row is an error, as
        // good as none here.
        let standing = user
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .filter(|row| row.get::<_, bool>("live"))
            .map(Standing::from_row);
        check(standing.as_ref())?;
        let records = records.inspect_err(forget_missing);
        plans.map_err(DomainError::from)?;
        let version = version.map_err(DomainError::from)?;
        let user = user
            .map_err(DomainError::from)?
            .ok_or_else(DomainError::internal)?;
        Ok(Self {
            version,
            context: Context::from_rows(&settings.map_err(DomainError::from)?, &user)?,
            records: records.map_err(DomainError::from)?,
            days: days.map_err(DomainError::from)?,
        })
    }
}

/// The state a batch reads, changes as it judges its reports, and writes back.
#[derive(Default)]
struct Batch {
    /// Every source of every day the batch touches.
    records: HashMap<(NaiveDate, String), StoredRecord>,
    /// The accounts of those days.
    days: HashMap<NaiveDate, BatchDay>,
    /// The user's verified day totals from 30 days before the first of them to the last.
    history: Vec<(NaiveDate, i64)>,
    /// Accepted reports that may count for early-bird achievements.
    early: Vec<EarlyReport>,
    /// What each day of `days` is worth now ([`settlement::day_worth`] of its records), kept
    /// up to date as reports change its records, so settling a day does not scan them all.
    worth: HashMap<NaiveDate, i64>,
}

impl Batch {
    /// The batch of `days` (sorted, distinct: the days of the reports not refused outright)
    /// from the rows of a [`Snapshot`], which may hold more days than these.
    fn from_snapshot(snapshot: &Snapshot, days: &[NaiveDate]) -> Self {
        let mut batch = Self::default();
        let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
            return batch;
        };
        let history_from = first - Duration::days(30);
        batch.records = snapshot
            .records
            .iter()
            .map(StoredRecord::from_row)
            .filter(|((day, _), _)| days.binary_search(day).is_ok())
            .collect();
        for ((day, _), record) in &batch.records {
            let worth = batch.worth.entry(*day).or_default();
            *worth = (*worth).max(settlement::day_worth([(record.status, record.verified)]));
        }
        for row in &snapshot.days {
            let day: NaiveDate = row.get("day");
            if day < history_from || day > last {
                continue;
            }
            let account = DayAccount {
                verified_steps: i64::from(row.get::<_, i32>("verified_steps")),
                coins_paid: row.get("coins_paid"),
            };
            if days.binary_search(&day).is_ok() {
                batch.days.insert(
                    day,
                    BatchDay {
                        stored: account,
                        settled: account,
                    },
                );
            }
            if account.verified_steps > 0 {
                batch.history.push((day, account.verified_steps));
            }
        }
        batch
    }

    /// Judges report `index` (refused outright with `refusal`, if any), applies the verdict to
    /// its record, settles its day if it was verified, and answers what happened.
    fn record(
        &mut self,
        index: usize,
        report: &StepReport,
        refusal: Option<&'static str>,
        context: &Context,
    ) -> RecordResult {
        let mut result = RecordResult {
            index,
            date: report.date,
            source: report.source.clone(),
            status: RecordOutcome::Rejected,
            code: refusal.map(str::to_owned),
            steps: 0,
            verified_steps: 0,
            coins_awarded: 0,
        };
        let key = (report.date, report.source.clone());
        if refusal.is_some() {
            if let Some(stored) = self.records.get(&key) {
                result.steps = stored.steps;
                result.verified_steps = stored.verified;
            }
            return result;
        }
        let stored = self.records.entry(key).or_insert_with(StoredRecord::new);
        let counted_before = settlement::day_worth([(stored.status, stored.verified)]);
        let verdict = anticheat::judge(
            report,
            stored.state(),
            &self.history,
            &context.settings,
            context.tz,
            context.now,
        );
        result.code = verdict.code().map(str::to_owned);
        let recorded_at = report.recorded_at.min(context.now);
        match verdict {
            Verdict::Refused(_) => {}
            Verdict::Unchanged => result.status = RecordOutcome::Unchanged,
            Verdict::Accepted { anchor } => {
                result.status = RecordOutcome::Accepted;
                stored.take_reading(report.steps, recorded_at, anchor);
                stored.verified = report.steps;
                let local = recorded_at.with_timezone(&context.tz);
                if local.date_naive() == report.date {
                    self.early.push(EarlyReport {
                        steps: report.steps,
                        local_hour: local.hour(),
                    });
                }
            }
            Verdict::Flagged {
                anchor,
                reasons,
                score,
                ..
            } => {
                result.status = RecordOutcome::Flagged;
                stored.take_reading(report.steps, recorded_at, anchor);
                stored.flag(report.steps, score, reasons);
            }
        }
        result.steps = stored.steps;
        result.verified_steps = stored.verified;
        // Only this record changed: the day's worth moves with what it counts now (a record
        // counts its verified steps unless it is rejected; verified steps only grow here).
        let counted = settlement::day_worth([(stored.status, stored.verified)]);
        if counted != counted_before {
            let worth = self.worth.entry(report.date).or_default();
            *worth = (*worth).max(counted);
        }
        if result.status == RecordOutcome::Accepted {
            result.coins_awarded = self.settle(report.date, &context.settings);
        }
        result
    }

    /// Settles `day` after one of its sources was verified: what the day is worth now, and
    /// the coins that pays beyond what it already paid.
    fn settle(&mut self, day: NaiveDate, rules: &RewardSettings) -> i64 {
        let worth = self.worth.get(&day).copied().unwrap_or(0);
        debug_assert_eq!(
            worth,
            settlement::day_worth(
                self.records
                    .iter()
                    .filter(|((d, _), _)| *d == day)
                    .map(|(_, r)| (r.status, r.verified)),
            ),
            "the kept worth of {day} differs from its records'"
        );
        let account = self.days.entry(day).or_default();
        let (after, award) =
            settlement::settle_day(account.settled, worth, Cause::ReportVerified, rules);
        if after.verified_steps > account.settled.verified_steps {
            match self.history.iter_mut().find(|(d, _)| *d == day) {
                Some(entry) => entry.1 = after.verified_steps,
                None => self.history.push((day, after.verified_steps)),
            }
        }
        account.settled = after;
        award
    }

    /// The days whose accounts the batch changed.
    fn settled_days(&self) -> Vec<SettledDay> {
        self.days
            .iter()
            .filter(|(_, d)| d.settled != d.stored)
            .map(|(&day, d)| SettledDay {
                day,
                before: d.stored,
                after: d.settled,
            })
            .collect()
    }
}

/// The distinct days of `reports` that `keep` lets through, sorted.
fn distinct_days(reports: &[StepReport], keep: impl Fn(usize) -> bool) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = reports
        .iter()
        .enumerate()
        .filter(|(index, _)| keep(*index))
        .map(|(_, r)| r.date)
        .collect();
    days.sort_unstable();
    days.dedup();
    days
}

/// Records a batch of day totals for `user_id` and pays what they earn, in one transaction,
/// if the account passes `check`: the caller's account check on its [`Standing`] (`None`: no
/// live account), read in the batch's first round trip instead of a round trip (and a
/// connection) of its own. When `check` fails, its error is returned and nothing is written.
pub async fn record_steps<E: From<DomainError>>(
    pool: &Pool,
    user_id: Uuid,
    reports: &[StepReport],
    check: impl FnOnce(Option<&Standing>) -> Result<(), E>,
) -> Result<RecordStepsResponse, E> {
    let mut conn = pool.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let response = record_checked(&tx, user_id, reports, check).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(response)
}

/// [`record_steps`] inside the caller's transaction (which it does not commit), for callers
/// that checked the account already and must store something with the same atomicity, like
/// a sync push's mutation results.
pub async fn record_steps_in(
    tx: &Transaction<'_>,
    user_id: Uuid,
    reports: &[StepReport],
) -> Result<RecordStepsResponse, DomainError> {
    record_checked(tx, user_id, reports, |_| Ok::<_, DomainError>(())).await
}

/// Refuses a batch of no reports or more than [`MAX_RECORDS_PER_REQUEST`]. The HTTP route
/// checks it before the account, so that it can answer a dead session first.
pub fn check_batch_size(reports: &[StepReport]) -> Result<(), DomainError> {
    if reports.is_empty() || reports.len() > MAX_RECORDS_PER_REQUEST {
        return Err(DomainError::validation(
            "records",
            format!("send 1 to {MAX_RECORDS_PER_REQUEST} records"),
        ));
    }
    Ok(())
}

/// [`record_steps_in`] with the account check of [`record_steps`], in the caller's transaction
/// (a group's: [`crate::rewards::groups`]).
pub(crate) async fn record_checked<E: From<DomainError>>(
    tx: &Transaction<'_>,
    user_id: Uuid,
    reports: &[StepReport],
    check: impl FnOnce(Option<&Standing>) -> Result<(), E>,
) -> Result<RecordStepsResponse, E> {
    check_batch_size(reports)?;
    let snapshot = Snapshot::read(tx, user_id, &read_days(reports), check).await?;
    let judged = Judged::of(&snapshot, reports);
    // The records and the settled days are written together; the settlement then books the
    // coins and the achievements they unlock.
    let ((), paid) = tokio::try_join!(
        write_records(tx, user_id, judged.version, &judged.batch.records),
        settlement::settle_days(
            tx,
            user_id,
            judged.version,
            &judged.settled,
            judged.streak_day_steps,
            &judged.batch.early
        ),
    )?;
    Ok(RecordStepsResponse {
        coins_awarded: paid.coins,
        achievements_unlocked: achievements::codes(&paid.unlocks),
        results: judged.results,
    })
}

/// A batch judged against its [`Snapshot`]: what it answers, and what it writes.
struct Judged {
    /// The change version its rows are stamped with.
    version: i64,
    /// The answer for each report.
    results: Vec<RecordResult>,
    /// The records and days it changed, and its early reports.
    batch: Batch,
    /// The days whose accounts it changed.
    settled: Vec<SettledDay>,
    /// [`RewardSettings::streak_day_steps`] of the user's goal.
    streak_day_steps: i64,
}

impl Judged {
    /// Judges `reports` against `snapshot`, read for the days [`read_days`] gives.
    fn of(snapshot: &Snapshot, reports: &[StepReport]) -> Self {
        let context = &snapshot.context;
        let refusals: Vec<Option<&'static str>> = reports
            .iter()
            .map(|r| anticheat::refusal(r, &context.settings, context.now))
            .collect();
        let mut batch =
            Batch::from_snapshot(snapshot, &distinct_days(reports, |i| refusals[i].is_none()));
        let results = reports
            .iter()
            .zip(&refusals)
            .enumerate()
            .map(|(index, (report, refusal))| batch.record(index, report, *refusal, context))
            .collect();
        Self {
            version: snapshot.version,
            results,
            settled: batch.settled_days(),
            streak_day_steps: context.settings.streak_day_steps(context.goal),
            batch,
        }
    }
}

/// The days a batch reads: those of every report not dated in the future anywhere on Earth
/// (refused whatever the settings say), sorted and distinct. The settings are read with the
/// records, so the batch then keeps those of the reports the settings do not refuse outright.
fn read_days(reports: &[StepReport]) -> Vec<NaiveDate> {
    let latest_today = (Utc::now() + Duration::hours(14)).date_naive();
    distinct_days(reports, |i| reports[i].date <= latest_today)
}

/// Upserts the changed records and opens or extends their validations (set-based).
async fn write_records(
    tx: &Transaction<'_>,
    user_id: Uuid,
    version: i64,
    records: &HashMap<(NaiveDate, String), StoredRecord>,
) -> Result<(), DomainError> {
    let changed: Vec<(&(NaiveDate, String), &StoredRecord)> =
        records.iter().filter(|(_, r)| r.changed).collect();
    if changed.is_empty() {
        return Ok(());
    }
    // Records the snapshot did not hold are new, as no other transaction can have stored
    // them since: every write of a user's records holds the user's change-version row lock,
    // taken before the snapshot was read.
    let (new, stored): (Vec<_>, Vec<_>) =
        changed.iter().copied().partition(|(_, r)| r.id.is_none());
    let stored_ids = if new.len() >= COPY_NEW_RECORDS_FROM {
        let mut ids = copy_new_records(tx, user_id, version, &new).await?;
        if !stored.is_empty() {
            ids.extend(upsert_records(tx, user_id, version, &stored).await?);
        }
        ids
    } else {
        upsert_records(tx, user_id, version, &changed).await?
    };
    let flags = FlagRows::collect(records, &stored_ids)?;
    flags.write(tx, user_id, version).await
}

/// What an upsert of records does on conflict: [`UPSERT_ONE_RECORD`], [`UPSERT_RECORDS`] and
/// a group's upsert differ only in where their rows come from.
macro_rules! upsert_record_tail {
    () => {
        " ON CONFLICT (user_id, day, source) DO UPDATE SET
             steps = EXCLUDED.steps,
             verified_steps = EXCLUDED.verified_steps,
             status = EXCLUDED.status,
             last_recorded_at = EXCLUDED.last_recorded_at,
             report_count = r.report_count + EXCLUDED.report_count,
             change_version = EXCLUDED.change_version,
             cadence_anchor_at = EXCLUDED.cadence_anchor_at,
             cadence_anchor_steps = EXCLUDED.cadence_anchor_steps"
    };
}

mod group;
pub(crate) use group::{GroupBatch, GroupFailed, record_group};

/// Upserts one record (parameters as [`UPSERT_RECORDS`]'s, each a value instead of an
/// array). A single report changes one record, and a row of values costs PostgreSQL less than
/// unnesting eleven one-element arrays (docs/benchmarks.md, tuning step 13).
const UPSERT_ONE_RECORD: &str = concat!(
    "INSERT INTO step_records AS r
         (id, user_id, day, source, steps, verified_steps, status, first_recorded_at,
          last_recorded_at, report_count, change_version, cadence_anchor_at,
          cadence_anchor_steps)
     VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    upsert_record_tail!(),
    " RETURNING id, day, source"
);

/// Upserts records (parameters: the user, the records' ids, days, sources, steps, verified
/// steps, statuses, first and last reading times and report counts as arrays, the change
/// version, then the cadence anchors' times and steps as arrays).
const UPSERT_RECORDS: &str = concat!(
    "INSERT INTO step_records AS r
         (id, user_id, day, source, steps, verified_steps, status, first_recorded_at,
          last_recorded_at, report_count, change_version, cadence_anchor_at,
          cadence_anchor_steps)
     SELECT id, $1, day, source, steps, verified, status, first_at, last_at, reports, $11,
            anchor_at, anchor_steps
     FROM unnest($2::uuid[], $3::date[], $4::text[], $5::int[], $6::int[], $7::text[],
                 $8::timestamptz[], $9::timestamptz[], $10::int[], $12::timestamptz[],
                 $13::int[])
          AS u(id, day, source, steps, verified, status, first_at, last_at, reports,
               anchor_at, anchor_steps)",
    upsert_record_tail!(),
    " RETURNING id, day, source"
);

/// A changed record's columns as [`UPSERT_ONE_RECORD`] binds them.
struct RecordColumns<'a> {
    id: Uuid,
    day: NaiveDate,
    source: &'a str,
    steps: i32,
    verified: i32,
    status: &'a str,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    reports: i32,
    anchor_at: Option<DateTime<Utc>>,
    anchor_steps: Option<i32>,
}

impl<'a> RecordColumns<'a> {
    /// The record's row for `user` at `version`: [`UPSERT_ONE_RECORD`]'s parameters, and
    /// [`COPY_RECORDS`]'s columns, in that order.
    fn row<'b>(&'b self, user: &'b Uuid, version: &'b i64) -> [&'b (dyn ToSql + Sync); 13] {
        [
            user,
            &self.id,
            &self.day,
            &self.source,
            &self.steps,
            &self.verified,
            &self.status,
            &self.first,
            &self.last,
            &self.reports,
            version,
            &self.anchor_at,
            &self.anchor_steps,
        ]
    }

    fn of(((day, source), record): &(&'a (NaiveDate, String), &'a StoredRecord)) -> Self {
        Self {
            id: record.id.unwrap_or_else(Uuid::now_v7),
            day: *day,
            source: source.as_str(),
            steps: record.steps as i32,
            verified: record.verified as i32,
            status: record.status.as_str(),
            first: record.first_recorded_at.unwrap_or_else(Utc::now),
            last: record.last_recorded_at.unwrap_or_else(Utc::now),
            reports: record.reports.max(1),
            anchor_at: record.anchor.map(|a| a.at),
            anchor_steps: record.anchor.map(|a| a.steps as i32),
        }
    }
}

/// Upserts `changed` records (one statement) and returns the id each is stored under.
async fn upsert_records(
    tx: &Transaction<'_>,
    user_id: Uuid,
    version: i64,
    changed: &[(&(NaiveDate, String), &StoredRecord)],
) -> Result<HashMap<(NaiveDate, String), Uuid>, DomainError> {
    let columns: Vec<RecordColumns> = changed.iter().map(RecordColumns::of).collect();
    let rows = if let [one] = columns.as_slice() {
        tx.query_cached(UPSERT_ONE_RECORD, &one.row(&user_id, &version))
            .await?
    } else {
        fn column<'a, T>(
            columns: &[RecordColumns<'a>],
            get: impl Fn(&RecordColumns<'a>) -> T,
        ) -> Vec<T> {
            columns.iter().map(get).collect()
        }
        tx.query_cached(
            UPSERT_RECORDS,
            &[
                &user_id,
                &column(&columns, |c| c.id),
                &column(&columns, |c| c.day),
                &column(&columns, |c| c.source),
                &column(&columns, |c| c.steps),
                &column(&columns, |c| c.verified),
                &column(&columns, |c| c.status),
                &column(&columns, |c| c.first),
                &column(&columns, |c| c.last),
                &column(&columns, |c| c.reports),
                &version,
                &column(&columns, |c| c.anchor_at),
                &column(&columns, |c| c.anchor_steps),
            ],
        )
        .await?
    };
    Ok(rows
        .iter()
        .map(|row| ((row.get("day"), row.get("source")), row.get("id")))
        .collect())
}

/// The number of new records from which a batch stores them through binary `COPY` rather
/// than [`UPSERT_RECORDS`]: `COPY` inserts rows in multi-row batches, a heap page's rows in one
/// WAL record, without `ON CONFLICT`'s speculative insertion or unnesting thirteen arrays,
/// but takes a round trip more; a round number that keeps a small batch at one statement
/// (`docs/benchmarks.md`, tuning step 28).
const COPY_NEW_RECORDS_FROM: usize = 64;

/// Stores the columns of [`RecordColumns::row`], in its order, through [`copy_new_records`].
const COPY_RECORDS: &str = "COPY step_records
     (user_id, id, day, source, steps, verified_steps, status, first_recorded_at,
      last_recorded_at, report_count, change_version, cadence_anchor_at, cadence_anchor_steps)
 FROM STDIN (FORMAT binary)";

/// The types of [`COPY_RECORDS`]'s columns, in its order.
const COPY_RECORD_TYPES: [Type; 13] = [
    Type::UUID,
    Type::UUID,
    Type::DATE,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT4,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::INT4,
];

/// Inserts `new` records, none of them stored yet (the caller holds the user's change-version
/// row lock and read them after it), through binary `COPY`, and returns the id each is stored
/// under.
async fn copy_new_records(
    tx: &Transaction<'_>,
    user_id: Uuid,
    version: i64,
    new: &[(&(NaiveDate, String), &StoredRecord)],
) -> Result<HashMap<(NaiveDate, String), Uuid>, DomainError> {
    let statement = tx.prepare_cached(COPY_RECORDS).await?;
    let sink = tx.copy_in(&statement).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &COPY_RECORD_TYPES));
    let mut ids = HashMap::with_capacity(new.len());
    for record in new {
        let c = RecordColumns::of(record);
        writer.as_mut().write(&c.row(&user_id, &version)).await?;
        ids.insert((c.day, c.source.to_owned()), c.id);
    }
    writer.finish().await?;
    Ok(ids)
}

/// The validations a batch opens (on records that were not under review) and the pending
/// ones it extends, as column arrays.
#[derive(Default)]
struct FlagRows {
    new_record_ids: Vec<Uuid>,
    new_days: Vec<NaiveDate>,
    new_previous: Vec<i32>,
    new_claimed: Vec<i32>,
    new_scores: Vec<f64>,
    new_reasons: Vec<serde_json::Value>,
    pending_ids: Vec<Uuid>,
    pending_claimed: Vec<i32>,
    pending_scores: Vec<f64>,
    pending_reasons: Vec<serde_json::Value>,
}

impl FlagRows {
    /// The flags the batch raised on `records`, stored under `stored_ids`.
    fn collect(
        records: &HashMap<(NaiveDate, String), StoredRecord>,
        stored_ids: &HashMap<(NaiveDate, String), Uuid>,
    ) -> Result<Self, DomainError> {
        let mut rows = Self::default();
        for (key, record) in records {
            let Some(flag) = &record.new_flag else {
                continue;
            };
            let reasons =
                serde_json::to_value(&flag.reasons).map_err(|_| DomainError::internal())?;
            match record.pending_validation {
                Some(validation) => {
                    rows.pending_ids.push(validation);
                    rows.pending_claimed.push(flag.claimed as i32);
                    rows.pending_scores.push(flag.score);
                    rows.pending_reasons.push(reasons);
                }
                None => {
                    let Some(record_id) = stored_ids.get(key) else {
                        continue;
                    };
                    rows.new_record_ids.push(*record_id);
                    rows.new_days.push(key.0);
                    rows.new_previous.push(record.verified as i32);
                    rows.new_claimed.push(flag.claimed as i32);
                    rows.new_scores.push(flag.score);
                    rows.new_reasons.push(reasons);
                }
            }
        }
        Ok(rows)
    }

    /// Inserts the new validations and extends the pending ones (a statement each, if any).
    async fn write(
        &self,
        tx: &Transaction<'_>,
        user_id: Uuid,
        version: i64,
    ) -> Result<(), DomainError> {
        if !self.new_record_ids.is_empty() {
            tx.execute_cached(
                "INSERT INTO step_validations
                     (user_id, step_record_id, step_day, previous_steps, claimed_steps,
                      anomaly_score, reasons, change_version)
                 SELECT $1, record_id, day, previous, claimed, score, reasons, $8
                 FROM unnest($2::uuid[], $3::date[], $4::int[], $5::int[], $6::float8[],
                             $7::jsonb[])
                      AS v(record_id, day, previous, claimed, score, reasons)",
                &[
                    &user_id,
                    &self.new_record_ids,
                    &self.new_days,
                    &self.new_previous,
                    &self.new_claimed,
                    &self.new_scores,
                    &self.new_reasons,
                    &version,
                ],
            )
            .await?;
        }
        if !self.pending_ids.is_empty() {
            tx.execute_cached(
                "UPDATE step_validations v SET
                     claimed_steps = greatest(v.claimed_steps, u.claimed),
                     anomaly_score = greatest(v.anomaly_score, u.score),
                     reasons = v.reasons || u.reasons,
                     change_version = $5
                 FROM unnest($1::uuid[], $2::int[], $3::float8[], $4::jsonb[])
                      AS u(id, claimed, score, reasons)
                 WHERE v.id = u.id",
                &[
                    &self.pending_ids,
                    &self.pending_claimed,
                    &self.pending_scores,
                    &self.pending_reasons,
                    &version,
                ],
            )
            .await?;
        }
        Ok(())
    }
}

/// The user's days in `[from, to]` with their sources, oldest first.
pub async fn history(
    client: &impl GenericClient,
    user_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DaySteps>, DomainError> {
    let goal: i32 = client
        .query_one_cached(
            "SELECT daily_step_goal FROM users WHERE id = $1",
            &[&user_id],
        )
        .await?
        .get("daily_step_goal");
    let rows = client
        .query_cached(
            "SELECT r.day, r.source, r.steps, r.verified_steps, r.status,
                    coalesce(s.verified_steps, 0) AS day_verified_steps,
                    coalesce(s.coins_paid, 0) AS day_coins_paid
             FROM step_records r
             LEFT JOIN step_days s ON s.user_id = r.user_id AND s.day = r.day
             WHERE r.user_id = $1 AND r.day BETWEEN $2 AND $3
             ORDER BY r.day, r.source",
            &[&user_id, &from, &to],
        )
        .await?;
    let mut days: Vec<DaySteps> = Vec::new();
    for row in rows {
        let date: NaiveDate = row.get("day");
        if days.last().map(|d| d.date) != Some(date) {
            let total = i64::from(row.get::<_, i32>("day_verified_steps"));
            days.push(DaySteps {
                date,
                total_steps: total,
                coins_earned: row.get("day_coins_paid"),
                goal_met: total >= i64::from(goal),
                sources: Vec::new(),
            });
        }
        if let Some(day) = days.last_mut() {
            day.sources.push(SourceSteps {
                source: row.get("source"),
                steps: i64::from(row.get::<_, i32>("steps")),
                verified_steps: i64::from(row.get::<_, i32>("verified_steps")),
                status: row.get("status"),
            });
        }
    }
    Ok(days)
}

/// Today's date in the user's time zone, and the daily goal.
pub async fn today(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(NaiveDate, i64), DomainError> {
    let row = client.query_one_cached(USER_RULES, &[&user_id]).await?;
    let tz = user_time_zone(row.get("timezone"))?;
    Ok((
        Utc::now().with_timezone(&tz).date_naive(),
        i64::from(row.get::<_, i32>("daily_step_goal")),
    ))
}

/// Validates a history range.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), DomainError> {
    if from > to {
        return Err(DomainError::validation("from", "from must not be after to"));
    }
    if (to - from).num_days() > 366 {
        return Err(DomainError::new(
            ErrorKind::Invalid,
            "range_too_large",
            "ask for at most 366 days at once",
        )
        .with_details(serde_json::json!({ "field": "to" })));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_reads_every_column_of_the_account_check() {
        assert!(USER_RULES.contains(crate::auth::accounts::STANDING_COLUMNS));
    }
}

//! Steps to coins: recording day totals (a max-register per user, date and source),
//! anti-cheat on every increase, exactly-once rewards within the daily cap, and achievements,
//! all in one transaction per batch with set-based SQL.
//!
//! Rewards are computed on totals: a day pays `coins_for_day(largest verified source)` minus
//! what it already paid (kept in `step_days`), so replays, reorders and duplicates pay nothing
//! more. The user's change-version row lock serialises concurrent batches of one user.

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;
use deadpool_postgres::{GenericClient, Pool};
use fitkart_protocol::steps::{
    DaySteps, MAX_RECORDS_PER_REQUEST, MAX_SOURCE_LEN, RecordOutcome, RecordResult,
    RecordStepsResponse, SourceSteps, StepReport,
};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::CachedStatements as _;
use crate::error::ApiError;
use crate::rewards::achievements::{self, EarlyReport};
use crate::rewards::ledger::{self, Entry, EntryKind};
use crate::rewards::settings::RewardSettings;
use crate::sync::versions::next_user_version;

/// Status of a stored step record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// Verified.
    Accepted,
    /// Waiting for review; the increase since the last verified total is withheld.
    Flagged,
    /// An admin rejected it; it never pays again.
    Rejected,
}

impl RecordStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Flagged => "flagged",
            Self::Rejected => "rejected",
        }
    }

    /// The status stored as `value`; `None` for one this server version does not know.
    fn parse(value: &str) -> Option<Self> {
        match value {
            "accepted" => Some(Self::Accepted),
            "flagged" => Some(Self::Flagged),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }

    /// The status stored as `value`, failing closed: a status this server does not know
    /// (written by a newer version, or by hand) is treated as rejected, so it never pays and
    /// is never overwritten here.
    fn parse_or_rejected(value: &str) -> Self {
        Self::parse(value).unwrap_or_else(|| {
            tracing::error!(
                status = value,
                "a step record has a status this server does not know; treating it as rejected"
            );
            Self::Rejected
        })
    }
}

/// One reason a report was flagged.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlagReason {
    /// Stable code.
    pub code: &'static str,
    /// The observed value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
}

/// The stored time zone of a user. One that is not in the IANA database (`PATCH /me` refuses
/// those; an import or a hand edit may not have) is an error the user can fix, never a guess:
/// guessing UTC would put steps on the wrong days.
pub fn user_time_zone(name: &str) -> Result<Tz, ApiError> {
    name.parse().map_err(|_| {
        tracing::warn!(
            timezone = name,
            "an account's stored time zone is not in the IANA database"
        );
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_timezone",
            "the account's time zone is not an IANA time zone; set one with PATCH /api/v1/me",
        )
        .with_details(serde_json::json!({ "field": "timezone" }))
    })
}

/// The user's local-day boundaries in UTC.
fn day_bounds(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |d: NaiveDate| -> DateTime<Utc> {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        tz.from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
    };
    let next = date.succ_opt().unwrap_or(date);
    (start_of(date), start_of(next))
}

/// The last reading of a record taken inside its day: when, and the total it claimed.
/// Increases are judged against it (see [`judge_cadence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    at: DateTime<Utc>,
    steps: i64,
}

/// How fast a reading says the day's total grew, and the anchor it leaves behind.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cadence {
    /// Minutes from the anchor to the reading (0 when no time passed).
    minutes: f64,
    /// Steps a minute; infinite for an increase in no time.
    steps_per_minute: f64,
    /// The anchor after this reading, if it is accepted.
    next: Anchor,
}

/// Judges a reading of `steps` for the day `[day_start, day_end)` stamped `recorded_at` and
/// arriving at `now`, against the record's `anchor` (none: the start of the day at 0 steps).
///
/// The reading's time is its stamp, never after its arrival nor the day's end. A stamp that
/// cannot be true of a reading after the anchor's (at or before the anchor's, or before the
/// day began) only says the device's clock is wrong: the reading counts as taken when it
/// arrived, the most the truth allows, never a whole day. A reading taken after the day ended
/// (a watch syncing last night's total in the morning) is judged up to the day's end against
/// the same anchor and does not move it. The windows of successive accepted readings therefore
/// never overlap and never reach past an arrival: no sequence of reports can claim more than
/// the hard cadence times the time that really passed in the day.
fn judge_cadence(
    (day_start, day_end): (DateTime<Utc>, DateTime<Utc>),
    anchor: Option<Anchor>,
    steps: i64,
    recorded_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Cadence {
    let anchor = anchor
        .filter(|a| a.at >= day_start && a.at < day_end)
        .unwrap_or(Anchor {
            at: day_start,
            steps: 0,
        });
    // The latest moment this day's steps can have been walked by the time the report arrived.
    let latest = now.min(day_end);
    let taken = if recorded_at > anchor.at {
        recorded_at.min(latest)
    } else {
        latest
    };
    let increase = steps - anchor.steps;
    let minutes = if taken > anchor.at {
        (taken - anchor.at).num_milliseconds() as f64 / 60_000.0
    } else {
        0.0
    };
    let steps_per_minute = if increase <= 0 {
        0.0
    } else if minutes > 0.0 {
        increase as f64 / minutes
    } else {
        f64::INFINITY
    };
    let next = if taken > anchor.at && taken < day_end {
        Anchor { at: taken, steps }
    } else {
        anchor
    };
    Cadence {
        minutes,
        steps_per_minute,
        next,
    }
}

/// Why a report is refused outright, before looking at the stored record.
fn static_rejection(
    report: &StepReport,
    settings: &RewardSettings,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    let source_ok = !report.source.is_empty()
        && report.source.len() <= MAX_SOURCE_LEN
        && report
            .source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if !source_ok {
        return Some("invalid_source");
    }
    if report.steps < 0 {
        return Some("invalid_steps");
    }
    if report.steps > settings.hard_daily_max_steps {
        return Some("impossible_total");
    }
    // The latest and earliest local dates anywhere on Earth right now.
    let latest_today = (now + Duration::hours(14)).date_naive();
    let earliest_today = (now - Duration::hours(12)).date_naive();
    if report.date > latest_today {
        return Some("future_date");
    }
    if report.date < earliest_today - Duration::days(settings.backfill_days) {
        return Some("outside_backfill_window");
    }
    None
}

/// The outlier score of a day total against the user's own recent day totals.
fn outlier_z(total: i64, history: &[i64]) -> f64 {
    let n = history.len() as f64;
    let mean = history.iter().sum::<i64>() as f64 / n;
    let variance = history
        .iter()
        .map(|&d| (d as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let spread = variance.sqrt().max(0.1 * mean).max(500.0);
    (total as f64 - mean) / spread
}

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
    new_validation: Option<(i64, f64, Vec<FlagReason>)>,
}

struct StepDay {
    verified: i64,
    coins_paid: i64,
    /// What the day had paid before this batch (the reward entry books the difference).
    paid_before: i64,
    changed: bool,
}

/// Records a batch of day totals for `user_id` and pays what they earn, in one transaction.
pub async fn record_steps(
    pool: &Pool,
    user_id: Uuid,
    reports: &[StepReport],
) -> Result<RecordStepsResponse, ApiError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let response = record_steps_in(&tx, user_id, reports).await?;
    tx.commit().await?;
    Ok(response)
}

/// [`record_steps`] inside the caller's transaction (which it does not commit), for callers
/// that must store something with the same atomicity, like a sync push's mutation results.
pub async fn record_steps_in(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: Uuid,
    reports: &[StepReport],
) -> Result<RecordStepsResponse, ApiError> {
    if reports.is_empty() || reports.len() > MAX_RECORDS_PER_REQUEST {
        return Err(ApiError::validation(
            "records",
            format!("send 1 to {MAX_RECORDS_PER_REQUEST} records"),
        ));
    }
    // The version first: its row lock serialises this user's batches. The reads after it go
    // out together (one round trip each pair: a connection runs them in order, all after the
    // lock was taken).
    let version = next_user_version(tx, user_id).await?;
    let (settings, user) = tokio::try_join!(
        async { Ok::<_, ApiError>(RewardSettings::load(tx).await?) },
        async {
            Ok::<_, ApiError>(
                tx.query_one_cached(
                    "SELECT timezone, daily_step_goal FROM users WHERE id = $1",
                    &[&user_id],
                )
                .await?,
            )
        },
    )?;
    let tz = user_time_zone(&user.get::<_, String>(0))?;
    let goal = i64::from(user.get::<_, i32>(1));
    let now = Utc::now();

    let rejections: Vec<Option<&'static str>> = reports
        .iter()
        .map(|r| static_rejection(r, &settings, now))
        .collect();
    let mut days: Vec<NaiveDate> = reports
        .iter()
        .zip(&rejections)
        .filter(|(_, rejected)| rejected.is_none())
        .map(|(r, _)| r.date)
        .collect();
    days.sort_unstable();
    days.dedup();

    // Everything the batch touches, in two round trips.
    let mut records: HashMap<(NaiveDate, String), StoredRecord> = HashMap::new();
    let mut step_days: HashMap<NaiveDate, StepDay> = HashMap::new();
    let mut history: Vec<(NaiveDate, i64)> = Vec::new();
    if let (Some(&first), Some(&last)) = (days.first(), days.last()) {
        let history_from = first - Duration::days(30);
        let record_params: [&(dyn ToSql + Sync); 2] = [&user_id, &days];
        let day_params: [&(dyn ToSql + Sync); 3] = [&user_id, &history_from, &last];
        let (stored_records, stored_days) = tokio::try_join!(
            tx.query_cached(
                "SELECT r.id, r.day, r.source, r.steps, r.verified_steps, r.status,
                        r.first_recorded_at, r.last_recorded_at,
                        (SELECT v.id FROM step_validations v
                         WHERE v.step_record_id = r.id AND v.step_day = r.day
                           AND v.status = 'pending_review' LIMIT 1),
                        r.cadence_anchor_at, r.cadence_anchor_steps
                 FROM step_records r WHERE r.user_id = $1 AND r.day = ANY($2)",
                &record_params,
            ),
            tx.query_cached(
                "SELECT day, verified_steps, coins_paid FROM step_days
                 WHERE user_id = $1 AND day BETWEEN $2 AND $3",
                &day_params,
            ),
        )?;
        for row in stored_records {
            let status: String = row.get(5);
            records.insert(
                (row.get(1), row.get(2)),
                StoredRecord {
                    id: Some(row.get(0)),
                    steps: i64::from(row.get::<_, i32>(3)),
                    verified: i64::from(row.get::<_, i32>(4)),
                    status: RecordStatus::parse_or_rejected(&status),
                    first_recorded_at: Some(row.get(6)),
                    last_recorded_at: Some(row.get(7)),
                    anchor: row
                        .get::<_, Option<DateTime<Utc>>>(9)
                        .zip(row.get::<_, Option<i32>>(10))
                        .map(|(at, steps)| Anchor {
                            at,
                            steps: i64::from(steps),
                        }),
                    reports: 0,
                    changed: false,
                    pending_validation: row.get(8),
                    new_validation: None,
                },
            );
        }
        for row in stored_days {
            let day: NaiveDate = row.get(0);
            let verified = i64::from(row.get::<_, i32>(1));
            if days.binary_search(&day).is_ok() {
                step_days.insert(
                    day,
                    StepDay {
                        verified,
                        coins_paid: row.get(2),
                        paid_before: row.get(2),
                        changed: false,
                    },
                );
            }
            if verified > 0 {
                history.push((day, verified));
            }
        }
    }

    let mut results = Vec::with_capacity(reports.len());
    let mut early = Vec::new();
    for (index, (report, rejection)) in reports.iter().zip(&rejections).enumerate() {
        let mut result = RecordResult {
            index,
            date: report.date,
            source: report.source.clone(),
            status: RecordOutcome::Rejected,
            code: rejection.map(str::to_owned),
            steps: 0,
            verified_steps: 0,
            coins_awarded: 0,
        };
        if rejection.is_some() {
            if let Some(stored) = records.get(&(report.date, report.source.clone())) {
                result.steps = stored.steps;
                result.verified_steps = stored.verified;
            }
            results.push(result);
            continue;
        }
        let recorded_at = report.recorded_at.min(now);
        let stored = records
            .entry((report.date, report.source.clone()))
            .or_insert_with(|| StoredRecord {
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
                new_validation: None,
            });
        result.steps = stored.steps;
        result.verified_steps = stored.verified;
        if stored.status == RecordStatus::Rejected {
            result.code = Some("record_rejected".into());
            results.push(result);
            continue;
        }
        if report.steps <= stored.steps {
            result.status = RecordOutcome::Unchanged;
            result.code = None;
            results.push(result);
            continue;
        }
        let judged = judge_cadence(
            day_bounds(tz, report.date),
            stored.anchor,
            report.steps,
            report.recorded_at,
            now,
        );
        let (cadence, minutes) = (judged.steps_per_minute, judged.minutes);
        if cadence > settings.hard_cadence_spm {
            result.code = Some("impossible_cadence".into());
            results.push(result);
            continue;
        }
        let mut reasons = Vec::new();
        if report.steps > settings.soft_daily_max_steps {
            reasons.push(FlagReason {
                code: "above_soft_daily_max",
                value: report.steps as f64,
                threshold: settings.soft_daily_max_steps as f64,
            });
        }
        if cadence > settings.running_cadence_spm && minutes >= settings.sustained_cadence_minutes {
            reasons.push(FlagReason {
                code: "sustained_running_cadence",
                value: cadence,
                threshold: settings.running_cadence_spm,
            });
        }
        let past: Vec<i64> = history
            .iter()
            .filter(|(d, _)| *d < report.date && *d >= report.date - Duration::days(30))
            .map(|(_, steps)| *steps)
            .collect();
        if past.len() as i64 >= settings.outlier_min_history_days.max(1) {
            let z = outlier_z(report.steps, &past);
            if z > settings.outlier_zscore {
                reasons.push(FlagReason {
                    code: "statistical_outlier",
                    value: z,
                    threshold: settings.outlier_zscore,
                });
            }
        }

        stored.steps = report.steps;
        stored.first_recorded_at.get_or_insert(recorded_at);
        stored.last_recorded_at = Some(recorded_at);
        stored.anchor = Some(judged.next);
        stored.reports += 1;
        stored.changed = true;
        if stored.status == RecordStatus::Flagged {
            result.status = RecordOutcome::Flagged;
            result.code = Some("pending_review".into());
            if let Some((claimed, score, all)) = stored.new_validation.as_mut() {
                *claimed = report.steps;
                *score = score.max(anomaly_score(&reasons));
                all.extend(reasons);
            } else {
                stored.new_validation = Some((report.steps, anomaly_score(&reasons), reasons));
            }
        } else if !reasons.is_empty() {
            result.status = RecordOutcome::Flagged;
            result.code = Some(reasons[0].code.to_owned());
            stored.status = RecordStatus::Flagged;
            stored.new_validation = Some((report.steps, anomaly_score(&reasons), reasons));
        } else {
            result.status = RecordOutcome::Accepted;
            result.code = None;
            stored.verified = report.steps;
            let local = recorded_at.with_timezone(&tz);
            if local.date_naive() == report.date {
                early.push(EarlyReport {
                    steps: report.steps,
                    local_hour: local.hour(),
                });
            }
        }
        result.steps = stored.steps;
        result.verified_steps = stored.verified;

        // What the day is worth now, and what that pays beyond what it already paid.
        if result.status == RecordOutcome::Accepted {
            let worth = records
                .iter()
                .filter(|((d, _), r)| *d == report.date && r.status != RecordStatus::Rejected)
                .map(|(_, r)| r.verified)
                .max()
                .unwrap_or(0);
            let day = step_days.entry(report.date).or_insert(StepDay {
                verified: 0,
                coins_paid: 0,
                paid_before: 0,
                changed: false,
            });
            if worth > day.verified {
                day.verified = worth;
                day.changed = true;
                match history.iter_mut().find(|(d, _)| *d == report.date) {
                    Some(entry) => entry.1 = worth,
                    None => history.push((report.date, worth)),
                }
            }
            let award = (settings.coins_for_day(day.verified) - day.coins_paid).max(0);
            if award > 0 {
                day.coins_paid += award;
                day.changed = true;
                result.coins_awarded = award;
            }
        }
        results.push(result);
    }

    // Two independent upserts, sent together.
    let ((), mut entries) = tokio::try_join!(
        write_records(tx, user_id, version, &mut records),
        write_step_days(tx, user_id, version, &step_days),
    )?;
    let unlocks =
        achievements::evaluate(tx, user_id, settings.streak_day_steps(goal), &early).await?;
    entries.extend(achievements::bonus_entries(user_id, &unlocks));
    ledger::post(tx, user_id, version, &entries).await?;
    achievements::record_unlocks(tx, user_id, version, &unlocks).await?;

    Ok(RecordStepsResponse {
        coins_awarded: entries.iter().map(|e| e.available_delta).sum(),
        achievements_unlocked: achievements::codes(&unlocks),
        results,
    })
}

/// A score of how far past its thresholds a report went (1.0 = at a threshold).
fn anomaly_score(reasons: &[FlagReason]) -> f64 {
    reasons
        .iter()
        .map(|r| {
            if r.threshold > 0.0 {
                r.value / r.threshold
            } else {
                1.0
            }
        })
        .fold(0.0, f64::max)
}

/// Upserts the changed records and their validations (set-based).
async fn write_records(
    tx: &impl GenericClient,
    user_id: Uuid,
    version: i64,
    records: &mut HashMap<(NaiveDate, String), StoredRecord>,
) -> Result<(), ApiError> {
    let changed: Vec<(&(NaiveDate, String), &StoredRecord)> =
        records.iter().filter(|(_, r)| r.changed).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changed
        .iter()
        .map(|(_, r)| r.id.unwrap_or_else(Uuid::now_v7))
        .collect();
    let days: Vec<NaiveDate> = changed.iter().map(|((d, _), _)| *d).collect();
    let sources: Vec<&str> = changed.iter().map(|((_, s), _)| s.as_str()).collect();
    let steps: Vec<i32> = changed.iter().map(|(_, r)| r.steps as i32).collect();
    let verified: Vec<i32> = changed.iter().map(|(_, r)| r.verified as i32).collect();
    let statuses: Vec<&str> = changed.iter().map(|(_, r)| r.status.as_str()).collect();
    let firsts: Vec<DateTime<Utc>> = changed
        .iter()
        .map(|(_, r)| r.first_recorded_at.unwrap_or_else(Utc::now))
        .collect();
    let lasts: Vec<DateTime<Utc>> = changed
        .iter()
        .map(|(_, r)| r.last_recorded_at.unwrap_or_else(Utc::now))
        .collect();
    let counts: Vec<i32> = changed.iter().map(|(_, r)| r.reports.max(1)).collect();
    let anchor_ats: Vec<Option<DateTime<Utc>>> = changed
        .iter()
        .map(|(_, r)| r.anchor.map(|a| a.at))
        .collect();
    let anchor_steps: Vec<Option<i32>> = changed
        .iter()
        .map(|(_, r)| r.anchor.map(|a| a.steps as i32))
        .collect();
    let rows = tx
        .query_cached(
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
                       anchor_at, anchor_steps)
             ON CONFLICT (user_id, day, source) DO UPDATE SET
                 steps = EXCLUDED.steps,
                 verified_steps = EXCLUDED.verified_steps,
                 status = EXCLUDED.status,
                 last_recorded_at = EXCLUDED.last_recorded_at,
                 report_count = r.report_count + EXCLUDED.report_count,
                 change_version = EXCLUDED.change_version,
                 cadence_anchor_at = EXCLUDED.cadence_anchor_at,
                 cadence_anchor_steps = EXCLUDED.cadence_anchor_steps
             RETURNING id, day, source",
            &[
                &user_id,
                &ids,
                &days,
                &sources,
                &steps,
                &verified,
                &statuses,
                &firsts,
                &lasts,
                &counts,
                &version,
                &anchor_ats,
                &anchor_steps,
            ],
        )
        .await?;
    let stored_ids: HashMap<(NaiveDate, String), Uuid> = rows
        .iter()
        .map(|row| ((row.get(1), row.get(2)), row.get(0)))
        .collect();

    // New validations, and updates of the pending ones.
    let mut new_rows = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut updates = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, record) in records.iter() {
        let Some((claimed, score, reasons)) = &record.new_validation else {
            continue;
        };
        let reasons = serde_json::to_value(reasons).map_err(|_| ApiError::internal())?;
        match record.pending_validation {
            Some(validation) => {
                updates.0.push(validation);
                updates.1.push(*claimed as i32);
                updates.2.push(*score);
                updates.3.push(reasons);
            }
            None => {
                let Some(record_id) = stored_ids.get(key) else {
                    continue;
                };
                new_rows.0.push(*record_id);
                new_rows.1.push(key.0);
                new_rows.2.push(record.verified as i32);
                new_rows.3.push(*claimed as i32);
                new_rows.4.push(*score);
                new_rows.5.push(reasons);
            }
        }
    }
    if !new_rows.0.is_empty() {
        tx.execute_cached(
            "INSERT INTO step_validations
                 (user_id, step_record_id, step_day, previous_steps, claimed_steps, anomaly_score,
                  reasons, change_version)
             SELECT $1, record_id, day, previous, claimed, score, reasons, $8
             FROM unnest($2::uuid[], $3::date[], $4::int[], $5::int[], $6::float8[], $7::jsonb[])
                  AS v(record_id, day, previous, claimed, score, reasons)",
            &[
                &user_id,
                &new_rows.0,
                &new_rows.1,
                &new_rows.2,
                &new_rows.3,
                &new_rows.4,
                &new_rows.5,
                &version,
            ],
        )
        .await?;
    }
    if !updates.0.is_empty() {
        tx.execute_cached(
            "UPDATE step_validations v SET
                 claimed_steps = greatest(v.claimed_steps, u.claimed),
                 anomaly_score = greatest(v.anomaly_score, u.score),
                 reasons = v.reasons || u.reasons,
                 change_version = $5
             FROM unnest($1::uuid[], $2::int[], $3::float8[], $4::jsonb[])
                  AS u(id, claimed, score, reasons)
             WHERE v.id = u.id",
            &[&updates.0, &updates.1, &updates.2, &updates.3, &version],
        )
        .await?;
    }
    Ok(())
}

/// Upserts the changed day totals and returns the reward entries for what they newly paid.
async fn write_step_days(
    tx: &impl GenericClient,
    user_id: Uuid,
    version: i64,
    step_days: &HashMap<NaiveDate, StepDay>,
) -> Result<Vec<Entry>, ApiError> {
    let changed: Vec<(&NaiveDate, &StepDay)> =
        step_days.iter().filter(|(_, d)| d.changed).collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let days: Vec<NaiveDate> = changed.iter().map(|(d, _)| **d).collect();
    let verified: Vec<i32> = changed.iter().map(|(_, d)| d.verified as i32).collect();
    let paid: Vec<i64> = changed.iter().map(|(_, d)| d.coins_paid).collect();
    tx.execute_cached(
        "INSERT INTO step_days AS s (user_id, day, verified_steps, coins_paid, change_version)
         SELECT $1, day, verified, paid, $5
         FROM unnest($2::date[], $3::int[], $4::bigint[]) AS u(day, verified, paid)
         ON CONFLICT (user_id, day) DO UPDATE SET
             verified_steps = EXCLUDED.verified_steps,
             coins_paid = EXCLUDED.coins_paid,
             change_version = EXCLUDED.change_version",
        &[&user_id, &days, &verified, &paid, &version],
    )
    .await?;
    let mut entries: Vec<Entry> = changed
        .iter()
        .filter_map(|(day, d)| {
            let award = d.coins_paid - d.paid_before;
            (award > 0).then(|| reward_entry(user_id, **day, award, d.coins_paid))
        })
        .collect();
    entries.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    Ok(entries)
}

/// The ledger entry paying `award` coins for `day`, after which the day has paid `paid_after`.
/// The key names the level reached, so the same coins can never be booked twice.
pub fn reward_entry(user_id: Uuid, day: NaiveDate, award: i64, paid_after: i64) -> Entry {
    Entry {
        kind: EntryKind::StepReward,
        available_delta: award,
        frozen_delta: 0,
        reference: Some(("step_day", day.to_string())),
        idempotency_key: format!("step_reward:{user_id}:{day}:{paid_after}"),
        description: Some(format!("Steps on {day}")),
        created_by: None,
    }
}

/// The user's days in `[from, to]` with their sources, oldest first.
pub async fn history(
    client: &impl GenericClient,
    user_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DaySteps>, ApiError> {
    let goal: i32 = client
        .query_one_cached(
            "SELECT daily_step_goal FROM users WHERE id = $1",
            &[&user_id],
        )
        .await?
        .get(0);
    let rows = client
        .query_cached(
            "SELECT r.day, r.source, r.steps, r.verified_steps, r.status,
                    coalesce(s.verified_steps, 0), coalesce(s.coins_paid, 0)
             FROM step_records r
             LEFT JOIN step_days s ON s.user_id = r.user_id AND s.day = r.day
             WHERE r.user_id = $1 AND r.day BETWEEN $2 AND $3
             ORDER BY r.day, r.source",
            &[&user_id, &from, &to],
        )
        .await?;
    let mut days: Vec<DaySteps> = Vec::new();
    for row in rows {
        let date: NaiveDate = row.get(0);
        if days.last().map(|d| d.date) != Some(date) {
            let total = i64::from(row.get::<_, i32>(5));
            days.push(DaySteps {
                date,
                total_steps: total,
                coins_earned: row.get(6),
                goal_met: total >= i64::from(goal),
                sources: Vec::new(),
            });
        }
        if let Some(day) = days.last_mut() {
            day.sources.push(SourceSteps {
                source: row.get(1),
                steps: i64::from(row.get::<_, i32>(2)),
                verified_steps: i64::from(row.get::<_, i32>(3)),
                status: row.get(4),
            });
        }
    }
    Ok(days)
}

/// Today's date in the user's time zone, and the daily goal.
pub async fn today(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(NaiveDate, i64), ApiError> {
    let row = client
        .query_one_cached(
            "SELECT timezone, daily_step_goal FROM users WHERE id = $1",
            &[&user_id],
        )
        .await?;
    let tz = user_time_zone(&row.get::<_, String>(0))?;
    Ok((
        Utc::now().with_timezone(&tz).date_naive(),
        i64::from(row.get::<_, i32>(1)),
    ))
}

/// Validates a history range.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), ApiError> {
    if from > to {
        return Err(ApiError::validation("from", "from must not be after to"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
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

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn utc_day(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        day_bounds(Tz::UTC, date)
    }

    fn anchor(at_: &str, steps: i64) -> Option<Anchor> {
        Some(Anchor { at: at(at_), steps })
    }

    #[test]
    fn the_window_runs_from_the_anchor_to_the_reading_clamped_into_the_day_and_its_arrival() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let day = utc_day(date);
        let noon = at("2026-11-20T12:00:00Z");
        // The first reading: from the start of the day.
        let first = judge_cadence(day, None, 6000, at("2026-11-20T10:00:00Z"), noon);
        assert_eq!(first.minutes, 600.0);
        assert_eq!(first.steps_per_minute, 10.0);
        assert_eq!(first.next, anchor("2026-11-20T10:00:00Z", 6000).unwrap());
        // From the previous in-day reading, on the increase over its total.
        let next = judge_cadence(
            day,
            anchor("2026-11-20T09:30:00Z", 3000),
            6000,
            at("2026-11-20T10:00:00Z"),
            noon,
        );
        assert_eq!((next.minutes, next.steps_per_minute), (30.0, 100.0));
        // A stamp in the future counts only up to the arrival.
        let future = judge_cadence(day, None, 7200, at("2026-11-20T23:00:00Z"), noon);
        assert_eq!(future.minutes, 720.0);
        assert_eq!(future.next.at, noon);
        // Local days follow the user's time zone.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let local = judge_cadence(
            day_bounds(berlin, date),
            None,
            100,
            at("2026-11-20T10:00:00Z"),
            noon,
        );
        assert_eq!(local.minutes, 660.0);
    }

    #[test]
    fn a_stamp_before_the_day_or_before_the_anchor_counts_as_its_arrival() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let day = utc_day(date);
        // Minutes after midnight, stamped the evening before: five minutes, not a day.
        let early = judge_cadence(
            day,
            None,
            40_000,
            at("2026-11-19T18:00:00Z"),
            at("2026-11-20T00:05:00Z"),
        );
        assert_eq!((early.minutes, early.steps_per_minute), (5.0, 8000.0));
        // An increase stamped hours before the previous reading: the minutes since that one.
        let before = judge_cadence(
            day,
            anchor("2026-11-20T12:00:00Z", 5000),
            9000,
            at("2026-11-20T08:00:00Z"),
            at("2026-11-20T12:05:00Z"),
        );
        assert_eq!((before.minutes, before.steps_per_minute), (5.0, 800.0));
        assert_eq!(before.next, anchor("2026-11-20T12:05:00Z", 9000).unwrap());
        // The same stamp again is no time at all when it arrives at once.
        let same = judge_cadence(
            day,
            anchor("2026-11-20T12:00:00Z", 5000),
            5100,
            at("2026-11-20T12:00:00Z"),
            at("2026-11-20T12:00:00Z"),
        );
        assert!(same.steps_per_minute.is_infinite());
        // A day that has not begun yet in the user's time zone has no time at all.
        let tomorrow = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let unborn = judge_cadence(
            utc_day(tomorrow),
            None,
            500,
            at("2026-11-21T10:00:00Z"),
            at("2026-11-20T20:00:00Z"),
        );
        assert!(unborn.steps_per_minute.is_infinite());
    }

    #[test]
    fn readings_after_the_day_ended_judge_against_the_last_in_day_anchor_without_moving_it() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let day = utc_day(date);
        let evening = anchor("2026-11-20T18:00:00Z", 6000);
        let morning = judge_cadence(
            day,
            evening,
            10_500,
            at("2026-11-21T07:00:00Z"),
            at("2026-11-21T07:00:00Z"),
        );
        assert_eq!((morning.minutes, morning.steps_per_minute), (360.0, 12.5));
        assert_eq!(morning.next, evening.unwrap());
        // A second revision later that morning is judged from the same evening anchor.
        let again = judge_cadence(
            day,
            Some(morning.next),
            11_000,
            at("2026-11-21T07:05:00Z"),
            at("2026-11-21T07:05:00Z"),
        );
        assert_eq!(again.minutes, 360.0);
    }

    proptest::proptest! {
        /// Whatever stamps a sender picks, the total it gets accepted never exceeds the hard
        /// cadence times the day's time that really passed by the last arrival.
        #[test]
        fn no_sequence_of_stamps_claims_more_than_the_real_elapsed_time(
            reports in proptest::collection::vec((0i64..20_000, -1_500i64..3_000, 0i64..30), 1..40)
        ) {
            let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
            let day = utc_day(date);
            let rate = 600.0;
            let mut now = day.0;
            let mut stored = 0i64;
            let mut anchor_now: Option<Anchor> = None;
            for (extra, stamp_offset_min, wait_min) in reports {
                now += Duration::minutes(wait_min);
                let steps = stored + extra;
                if steps <= stored {
                    continue;
                }
                let stamp = day.0 + Duration::minutes(stamp_offset_min);
                let judged = judge_cadence(day, anchor_now, steps, stamp, now);
                if judged.steps_per_minute <= rate {
                    stored = steps;
                    anchor_now = Some(judged.next);
                }
                let elapsed = (now.min(day.1) - day.0).num_milliseconds() as f64 / 60_000.0;
                proptest::prop_assert!(stored as f64 <= rate * elapsed + 1.0);
            }
        }
    }

    #[test]
    fn an_unknown_stored_status_fails_closed() {
        assert_eq!(
            RecordStatus::parse("accepted"),
            Some(RecordStatus::Accepted)
        );
        assert_eq!(RecordStatus::parse("suspended"), None);
        assert_eq!(
            RecordStatus::parse_or_rejected("suspended"),
            RecordStatus::Rejected
        );
        for status in [
            RecordStatus::Accepted,
            RecordStatus::Flagged,
            RecordStatus::Rejected,
        ] {
            assert_eq!(RecordStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn outliers_are_scored_against_a_floored_spread() {
        let steady = [8000; 10];
        assert!(outlier_z(8500, &steady) < 1.0);
        assert!(outlier_z(40_000, &steady) > 4.0);
    }
}

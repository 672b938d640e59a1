//! The anti-cheat judgement of one step report, as a plain function over plain data: the
//! report, the stored state of its record, the user's recent day totals, the thresholds from
//! the settings and the clock go in; a verdict (refused, unchanged, accepted, flagged with
//! reasons) comes out. [`crate::rewards::steps`] loads the state, asks [`judge`] and persists
//! the answer.

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use fitkart_protocol::steps::{MAX_SOURCE_LEN, StepReport};

use crate::rewards::settings::RewardSettings;

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
    /// The status as stored in `step_records.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Flagged => "flagged",
            Self::Rejected => "rejected",
        }
    }

    /// The status stored as `value`; `None` for one this server version does not know.
    pub fn parse(value: &str) -> Option<Self> {
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
    pub fn parse_or_rejected(value: &str) -> Self {
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

/// The last reading of a record taken inside its day: when, and the total it claimed.
/// Increases are judged against it (see [`judge_cadence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// When the reading was taken (clamped into its day and its arrival).
    pub at: DateTime<Utc>,
    /// The day total it claimed.
    pub steps: i64,
}

/// What the judgement needs of a record as stored (a new record: accepted, 0 steps, no anchor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordState {
    /// Its status.
    pub status: RecordStatus,
    /// The largest total stored for it.
    pub steps: i64,
    /// The reading later increases are judged against.
    pub anchor: Option<Anchor>,
}

impl RecordState {
    /// A record that has never been reported.
    pub const NEW: Self = Self {
        status: RecordStatus::Accepted,
        steps: 0,
        anchor: None,
    };
}

/// The judgement of one report.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Refused: nothing is stored; the code says why.
    Refused(&'static str),
    /// Not above the stored total: nothing changes.
    Unchanged,
    /// Verified: the total counts and pays.
    Accepted {
        /// The record's anchor after this reading.
        anchor: Anchor,
    },
    /// Stored but not verified: the increase waits for review.
    Flagged {
        /// The record's anchor after this reading.
        anchor: Anchor,
        /// Why (may be empty when the record was already waiting for review).
        reasons: Vec<FlagReason>,
        /// How far past its thresholds the report went ([`anomaly_score`] of `reasons`).
        score: f64,
        /// The record was already flagged: a further increase stays under review.
        already_flagged: bool,
    },
}

impl Verdict {
    /// The code a report's result carries: the refusal, `pending_review` for an increase of
    /// a record under review, the first reason of a new flag; none when accepted or unchanged.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Refused(code) => Some(code),
            Self::Unchanged | Self::Accepted { .. } => None,
            Self::Flagged {
                already_flagged: true,
                ..
            } => Some("pending_review"),
            Self::Flagged { reasons, .. } => reasons.first().map(|r| r.code),
        }
    }
}

/// Judges `report` against its record's `stored` state, the user's verified day totals in
/// `history` (any days; the 30 before the report's date are used), the thresholds in `rules`,
/// the user's time zone and the clock.
pub fn judge(
    report: &StepReport,
    stored: RecordState,
    history: &[(NaiveDate, i64)],
    rules: &RewardSettings,
    tz: Tz,
    now: DateTime<Utc>,
) -> Verdict {
    if let Some(code) = refusal(report, rules, now) {
        return Verdict::Refused(code);
    }
    if stored.status == RecordStatus::Rejected {
        return Verdict::Refused("record_rejected");
    }
    if report.steps <= stored.steps {
        return Verdict::Unchanged;
    }
    let cadence = judge_cadence(
        day_bounds(tz, report.date),
        stored.anchor,
        report.steps,
        report.recorded_at,
        now,
    );
    if cadence.steps_per_minute > rules.hard_cadence_spm {
        return Verdict::Refused("impossible_cadence");
    }
    let reasons = flag_reasons(report, &cadence, history, rules);
    let already_flagged = stored.status == RecordStatus::Flagged;
    if reasons.is_empty() && !already_flagged {
        return Verdict::Accepted {
            anchor: cadence.next,
        };
    }
    Verdict::Flagged {
        anchor: cadence.next,
        score: anomaly_score(&reasons),
        reasons,
        already_flagged,
    }
}

/// Why a report is refused outright, before looking at the stored record: a malformed
/// source, negative steps, an impossible total, a date in the future or before the backfill
/// window.
pub fn refusal(
    report: &StepReport,
    rules: &RewardSettings,
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
    if report.steps > rules.hard_daily_max_steps {
        return Some("impossible_total");
    }
    // The latest and earliest local dates anywhere on Earth right now.
    let latest_today = (now + Duration::hours(14)).date_naive();
    let earliest_today = (now - Duration::hours(12)).date_naive();
    if report.date > latest_today {
        return Some("future_date");
    }
    if report.date < earliest_today - Duration::days(rules.backfill_days) {
        return Some("outside_backfill_window");
    }
    None
}

/// The reasons to flag an increase that passed the hard limits: above the soft daily
/// maximum, a sustained running cadence, a statistical outlier against the user's own days.
fn flag_reasons(
    report: &StepReport,
    cadence: &Cadence,
    history: &[(NaiveDate, i64)],
    rules: &RewardSettings,
) -> Vec<FlagReason> {
    let mut reasons = Vec::new();
    if report.steps > rules.soft_daily_max_steps {
        reasons.push(FlagReason {
            code: "above_soft_daily_max",
            value: report.steps as f64,
            threshold: rules.soft_daily_max_steps as f64,
        });
    }
    if cadence.steps_per_minute > rules.running_cadence_spm
        && cadence.minutes >= rules.sustained_cadence_minutes
    {
        reasons.push(FlagReason {
            code: "sustained_running_cadence",
            value: cadence.steps_per_minute,
            threshold: rules.running_cadence_spm,
        });
    }
    let past: Vec<i64> = history
        .iter()
        .filter(|(d, _)| *d < report.date && *d >= report.date - Duration::days(30))
        .map(|(_, steps)| *steps)
        .collect();
    if past.len() as i64 >= rules.outlier_min_history_days.max(1) {
        let z = outlier_z(report.steps, &past);
        if z > rules.outlier_zscore {
            reasons.push(FlagReason {
                code: "statistical_outlier",
                value: z,
                threshold: rules.outlier_zscore,
            });
        }
    }
    reasons
}

/// The user's local-day boundaries in UTC.
pub fn day_bounds(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
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

/// A score of how far past its thresholds a report went (1.0 = at a threshold).
pub fn anomaly_score(reasons: &[FlagReason]) -> f64 {
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

    fn report(date: NaiveDate, steps: i64, recorded_at: DateTime<Utc>) -> StepReport {
        StepReport {
            date,
            source: "phone".into(),
            steps,
            recorded_at,
        }
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

        /// The whole judgement over a sequence of reports of one record, applied the way the
        /// recording path applies it: what is stored never exceeds the hard daily maximum nor
        /// the hard cadence times the time that passed, only increases are ever stored, a
        /// flagged record never becomes verified again, and a refused or unchanged report
        /// changes nothing.
        #[test]
        fn a_judged_sequence_stores_only_possible_increases_and_a_flag_sticks(
            reports in proptest::collection::vec((0i64..30_000, -600i64..1_500, 0i64..90), 1..40)
        ) {
            let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
            let day = utc_day(date);
            let rules = RewardSettings::default();
            let mut now = day.0;
            let mut state = RecordState::NEW;
            for (extra, stamp_offset_min, wait_min) in reports {
                now += Duration::minutes(wait_min);
                let steps = (state.steps + extra - 2_000).max(0);
                let sent = report(date, steps, day.0 + Duration::minutes(stamp_offset_min));
                let verdict = judge(&sent, state, &[], &rules, Tz::UTC, now);
                match &verdict {
                    Verdict::Refused(_) | Verdict::Unchanged => {
                        proptest::prop_assert!(
                            matches!(verdict, Verdict::Refused(_)) || steps <= state.steps
                        );
                    }
                    Verdict::Accepted { anchor } => {
                        proptest::prop_assert_eq!(state.status, RecordStatus::Accepted);
                        proptest::prop_assert!(steps > state.steps);
                        state = RecordState { status: RecordStatus::Accepted, steps, anchor: Some(*anchor) };
                    }
                    Verdict::Flagged { anchor, reasons, already_flagged, .. } => {
                        proptest::prop_assert!(steps > state.steps);
                        proptest::prop_assert_eq!(
                            *already_flagged,
                            state.status == RecordStatus::Flagged
                        );
                        proptest::prop_assert!(*already_flagged || !reasons.is_empty());
                        proptest::prop_assert!(verdict.code().is_some());
                        state = RecordState { status: RecordStatus::Flagged, steps, anchor: Some(*anchor) };
                    }
                }
                let elapsed = (now.min(day.1) - day.0).num_milliseconds() as f64 / 60_000.0;
                proptest::prop_assert!(state.steps <= rules.hard_daily_max_steps);
                proptest::prop_assert!(state.steps as f64 <= rules.hard_cadence_spm * elapsed + 1.0);
            }
        }

        /// A refusal that does not depend on the stored record is given whatever it holds.
        #[test]
        fn outright_refusals_do_not_depend_on_the_stored_record(
            steps in -10i64..200_000, stored_steps in 0i64..100_000, days_back in -3i64..40
        ) {
            let now = at("2026-11-20T12:00:00Z");
            let rules = RewardSettings::default();
            let date = now.date_naive() - Duration::days(days_back);
            let sent = report(date, steps, now);
            if let Some(code) = refusal(&sent, &rules, now) {
                for status in [RecordStatus::Accepted, RecordStatus::Flagged, RecordStatus::Rejected] {
                    let stored = RecordState { status, steps: stored_steps, anchor: None };
                    proptest::prop_assert_eq!(
                        judge(&sent, stored, &[], &rules, Tz::UTC, now),
                        Verdict::Refused(code)
                    );
                }
            }
        }
    }

    #[test]
    fn verdicts_carry_the_codes_reports_answer_with() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let now = at("2026-11-20T20:00:00Z");
        let rules = RewardSettings::default();
        let judge_now = |steps: i64, stored: RecordState, history: &[(NaiveDate, i64)]| {
            judge(
                &report(date, steps, at("2026-11-20T19:00:00Z")),
                stored,
                history,
                &rules,
                Tz::UTC,
                now,
            )
        };
        assert!(matches!(
            judge_now(8000, RecordState::NEW, &[]),
            Verdict::Accepted { .. }
        ));
        let rejected = RecordState {
            status: RecordStatus::Rejected,
            ..RecordState::NEW
        };
        assert_eq!(
            judge_now(8000, rejected, &[]).code(),
            Some("record_rejected")
        );
        let at_5000 = RecordState {
            steps: 5000,
            ..RecordState::NEW
        };
        assert_eq!(judge_now(5000, at_5000, &[]), Verdict::Unchanged);
        assert_eq!(
            judge_now(60_000, RecordState::NEW, &[]).code(),
            Some("above_soft_daily_max")
        );
        assert_eq!(
            judge_now(200_000, RecordState::NEW, &[]).code(),
            Some("impossible_total")
        );
        let flagged = RecordState {
            status: RecordStatus::Flagged,
            ..at_5000
        };
        assert_eq!(judge_now(6000, flagged, &[]).code(), Some("pending_review"));
        let steady: Vec<(NaiveDate, i64)> =
            (1..=10).map(|d| (date - Duration::days(d), 3000)).collect();
        assert_eq!(
            judge_now(40_000, RecordState::NEW, &steady).code(),
            Some("statistical_outlier")
        );
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

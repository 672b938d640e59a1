//! Achievements: unlock rules (JSONB criteria), their evaluation in the same transaction as
//! the award that may unlock them, and the caller's progress. Each unlocks once per user
//! (unique constraint) and pays its bonus once (ledger idempotency key).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use fitkart_protocol::steps::AchievementProgress;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::CachedStatements as _;
use crate::error::Result;
use crate::rewards::ledger::{Entry, EntryKind};
#[cfg(doc)]
use crate::rewards::settings::RewardSettings;

/// An unlock rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criteria {
    /// Lifetime verified steps (sum of day totals) at least this.
    TotalSteps(i64),
    /// One day's total at least this.
    DailySteps(i64),
    /// This many consecutive days at the user's daily goal.
    Streak(i64),
    /// At least `steps` recorded before local hour `before_hour` on the same day.
    EarlyBird {
        /// Steps needed.
        steps: i64,
        /// Local hour (0-23) before which they must be recorded.
        before_hour: u32,
    },
    /// A rule this server version does not know; never unlocks.
    Unknown,
}

impl Criteria {
    /// Parses the JSONB criteria.
    pub fn parse(value: &serde_json::Value) -> Self {
        let int = |key: &str| value.get(key).and_then(serde_json::Value::as_i64);
        match value.get("type").and_then(serde_json::Value::as_str) {
            Some("total_steps") => int("steps").map_or(Self::Unknown, Self::TotalSteps),
            Some("daily_steps") => int("steps").map_or(Self::Unknown, Self::DailySteps),
            Some("streak") => int("days").map_or(Self::Unknown, Self::Streak),
            Some("early_bird") => match (int("steps"), int("before_hour")) {
                (Some(steps), Some(hour)) if (0..=24).contains(&hour) => Self::EarlyBird {
                    steps,
                    before_hour: hour as u32,
                },
                _ => Self::Unknown,
            },
            _ => Self::Unknown,
        }
    }

    /// The rule's target (steps or days).
    pub fn target(self) -> i64 {
        match self {
            Self::TotalSteps(n) | Self::DailySteps(n) | Self::Streak(n) => n,
            Self::EarlyBird { steps, .. } => steps,
            Self::Unknown => 0,
        }
    }
}

/// An accepted report that may count for early-bird rules: its total and local hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyReport {
    /// The source's day total at that report.
    pub steps: i64,
    /// The local hour it was recorded at, on the day it counts for.
    pub local_hour: u32,
}

/// What the rules are evaluated on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Lifetime verified steps.
    pub total_steps: i64,
    /// Best day.
    pub best_day: i64,
    /// Longest run of consecutive streak days (days at the user's goal and at least the
    /// programme-wide minimum, see [`RewardSettings::streak_day_steps`]).
    pub longest_streak: i64,
}

/// The user's facts in one scan of their days (parameters: the user, the steps a streak day
/// needs): lifetime verified steps, best day, and the streak days (in no order; `NULL` when
/// none). The days read once, not once for the totals and again for the streak: a quarter
/// less of PostgreSQL's CPU an achievement check (docs/benchmarks.md, tuning step 34).
const FACTS: &str = "SELECT coalesce(sum(verified_steps), 0)::bigint AS total_steps,
        coalesce(max(verified_steps), 0)::bigint AS best_day,
        array_agg(day) FILTER (WHERE verified_steps >= $2) AS streak_days
 FROM step_days WHERE user_id = $1";

impl Facts {
    /// Reads the user's facts from `step_days`: verified totals only, so a backfilled day counts
    /// with what anti-cheat accepted of it. A streak day needs `streak_day_steps`.
    pub async fn load(
        client: &impl GenericClient,
        user_id: Uuid,
        streak_day_steps: i64,
    ) -> Result<Self> {
        let facts = client.prepare_cached(FACTS).await?;
        Self::read(client, &facts, user_id, streak_day_steps).await
    }

    /// [`Facts::load`] with its statement prepared ([`FACTS`] or [`CANDIDATE_FACTS`]): it goes
    /// out when first polled.
    async fn read(
        client: &impl GenericClient,
        facts: &Statement,
        user_id: Uuid,
        streak_day_steps: i64,
    ) -> Result<Self> {
        let streak_floor = Self::streak_floor(streak_day_steps);
        let row = client.query_one(facts, &[&user_id, &streak_floor]).await?;
        Ok(Self::from_row(&row))
    }

    /// The facts of a row of [`FACTS`], [`CANDIDATE_FACTS`] or [`GROUP_CANDIDATE_FACTS`].
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let mut goal_days: Vec<NaiveDate> = row
            .get::<_, Option<Vec<NaiveDate>>>("streak_days")
            .unwrap_or_default();
        // The aggregate takes the days in the scan's order (a bitmap scan's is the heap's,
        // where a day made up later sits after the days that follow it), not the days'.
        goal_days.sort_unstable();
        Self {
            total_steps: row.get("total_steps"),
            best_day: row.get("best_day"),
            longest_streak: longest_run(&goal_days),
        }
    }

    /// The steps a streak day needs as the statements bind them.
    fn streak_floor(streak_day_steps: i64) -> i32 {
        streak_day_steps.clamp(0, i64::from(i32::MAX)) as i32
    }

    /// Progress towards a rule.
    pub fn progress(&self, criteria: Criteria) -> i64 {
        match criteria {
            Criteria::TotalSteps(_) => self.total_steps,
            Criteria::DailySteps(_) => self.best_day,
            Criteria::Streak(_) => self.longest_streak,
            Criteria::EarlyBird { .. } | Criteria::Unknown => 0,
        }
    }

    /// Whether a rule is met, counting the batch's `early` reports for early-bird rules.
    pub fn satisfies(&self, criteria: Criteria, early: &[EarlyReport]) -> bool {
        match criteria {
            Criteria::TotalSteps(n) => self.total_steps >= n,
            Criteria::DailySteps(n) => self.best_day >= n,
            Criteria::Streak(n) => n > 0 && self.longest_streak >= n,
            Criteria::EarlyBird { steps, before_hour } => early
                .iter()
                .any(|r| r.steps >= steps && r.local_hour < before_hour),
            Criteria::Unknown => false,
        }
    }
}

/// Where a user stands on one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The rule is met now: the achievement unlocks, if it has not already.
    pub met: bool,
    /// Progress to show: the facts' progress up to the target, the target once unlocked.
    pub progress: i64,
    /// The rule's target (steps or days).
    pub target: i64,
}

/// Judges `criteria` against the user's `facts` and the `early` reports of the batch being
/// recorded (none outside one); `unlocked` says whether the user already has it.
pub fn standing(
    criteria: Criteria,
    facts: &Facts,
    early: &[EarlyReport],
    unlocked: bool,
) -> Standing {
    let target = criteria.target();
    Standing {
        met: facts.satisfies(criteria, early),
        progress: if unlocked {
            target
        } else {
            facts.progress(criteria).min(target)
        },
        target,
    }
}

/// The longest run of consecutive dates in a sorted list.
fn longest_run(days: &[NaiveDate]) -> i64 {
    let mut best = 0;
    let mut run = 0;
    let mut previous: Option<NaiveDate> = None;
    for &day in days {
        run = match previous {
            Some(p) if p.succ_opt() == Some(day) => run + 1,
            Some(p) if p == day => run,
            _ => 1,
        };
        best = best.max(run);
        previous = Some(day);
    }
    best
}

/// An achievement the user just earned.
#[derive(Debug, Clone)]
pub struct Unlock {
    /// Achievement id.
    pub achievement_id: Uuid,
    /// Its code.
    pub code: String,
    /// Its bonus.
    pub bonus_coins: i64,
}

/// The active achievements not unlocked of each user of `$users`, a row source of
/// `k(user_id)`, with their user: [`CANDIDATES`] and [`GROUP_CANDIDATES`].
macro_rules! candidates {
    ($users:literal) => {
        concat!(
            "SELECT k.user_id, a.id, a.code, a.criteria, a.bonus_coins
 FROM ",
            $users,
            " AS k(user_id) CROSS JOIN achievements a
 WHERE a.is_active AND a.deleted_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM user_achievements ua
                   WHERE ua.user_id = k.user_id AND ua.achievement_id = a.id)
 ORDER BY k.user_id, a.sort_order, a.code"
        )
    };
}

/// The active achievements the user has not unlocked (parameter: the user), from a row of
/// `VALUES`, which PostgreSQL folds into the plan (no scan of the row).
const CANDIDATES: &str = candidates!("(VALUES ($1::uuid))");

/// [`CANDIDATES`] of several users (parameter: the users).
const GROUP_CANDIDATES: &str = candidates!("unnest($1::uuid[])");

/// [`FACTS`] as the evaluation reads it, with its user, for each user of `$users`, a row
/// source of `k(user_id, floor)` (`floor`: the steps a streak day needs of them): the totals
/// only while a total-steps or daily-steps achievement is left to unlock (zeros otherwise),
/// the streak days only while a streak achievement is (none otherwise), and the days not
/// scanned at all when neither is. What is left to unlock is judged once per user, before the
/// scan, and the user's days read once for both: the evaluation of every coin-paying step
/// report runs it (tuning steps 34 and 35). The types are those [`Criteria::parse`] reads the
/// facts for.
macro_rules! candidate_facts {
    ($users:literal) => {
        concat!(
            "SELECT k.user_id,
        coalesce(f.total_steps, 0)::bigint AS total_steps,
        coalesce(f.best_day, 0)::bigint AS best_day, f.streak_days
 FROM ",
            $users,
            " AS k(user_id, floor)
 CROSS JOIN LATERAL (
   SELECT coalesce(bool_or(a.criteria->>'type' IN ('total_steps', 'daily_steps')), false)
            AS totals,
          coalesce(bool_or(a.criteria->>'type' = 'streak'), false) AS streak
   FROM achievements a
   WHERE a.is_active AND a.deleted_at IS NULL
     AND NOT EXISTS (SELECT 1 FROM user_achievements ua
                     WHERE ua.user_id = k.user_id AND ua.achievement_id = a.id)) c
 CROSS JOIN LATERAL (
   SELECT sum(d.verified_steps) FILTER (WHERE c.totals) AS total_steps,
          max(d.verified_steps) FILTER (WHERE c.totals) AS best_day,
          array_agg(d.day) FILTER (WHERE c.streak AND d.verified_steps >= k.floor)
            AS streak_days
   FROM step_days d WHERE d.user_id = k.user_id AND (c.totals OR c.streak)) f"
        )
    };
}

/// The evaluation's facts of one user (parameters: the user, the steps a streak day needs),
/// from a row of `VALUES` as [`CANDIDATES`] is: as fast as the statement over `$1` it
/// replaced, where the group's statement given one-element arrays took about 0.05 ms more
/// (docs/benchmarks.md, tuning step 36).
const CANDIDATE_FACTS: &str = candidate_facts!("(VALUES ($1::uuid, $2::int))");

/// [`CANDIDATE_FACTS`] of several users (parameters: the users and the steps a streak day
/// needs of each): a row for each user.
const GROUP_CANDIDATE_FACTS: &str = candidate_facts!("unnest($1::uuid[], $2::int[])");

/// An evaluation of every active achievement the user has not unlocked, with its statements
/// prepared, so that a caller can send its reads in the same round trip as the writes they
/// must see ([`crate::db::CachedStatements::prepare_in_order`]).
pub struct Evaluation {
    statements: [Statement; 2],
}

impl Evaluation {
    /// Prepares the evaluation's statements (cached per connection).
    pub async fn prepare(tx: &Transaction<'_>) -> Result<Self> {
        Ok(Self {
            statements: tx.prepare_in_order([CANDIDATES, CANDIDATE_FACTS]).await?,
        })
    }

    /// Evaluates, in the caller's transaction (which holds the user's change-version lock, so
    /// no concurrent evaluation can race); its reads go out when the future is first polled
    /// and see the `step_days` writes sent before them. The user's days are read only for the
    /// facts some candidate is judged on: most reports of a user who has unlocked every step
    /// and streak achievement read none. `streak_day_steps` is
    /// [`RewardSettings::streak_day_steps`] of the user's goal.
    pub async fn run(
        &self,
        tx: &Transaction<'_>,
        user_id: Uuid,
        streak_day_steps: i64,
        early: &[EarlyReport],
    ) -> Result<Vec<Unlock>> {
        let [candidates, facts] = &self.statements;
        let (rows, facts) = tokio::try_join!(
            biased;
            async { Ok(tx.query(candidates, &[&user_id]).await?) },
            Facts::read(tx, facts, user_id, streak_day_steps),
        )?;
        Ok(unlocks_met(rows.iter(), &facts, early))
    }
}

/// The candidates (rows of [`CANDIDATES`] or [`GROUP_CANDIDATES`]) whose rule `facts` and the
/// `early` reports meet: what unlocks now.
fn unlocks_met<'a>(
    candidates: impl Iterator<Item = &'a tokio_postgres::Row>,
    facts: &Facts,
    early: &[EarlyReport],
) -> Vec<Unlock> {
    candidates
        .filter(|row| standing(Criteria::parse(&row.get("criteria")), facts, early, false).met)
        .map(|row| Unlock {
            achievement_id: row.get("id"),
            code: row.get("code"),
            bonus_coins: row.get("bonus_coins"),
        })
        .collect()
}

/// [`Evaluation`] of several users at once, in two statements whatever their number.
pub struct GroupEvaluation {
    statements: [Statement; 2],
}

/// One user of a [`GroupEvaluation`]: who, the steps a streak day needs of them
/// ([`RewardSettings::streak_day_steps`] of their goal), and their batch's early reports.
pub type GroupMember<'a> = (Uuid, i64, &'a [EarlyReport]);

impl GroupEvaluation {
    /// Prepares the evaluation's statements (cached per connection).
    pub async fn prepare(tx: &Transaction<'_>) -> Result<Self> {
        Ok(Self {
            statements: tx
                .prepare_in_order([GROUP_CANDIDATES, GROUP_CANDIDATE_FACTS])
                .await?,
        })
    }

    /// [`Evaluation::run`] for each of `members` (distinct users, the caller's transaction
    /// holding each one's change-version lock): what each unlocks, in their order. The reads
    /// go out when the future is first polled.
    pub async fn run(
        &self,
        tx: &Transaction<'_>,
        members: &[GroupMember<'_>],
    ) -> Result<Vec<Vec<Unlock>>> {
        let [candidates, facts] = &self.statements;
        let users: Vec<Uuid> = members.iter().map(|(user, _, _)| *user).collect();
        let floors: Vec<i32> = members
            .iter()
            .map(|(_, floor, _)| Facts::streak_floor(*floor))
            .collect();
        let by_users: [&(dyn ToSql + Sync); 1] = [&users];
        let by_users_and_floors: [&(dyn ToSql + Sync); 2] = [&users, &floors];
        let (candidates, facts) = tokio::try_join!(
            biased;
            tx.query(candidates, &by_users),
            tx.query(facts, &by_users_and_floors),
        )?;
        let facts: HashMap<Uuid, Facts> = facts
            .iter()
            .map(|row| (row.get("user_id"), Facts::from_row(row)))
            .collect();
        let none = Facts::default();
        Ok(members
            .iter()
            .map(|(user, _, early)| {
                let facts = facts.get(user).unwrap_or(&none);
                let own = candidates
                    .iter()
                    .filter(|row| row.get::<_, Uuid>("user_id") == *user);
                unlocks_met(own, facts, early)
            })
            .collect())
    }
}

/// The ledger entries paying the bonuses of `unlocks` (those with a bonus).
pub fn bonus_entries(user_id: Uuid, unlocks: &[Unlock]) -> Vec<Entry> {
    unlocks
        .iter()
        .filter(|u| u.bonus_coins > 0)
        .map(|u| Entry {
            kind: EntryKind::AchievementBonus,
            available_delta: u.bonus_coins,
            frozen_delta: 0,
            reference: Some(("achievement", u.achievement_id.to_string())),
            idempotency_key: format!("achievement:{user_id}:{}", u.achievement_id),
            description: Some(format!("Achievement {}", u.code)),
            created_by: None,
        })
        .collect()
}

/// Records the unlocks (after their bonuses were booked, so they can reference them).
pub async fn record_unlocks(
    tx: &Transaction<'_>,
    user_id: Uuid,
    change_version: i64,
    unlocks: &[Unlock],
) -> Result<()> {
    if unlocks.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = unlocks.iter().map(|u| u.achievement_id).collect();
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("achievement:{user_id}:{id}"))
        .collect();
    tx.execute_cached(
        "INSERT INTO user_achievements (user_id, achievement_id, bonus_transaction_id, change_version)
         SELECT $1, u.achievement_id,
                (SELECT t.id FROM coin_transactions t WHERE t.idempotency_key = u.key),
                $4
         FROM unnest($2::uuid[], $3::text[]) AS u(achievement_id, key)",
        &[&user_id, &ids, &keys, &change_version],
    )
    .await?;
    Ok(())
}

/// Every active achievement with the user's progress (`streak_day_steps` as in [`Evaluation::run`]).
pub async fn list(
    client: &impl GenericClient,
    user_id: Uuid,
    streak_day_steps: i64,
) -> Result<Vec<AchievementProgress>> {
    // Both in one round trip.
    let (facts, rows) = tokio::try_join!(Facts::load(client, user_id, streak_day_steps), async {
        Ok(client
            .query_cached(
                "SELECT a.code, a.name, a.description, a.icon, a.bonus_coins, a.criteria,
                            ua.unlocked_at
                     FROM achievements a
                     LEFT JOIN user_achievements ua
                       ON ua.achievement_id = a.id AND ua.user_id = $1
                     WHERE a.is_active AND a.deleted_at IS NULL
                     ORDER BY a.sort_order, a.code",
                &[&user_id],
            )
            .await?)
    },)?;
    Ok(rows
        .iter()
        .map(|row| {
            let criteria_json: serde_json::Value = row.get("criteria");
            let unlocked_at: Option<DateTime<Utc>> = row.get("unlocked_at");
            let standing = standing(
                Criteria::parse(&criteria_json),
                &facts,
                &[],
                unlocked_at.is_some(),
            );
            AchievementProgress {
                code: row.get("code"),
                name: row.get("name"),
                description: row.get("description"),
                icon: row.get("icon"),
                bonus_coins: row.get("bonus_coins"),
                criteria: criteria_json,
                progress: standing.progress,
                target: standing.target,
                unlocked_at,
            }
        })
        .collect())
}

/// Codes of unlocks, for responses.
pub fn codes(unlocks: &[Unlock]) -> Vec<String> {
    let mut seen = HashSet::new();
    unlocks
        .iter()
        .filter(|u| seen.insert(u.achievement_id))
        .map(|u| u.code.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn streaks_count_consecutive_days_only() {
        assert_eq!(longest_run(&[]), 0);
        assert_eq!(longest_run(&[day(1), day(2), day(3), day(5), day(6)]), 3);
        assert_eq!(longest_run(&[day(1), day(3), day(5)]), 1);
    }

    #[test]
    fn criteria_parse_the_seed_shapes_and_tolerate_unknown_ones() {
        use serde_json::json;
        assert_eq!(
            Criteria::parse(&json!({"type": "total_steps", "steps": 1000})),
            Criteria::TotalSteps(1000)
        );
        assert_eq!(
            Criteria::parse(&json!({"type": "streak", "days": 7})),
            Criteria::Streak(7)
        );
        assert_eq!(
            Criteria::parse(&json!({"type": "early_bird", "steps": 2000, "before_hour": 8})),
            Criteria::EarlyBird {
                steps: 2000,
                before_hour: 8
            }
        );
        assert_eq!(
            Criteria::parse(&json!({"type": "moonwalk"})),
            Criteria::Unknown
        );
        let facts = Facts {
            total_steps: 10,
            best_day: 10,
            longest_streak: 100,
        };
        assert!(!facts.satisfies(Criteria::Unknown, &[]));
    }

    #[test]
    fn early_bird_rules_count_only_the_batchs_early_reports() {
        let rule = Criteria::EarlyBird {
            steps: 2000,
            before_hour: 8,
        };
        let facts = Facts::default();
        let early = |steps, local_hour| [EarlyReport { steps, local_hour }];
        assert!(standing(rule, &facts, &early(2500, 7), false).met);
        assert!(!standing(rule, &facts, &early(2500, 8), false).met);
        assert!(!standing(rule, &facts, &early(1500, 6), false).met);
        assert!(!standing(rule, &facts, &[], false).met);
        assert_eq!(standing(rule, &facts, &[], true).progress, 2000);
    }

    fn criteria() -> impl proptest::strategy::Strategy<Value = Criteria> {
        use proptest::prelude::*;
        prop_oneof![
            (0i64..100_000).prop_map(Criteria::TotalSteps),
            (0i64..100_000).prop_map(Criteria::DailySteps),
            (-2i64..60).prop_map(Criteria::Streak),
            (0i64..20_000, 0u32..=24)
                .prop_map(|(steps, before_hour)| Criteria::EarlyBird { steps, before_hour }),
            Just(Criteria::Unknown),
        ]
    }

    fn facts() -> impl proptest::strategy::Strategy<Value = Facts> {
        use proptest::prelude::*;
        (0i64..1_000_000, 0i64..100_000, 0i64..60).prop_map(
            |(total_steps, best_day, longest_streak)| Facts {
                total_steps,
                best_day,
                longest_streak,
            },
        )
    }

    proptest::proptest! {
        /// Progress is shown between 0 and the target (the target once unlocked); a rule met
        /// stays met when the user walks more; an unknown rule never unlocks.
        #[test]
        fn standings_stay_within_their_target_and_more_walking_never_unmeets_a_rule(
            rule in criteria(),
            facts in facts(),
            more in (0i64..100_000, 0i64..100_000, 0i64..30),
            early in proptest::collection::vec((0i64..20_000, 0u32..24), 0..4),
        ) {
            let early: Vec<EarlyReport> = early
                .into_iter()
                .map(|(steps, local_hour)| EarlyReport { steps, local_hour })
                .collect();
            let now = standing(rule, &facts, &early, false);
            proptest::prop_assert_eq!(now.target, rule.target());
            proptest::prop_assert!(now.progress <= now.target.max(0));
            proptest::prop_assert_eq!(standing(rule, &facts, &early, true).progress, rule.target());
            let walked = Facts {
                total_steps: facts.total_steps + more.0,
                best_day: facts.best_day + more.1,
                longest_streak: facts.longest_streak + more.2,
            };
            if now.met {
                proptest::prop_assert!(standing(rule, &walked, &early, false).met);
            }
            if rule == Criteria::Unknown {
                proptest::prop_assert!(!now.met);
            }
        }

        /// Criteria read from any JSON never panic, and the seed's shapes read back.
        #[test]
        fn any_json_parses_to_some_rule(steps in proptest::num::i64::ANY, hour in -5i64..30, kind in 0usize..5) {
            let kinds = ["total_steps", "daily_steps", "streak", "early_bird", "moonwalk"];
            let value = serde_json::json!({
                "type": kinds[kind], "steps": steps, "days": steps, "before_hour": hour
            });
            let parsed = Criteria::parse(&value);
            match kind {
                0 => proptest::prop_assert_eq!(parsed, Criteria::TotalSteps(steps)),
                1 => proptest::prop_assert_eq!(parsed, Criteria::DailySteps(steps)),
                2 => proptest::prop_assert_eq!(parsed, Criteria::Streak(steps)),
                3 if (0..=24).contains(&hour) => proptest::prop_assert_eq!(
                    parsed,
                    Criteria::EarlyBird { steps, before_hour: hour as u32 }
                ),
                _ => proptest::prop_assert_eq!(parsed, Criteria::Unknown),
            }
        }

        /// The longest run never exceeds the number of distinct days, and a run of n
        /// consecutive days is n.
        #[test]
        fn the_longest_run_is_bounded_by_the_days(
            offsets in proptest::collection::btree_set(0i64..60, 0..40), n in 1i64..30
        ) {
            let days: Vec<NaiveDate> = offsets.iter().map(|o| day(1) + chrono::Duration::days(*o)).collect();
            proptest::prop_assert!(longest_run(&days) <= days.len() as i64);
            let run: Vec<NaiveDate> = (0..n).map(|o| day(1) + chrono::Duration::days(o)).collect();
            proptest::prop_assert_eq!(longest_run(&run), n);
        }
    }
}

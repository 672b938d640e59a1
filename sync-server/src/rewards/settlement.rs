//! Day settlement: what a day is worth (its largest verified source), the step coins that
//! earns within the daily cap, and paying what it has not paid yet, exactly once. The rule is
//! [`settle_day`], a plain function; [`settle_days`] persists settled days, books their coins
//! and the achievements they unlock. Step recording and the review queue both use them.

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::CachedStatements as _;
use crate::error::DomainError;
use crate::rewards::achievements::{self, EarlyReport, Unlock};
use crate::rewards::anticheat::RecordStatus;
use crate::rewards::ledger::{self, Entry, EntryKind};
use crate::rewards::settings::RewardSettings;

/// A day's account in `step_days`: the verified total it counts and the step coins it paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayAccount {
    /// The verified total the day counts.
    pub verified_steps: i64,
    /// Step-reward coins the day has paid.
    pub coins_paid: i64,
}

/// Why a day is settled, which decides what its count may do and whether it pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A report was verified. Sources only grow on this path, so the day's count only rises
    /// (to its worth), and the day pays what that earns.
    ReportVerified,
    /// An admin approved a flagged record: the day counts its worth now, and pays.
    ReviewApproved,
    /// An admin rejected a flagged record: the day counts its worth now (which may be less,
    /// the rejected source no longer counting) and pays nothing.
    ReviewRejected,
}

/// The largest verified total among a day's sources, given as (status, verified steps);
/// rejected sources (and those with a status this server does not know, see
/// [`RecordStatus::parse_or_rejected`]) do not count. 0 for a day without any.
pub fn day_worth(sources: impl IntoIterator<Item = (RecordStatus, i64)>) -> i64 {
    sources
        .into_iter()
        .filter(|(status, _)| *status != RecordStatus::Rejected)
        .map(|(_, verified)| verified)
        .max()
        .unwrap_or(0)
}

/// Settles a day whose account is `before` and whose sources are worth `worth` now: returns
/// its account after and the coins to pay now, the day's coins for its count (at the
/// settings' rate, within the daily cap) less what it already paid, never negative. Settling
/// again with the same worth pays nothing: a day pays each coin once.
pub fn settle_day(
    before: DayAccount,
    worth: i64,
    cause: Cause,
    rules: &RewardSettings,
) -> (DayAccount, i64) {
    let verified_steps = match cause {
        Cause::ReportVerified => before.verified_steps.max(worth),
        Cause::ReviewApproved | Cause::ReviewRejected => worth,
    };
    let award = match cause {
        Cause::ReportVerified | Cause::ReviewApproved => {
            (rules.coins_for_day(verified_steps) - before.coins_paid).max(0)
        }
        Cause::ReviewRejected => 0,
    };
    let after = DayAccount {
        verified_steps,
        coins_paid: before.coins_paid + award,
    };
    (after, award)
}

/// A settled day to persist: its account as stored before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettledDay {
    /// The user's local date.
    pub day: NaiveDate,
    /// The account as stored before.
    pub before: DayAccount,
    /// The account to store.
    pub after: DayAccount,
}

/// What [`settle_days`] booked.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// Coins booked: the days' step rewards and the bonuses of the achievements unlocked.
    pub coins: i64,
    /// The achievements unlocked.
    pub unlocks: Vec<Unlock>,
}

/// What an upsert of day accounts does on conflict: [`STORE_ONE_ACCOUNT`] and
/// [`STORE_ACCOUNTS`] differ only in where their rows come from.
macro_rules! store_accounts_tail {
    () => {
        " ON CONFLICT (user_id, day) DO UPDATE SET
             verified_steps = EXCLUDED.verified_steps,
             coins_paid = EXCLUDED.coins_paid,
             change_version = EXCLUDED.change_version"
    };
}

/// The statement that upserts days' accounts (parameters: the user, the days, their verified
/// steps and coins paid as arrays, the change version).
const STORE_ACCOUNTS: &str = concat!(
    "INSERT INTO step_days AS s (user_id, day, verified_steps, coins_paid, change_version)
     SELECT $1, day, verified, paid, $5
     FROM unnest($2::date[], $3::int[], $4::bigint[]) AS u(day, verified, paid)",
    store_accounts_tail!()
);

/// [`STORE_ACCOUNTS`] for several users (parameters: the users, the days, their verified steps,
/// coins paid and change versions, all arrays).
pub(crate) const GROUP_STORE_ACCOUNTS: &str = concat!(
    "INSERT INTO step_days AS s (user_id, day, verified_steps, coins_paid, change_version)
     SELECT user_id, day, verified, paid, version
     FROM unnest($1::uuid[], $2::date[], $3::int[], $4::bigint[], $5::bigint[])
          AS u(user_id, day, verified, paid, version)",
    store_accounts_tail!()
);

/// [`STORE_ACCOUNTS`] for one day, its parameters values instead of arrays: a report settles
/// one day, and a row of values costs PostgreSQL less than unnesting arrays
/// (docs/benchmarks.md, tuning step 13).
const STORE_ONE_ACCOUNT: &str = concat!(
    "INSERT INTO step_days AS s (user_id, day, verified_steps, coins_paid, change_version)
     VALUES ($1, $2, $3, $4, $5)",
    store_accounts_tail!()
);

/// Persists `days` in the caller's transaction, which holds the user's change-version lock
/// (`change_version` stamps every row): stores each day's account, books the coins each newly
/// paid (one ledger entry per day, keyed by the level it reached, so the same coins are never
/// booked twice), evaluates the achievements (with `streak_day_steps` and the `early` reports
/// of the batch) and books their bonuses.
///
/// Two round trips (three when an achievement unlocks): the accounts, the evaluation that
/// reads them and the wallet lock go out together, then the ledger entries and the wallet.
pub async fn settle_days(
    tx: &Transaction<'_>,
    user_id: Uuid,
    change_version: i64,
    days: &[SettledDay],
    streak_day_steps: i64,
    early: &[EarlyReport],
) -> Result<Settlement, DomainError> {
    // store_accounts binds one day's values or the days' arrays, by the same test.
    let [store] = tx
        .prepare_in_order([if days.len() == 1 {
            STORE_ONE_ACCOUNT
        } else {
            STORE_ACCOUNTS
        }])
        .await?;
    let evaluation = achievements::Evaluation::prepare(tx).await?;
    let ((), unlocks, wallet) = tokio::try_join!(
        biased;
        store_accounts(tx, &store, user_id, change_version, days),
        async {
            Ok::<_, DomainError>(
                evaluation
                    .run(tx, user_id, streak_day_steps, early)
                    .await?,
            )
        },
        async { Ok::<_, DomainError>(ledger::lock(tx, user_id).await?) },
    )?;
    let entries = entries(user_id, days, &unlocks);
    ledger::book(tx, &wallet, change_version, &entries).await?;
    achievements::record_unlocks(tx, user_id, change_version, &unlocks).await?;
    Ok(Settlement {
        coins: entries.iter().map(|e| e.available_delta).sum(),
        unlocks,
    })
}

/// The ledger entries a settlement books, in order: the coins each of `days` newly paid (one
/// entry per day, in the order of their keys), then the bonuses of `unlocks`.
pub(crate) fn entries(user_id: Uuid, days: &[SettledDay], unlocks: &[Unlock]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = days
        .iter()
        .filter_map(|d| {
            let award = d.after.coins_paid - d.before.coins_paid;
            (award > 0).then(|| reward_entry(user_id, d.day, award, d.after.coins_paid))
        })
        .collect();
    entries.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    entries.extend(achievements::bonus_entries(user_id, unlocks));
    entries
}

/// Upserts the days' accounts (one statement, [`STORE_ONE_ACCOUNT`] prepared for one day,
/// [`STORE_ACCOUNTS`] for more), sent when the future is first polled.
async fn store_accounts(
    tx: &Transaction<'_>,
    statement: &Statement,
    user_id: Uuid,
    change_version: i64,
    days: &[SettledDay],
) -> Result<(), DomainError> {
    match days {
        [] => return Ok(()),
        [day] => {
            let verified = day.after.verified_steps as i32;
            tx.execute(
                statement,
                &[
                    &user_id,
                    &day.day,
                    &verified,
                    &day.after.coins_paid,
                    &change_version,
                ],
            )
            .await?;
            return Ok(());
        }
        _ => {}
    }
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.day).collect();
    let verified: Vec<i32> = days.iter().map(|d| d.after.verified_steps as i32).collect();
    let paid: Vec<i64> = days.iter().map(|d| d.after.coins_paid).collect();
    tx.execute(
        statement,
        &[&user_id, &dates, &verified, &paid, &change_version],
    )
    .await?;
    Ok(())
}

/// The idempotency key of the step reward after which `user_id`'s `day` has paid `paid_after`.
/// It names the level reached, so the same coins can never be booked twice. It starts with the
/// day, so that a day's keys sit together in the ledger's unique index and a report inserts
/// into the few pages of its day there, not a random page of the whole index (ADR 0017).
pub fn reward_key(user_id: Uuid, day: NaiveDate, paid_after: i64) -> String {
    format!("step_reward:{day}:{user_id}:{paid_after}")
}

/// The ledger entry paying `award` coins for `day`, after which the day has paid `paid_after`
/// ([`reward_key`]).
pub fn reward_entry(user_id: Uuid, day: NaiveDate, award: i64, paid_after: i64) -> Entry {
    Entry {
        kind: EntryKind::StepReward,
        available_delta: award,
        frozen_delta: 0,
        reference: Some(("step_day", day.to_string())),
        idempotency_key: reward_key(user_id, day, paid_after),
        description: Some(format!("Steps on {day}")),
        created_by: None,
    }
}

/// A day's account and sources as stored, loaded to settle it after a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDay {
    /// Its account (zero when it has none yet).
    pub account: DayAccount,
    /// What its sources are worth now ([`day_worth`]).
    pub worth: i64,
}

impl StoredDay {
    /// Loads `day` of `user_id`, locking its account row, in one round trip.
    pub async fn load(
        tx: &Transaction<'_>,
        user_id: Uuid,
        day: NaiveDate,
    ) -> Result<Self, DomainError> {
        let params: [&(dyn ToSql + Sync); 2] = [&user_id, &day];
        let (sources, account) = tokio::try_join!(
            tx.query_cached(
                "SELECT status, verified_steps FROM step_records WHERE user_id = $1 AND day = $2",
                &params,
            ),
            tx.query_opt_cached(
                "SELECT verified_steps, coins_paid FROM step_days
                 WHERE user_id = $1 AND day = $2 FOR UPDATE",
                &params,
            ),
        )?;
        let worth = day_worth(sources.iter().map(|row| {
            (
                RecordStatus::parse_or_rejected(row.get("status")),
                i64::from(row.get::<_, i32>("verified_steps")),
            )
        }));
        let account = account.map_or(DayAccount::default(), |row| DayAccount {
            verified_steps: i64::from(row.get::<_, i32>("verified_steps")),
            coins_paid: row.get("coins_paid"),
        });
        Ok(Self { account, worth })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rules(rate: i64, cap: i64) -> RewardSettings {
        RewardSettings {
            coins_per_1000_steps: rate,
            daily_coin_cap: cap,
            ..RewardSettings::default()
        }
    }

    #[test]
    fn a_day_is_worth_its_largest_source_that_still_counts() {
        use RecordStatus::*;
        assert_eq!(day_worth([]), 0);
        assert_eq!(day_worth([(Accepted, 4000), (Flagged, 6000)]), 6000);
        assert_eq!(day_worth([(Accepted, 4000), (Rejected, 9000)]), 4000);
        // A status this server does not know fails closed.
        assert_eq!(
            day_worth([(RecordStatus::parse_or_rejected("suspended"), 9000)]),
            0
        );
    }

    #[test]
    fn approval_after_the_cap_pays_the_rest_of_the_cap_and_rejection_pays_nothing() {
        let rules = rules(10, 200);
        let paid_150 = DayAccount {
            verified_steps: 15_000,
            coins_paid: 150,
        };
        assert_eq!(
            settle_day(paid_150, 60_000, Cause::ReviewApproved, &rules),
            (
                DayAccount {
                    verified_steps: 60_000,
                    coins_paid: 200
                },
                50
            )
        );
        // A rejection recounts the day without the rejected source, and pays nothing.
        assert_eq!(
            settle_day(paid_150, 3_000, Cause::ReviewRejected, &rules),
            (
                DayAccount {
                    verified_steps: 3_000,
                    coins_paid: 150
                },
                0
            )
        );
        // An approval of a day now worth less than it paid for pays nothing and takes nothing.
        assert_eq!(
            settle_day(paid_150, 3_000, Cause::ReviewApproved, &rules),
            (
                DayAccount {
                    verified_steps: 3_000,
                    coins_paid: 150
                },
                0
            )
        );
        // A verified report never lowers the day's count.
        assert_eq!(
            settle_day(paid_150, 3_000, Cause::ReportVerified, &rules).0,
            paid_150
        );
    }

    fn cause() -> impl Strategy<Value = Cause> {
        prop_oneof![
            Just(Cause::ReportVerified),
            Just(Cause::ReviewApproved),
            Just(Cause::ReviewRejected),
        ]
    }

    proptest! {
        /// Whatever the sequence of settlements of one day, it never pays more than the cap
        /// nor more than its largest count earns, never takes coins back, and a settlement
        /// repeated at once pays nothing.
        #[test]
        fn a_day_pays_each_coin_once_within_the_cap(
            rate in 0i64..100,
            cap in 0i64..1_000,
            steps in proptest::collection::vec((0i64..200_000, cause()), 1..30),
        ) {
            let rules = rules(rate, cap);
            let mut account = DayAccount::default();
            let mut paid = 0;
            let mut largest = 0;
            for (worth, cause) in steps {
                let (after, award) = settle_day(account, worth, cause, &rules);
                prop_assert!(award >= 0);
                prop_assert_eq!(after.coins_paid, account.coins_paid + award);
                paid += award;
                largest = largest.max(after.verified_steps);
                prop_assert!(paid <= cap);
                prop_assert!(paid <= rules.coins_for_day(largest));
                let (again, more) = settle_day(after, worth, cause, &rules);
                prop_assert_eq!((again, more), (after, 0));
                account = after;
            }
        }

        /// Recording pays a day what its largest verified total earns, whatever the order and
        /// repetition of the reports that verified it.
        #[test]
        fn recording_pays_the_largest_total_whatever_the_order(
            rate in 0i64..100,
            cap in 0i64..1_000,
            mut worths in proptest::collection::vec(0i64..200_000, 1..20),
        ) {
            let rules = rules(rate, cap);
            let largest = *worths.iter().max().unwrap_or(&0);
            for _ in 0..2 {
                let mut account = DayAccount::default();
                let mut paid = 0;
                for &worth in &worths {
                    let (after, award) = settle_day(account, worth, Cause::ReportVerified, &rules);
                    paid += award;
                    account = after;
                }
                prop_assert_eq!(paid, rules.coins_for_day(largest));
                prop_assert_eq!(account.verified_steps, largest);
                worths.reverse();
            }
        }

        /// The day's coins grow with its total and stop at the cap.
        #[test]
        fn day_coins_grow_with_the_total_up_to_the_cap(
            rate in 0i64..10_000, cap in 0i64..1_000_000, a in 0i64..1_000_000, b in 0i64..1_000_000
        ) {
            let rules = rules(rate, cap);
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(rules.coins_for_day(low) <= rules.coins_for_day(high));
            prop_assert!(rules.coins_for_day(high) <= cap);
        }
    }
}

//! The `settings` table: every key the server knows ([`SettingKey`], with the values an admin
//! may set), and typed access to the reward rate, daily cap, backfill window and anti-cheat
//! thresholds, read per request so an admin's change applies at once.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::db::CachedStatements as _;
use crate::error::{Error, Result};

/// A setting the server reads. The one home of setting keys: code names a setting by its
/// variant (its text only reaches SQL as a parameter), and an admin's new value is checked
/// against [`SettingKey::rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingKey {
    /// `rewards.coins_per_1000_steps`.
    CoinsPer1000Steps,
    /// `rewards.daily_coin_cap`.
    DailyCoinCap,
    /// `steps.daily_goal_default`: the daily goal of a new account.
    DailyGoalDefault,
    /// `steps.backfill_days`.
    BackfillDays,
    /// `anticheat.hard_daily_max_steps`.
    HardDailyMaxSteps,
    /// `anticheat.soft_daily_max_steps`: never above the hard maximum.
    SoftDailyMaxSteps,
    /// `anticheat.hard_cadence_spm`.
    HardCadenceSpm,
    /// `anticheat.running_cadence_spm`.
    RunningCadenceSpm,
    /// `anticheat.sustained_cadence_minutes`.
    SustainedCadenceMinutes,
    /// `anticheat.outlier_zscore`.
    OutlierZscore,
    /// `anticheat.outlier_min_history_days`.
    OutlierMinHistoryDays,
    /// `achievements.streak_min_daily_steps`.
    StreakMinDailySteps,
    /// `leaderboard.size`: the largest board a client may ask for.
    LeaderboardSize,
    /// `catalogue.coins_per_currency_unit`: the Shopify import's price rate.
    CoinsPerCurrencyUnit,
}

/// What values a setting accepts: whole numbers or any number, within `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettingRule {
    /// Whole numbers only.
    pub integer: bool,
    /// Smallest accepted value.
    pub min: f64,
    /// Largest accepted value.
    pub max: f64,
}

impl SettingKey {
    /// Every key, in the order the settings page lists them.
    pub const ALL: [Self; 14] = [
        Self::CoinsPer1000Steps,
        Self::DailyCoinCap,
        Self::DailyGoalDefault,
        Self::BackfillDays,
        Self::HardDailyMaxSteps,
        Self::SoftDailyMaxSteps,
        Self::HardCadenceSpm,
        Self::RunningCadenceSpm,
        Self::SustainedCadenceMinutes,
        Self::OutlierZscore,
        Self::OutlierMinHistoryDays,
        Self::StreakMinDailySteps,
        Self::LeaderboardSize,
        Self::CoinsPerCurrencyUnit,
    ];

    /// The key as stored in `settings.key`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CoinsPer1000Steps => "rewards.coins_per_1000_steps",
            Self::DailyCoinCap => "rewards.daily_coin_cap",
            Self::DailyGoalDefault => "steps.daily_goal_default",
            Self::BackfillDays => "steps.backfill_days",
            Self::HardDailyMaxSteps => "anticheat.hard_daily_max_steps",
            Self::SoftDailyMaxSteps => "anticheat.soft_daily_max_steps",
            Self::HardCadenceSpm => "anticheat.hard_cadence_spm",
            Self::RunningCadenceSpm => "anticheat.running_cadence_spm",
            Self::SustainedCadenceMinutes => "anticheat.sustained_cadence_minutes",
            Self::OutlierZscore => "anticheat.outlier_zscore",
            Self::OutlierMinHistoryDays => "anticheat.outlier_min_history_days",
            Self::StreakMinDailySteps => "achievements.streak_min_daily_steps",
            Self::LeaderboardSize => "leaderboard.size",
            Self::CoinsPerCurrencyUnit => "catalogue.coins_per_currency_unit",
        }
    }

    /// The key stored as `key`; `None` for a key the server does not know.
    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == key)
    }

    /// The values an admin may set.
    pub const fn rule(self) -> SettingRule {
        let (integer, min, max) = match self {
            Self::CoinsPer1000Steps => (true, 0.0, 10_000.0),
            Self::DailyCoinCap => (true, 0.0, 1_000_000.0),
            Self::DailyGoalDefault => (true, 100.0, 100_000.0),
            Self::BackfillDays => (true, 0.0, 31.0),
            Self::HardDailyMaxSteps | Self::SoftDailyMaxSteps => (true, 1_000.0, 1_000_000.0),
            Self::HardCadenceSpm | Self::RunningCadenceSpm => (false, 50.0, 2_000.0),
            Self::SustainedCadenceMinutes => (false, 1.0, 1_440.0),
            Self::OutlierZscore => (false, 1.0, 100.0),
            Self::OutlierMinHistoryDays => (true, 1.0, 30.0),
            Self::StreakMinDailySteps => (true, 100.0, 100_000.0),
            Self::LeaderboardSize => (true, 1.0, 1_000.0),
            Self::CoinsPerCurrencyUnit => (true, 1.0, 1_000_000.0),
        };
        SettingRule { integer, min, max }
    }

    /// The setting this one is ordered against, and whether this one must stay at or below
    /// it (`true`) or at or above it: the soft daily maximum never exceeds the hard one.
    pub const fn ordered_against(self) -> Option<(Self, bool)> {
        match self {
            Self::SoftDailyMaxSteps => Some((Self::HardDailyMaxSteps, true)),
            Self::HardDailyMaxSteps => Some((Self::SoftDailyMaxSteps, false)),
            _ => None,
        }
    }
}

impl std::fmt::Display for SettingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings steps-to-coins needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardSettings {
    /// Coins per 1,000 verified steps.
    pub coins_per_1000_steps: i64,
    /// Most step-reward coins per user and local day.
    pub daily_coin_cap: i64,
    /// How many days back a device may still report.
    pub backfill_days: i64,
    /// A day total above this is rejected.
    pub hard_daily_max_steps: i64,
    /// A day total above this is flagged.
    pub soft_daily_max_steps: i64,
    /// An increase faster than this (steps per minute) is rejected.
    pub hard_cadence_spm: f64,
    /// A sustained increase faster than this is flagged.
    pub running_cadence_spm: f64,
    /// Minutes a fast cadence must last to count as sustained.
    pub sustained_cadence_minutes: f64,
    /// A day this many standard deviations above the user's history is flagged.
    pub outlier_zscore: f64,
    /// Days of history needed before the outlier rule applies.
    pub outlier_min_history_days: i64,
    /// Fewest verified steps a day needs to count towards a streak, whatever the user's goal.
    pub streak_min_daily_steps: i64,
}

impl Default for RewardSettings {
    /// The seed's values; used for any key an operator deleted.
    fn default() -> Self {
        Self {
            coins_per_1000_steps: 10,
            daily_coin_cap: 200,
            backfill_days: 7,
            hard_daily_max_steps: 100_000,
            soft_daily_max_steps: 50_000,
            hard_cadence_spm: 600.0,
            running_cadence_spm: 200.0,
            sustained_cadence_minutes: 30.0,
            outlier_zscore: 4.0,
            outlier_min_history_days: 7,
            streak_min_daily_steps: 5_000,
        }
    }
}

impl RewardSettings {
    /// The query [`RewardSettings::load`] runs, with [`RewardSettings::keys`] as its parameter,
    /// for callers that send it with other statements; [`RewardSettings::from_rows`] reads its
    /// rows.
    pub const QUERY: &'static str = "SELECT key, value FROM settings WHERE key = ANY($1)";

    /// Every known key: the parameter of [`RewardSettings::QUERY`].
    pub fn keys() -> Vec<&'static str> {
        SettingKey::ALL.iter().map(|k| k.as_str()).collect()
    }

    /// Reads the settings (one query).
    pub async fn load(client: &impl GenericClient) -> Result<Self> {
        let keys = Self::keys();
        let rows = client.query_cached(Self::QUERY, &[&keys]).await?;
        Self::from_rows(&rows)
    }

    /// The settings in the rows of [`RewardSettings::QUERY`] (the defaults for keys an operator
    /// deleted); an error names a stored value of the wrong kind.
    pub fn from_rows(rows: &[Row]) -> Result<Self> {
        let mut settings = Self::default();
        for row in rows {
            let key: String = row.get("key");
            let value: serde_json::Value = row.get("value");
            let int = || {
                value.as_i64().filter(|v| *v >= 0).ok_or_else(|| {
                    Error::Config(format!("setting {key} must be a non-negative integer"))
                })
            };
            let float = || {
                value
                    .as_f64()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        Error::Config(format!("setting {key} must be a non-negative number"))
                    })
            };
            let Some(known) = SettingKey::parse(&key) else {
                continue;
            };
            match known {
                SettingKey::CoinsPer1000Steps => settings.coins_per_1000_steps = int()?,
                SettingKey::DailyCoinCap => settings.daily_coin_cap = int()?,
                SettingKey::BackfillDays => settings.backfill_days = int()?,
                SettingKey::HardDailyMaxSteps => settings.hard_daily_max_steps = int()?,
                SettingKey::SoftDailyMaxSteps => settings.soft_daily_max_steps = int()?,
                SettingKey::HardCadenceSpm => settings.hard_cadence_spm = float()?,
                SettingKey::RunningCadenceSpm => settings.running_cadence_spm = float()?,
                SettingKey::SustainedCadenceMinutes => {
                    settings.sustained_cadence_minutes = float()?
                }
                SettingKey::OutlierZscore => settings.outlier_zscore = float()?,
                SettingKey::OutlierMinHistoryDays => settings.outlier_min_history_days = int()?,
                SettingKey::StreakMinDailySteps => settings.streak_min_daily_steps = int()?,
                SettingKey::DailyGoalDefault
                | SettingKey::LeaderboardSize
                | SettingKey::CoinsPerCurrencyUnit => {}
            }
        }
        Ok(settings)
    }

    /// The verified steps a day needs to count towards a streak of a user whose daily goal is
    /// `goal`: the goal, but never less than the programme-wide minimum.
    pub fn streak_day_steps(&self, goal: i64) -> i64 {
        goal.max(self.streak_min_daily_steps)
    }

    /// The step-reward coins a day total is worth: integer arithmetic, capped.
    pub fn coins_for_day(&self, verified_steps: i64) -> i64 {
        let uncapped = verified_steps
            .max(0)
            .saturating_mul(self.coins_per_1000_steps)
            / 1000;
        uncapped.min(self.daily_coin_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_and_the_seed_sets_exactly_the_known_keys() {
        for key in SettingKey::ALL {
            assert_eq!(SettingKey::parse(key.as_str()), Some(key));
            let rule = key.rule();
            assert!(rule.min <= rule.max, "{key}");
        }
        assert_eq!(SettingKey::parse("rewards.unknown"), None);
        let seed = crate::seeds::SeedData::embedded().unwrap();
        let mut seeded: Vec<&str> = seed.settings.iter().map(|s| s.key.as_str()).collect();
        let mut known: Vec<&str> = SettingKey::ALL.iter().map(|k| k.as_str()).collect();
        seeded.sort_unstable();
        known.sort_unstable();
        assert_eq!(seeded, known);
        for setting in &seed.settings {
            let rule = SettingKey::parse(&setting.key).unwrap().rule();
            let value = setting.value.as_f64().unwrap();
            assert!(
                (rule.min..=rule.max).contains(&value),
                "the seed's {} is outside its rule",
                setting.key
            );
        }
    }

    #[test]
    fn the_defaults_are_the_seeds_values() {
        let seed = crate::seeds::SeedData::embedded().unwrap();
        let defaults = RewardSettings::default();
        let value = |key: SettingKey| {
            seed.settings
                .iter()
                .find(|s| s.key == key.as_str())
                .and_then(|s| s.value.as_f64())
                .unwrap()
        };
        assert_eq!(
            defaults.coins_per_1000_steps as f64,
            value(SettingKey::CoinsPer1000Steps)
        );
        assert_eq!(
            defaults.daily_coin_cap as f64,
            value(SettingKey::DailyCoinCap)
        );
        assert_eq!(
            defaults.backfill_days as f64,
            value(SettingKey::BackfillDays)
        );
        assert_eq!(
            defaults.hard_daily_max_steps as f64,
            value(SettingKey::HardDailyMaxSteps)
        );
        assert_eq!(
            defaults.soft_daily_max_steps as f64,
            value(SettingKey::SoftDailyMaxSteps)
        );
        assert_eq!(defaults.hard_cadence_spm, value(SettingKey::HardCadenceSpm));
        assert_eq!(
            defaults.running_cadence_spm,
            value(SettingKey::RunningCadenceSpm)
        );
        assert_eq!(
            defaults.sustained_cadence_minutes,
            value(SettingKey::SustainedCadenceMinutes)
        );
        assert_eq!(defaults.outlier_zscore, value(SettingKey::OutlierZscore));
        assert_eq!(
            defaults.outlier_min_history_days as f64,
            value(SettingKey::OutlierMinHistoryDays)
        );
        assert_eq!(
            defaults.streak_min_daily_steps as f64,
            value(SettingKey::StreakMinDailySteps)
        );
    }

    #[test]
    fn day_coins_use_integer_arithmetic_on_totals_and_respect_the_cap() {
        let settings = RewardSettings::default();
        assert_eq!(settings.coins_for_day(0), 0);
        assert_eq!(settings.coins_for_day(99), 0);
        assert_eq!(
            settings.coins_for_day(150),
            1,
            "the remainder of earlier reports carries"
        );
        assert_eq!(settings.coins_for_day(12_345), 123);
        assert_eq!(settings.coins_for_day(20_000), 200);
        assert_eq!(settings.coins_for_day(30_000), 200);
        assert_eq!(settings.coins_for_day(-5), 0);
    }

    #[test]
    fn a_streak_day_needs_the_users_goal_and_at_least_the_programme_minimum() {
        let settings = RewardSettings::default();
        assert_eq!(settings.streak_day_steps(100), 5_000);
        assert_eq!(settings.streak_day_steps(12_000), 12_000);
    }
}

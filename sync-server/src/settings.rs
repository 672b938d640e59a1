//! Typed access to the `settings` table: the reward rate, daily cap, backfill window and
//! anti-cheat thresholds, read per request so an admin's change applies at once.

use deadpool_postgres::GenericClient;

use crate::db::CachedStatements as _;
use crate::error::{Error, Result};

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
    /// Reads the settings (one query).
    pub async fn load(client: &impl GenericClient) -> Result<Self> {
        let rows = client
            .query_cached(
                "SELECT key, value FROM settings
                 WHERE key LIKE 'rewards.%' OR key LIKE 'anticheat.%' OR key = 'steps.backfill_days'
                    OR key = 'achievements.streak_min_daily_steps'",
                &[],
            )
            .await?;
        let mut settings = Self::default();
        for row in rows {
            let key: String = row.get(0);
            let value: serde_json::Value = row.get(1);
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
            match key.as_str() {
                "rewards.coins_per_1000_steps" => settings.coins_per_1000_steps = int()?,
                "rewards.daily_coin_cap" => settings.daily_coin_cap = int()?,
                "steps.backfill_days" => settings.backfill_days = int()?,
                "anticheat.hard_daily_max_steps" => settings.hard_daily_max_steps = int()?,
                "anticheat.soft_daily_max_steps" => settings.soft_daily_max_steps = int()?,
                "anticheat.hard_cadence_spm" => settings.hard_cadence_spm = float()?,
                "anticheat.running_cadence_spm" => settings.running_cadence_spm = float()?,
                "anticheat.sustained_cadence_minutes" => {
                    settings.sustained_cadence_minutes = float()?
                }
                "anticheat.outlier_zscore" => settings.outlier_zscore = float()?,
                "anticheat.outlier_min_history_days" => settings.outlier_min_history_days = int()?,
                "achievements.streak_min_daily_steps" => settings.streak_min_daily_steps = int()?,
                _ => {}
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

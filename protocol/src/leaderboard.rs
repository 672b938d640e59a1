//! Leaderboards: the bodies of `GET /leaderboard` and `POST /admin/leaderboard/refresh`.
//! Boards rank users by verified steps per period; they carry display names, never ids or emails.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// How many entries `GET /api/v1/leaderboard` returns when `limit` is not given.
pub const DEFAULT_LEADERBOARD_LIMIT: i64 = 10;

/// The span of days a board ranks, by UTC date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeaderboardPeriod {
    /// The current ISO week, Monday to Sunday.
    Weekly,
    /// The current calendar month.
    Monthly,
    /// Every day ever recorded.
    AllTime,
}

impl LeaderboardPeriod {
    /// Every period, in the order boards are rebuilt.
    pub const ALL: [Self; 3] = [Self::Weekly, Self::Monthly, Self::AllTime];

    /// The wire and database name: `weekly`, `monthly` or `all_time`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::AllTime => "all_time",
        }
    }
}

impl fmt::Display for LeaderboardPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `weekly`, `monthly` or `all_time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPeriod;

impl fmt::Display for UnknownPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("period must be one of weekly, monthly, all_time")
    }
}

impl std::error::Error for UnknownPeriod {}

impl FromStr for LeaderboardPeriod {
    type Err = UnknownPeriod;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|period| period.as_str() == name)
            .ok_or(UnknownPeriod)
    }
}

/// One row of a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaderboardEntry {
    /// 1-based rank; ranks are contiguous and unique (ties are broken by registration order).
    pub rank: i64,
    /// The user's display name when the board was built.
    pub display_name: String,
    /// Verified steps in the period.
    pub steps: i64,
    /// Whether this row is the caller's own.
    pub is_me: bool,
}

/// The caller's own place on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MyRank {
    /// 1-based rank.
    pub rank: i64,
    /// Verified steps in the period.
    pub steps: i64,
}

/// Answer of `GET /api/v1/leaderboard?period=&limit=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Leaderboard {
    /// The period ranked.
    pub period: LeaderboardPeriod,
    /// The first day (UTC) of the period the board covers (1970-01-01 for all time).
    pub period_start: NaiveDate,
    /// When the board was built; `null` when it never was.
    pub computed_at: Option<DateTime<Utc>>,
    /// The top of the board, best first.
    pub entries: Vec<LeaderboardEntry>,
    /// The caller's own place, even outside the top; `null` when not on the board.
    pub me: Option<MyRank>,
}

/// Body of `POST /api/v1/admin/leaderboard/refresh` (the body itself is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshLeaderboardRequest {
    /// The period to rebuild; every period when absent.
    #[serde(default)]
    pub period: Option<LeaderboardPeriod>,
}

/// How many entries one rebuilt board holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshedBoard {
    /// The period rebuilt.
    pub period: LeaderboardPeriod,
    /// Users ranked on it.
    pub entries: u64,
}

/// Answer of `POST /api/v1/admin/leaderboard/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshLeaderboardResponse {
    /// One item per rebuilt period.
    pub boards: Vec<RefreshedBoard>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_round_trip_through_their_names() {
        for period in LeaderboardPeriod::ALL {
            assert_eq!(period.as_str().parse::<LeaderboardPeriod>(), Ok(period));
            let json = serde_json::to_string(&period).unwrap();
            assert_eq!(json, format!("\"{period}\""));
        }
        assert_eq!("daily".parse::<LeaderboardPeriod>(), Err(UnknownPeriod));
        assert_eq!("Weekly".parse::<LeaderboardPeriod>(), Err(UnknownPeriod));
    }

    #[test]
    fn the_refresh_body_refuses_unknown_fields() {
        let body: RefreshLeaderboardRequest =
            serde_json::from_str(r#"{"period":"all_time"}"#).unwrap();
        assert_eq!(body.period, Some(LeaderboardPeriod::AllTime));
        assert!(serde_json::from_str::<RefreshLeaderboardRequest>(r#"{"periods":[]}"#).is_err());
    }
}

//! Steps to coins: recording day totals ([`steps`]) judged by anti-cheat ([`anticheat`]),
//! day settlement within the daily cap ([`settlement`]), group commit of the small batches of
//! different users that arrive together ([`groups`]), the review queue for flagged days
//! ([`review`]), achievements, the reward settings, the coin ledger every coin moves through,
//! and the leaderboards built from the same day totals.

pub mod achievements;
pub mod anticheat;
pub mod groups;
pub mod leaderboard;
pub mod ledger;
pub mod review;
pub mod settings;
pub mod settlement;
pub mod steps;

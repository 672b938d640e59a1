//! fitkart-sync-server: the FitKart HTTP service on PostgreSQL.
//! It owns authentication, idempotent sync, the coin ledger, orders, the admin API and the
//! admin console.
#![warn(clippy::unwrap_used)]

pub mod accounts;
pub mod achievements;
pub mod admin;
pub mod audit;
pub mod catalogue;
pub mod config;
pub mod console;
pub mod cursor;
pub mod db;
pub mod error;
pub mod generate;
pub mod http;
pub mod jobs;
pub mod leaderboard;
pub mod ledger;
pub mod maintenance;
pub mod metrics;
pub mod orders;
pub mod password;
pub mod rate_limit;
pub mod replica;
pub mod retention;
pub mod seeds;
pub mod server;
pub mod settings;
pub mod shopify;
pub mod steps;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;
pub mod users;
pub mod validations;

pub use config::ServerConfig;
pub use error::{ApiError, Error};

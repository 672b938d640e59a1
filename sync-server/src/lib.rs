//! fitkart-sync-server: the FitKart HTTP service on PostgreSQL.
//! It owns authentication, idempotent sync, the coin ledger, orders, the admin API and the
//! admin console.
//!
//! The code is in domain folders, each owning its rules and the SQL that persists them:
//! [`auth`] (who may call), [`rewards`] (steps to coins), [`shop`] (catalogue and orders),
//! [`sync`] (the device protocol) and [`admin`] (what operators do). The HTTP edge,
//! [`http`], mirrors them and is the only place that speaks status codes; [`console`] is the
//! admin console over the same domain functions. The rest is the platform: configuration,
//! the database, seeds, background jobs and upkeep, metrics, the running server and the
//! benchmark data generator.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod auth;
pub mod rewards;
pub mod shop;
pub mod sync;

pub mod console;
pub mod http;

pub mod config;
pub mod db;
pub mod error;
pub mod generate;
pub mod jobs;
pub mod maintenance;
pub mod metrics;
pub mod replica;
pub mod retention;
pub mod seeds;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::ServerConfig;
pub use error::{DomainError, Error, ErrorKind};
pub use http::ApiError;

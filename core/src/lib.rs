//! fitkart-core: the on-device store (SQLite) and, later, the sync engine of FitKart.
//! Every read works offline; every write is queued in the same transaction as its effect.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod error;
pub mod store;

pub use error::Error;
pub use store::Store;

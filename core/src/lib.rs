//! fitkart-core: the FitKart device library. An on-device SQLite store holds a durable queue
//! of the user's writes (the outbox) and a cache of the server's state; every read works
//! offline, every write is queued in the same transaction as its effect, and a sans-I/O sync
//! engine exchanges them with the server through narrow [`Transport`] and [`Clock`] seams.
//!
//! Start with [`FitKart`]: open it with a [`Config`] and a [`TokenStore`], sign in, record
//! steps, read the wallet, and call [`FitKart::sync`] whenever the app likes.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod cache;
mod client;
pub mod clock;
pub mod engine;
mod error;
pub mod events;
pub mod outbox;
pub mod session;
pub mod store;
pub mod transport;

pub use cache::{
    AchievementView, DayStepsView, LeaderboardView, OrderSync, OrderView, Rejection, RewardRules,
    SourceStepsView, WalletView,
};
pub use client::{Config, FitKart, SyncReport};
pub use clock::{Clock, SystemClock};
pub use engine::{PullCounts, RetryPolicy};
pub use error::{Error, FitKartError};
pub use events::{Listener, ListenerId, Part, SyncPhase, SyncStatus};
pub use outbox::QueuedOrder;
pub use session::{FileTokenStore, MemoryTokenStore, TokenStore, Tokens};
pub use store::Store;
pub use transport::{Fault, FaultyTransport, HttpTransport, Transport, TransportError};

/// The wire types the API uses (steps, orders, profiles, leaderboards).
pub use fitkart_protocol as protocol;

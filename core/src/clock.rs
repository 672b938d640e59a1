//! The time seam: the engine reads the time and waits only through [`Clock`], so a test or
//! simulator can run it on virtual time. [`SystemClock`] is the real one.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::transport::BoxFuture;

/// Where the library gets the time, and how it waits between retries.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Completes after `duration` (of this clock's time).
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>;
}

/// The system's wall clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

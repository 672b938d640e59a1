//! Change notifications: after each commit, listeners hear which parts of the app's data
//! changed, and every change of the sync status, so a UI refreshes without polling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A part of the app's data, as listeners are told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// Step totals (local or server).
    Steps,
    /// The wallet view (balance, holds, estimate) or coin history.
    Wallet,
    /// Orders (server or pending).
    Orders,
    /// Achievement definitions, unlocks or progress.
    Achievements,
    /// The product catalogue.
    Products,
    /// A leaderboard.
    Leaderboard,
    /// The signed-in user's profile, or who is signed in.
    Profile,
    /// Public settings (coin rate, daily cap, ...).
    Settings,
    /// The list of refused mutations.
    Rejections,
    /// The sync status.
    SyncStatus,
}

impl Part {
    /// Every data part (all but the sync status).
    pub const ALL_DATA: [Part; 9] = [
        Part::Steps,
        Part::Wallet,
        Part::Orders,
        Part::Achievements,
        Part::Products,
        Part::Leaderboard,
        Part::Profile,
        Part::Settings,
        Part::Rejections,
    ];
}

/// What a sync is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    /// Registering the device with the server.
    Registering,
    /// Sending queued mutations.
    Pushing,
    /// Fetching changes.
    Pulling,
    /// Refreshing achievement progress and the leaderboard.
    Refreshing,
}

/// The sync status an app shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Not syncing; the last sync (if any) succeeded.
    Idle,
    /// A sync is running: its phase, and progress as done of total (mutations pushed of the
    /// queue, or pages pulled so far of at least that many).
    Syncing {
        /// The phase.
        phase: SyncPhase,
        /// Units done.
        done: u64,
        /// Units known so far.
        total: u64,
    },
    /// The last sync could not reach the server; queued changes wait.
    Offline,
    /// The last sync failed with this code (`unauthorized`, `upgrade_required`, ...).
    Error {
        /// A machine-readable code.
        code: String,
    },
}

/// Hears about changes. Called after the commit, on the thread that committed; keep it short
/// (post to the UI thread).
pub trait Listener: Send + Sync {
    /// These parts changed.
    fn on_change(&self, parts: &[Part]);
    /// The sync status changed.
    fn on_status(&self, status: &SyncStatus);
}

/// A registered listener's handle, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

impl ListenerId {
    /// The id as a number (for bindings).
    pub fn value(self) -> u64 {
        self.0
    }

    /// The id of that number (for bindings).
    pub fn from_value(value: u64) -> Self {
        Self(value)
    }
}

/// The registered listeners.
#[derive(Default)]
pub(crate) struct Listeners {
    next: AtomicU64,
    all: Mutex<Vec<(ListenerId, Arc<dyn Listener>)>>,
}

impl Listeners {
    pub(crate) fn add(&self, listener: Arc<dyn Listener>) -> ListenerId {
        let id = ListenerId(self.next.fetch_add(1, Ordering::Relaxed));
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, listener));
        id
    }

    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        let before = all.len();
        all.retain(|(other, _)| *other != id);
        all.len() != before
    }

    /// A copy of the list, so no lock is held while listeners run.
    fn snapshot(&self) -> Vec<Arc<dyn Listener>> {
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, listener)| Arc::clone(listener))
            .collect()
    }

    pub(crate) fn changed(&self, parts: &[Part]) {
        if parts.is_empty() {
            return;
        }
        for listener in self.snapshot() {
            guarded(|| listener.on_change(parts));
        }
    }

    pub(crate) fn status(&self, status: &SyncStatus) {
        for listener in self.snapshot() {
            guarded(|| listener.on_status(status));
        }
    }
}

/// Runs a listener so that its panic cannot unwind into the library: the commit it hears
/// about is already durable, and the other listeners still run.
fn guarded(call: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::warn!("a change listener panicked; ignored");
    }
}

//! [`FitKart`], the one entry point apps use: local writes and reads on the device store, the
//! session, and `sync`, which drives the sans-I/O engine with the real transport and clock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use fitkart_protocol::auth::{
    LoginRequest, ProfilePatch, RefreshRequest, RegisterRequest, TokenResponse, UserProfile,
};
use fitkart_protocol::leaderboard::{Leaderboard, LeaderboardPeriod};
use fitkart_protocol::orders::{OrderLine, Product, ShippingAddress};
use fitkart_protocol::steps::{AchievementList, CoinTransaction, StepReport};
use fitkart_protocol::sync::{DeviceRegistration, PullResponse, PushResponse, SyncSetting};
use fitkart_protocol::{API_PREFIX, ErrorEnvelope, PROTOCOL_VERSION};
use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::cache::{
    self, AchievementView, DayStepsView, LeaderboardView, OrderView, Rejection, RewardRules,
    WalletView,
};
use crate::clock::{Clock, SystemClock};
use crate::engine::{self, PULL_LIMIT, PUSH_BATCH, PullCounts, RetryPolicy};
use crate::error::{Error, FitKartError};
use crate::events::{Listener, ListenerId, Listeners, Part, SyncPhase, SyncStatus};
use crate::outbox::{self, QueuedOrder};
use crate::session::{TokenStore, Tokens};
use crate::store::Store;
use crate::transport::{HttpRequest, HttpTransport, Method, Transport};

/// How a [`FitKart`] client is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database file (its directory must exist).
    pub database_path: PathBuf,
    /// The sync server, e.g. `https://sync.fitkart.example`.
    pub server_url: String,
    /// `ios`, `android` or `other`.
    pub platform: String,
    /// The app's version, sent when the device registers.
    pub app_version: String,
    /// The OS version, sent when the device registers.
    pub os_version: Option<String>,
    /// The device model, sent when the device registers.
    pub model: Option<String>,
    /// The longest one HTTP exchange may take (default transport).
    pub request_timeout: Duration,
    /// How failed exchanges are retried.
    pub retry: RetryPolicy,
}

impl Config {
    /// A configuration with the default timeout (30 s) and retry policy.
    pub fn new(database_path: impl Into<PathBuf>, server_url: impl Into<String>) -> Self {
        Self {
            database_path: database_path.into(),
            server_url: server_url.into(),
            platform: "other".into(),
            app_version: env!("CARGO_PKG_VERSION").into(),
            os_version: None,
            model: None,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Mutations sent (including re-sent ones).
    pub pushed: u64,
    /// Mutations the server applied now.
    pub applied: u64,
    /// Mutations the server had already applied (a retried push): settled, nothing doubled.
    pub duplicates: u64,
    /// Refused mutations: (kind, code). Also in [`FitKart::rejections`].
    pub rejected: Vec<(String, String)>,
    /// Pulled pages and rows per kind.
    pub pulled: PullCounts,
    /// Whether the pull refetched a snapshot because the server could not serve the cursor.
    pub refetched_snapshot: bool,
    /// False when `sync_once`'s deadline stopped it before everything was exchanged.
    pub complete: bool,
}

/// The FitKart device library: open one per app process and share it (it is cheap to clone).
///
/// Every read works offline from the device database. Every write commits locally together
/// with the mutation that will carry it to the server; [`FitKart::sync`] exchanges them.
#[derive(Clone)]
pub struct FitKart {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    tokens: Arc<dyn TokenStore>,
    config: Config,
    device_id: Uuid,
    listeners: Listeners,
    status: Mutex<SyncStatus>,
    /// Held while a sync runs.
    sync_gate: tokio::sync::Mutex<()>,
    /// Finished syncs so far, and the last one's result (for calls that joined it).
    finished: AtomicU64,
    last_result: Mutex<Option<Result<SyncReport, FitKartError>>>,
    /// Held while tokens are refreshed, so one refresh token is spent once.
    refresh_gate: tokio::sync::Mutex<()>,
    rng: Mutex<SmallRng>,
}

type Result<T, E = FitKartError> = std::result::Result<T, E>;

impl FitKart {
    /// Opens the client: the database at `config.database_path` (created and migrated as
    /// needed), the default HTTP transport and the system clock.
    ///
    /// # Errors
    ///
    /// `Storage` when the database cannot be opened (the file is left as it is),
    /// `InvalidInput` for a bad server URL.
    pub fn open(config: Config, tokens: Arc<dyn TokenStore>) -> Result<Self> {
        let transport = HttpTransport::new(&config.server_url, config.request_timeout)?;
        Self::open_with(config, tokens, Arc::new(transport), Arc::new(SystemClock))
    }

    /// Opens the client with another transport and clock (tests, simulations).
    ///
    /// # Errors
    ///
    /// As [`FitKart::open`].
    pub fn open_with(
        config: Config,
        tokens: Arc<dyn TokenStore>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let store = Store::open(&config.database_path)?;
        let now = clock.now();
        let device_id = store.write(|tx| -> Result<Uuid, Error> {
            let existing: Option<String> = tx
                .query_row("SELECT device_id FROM device_identity", [], |row| {
                    row.get(0)
                })
                .optional()?;
            let id = match existing {
                Some(id) => id.parse().map_err(|_| {
                    Error::invalid("device_id", "the stored device id is unreadable")
                })?,
                None => {
                    let id = Uuid::now_v7();
                    tx.execute(
                        "INSERT INTO device_identity (device_id, created_at) VALUES (?1, ?2)",
                        params![id.to_string(), outbox::timestamp(now)],
                    )?;
                    id
                }
            };
            tx.execute(
                "INSERT OR IGNORE INTO sync_state (singleton) VALUES (1)",
                [],
            )?;
            Ok(id)
        })?;
        let seed = u64::from_le_bytes(device_id.as_bytes()[8..16].try_into().unwrap_or([7; 8]))
            ^ now.timestamp_micros().unsigned_abs();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                transport,
                clock,
                tokens,
                config,
                device_id,
                listeners: Listeners::default(),
                status: Mutex::new(SyncStatus::Idle),
                sync_gate: tokio::sync::Mutex::new(()),
                finished: AtomicU64::new(0),
                last_result: Mutex::new(None),
                refresh_gate: tokio::sync::Mutex::new(()),
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            }),
        })
    }

    /// This installation's id: generated once and kept in the database.
    pub fn device_id(&self) -> Uuid {
        self.inner.device_id
    }

    /// The id this device registers under for `user_id`: derived from the installation id
    /// and the user, so it is stable for that user on this device, and two people sharing a
    /// phone are two devices to the server (which binds a device id to one account).
    pub fn device_id_for(&self, user_id: Uuid) -> Uuid {
        Uuid::new_v5(&self.inner.device_id, user_id.as_bytes())
    }

    /// The underlying store, for diagnostics and tests.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    // ---- Listeners ---------------------------------------------------------------------

    /// Registers a listener for data changes and sync status.
    pub fn add_listener(&self, listener: Arc<dyn Listener>) -> ListenerId {
        self.inner.listeners.add(listener)
    }

    /// Removes a listener; false when it was not registered.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.inner.listeners.remove(id)
    }

    // ---- Session -----------------------------------------------------------------------

    /// Creates an account and signs in.
    ///
    /// # Errors
    ///
    /// `Rejected` (`email_taken`, `validation_failed`, ...), `Offline`, `Server`.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
    ) -> Result<UserProfile> {
        let body = RegisterRequest {
            email: email.to_owned(),
            password: password.to_owned(),
            display_name: display_name.to_owned(),
        };
        let answer: TokenResponse = self
            .inner
            .call(Method::Post, "/auth/register", Some(&body), false)
            .await?;
        self.sign_in(answer)
    }

    /// Signs in.
    ///
    /// # Errors
    ///
    /// `Unauthorized` (`invalid_credentials`, or `account_disabled` when the password is
    /// right but an administrator disabled the account), `Rejected` (`too_many_attempts`),
    /// `Offline`.
    pub async fn login(&self, email: &str, password: &str) -> Result<UserProfile> {
        let body = LoginRequest {
            email: email.to_owned(),
            password: password.to_owned(),
        };
        let answer: TokenResponse = self
            .inner
            .call(Method::Post, "/auth/login", Some(&body), false)
            .await?;
        self.sign_in(answer)
    }

    /// Stores the tokens and makes the user the device's active user. Another user's cache
    /// is emptied first (their queued changes stay parked, never pushed as this user).
    fn sign_in(&self, answer: TokenResponse) -> Result<UserProfile> {
        let user = answer.user;
        self.inner
            .tokens
            .save(&Tokens {
                user_id: user.id,
                access_token: answer.access_token,
                refresh_token: answer.refresh_token,
            })
            .map_err(Error::TokenStore)?;
        let user_id = user.id.to_string();
        self.inner.store.write(|tx| -> Result<(), Error> {
            let previous: Option<String> =
                tx.query_row("SELECT user_id FROM sync_state", [], |row| row.get(0))?;
            if previous.as_deref() != Some(user_id.as_str()) {
                cache::clear(tx)?;
                tx.execute(
                    "UPDATE sync_state SET user_id = ?1, pull_cursor = NULL, reset_cache = 0,
                         has_synced = 0, last_synced_at = NULL, last_error_code = NULL",
                    [&user_id],
                )?;
            }
            cache::upsert_profile(tx, &user)?;
            Ok(())
        })?;
        self.inner.listeners.changed(&Part::ALL_DATA);
        self.profile().map(|p| p.unwrap_or(user))
    }

    /// Signs out. With unsynced changes it refuses (`PendingChanges`) unless
    /// `discard_pending` is true, in which case they are dropped. The user's cache, queue and
    /// step observations are removed from the device; the server revokes the session (when
    /// reachable: signing out works offline too).
    ///
    /// # Errors
    ///
    /// `PendingChanges`, `Storage`.
    pub async fn logout(&self, discard_pending: bool) -> Result<()> {
        let user = self.active_user()?;
        if let Some(user) = &user {
            let count = self
                .inner
                .store
                .read(|conn| outbox::pending_count(conn, user))?;
            if count > 0 && !discard_pending {
                return Err(Error::PendingChanges { count }.into());
            }
        }
        if let Ok(Some(tokens)) = self.inner.tokens.load() {
            let body = RefreshRequest {
                refresh_token: tokens.refresh_token,
            };
            // Best effort: offline, the refresh token simply expires on the server.
            let _ = self
                .inner
                .call::<serde_json::Value, _>(Method::Post, "/auth/logout", Some(&body), false)
                .await;
        }
        self.inner.tokens.clear().map_err(Error::TokenStore)?;
        self.inner.store.write(|tx| -> Result<(), Error> {
            if let Some(user) = &user {
                for table in ["outbox", "device_steps", "rejections"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE user_id = ?1"), [user])?;
                }
            }
            cache::clear(tx)?;
            tx.execute(
                "UPDATE sync_state SET user_id = NULL, registered_user_id = NULL,
                     pull_cursor = NULL, reset_cache = 0, has_synced = 0,
                     last_synced_at = NULL, last_error_code = NULL",
                [],
            )?;
            Ok(())
        })?;
        self.set_status(SyncStatus::Idle);
        self.inner.listeners.changed(&Part::ALL_DATA);
        Ok(())
    }

    /// The signed-in user's profile (with pending changes applied), None when nobody is
    /// signed in.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn current_user(&self) -> Result<Option<UserProfile>> {
        if self
            .inner
            .tokens
            .load()
            .map_err(Error::TokenStore)?
            .is_none()
        {
            return Ok(None);
        }
        self.profile()
    }

    fn profile(&self) -> Result<Option<UserProfile>> {
        let Some(user) = self.active_user()? else {
            return Ok(None);
        };
        Ok(self.inner.store.read(|conn| cache::profile(conn, &user))?)
    }

    /// The user whose data the device holds (signed in now, or until the session ended).
    fn active_user(&self) -> Result<Option<String>> {
        Ok(self.inner.active_user()?)
    }

    fn require_user(&self) -> Result<String> {
        self.active_user()?.ok_or_else(|| Error::NotSignedIn.into())
    }

    // ---- Local writes --------------------------------------------------------------------

    /// Records the day total a step source reports for `date` (the user's local date). The
    /// device keeps the highest total per (date, source); a total not above it changes
    /// nothing. Returns whether it raised the total (and so was queued for the server).
    ///
    /// # Errors
    ///
    /// `InvalidInput` (negative or impossible steps, a bad source), `Unauthorized` when
    /// nobody ever signed in on this device, `Storage`.
    pub fn record_steps(
        &self,
        date: NaiveDate,
        source: &str,
        steps: i64,
        recorded_at: DateTime<Utc>,
    ) -> Result<bool> {
        let report = StepReport {
            date,
            source: source.to_owned(),
            steps,
            recorded_at,
        };
        Ok(self.record_steps_batch(std::slice::from_ref(&report))? > 0)
    }

    /// Records many reports in one transaction (a HealthKit or Health Connect backfill).
    /// Returns how many raised a total.
    ///
    /// # Errors
    ///
    /// As [`FitKart::record_steps`]; one invalid report records none of them.
    pub fn record_steps_batch(&self, reports: &[StepReport]) -> Result<u64> {
        let user = self.require_user()?;
        let now = self.inner.clock.now();
        let raised = self
            .inner
            .store
            .write(|tx| outbox::record_steps(tx, &user, now, reports))?;
        if raised > 0 {
            self.inner.listeners.changed(&[Part::Steps, Part::Wallet]);
        }
        Ok(raised as u64)
    }

    /// Places an order offline: it shows at once as pending and its coins as held; the
    /// server confirms or refuses it at the next sync (a refusal releases the hold and is
    /// listed in [`FitKart::rejections`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` (no lines, a bad quantity, a product not in the cached catalogue, a
    /// missing address field), `Unauthorized`, `Storage`.
    pub fn place_order(
        &self,
        items: &[OrderLine],
        shipping_address: &ShippingAddress,
    ) -> Result<QueuedOrder> {
        let user = self.require_user()?;
        let now = self.inner.clock.now();
        let order = self
            .inner
            .store
            .write(|tx| outbox::place_order(tx, &user, now, items, shipping_address))?;
        self.inner.listeners.changed(&[Part::Orders, Part::Wallet]);
        Ok(order)
    }

    /// Cancels an order by the device's id for it. An order that never left the device is
    /// dropped at once; otherwise the cancellation is queued.
    ///
    /// # Errors
    ///
    /// `InvalidInput` (unknown order, or already shipped, delivered or cancelled),
    /// `Unauthorized`, `Storage`.
    pub fn cancel_order(&self, client_order_id: Uuid) -> Result<()> {
        let user = self.require_user()?;
        let now = self.inner.clock.now();
        self.inner
            .store
            .write(|tx| outbox::cancel_order(tx, &user, now, client_order_id))?;
        self.inner.listeners.changed(&[Part::Orders, Part::Wallet]);
        Ok(())
    }

    /// Changes the profile (display name, IANA time zone, daily goal); shown at once, sent at
    /// the next sync.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the field, `Unauthorized`, `Storage`.
    pub fn update_profile(&self, patch: &ProfilePatch) -> Result<UserProfile> {
        let user = self.require_user()?;
        let now = self.inner.clock.now();
        self.inner
            .store
            .write(|tx| outbox::update_profile(tx, &user, now, patch))?;
        self.inner.listeners.changed(&[Part::Profile]);
        self.profile()?.ok_or_else(|| Error::NotSignedIn.into())
    }

    // ---- Local reads -------------------------------------------------------------------

    /// Today's steps, in the user's time zone.
    ///
    /// # Errors
    ///
    /// `Unauthorized`, `Storage`.
    pub fn steps_today(&self) -> Result<DayStepsView> {
        let today = self.today()?;
        Ok(self
            .step_history(today, today)?
            .pop()
            .unwrap_or(DayStepsView {
                date: today,
                total_steps: 0,
                verified_steps: 0,
                pending: false,
                sources: Vec::new(),
            }))
    }

    /// The user's local date now (profile time zone; UTC before the profile is known).
    pub fn today(&self) -> Result<NaiveDate> {
        let now = self.inner.clock.now();
        let zone = self
            .profile()?
            .and_then(|p| p.timezone.parse::<chrono_tz::Tz>().ok());
        Ok(match zone {
            Some(zone) => now.with_timezone(&zone).date_naive(),
            None => now.date_naive(),
        })
    }

    /// Days from `from` to `to` (inclusive) that have steps, newest first.
    ///
    /// # Errors
    ///
    /// `Unauthorized`, `Storage`.
    pub fn step_history(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DayStepsView>> {
        let user = self.require_user()?;
        Ok(self
            .inner
            .store
            .read(|conn| cache::step_days(conn, &user, from, to))?)
    }

    /// The wallet: the server's balance, pending holds, and an estimate of what unsynced
    /// steps will earn.
    ///
    /// # Errors
    ///
    /// `Unauthorized`, `Storage`.
    pub fn wallet(&self) -> Result<WalletView> {
        let user = self.require_user()?;
        Ok(self.inner.store.read(|conn| -> Result<_, Error> {
            let holds = outbox::pending_holds(conn, &user)?;
            cache::wallet(conn, &user, holds)
        })?)
    }

    /// Coin history, newest first, `limit` entries older than the entry `before`.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn coin_history(&self, limit: u32, before: Option<Uuid>) -> Result<Vec<CoinTransaction>> {
        Ok(self
            .inner
            .store
            .read(|conn| cache::coin_history(conn, limit, before))?)
    }

    /// Achievements with progress and unlock times.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn achievements(&self) -> Result<Vec<AchievementView>> {
        Ok(self.inner.store.read(cache::achievements)?)
    }

    /// The active products of the catalogue.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn products(&self) -> Result<Vec<Product>> {
        Ok(self.inner.store.read(cache::products)?)
    }

    /// The user's orders, pending ones first, then the server's, newest first.
    ///
    /// # Errors
    ///
    /// `Unauthorized`, `Storage`.
    pub fn orders(&self) -> Result<Vec<OrderView>> {
        let user = self.require_user()?;
        Ok(self.inner.store.read(|conn| cache::orders(conn, &user))?)
    }

    /// The leaderboard of `period` as last fetched, None before the first fetch.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn leaderboard(&self, period: LeaderboardPeriod) -> Result<Option<LeaderboardView>> {
        Ok(self
            .inner
            .store
            .read(|conn| cache::leaderboard(conn, period))?)
    }

    /// Public settings, by key.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn settings(&self) -> Result<Vec<SyncSetting>> {
        Ok(self.inner.store.read(cache::settings)?)
    }

    /// The reward rules (coin rate, daily cap), once a sync brought them.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn reward_rules(&self) -> Result<Option<RewardRules>> {
        Ok(self.inner.store.read(cache::reward_rules)?)
    }

    /// Mutations the server refused, newest first.
    ///
    /// # Errors
    ///
    /// `Unauthorized`, `Storage`.
    pub fn rejections(&self) -> Result<Vec<Rejection>> {
        let user = self.require_user()?;
        Ok(self
            .inner
            .store
            .read(|conn| cache::rejections(conn, &user))?)
    }

    /// Forgets the listed refusals (after the app showed them).
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn dismiss_rejections(&self) -> Result<()> {
        let user = self.require_user()?;
        self.inner.store.write(|tx| -> Result<(), Error> {
            tx.execute("DELETE FROM rejections WHERE user_id = ?1", [&user])?;
            Ok(())
        })?;
        self.inner.listeners.changed(&[Part::Rejections]);
        Ok(())
    }

    /// How many queued changes the server has not settled.
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn pending_changes(&self) -> Result<u64> {
        match self.active_user()? {
            Some(user) => Ok(self
                .inner
                .store
                .read(|conn| outbox::pending_count(conn, &user))?),
            None => Ok(0),
        }
    }

    // ---- Sync status -------------------------------------------------------------------

    /// The current sync status.
    pub fn status(&self) -> SyncStatus {
        self.inner
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// When the last complete sync finished (kept across restarts, cleared by logout).
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn last_synced_at(&self) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = self.inner.store.read(|conn| -> Result<_, Error> {
            Ok(
                conn.query_row("SELECT last_synced_at FROM sync_state", [], |row| {
                    row.get(0)
                })?,
            )
        })?;
        Ok(text.as_deref().map(engine::parse_time).transpose()?)
    }

    /// Whether this user completed a sync on this device (kept across restarts, cleared by
    /// logout).
    ///
    /// # Errors
    ///
    /// `Storage`.
    pub fn has_synced(&self) -> Result<bool> {
        Ok(self.inner.store.read(|conn| -> Result<_, Error> {
            Ok(conn.query_row("SELECT has_synced FROM sync_state", [], |row| row.get(0))?)
        })?)
    }

    fn set_status(&self, status: SyncStatus) {
        *self
            .inner
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status.clone();
        self.inner.listeners.status(&status);
        self.inner.listeners.changed(&[Part::SyncStatus]);
    }

    // ---- Sync ----------------------------------------------------------------------------

    /// Pushes the queue, then pulls every change while fetching achievement progress and the
    /// weekly leaderboard (written after the last page). The first sync of a signed-in user
    /// also registers the device, alongside. Each pulled page is written in its own
    /// transaction while the next is fetched. Failed exchanges are retried with backoff; a
    /// sync already running is joined (this call returns its result).
    ///
    /// # Errors
    ///
    /// `Offline` (the server stayed unreachable; nothing is lost), `Unauthorized`,
    /// `UpgradeRequired`, `Server`, `Storage`.
    pub async fn sync(&self) -> Result<SyncReport> {
        self.sync_until(None).await
    }

    /// Like [`FitKart::sync`], but stops at a safe point (between batches and pages, never
    /// inside one) once `budget` has passed, for iOS BGTaskScheduler and Android
    /// WorkManager. `complete` in the report says whether it finished.
    ///
    /// # Errors
    ///
    /// As [`FitKart::sync`].
    pub async fn sync_once(&self, budget: Duration) -> Result<SyncReport> {
        let deadline = self.inner.clock.now()
            + chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::MAX);
        self.sync_until(Some(deadline)).await
    }

    async fn sync_until(&self, deadline: Option<DateTime<Utc>>) -> Result<SyncReport> {
        let arrived_after = self.inner.finished.load(Ordering::SeqCst);
        let _gate = match self.inner.sync_gate.try_lock() {
            Ok(gate) => gate,
            Err(_) => {
                let gate = self.inner.sync_gate.lock().await;
                if self.inner.finished.load(Ordering::SeqCst) > arrived_after
                    && let Some(result) = self
                        .inner
                        .last_result
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone()
                {
                    return result;
                }
                gate
            }
        };
        let result = self.run_sync(deadline).await;
        let status = match &result {
            Ok(_) => SyncStatus::Idle,
            Err(Error::Network(_)) => SyncStatus::Offline,
            Err(err) if err.is_retryable() => SyncStatus::Offline,
            Err(err) => SyncStatus::Error { code: err.code() },
        };
        if let Err(err) = &result {
            let code = err.code();
            let _ = self.inner.store.write(|tx| -> Result<(), Error> {
                tx.execute("UPDATE sync_state SET last_error_code = ?1", [&code])?;
                Ok(())
            });
        }
        self.set_status(status);
        let result = result.map_err(FitKartError::from);
        *self
            .inner
            .last_result
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(result.clone());
        self.inner.finished.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn past(&self, deadline: Option<DateTime<Utc>>) -> bool {
        deadline.is_some_and(|d| self.inner.clock.now() >= d)
    }

    async fn run_sync(&self, deadline: Option<DateTime<Utc>>) -> Result<SyncReport, Error> {
        let inner = &self.inner;
        let tokens = inner
            .tokens
            .load()
            .map_err(Error::TokenStore)?
            .ok_or(Error::NotSignedIn)?;
        let user = tokens.user_id.to_string();
        if inner.active_user()?.as_deref() != Some(user.as_str()) {
            return Err(Error::NotSignedIn);
        }
        // Register the device once per signed-in user, meanwhile the rest: the server
        // records a device on its first push too, and the registration only adds what the
        // device is (platform, versions, model), so a fresh phone's first sync does not wait
        // a round trip for it. Its error, if any, is returned after the rest has been done.
        let registered: Option<String> = inner.store.read(|conn| -> Result<_, Error> {
            Ok(
                conn.query_row("SELECT registered_user_id FROM sync_state", [], |row| {
                    row.get(0)
                })?,
            )
        })?;
        let register = async {
            if registered.as_deref() == Some(user.as_str()) {
                return Ok(());
            }
            self.set_status(SyncStatus::Syncing {
                phase: SyncPhase::Registering,
                done: 0,
                total: 1,
            });
            let body = DeviceRegistration {
                device_id: self.device_id_for(tokens.user_id),
                platform: inner.config.platform.clone(),
                os_version: inner.config.os_version.clone(),
                app_version: Some(inner.config.app_version.clone()),
                model: inner.config.model.clone(),
            };
            inner
                .with_retry::<serde_json::Value, _>(deadline, Method::Post, "/devices", Some(&body))
                .await?;
            inner.store.write(|tx| -> Result<(), Error> {
                tx.execute("UPDATE sync_state SET registered_user_id = ?1", [&user])?;
                Ok(())
            })
        };
        let (registered, report) = tokio::join!(
            register,
            self.push_and_pull(deadline, tokens.user_id, &user)
        );
        match (registered, report) {
            (Ok(()), report) => report,
            (Err(err), Ok(_)) => Err(err),
            (Err(err), Err(other)) => Err(the_cause(err, other)),
        }
    }

    /// Pushes the queue, then pulls every change and refreshes achievement progress and the
    /// weekly board (see [`FitKart::sync`]).
    async fn push_and_pull(
        &self,
        deadline: Option<DateTime<Utc>>,
        user_id: Uuid,
        user: &str,
    ) -> Result<SyncReport, Error> {
        let inner = &self.inner;
        let mut report = SyncReport::default();

        // Push.
        let total = inner.store.read(|conn| outbox::pending_count(conn, user))?;
        let mut done = 0;
        loop {
            if self.past(deadline) {
                return Ok(report);
            }
            self.set_status(SyncStatus::Syncing {
                phase: SyncPhase::Pushing,
                done,
                total: total.max(done),
            });
            let Some(batch) = inner.store.write(|tx| {
                engine::take_push_batch(tx, user, self.device_id_for(user_id), PUSH_BATCH)
            })?
            else {
                break;
            };
            let sent = batch.request.mutations.len() as u64;
            report.pushed += sent;
            let answer = inner
                .with_retry::<PushResponse, _>(
                    deadline,
                    Method::Post,
                    "/sync/push",
                    Some(&batch.request),
                )
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(err) => {
                    let code = err.code();
                    let _ = inner
                        .store
                        .write(|tx| engine::note_push_failure(tx, &batch, &code));
                    return Err(err);
                }
            };
            let now = inner.clock.now();
            let outcome = inner
                .store
                .write(|tx| engine::apply_push(tx, &batch, &answer, now))?;
            report.applied += outcome.applied;
            report.duplicates += outcome.duplicates;
            report.rejected.extend(outcome.rejected.iter().cloned());
            inner.listeners.changed(&outcome.parts);
            let settled = outcome.applied + outcome.duplicates + outcome.rejected.len() as u64;
            done += sent;
            if settled == 0 {
                // The server answered without settling anything: do not loop on it.
                return Err(Error::Api {
                    status: 502,
                    code: "push_not_settled".into(),
                    message: "the server's answer settled none of the pushed mutations".into(),
                    retry_after: None,
                });
            }
        }

        // Pull, and meanwhile fetch what pull does not carry (achievement progress and the
        // weekly board): both answer from what the push above settled and neither needs the
        // pulled pages, so a restore waits for the longer of the two, not their sum. The
        // refresh is written after the last page.
        let (pulled, refresh) = tokio::join!(
            self.pull_all(deadline, user, &mut report),
            self.fetch_refresh(deadline),
        );
        let (pulled, refresh) = match (pulled, refresh) {
            (Err(err), Err(other)) => return Err(the_cause(err, other)),
            (pulled, refresh) => (pulled?, refresh),
        };
        if !pulled {
            return Ok(report); // stopped between pages at the deadline
        }
        let (list, (board, fetched_at)) = match refresh {
            Ok(fetched) => fetched,
            Err(_) if self.past(deadline) => return Ok(report),
            Err(err) => return Err(err),
        };
        self.set_status(SyncStatus::Syncing {
            phase: SyncPhase::Refreshing,
            done: 0,
            total: 2,
        });
        inner
            .store
            .write(|tx| cache::store_achievement_progress(tx, &list.achievements))?;
        inner.listeners.changed(&[Part::Achievements]);
        self.store_leaderboard(&board, fetched_at)?;
        report.complete = true;
        Ok(report)
    }

    /// Fetches the leaderboard of `period` and caches it.
    ///
    /// # Errors
    ///
    /// `Offline`, `Unauthorized`, `Storage`.
    pub async fn refresh_leaderboard(&self, period: LeaderboardPeriod) -> Result<LeaderboardView> {
        self.refresh_leaderboard_inner(None, period).await?;
        self.leaderboard(period)?
            .ok_or_else(|| FitKartError::Server {
                status: 0,
                code: "leaderboard_missing".into(),
            })
    }

    async fn refresh_leaderboard_inner(
        &self,
        deadline: Option<DateTime<Utc>>,
        period: LeaderboardPeriod,
    ) -> Result<(), Error> {
        let (board, fetched_at) = self.fetch_leaderboard(deadline, period).await?;
        self.store_leaderboard(&board, fetched_at)
    }

    /// The leaderboard of `period`, and when it arrived.
    async fn fetch_leaderboard(
        &self,
        deadline: Option<DateTime<Utc>>,
        period: LeaderboardPeriod,
    ) -> Result<(Leaderboard, DateTime<Utc>), Error> {
        let path = format!("/leaderboard?period={}", period.as_str());
        let board = self
            .inner
            .with_retry::<Leaderboard, ()>(deadline, Method::Get, &path, None)
            .await?;
        Ok((board, self.inner.clock.now()))
    }

    /// Caches a fetched leaderboard and tells the listeners.
    fn store_leaderboard(
        &self,
        board: &Leaderboard,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.inner
            .store
            .write(|tx| cache::store_leaderboard(tx, board, fetched_at))?;
        self.inner.listeners.changed(&[Part::Leaderboard]);
        Ok(())
    }

    /// Achievement progress and the weekly leaderboard (with when it was fetched), fetched
    /// together.
    async fn fetch_refresh(
        &self,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(AchievementList, (Leaderboard, DateTime<Utc>)), Error> {
        tokio::try_join!(
            self.inner.with_retry::<AchievementList, ()>(
                deadline,
                Method::Get,
                "/achievements",
                None
            ),
            self.fetch_leaderboard(deadline, LeaderboardPeriod::Weekly),
        )
    }

    /// Pulls until the last page has been applied (true) or the deadline passed between
    /// pages (false). A cursor the server no longer serves (`invalid_cursor`,
    /// `cursor_expired`) restarts the pull from a snapshot, once.
    async fn pull_all(
        &self,
        deadline: Option<DateTime<Utc>>,
        user: &str,
        report: &mut SyncReport,
    ) -> Result<bool, Error> {
        let mut restarted = false;
        loop {
            match self.pull_pages(deadline, user, report).await {
                Err(Error::Api { status, code, .. })
                    if !restarted
                        && ((status == 400 && code == "invalid_cursor")
                            || (status == 410 && code == "cursor_expired")) =>
                {
                    self.inner.store.write(engine::restart_from_snapshot)?;
                    restarted = true;
                    report.refetched_snapshot = true;
                }
                other => return other,
            }
        }
    }

    /// Pulls from the stored cursor, each page applied in its own transaction while the
    /// next one is fetched: the server prepares page n + 1 (its cursor is in page n) while
    /// the device writes page n. A page is written only after every page before it, so the
    /// stored cursor always names the last page written; one fetched but not written when
    /// an error stops the pull is fetched again by the next.
    async fn pull_pages(
        &self,
        deadline: Option<DateTime<Utc>>,
        user: &str,
        report: &mut SyncReport,
    ) -> Result<bool, Error> {
        let inner = &self.inner;
        let first = inner.store.read(engine::pull_cursor)?;
        // Room for one page: the fetcher runs at most one page ahead of the writer.
        let (pages, mut fetched) = tokio::sync::mpsc::channel::<PullResponse>(1);
        let fetch = async move {
            let mut cursor = first;
            loop {
                if self.past(deadline) {
                    return Ok(false);
                }
                let mut path = format!("/sync/pull?limit={PULL_LIMIT}");
                if let Some(cursor) = &cursor {
                    path.push_str("&cursor=");
                    path.push_str(cursor);
                }
                let page = inner
                    .with_retry::<PullResponse, ()>(deadline, Method::Get, &path, None)
                    .await?;
                let last = !page.has_more;
                cursor = Some(page.next_cursor.clone());
                if pages.send(page).await.is_err() {
                    return Ok(false); // the writer stopped on an error, which is returned
                }
                if last {
                    return Ok(true);
                }
            }
        };
        self.set_status(SyncStatus::Syncing {
            phase: SyncPhase::Pulling,
            done: report.pulled.pages,
            total: report.pulled.pages + 1,
        });
        // Moved in, so that a failed write drops the receiver and the fetcher stops.
        let write = async move {
            while let Some(page) = fetched.recv().await {
                let now = inner.clock.now();
                let (counts, parts) = inner
                    .store
                    .write(|tx| engine::apply_pull(tx, user, &page, now))?;
                report.pulled.add(&counts);
                inner.listeners.changed(&parts);
                if page.has_more {
                    self.set_status(SyncStatus::Syncing {
                        phase: SyncPhase::Pulling,
                        done: report.pulled.pages,
                        total: report.pulled.pages + 1,
                    });
                }
            }
            Ok::<(), Error>(())
        };
        let (fetched_all, written) = tokio::join!(fetch, write);
        written?;
        fetched_all
    }
}

impl Inner {
    /// The user whose data the device holds (signed in now, or until the session ended).
    fn active_user(&self) -> Result<Option<String>, Error> {
        self.store.read(|conn| -> Result<_, Error> {
            Ok(conn.query_row("SELECT user_id FROM sync_state", [], |row| row.get(0))?)
        })
    }

    /// One call with retries: network errors, 408, 429 and 5xx are retried with backoff
    /// (honouring `Retry-After`) up to the policy's limit or the deadline.
    async fn with_retry<T: DeserializeOwned, B: Serialize>(
        &self,
        deadline: Option<DateTime<Utc>>,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut attempt = 0;
        loop {
            match self.call(method, path, body, true).await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && attempt < self.config.retry.max_retries => {
                    let unit: f64 = self
                        .rng
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .random_range(0.0..1.0);
                    let delay = self.config.retry.delay(attempt, unit, err.retry_after());
                    if let Some(deadline) = deadline {
                        let wake = self.clock.now()
                            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                        if wake >= deadline {
                            return Err(err);
                        }
                    }
                    tracing::debug!(path, attempt, ?delay, code = %err.code(), "retrying");
                    self.clock.sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// One call. With `auth`, an expired access token is refreshed once and the call
    /// repeated; a refresh the server refuses ends the session (tokens cleared).
    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        auth: bool,
    ) -> Result<T, Error> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let mut refreshed = false;
        loop {
            let tokens = if auth {
                Some(
                    self.tokens
                        .load()
                        .map_err(Error::TokenStore)?
                        .ok_or(Error::NotSignedIn)?,
                )
            } else {
                None
            };
            let mut headers = vec![(
                fitkart_protocol::sync::PROTOCOL_VERSION_HEADER.to_owned(),
                PROTOCOL_VERSION.to_string(),
            )];
            if let Some(tokens) = &tokens {
                headers.push((
                    "authorization".into(),
                    format!("Bearer {}", tokens.access_token),
                ));
            }
            let request = HttpRequest {
                method,
                path: format!("{API_PREFIX}{path}"),
                headers,
                body: body.clone(),
            };
            let response = self.transport.send(request).await?;
            if (200..300).contains(&response.status) {
                let bytes = if response.body.is_empty() {
                    b"null".as_slice()
                } else {
                    &response.body
                };
                return Ok(serde_json::from_slice(bytes)?);
            }
            let error = api_error(response.status, &response.body, response.retry_after);
            match (&tokens, response.status) {
                (Some(used), 401) if !refreshed => {
                    self.refresh(used).await?;
                    refreshed = true;
                }
                (Some(_), 403) if is_account_disabled(&error) => {
                    // The server ended every session of the account: nothing to refresh.
                    self.tokens.clear().map_err(Error::TokenStore)?;
                    return Err(error);
                }
                _ => return Err(error),
            }
        }
    }

    /// Exchanges the refresh token for a new pair, once even when several calls found the
    /// access token expired at the same time.
    async fn refresh(&self, used: &Tokens) -> Result<(), Error> {
        let _gate = self.refresh_gate.lock().await;
        let current = self
            .tokens
            .load()
            .map_err(Error::TokenStore)?
            .ok_or(Error::NotSignedIn)?;
        if current.access_token != used.access_token {
            return Ok(()); // another call refreshed meanwhile
        }
        let body = RefreshRequest {
            refresh_token: current.refresh_token.clone(),
        };
        let request = HttpRequest {
            method: Method::Post,
            path: format!("{API_PREFIX}/auth/refresh"),
            headers: Vec::new(),
            body: Some(serde_json::to_vec(&body)?),
        };
        let response = self.transport.send(request).await?;
        if response.status == 200 {
            let answer: TokenResponse = serde_json::from_slice(&response.body)?;
            self.tokens
                .save(&Tokens {
                    user_id: answer.user.id,
                    access_token: answer.access_token,
                    refresh_token: answer.refresh_token,
                })
                .map_err(Error::TokenStore)?;
            return Ok(());
        }
        let error = api_error(response.status, &response.body, response.retry_after);
        if response.status == 401 || response.status == 403 {
            // Revoked, expired or reused: the session is over.
            self.tokens.clear().map_err(Error::TokenStore)?;
        }
        Err(error)
    }
}

/// Of two exchanges made at once that both failed, the error to report: a session one of them
/// ended (a refused refresh, a disabled account) shows in the other as `NotSignedIn`, the
/// consequence and not the cause.
fn the_cause(first: Error, second: Error) -> Error {
    if matches!(first, Error::NotSignedIn) {
        second
    } else {
        first
    }
}

/// Whether the server refused the caller because an administrator disabled the account.
fn is_account_disabled(error: &Error) -> bool {
    matches!(error, Error::Api { code, .. } if code == crate::error::ACCOUNT_DISABLED)
}

/// The server's error envelope as an [`Error::Api`].
fn api_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> Error {
    let (code, message) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => (envelope.error.code, envelope.error.message),
        Err(_) => (format!("http_{status}"), String::new()),
    };
    Error::Api {
        status,
        code,
        message,
        retry_after,
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

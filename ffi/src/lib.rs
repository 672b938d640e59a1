//! fitkart-ffi: the uniffi layer over fitkart-core. It adapts types and errors only: every
//! decision about steps, coins, orders and sync lives in fitkart-core.
//! Kotlin, Swift and Python bindings are generated from this crate into `bindings/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fitkart_core::protocol;

mod convert;
mod store;

pub use store::FitKartStore;

use convert::{date, uuid};

uniffi::setup_scaffolding!();

/// Exports an impl block with the tokio runtime for its async methods, so no async export
/// can forget it (a missing one fails at run time with "there is no reactor running").
macro_rules! export_with_tokio {
    ($($item:tt)*) => {
        #[uniffi::export(async_runtime = "tokio")]
        $($item)*
    };
}

/// An error a FitKart call can fail with. Each variant names something the app can act on;
/// messages are for logs and bug reports, never contain personal data, and are not localised.
/// The database file is never deleted or recreated because of any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FitKartError {
    /// The server could not be reached (no network, timeout, connection dropped). Queued
    /// changes stay queued; try again later.
    #[error("offline: {reason}")]
    Offline {
        /// What failed, for logs.
        reason: String,
    },
    /// Nobody is signed in, the credentials are wrong, or the session ended. Show sign-in.
    #[error("unauthorized: {code}")]
    Unauthorized {
        /// `invalid_credentials`, `refresh_token_reused`, `not_signed_in`, `account_disabled`
        /// (an administrator disabled the account: signing in again is refused too), ...
        code: String,
    },
    /// Signing out would drop `count` unsynced changes: sync first, or sign out discarding.
    #[error("{count} changes are not synced yet")]
    PendingChanges {
        /// How many changes would be lost.
        count: u64,
    },
    /// The server no longer speaks this app's protocol: the app must be updated.
    #[error("this app version is too old for the server")]
    UpgradeRequired,
    /// The server refused the request (`email_taken`, `insufficient_coins`, ...).
    #[error("rejected: {code}: {reason}")]
    Rejected {
        /// The server's stable code.
        code: String,
        /// The server's message.
        reason: String,
    },
    /// An argument is invalid; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The device database or the token store failed (disk full, no permission, a database
    /// from a newer app version). The file is left as it is.
    #[error("storage error: {reason}")]
    Storage {
        /// What failed, for logs.
        reason: String,
    },
    /// The server failed (5xx) or answered something unreadable; a later sync retries.
    #[error("server error {status}: {code}")]
    Server {
        /// HTTP status (0: the answer could not be read).
        status: u16,
        /// The server's code.
        code: String,
    },
}

/// The one place where errors of fitkart-core become errors of the bindings.
impl From<fitkart_core::FitKartError> for FitKartError {
    fn from(error: fitkart_core::FitKartError) -> Self {
        use fitkart_core::FitKartError as Core;
        match error {
            Core::Offline { message } => Self::Offline { reason: message },
            Core::Unauthorized { code } => Self::Unauthorized { code },
            Core::PendingChanges { count } => Self::PendingChanges { count },
            Core::UpgradeRequired => Self::UpgradeRequired,
            Core::Rejected { code, message } => Self::Rejected {
                code,
                reason: message,
            },
            Core::InvalidInput { field, message } => Self::InvalidInput {
                field,
                reason: message,
            },
            Core::Storage { message } => Self::Storage { reason: message },
            Core::Server { status, code } => Self::Server { status, code },
        }
    }
}

impl From<fitkart_core::Error> for FitKartError {
    fn from(error: fitkart_core::Error) -> Self {
        fitkart_core::FitKartError::from(error).into()
    }
}

/// An error an app's callback (token store, listener) reports. A callback that throws
/// anything else is reported as `Unexpected`; neither crashes the library.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback failed.
    #[error("callback failed: {reason}")]
    Failed {
        /// What failed (no secrets).
        reason: String,
    },
    /// The callback threw something it does not declare.
    #[error("callback threw: {reason}")]
    Unexpected {
        /// What the bindings saw.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Unexpected {
            reason: error.reason,
        }
    }
}

// ---- Configuration and session ---------------------------------------------------------

/// How the client is set up.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientConfig {
    /// The database file, in the app's private storage (the directory must exist).
    pub database_path: String,
    /// The sync server, e.g. `https://sync.fitkart.example`.
    pub server_url: String,
    /// `ios`, `android` or `other`.
    pub platform: String,
    /// The app's version.
    pub app_version: String,
    /// The OS version.
    #[uniffi(default = None)]
    pub os_version: Option<String>,
    /// The device model.
    #[uniffi(default = None)]
    pub model: Option<String>,
    /// The longest one HTTP exchange may take.
    #[uniffi(default = None)]
    pub request_timeout: Option<Duration>,
}

/// The session's tokens, as the app's token store keeps them.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoredTokens {
    /// The signed-in user.
    pub user_id: String,
    /// The access token (secret).
    pub access_token: String,
    /// The refresh token (secret).
    pub refresh_token: String,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Where the app keeps the session's tokens: the Keychain on iOS, the Keystore (or
/// EncryptedSharedPreferences) on Android. Calls are short and synchronous.
#[uniffi::export(with_foreign)]
pub trait TokenStore: Send + Sync {
    /// The stored tokens, or null.
    fn load(&self) -> Result<Option<StoredTokens>, CallbackError>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: StoredTokens) -> Result<(), CallbackError>;
    /// Forgets the tokens.
    fn clear(&self) -> Result<(), CallbackError>;
}

/// A token store in memory (tests, previews): tokens are gone when the process ends.
#[derive(uniffi::Object, Default)]
pub struct InMemoryTokenStore {
    inner: fitkart_core::MemoryTokenStore,
}

#[uniffi::export]
impl InMemoryTokenStore {
    /// An empty store.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

#[uniffi::export]
impl TokenStore for InMemoryTokenStore {
    fn load(&self) -> Result<Option<StoredTokens>, CallbackError> {
        use fitkart_core::TokenStore as _;
        self.inner
            .load()
            .map(|t| t.map(convert::stored_tokens))
            .map_err(|message| CallbackError::Failed { reason: message })
    }

    fn save(&self, tokens: StoredTokens) -> Result<(), CallbackError> {
        use fitkart_core::TokenStore as _;
        let tokens = convert::core_tokens(tokens).map_err(|reason| CallbackError::Failed {
            reason: reason.to_string(),
        })?;
        self.inner
            .save(&tokens)
            .map_err(|message| CallbackError::Failed { reason: message })
    }

    fn clear(&self) -> Result<(), CallbackError> {
        use fitkart_core::TokenStore as _;
        self.inner
            .clear()
            .map_err(|message| CallbackError::Failed { reason: message })
    }
}

/// The app's token store as fitkart-core sees it.
struct ForeignTokenStore(Arc<dyn TokenStore>);

impl fitkart_core::TokenStore for ForeignTokenStore {
    fn load(&self) -> Result<Option<fitkart_core::Tokens>, String> {
        match self.0.load() {
            Ok(None) => Ok(None),
            Ok(Some(tokens)) => convert::core_tokens(tokens)
                .map(Some)
                .map_err(str::to_owned),
            Err(err) => Err(err.to_string()),
        }
    }

    fn save(&self, tokens: &fitkart_core::Tokens) -> Result<(), String> {
        self.0
            .save(convert::stored_tokens(tokens.clone()))
            .map_err(|err| err.to_string())
    }

    fn clear(&self) -> Result<(), String> {
        self.0.clear().map_err(|err| err.to_string())
    }
}

// ---- Listeners ---------------------------------------------------------------------------

/// A part of the app's data, as change listeners are told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DataPart {
    /// Step totals.
    Steps,
    /// The wallet view or coin history.
    Wallet,
    /// Orders.
    Orders,
    /// Achievements.
    Achievements,
    /// The catalogue.
    Products,
    /// A leaderboard.
    Leaderboard,
    /// The profile, or who is signed in.
    Profile,
    /// Public settings.
    Settings,
    /// Refused changes.
    Rejections,
    /// The sync status.
    SyncStatus,
}

/// What a sync is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    /// Registering the device.
    Registering,
    /// Sending queued changes.
    Pushing,
    /// Fetching changes.
    Pulling,
    /// Refreshing achievement progress and the leaderboard.
    Refreshing,
}

/// The sync status an app shows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncStatus {
    /// Not syncing; the last sync (if any) succeeded.
    Idle,
    /// Syncing: phase and progress (done of total).
    Syncing {
        /// The phase.
        phase: SyncPhase,
        /// Units done.
        done: u64,
        /// Units known so far.
        total: u64,
    },
    /// The server could not be reached; changes wait.
    Offline,
    /// The last sync failed with this code.
    Error {
        /// A machine-readable code.
        code: String,
    },
}

/// Hears which parts of the data changed, after the commit. Called on the thread that
/// committed: post to the UI thread. An exception thrown here is logged and ignored.
#[uniffi::export(with_foreign)]
pub trait ChangeListener: Send + Sync {
    /// These parts changed.
    fn on_change(&self, parts: Vec<DataPart>) -> Result<(), CallbackError>;
}

/// Hears every change of the sync status. An exception thrown here is logged and ignored.
#[uniffi::export(with_foreign)]
pub trait StatusListener: Send + Sync {
    /// The status changed.
    fn on_status(&self, status: SyncStatus) -> Result<(), CallbackError>;
}

struct ForeignChangeListener(Arc<dyn ChangeListener>);

impl fitkart_core::Listener for ForeignChangeListener {
    fn on_change(&self, parts: &[fitkart_core::Part]) {
        let parts = parts.iter().map(|p| convert::part(*p)).collect();
        if let Err(err) = self.0.on_change(parts) {
            tracing::warn!(%err, "a change listener failed; ignored");
        }
    }

    fn on_status(&self, _: &fitkart_core::SyncStatus) {}
}

struct ForeignStatusListener(Arc<dyn StatusListener>);

impl fitkart_core::Listener for ForeignStatusListener {
    fn on_change(&self, _: &[fitkart_core::Part]) {}

    fn on_status(&self, status: &fitkart_core::SyncStatus) {
        if let Err(err) = self.0.on_status(convert::status(status)) {
            tracing::warn!(%err, "a status listener failed; ignored");
        }
    }
}

// ---- Records -----------------------------------------------------------------------------

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UserProfile {
    /// The user's id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `user` or `admin`.
    pub role: String,
    /// IANA time zone.
    pub timezone: String,
    /// Daily step goal.
    pub daily_step_goal: i32,
    /// When the account was created.
    pub created_at: SystemTime,
}

/// A profile change: the fields to change, others null.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ProfileChange {
    /// New display name.
    #[uniffi(default = None)]
    pub display_name: Option<String>,
    /// New IANA time zone (e.g. `Europe/Paris`).
    #[uniffi(default = None)]
    pub timezone: Option<String>,
    /// New daily goal.
    #[uniffi(default = None)]
    pub daily_step_goal: Option<i32>,
}

/// A day total a step source reports.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StepReport {
    /// The user's local date, `YYYY-MM-DD`.
    pub date: String,
    /// The source (`healthkit`, `health_connect`, a watch, ...).
    pub source: String,
    /// The day's total so far.
    pub steps: i64,
    /// When the source computed it.
    pub recorded_at: SystemTime,
}

/// One source's steps on one day.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SourceSteps {
    /// The source.
    pub source: String,
    /// The highest total known (device or server).
    pub steps: i64,
    /// The total the server holds.
    pub server_steps: i64,
    /// The part the server verified.
    pub verified_steps: i64,
    /// `pending`, `accepted`, `flagged` or `rejected`.
    pub status: String,
}

/// One day's steps (the day counts its largest source).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DaySteps {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The day's total.
    pub total_steps: i64,
    /// The day's verified total.
    pub verified_steps: i64,
    /// Whether a higher total waits to be synced.
    pub pending: bool,
    /// Per source.
    pub sources: Vec<SourceSteps>,
}

/// The wallet as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Wallet {
    /// Spendable now: the server's balance minus pending orders' holds.
    pub available_coins: i64,
    /// Held: the server's frozen coins plus pending orders' holds.
    pub held_coins: i64,
    /// Held by orders the server has not confirmed yet.
    pub pending_hold_coins: i64,
    /// The server's available balance, as last synced.
    pub server_available_coins: i64,
    /// The server's frozen balance, as last synced.
    pub server_frozen_coins: i64,
    /// Earned in all.
    pub lifetime_earned: i64,
    /// Spent in all.
    pub lifetime_spent: i64,
    /// Estimated coins unsynced steps will earn (not spendable yet).
    pub estimated_pending_coins: i64,
}

/// A coin ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CoinTransaction {
    /// Id.
    pub id: String,
    /// `step_reward`, `achievement_bonus`, `order_hold`, ...
    pub kind: String,
    /// Change of the available balance.
    pub available_delta: i64,
    /// Change of the frozen balance.
    pub frozen_delta: i64,
    /// Available balance after.
    pub available_after: i64,
    /// Frozen balance after.
    pub frozen_after: i64,
    /// What it refers to.
    pub reference_type: Option<String>,
    /// Its id.
    pub reference_id: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// When.
    pub created_at: SystemTime,
}

/// An achievement with progress.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Achievement {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Icon name.
    pub icon: Option<String>,
    /// Bonus coins.
    pub bonus_coins: i64,
    /// Progress.
    pub progress: i64,
    /// Target.
    pub target: i64,
    /// When it unlocked.
    pub unlocked_at: Option<SystemTime>,
}

/// A catalogue product.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Product {
    /// Id.
    pub id: String,
    /// SKU.
    pub sku: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Price in coins.
    pub coin_price: i64,
    /// Stock (the server re-checks it when the order arrives).
    pub stock: i64,
    /// Image URLs.
    pub images: Vec<String>,
}

/// An order line to place.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OrderLine {
    /// The product's id.
    pub product_id: String,
    /// How many (1 to 100).
    pub quantity: i32,
}

/// Where an order goes.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ShippingAddress {
    /// Recipient.
    pub name: String,
    /// Street.
    pub line1: String,
    /// More street.
    #[uniffi(default = None)]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Region.
    #[uniffi(default = None)]
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// Country.
    pub country: String,
    /// Phone.
    #[uniffi(default = None)]
    pub phone: Option<String>,
}

/// An order as queued on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QueuedOrder {
    /// The device's id for the order.
    pub client_order_id: String,
    /// The coins it holds.
    pub total_coins: i64,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OrderItem {
    /// Product id.
    pub product_id: String,
    /// Product name when ordered.
    pub product_name: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price in coins.
    pub unit_coin_price: i64,
}

/// Where an order stands between the device and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OrderSync {
    /// Confirmed by the server.
    Synced,
    /// Placed on this device, not confirmed yet (coins held).
    PendingPlacement,
    /// A cancellation waits to be sent.
    PendingCancellation,
}

/// An order as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Order {
    /// The device's id for it.
    pub client_order_id: String,
    /// The server's id, once known.
    pub order_id: Option<String>,
    /// The server's code, once known.
    pub order_code: Option<String>,
    /// The server's status, or `pending`.
    pub status: String,
    /// Device/server state.
    pub sync: OrderSync,
    /// Coins.
    pub total_coins: i64,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Address.
    pub shipping_address: ShippingAddress,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// When placed.
    pub created_at: SystemTime,
}

/// A leaderboard period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LeaderboardPeriod {
    /// This week.
    Weekly,
    /// This month.
    Monthly,
    /// Since the start.
    AllTime,
}

/// A leaderboard row.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LeaderboardEntry {
    /// Rank.
    pub rank: i64,
    /// Display name.
    pub display_name: String,
    /// Steps.
    pub steps: i64,
    /// Whether it is the user.
    pub is_me: bool,
}

/// A leaderboard as last fetched.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Leaderboard {
    /// The period.
    pub period: LeaderboardPeriod,
    /// First day of the period, `YYYY-MM-DD`.
    pub period_start: String,
    /// When the server computed it.
    pub computed_at: Option<SystemTime>,
    /// When this device fetched it.
    pub fetched_at: SystemTime,
    /// The top.
    pub entries: Vec<LeaderboardEntry>,
    /// The user's rank, when ranked.
    pub my_rank: Option<i64>,
    /// The user's steps in the period, when ranked.
    pub my_steps: Option<i64>,
}

/// A public setting (value as JSON text).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Setting {
    /// Key.
    pub key: String,
    /// Value, a JSON document.
    pub value_json: String,
}

/// A change the server refused.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Rejection {
    /// The mutation's id.
    pub mutation_id: String,
    /// `record_steps`, `place_order`, `cancel_order` or `update_profile`.
    pub kind: String,
    /// The server's code.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// For orders: the device's order id.
    pub client_order_id: Option<String>,
    /// When the device learned of it.
    pub rejected_at: SystemTime,
}

/// A refused change in a sync report.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RejectedChange {
    /// Its kind.
    pub kind: String,
    /// The server's code.
    pub code: String,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Changes sent.
    pub pushed: u64,
    /// Changes the server applied now.
    pub applied: u64,
    /// Changes the server had applied before (nothing doubled).
    pub duplicates: u64,
    /// Refused changes.
    pub rejected: Vec<RejectedChange>,
    /// Pages pulled.
    pub pulled_pages: u64,
    /// Rows pulled, by kind.
    pub pulled_rows: HashMap<String, u64>,
    /// Whether a snapshot was refetched.
    pub refetched_snapshot: bool,
    /// False when `sync_once` stopped at its deadline.
    pub complete: bool,
}

// ---- The client ----------------------------------------------------------------------------

/// The FitKart device library. Open one per app process and share it; every method may be
/// called from any thread. Reads work offline; writes are queued and sent by `sync`.
/// Release it with `close()` (Kotlin `use {}`) when the app no longer needs it.
#[derive(uniffi::Object)]
pub struct FitKartClient {
    client: fitkart_core::FitKart,
}

export_with_tokio! {
impl FitKartClient {
    /// Opens the client: the database (created and migrated as needed) and the session kept
    /// by `token_store`.
    #[uniffi::constructor]
    pub fn open(
        config: ClientConfig,
        token_store: Arc<dyn TokenStore>,
    ) -> Result<Arc<Self>, FitKartError> {
        let mut core = fitkart_core::Config::new(config.database_path, config.server_url);
        core.platform = config.platform;
        core.app_version = config.app_version;
        core.os_version = config.os_version;
        core.model = config.model;
        if let Some(timeout) = config.request_timeout {
            core.request_timeout = timeout;
        }
        let client =
            fitkart_core::FitKart::open(core, Arc::new(ForeignTokenStore(token_store)))?;
        Ok(Arc::new(Self { client }))
    }

    /// This device's stable id.
    pub fn device_id(&self) -> String {
        self.client.device_id().to_string()
    }

    /// Creates an account and signs in.
    pub async fn register(
        &self,
        email: String,
        password: String,
        display_name: String,
    ) -> Result<UserProfile, FitKartError> {
        Ok(convert::profile(
            self.client.register(&email, &password, &display_name).await?,
        ))
    }

    /// Signs in.
    pub async fn login(&self, email: String, password: String) -> Result<UserProfile, FitKartError> {
        Ok(convert::profile(self.client.login(&email, &password).await?))
    }

    /// Signs out; refuses with `PendingChanges` unless `discard_pending`.
    pub async fn logout(&self, discard_pending: bool) -> Result<(), FitKartError> {
        Ok(self.client.logout(discard_pending).await?)
    }

    /// The signed-in user's profile, or null.
    pub fn current_user(&self) -> Result<Option<UserProfile>, FitKartError> {
        Ok(self.client.current_user()?.map(convert::profile))
    }

    /// Records a day total from a step source; returns whether it raised the total.
    pub fn record_steps(
        &self,
        date: String,
        source: String,
        steps: i64,
        recorded_at: SystemTime,
    ) -> Result<bool, FitKartError> {
        Ok(self
            .client
            .record_steps(date_arg(&date)?, &source, steps, recorded_at.into())?)
    }

    /// Records many day totals in one transaction; returns how many raised a total.
    pub fn record_steps_batch(&self, reports: Vec<StepReport>) -> Result<u64, FitKartError> {
        let reports = reports
            .into_iter()
            .map(|r| {
                Ok(protocol::steps::StepReport {
                    date: date_arg(&r.date)?,
                    source: r.source,
                    steps: r.steps,
                    recorded_at: r.recorded_at.into(),
                })
            })
            .collect::<Result<Vec<_>, FitKartError>>()?;
        Ok(self.client.record_steps_batch(&reports)?)
    }

    /// Places an order offline: shown at once as pending, its coins held.
    pub fn place_order(
        &self,
        items: Vec<OrderLine>,
        shipping_address: ShippingAddress,
    ) -> Result<QueuedOrder, FitKartError> {
        let items = items
            .into_iter()
            .map(|line| {
                Ok(protocol::orders::OrderLine {
                    product_id: uuid_arg("product_id", &line.product_id)?,
                    quantity: line.quantity,
                })
            })
            .collect::<Result<Vec<_>, FitKartError>>()?;
        let order = self
            .client
            .place_order(&items, &convert::core_address(shipping_address))?;
        Ok(QueuedOrder {
            client_order_id: order.client_order_id.to_string(),
            total_coins: order.total_coins,
        })
    }

    /// Cancels an order by the device's id for it.
    pub fn cancel_order(&self, client_order_id: String) -> Result<(), FitKartError> {
        Ok(self
            .client
            .cancel_order(uuid_arg("client_order_id", &client_order_id)?)?)
    }

    /// Changes the profile; shown at once, sent at the next sync.
    pub fn update_profile(&self, change: ProfileChange) -> Result<UserProfile, FitKartError> {
        let patch = protocol::auth::ProfilePatch {
            display_name: change.display_name,
            timezone: change.timezone,
            daily_step_goal: change.daily_step_goal,
        };
        Ok(convert::profile(self.client.update_profile(&patch)?))
    }

    /// Today's steps in the user's time zone.
    pub fn steps_today(&self) -> Result<DaySteps, FitKartError> {
        Ok(convert::day(self.client.steps_today()?))
    }

    /// Days from `from` to `to` (`YYYY-MM-DD`, inclusive) with steps, newest first.
    pub fn step_history(&self, from: String, to: String) -> Result<Vec<DaySteps>, FitKartError> {
        Ok(self
            .client
            .step_history(date_arg(&from)?, date_arg(&to)?)?
            .into_iter()
            .map(convert::day)
            .collect())
    }

    /// The wallet view.
    pub fn wallet(&self) -> Result<Wallet, FitKartError> {
        Ok(convert::wallet(self.client.wallet()?))
    }

    /// Coin history, newest first: `limit` entries older than the entry `before`.
    pub fn coin_history(
        &self,
        limit: u32,
        before: Option<String>,
    ) -> Result<Vec<CoinTransaction>, FitKartError> {
        let before = before.map(|id| uuid_arg("before", &id)).transpose()?;
        Ok(self
            .client
            .coin_history(limit, before)?
            .into_iter()
            .map(convert::transaction)
            .collect())
    }

    /// Achievements with progress.
    pub fn achievements(&self) -> Result<Vec<Achievement>, FitKartError> {
        Ok(self
            .client
            .achievements()?
            .into_iter()
            .map(convert::achievement)
            .collect())
    }

    /// Active products.
    pub fn products(&self) -> Result<Vec<Product>, FitKartError> {
        Ok(self
            .client
            .products()?
            .into_iter()
            .map(convert::product)
            .collect())
    }

    /// Orders, pending first, then the server's, newest first.
    pub fn orders(&self) -> Result<Vec<Order>, FitKartError> {
        Ok(self.client.orders()?.into_iter().map(convert::order).collect())
    }

    /// The leaderboard of `period` as last fetched, or null.
    pub fn leaderboard(
        &self,
        period: LeaderboardPeriod,
    ) -> Result<Option<Leaderboard>, FitKartError> {
        Ok(self
            .client
            .leaderboard(convert::core_period(period))?
            .map(convert::leaderboard))
    }

    /// Fetches and caches the leaderboard of `period`.
    pub async fn refresh_leaderboard(
        &self,
        period: LeaderboardPeriod,
    ) -> Result<Leaderboard, FitKartError> {
        Ok(convert::leaderboard(
            self.client
                .refresh_leaderboard(convert::core_period(period))
                .await?,
        ))
    }

    /// Public settings.
    pub fn settings(&self) -> Result<Vec<Setting>, FitKartError> {
        Ok(self
            .client
            .settings()?
            .into_iter()
            .map(|s| Setting {
                key: s.key,
                value_json: s.value.to_string(),
            })
            .collect())
    }

    /// Changes the server refused, newest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, FitKartError> {
        Ok(self
            .client
            .rejections()?
            .into_iter()
            .map(convert::rejection)
            .collect())
    }

    /// Forgets the listed refusals.
    pub fn dismiss_rejections(&self) -> Result<(), FitKartError> {
        Ok(self.client.dismiss_rejections()?)
    }

    /// Changes the server has not settled yet.
    pub fn pending_changes(&self) -> Result<u64, FitKartError> {
        Ok(self.client.pending_changes()?)
    }

    /// The sync status.
    pub fn status(&self) -> SyncStatus {
        convert::status(&self.client.status())
    }

    /// When the last complete sync finished.
    pub fn last_synced_at(&self) -> Result<Option<SystemTime>, FitKartError> {
        Ok(self.client.last_synced_at()?.map(Into::into))
    }

    /// Whether this user completed a sync on this device.
    pub fn has_synced(&self) -> Result<bool, FitKartError> {
        Ok(self.client.has_synced()?)
    }

    /// Pushes queued changes, pulls every change, refreshes progress and the leaderboard.
    /// A sync already running is joined.
    pub async fn sync(&self) -> Result<SyncReport, FitKartError> {
        Ok(convert::report(self.client.sync().await?))
    }

    /// Syncs until `budget` has passed, stopping at a safe point (background tasks).
    pub async fn sync_once(&self, budget: Duration) -> Result<SyncReport, FitKartError> {
        Ok(convert::report(self.client.sync_once(budget).await?))
    }

    /// Registers a change listener; returns its id for `remove_listener`.
    pub fn add_change_listener(&self, listener: Arc<dyn ChangeListener>) -> u64 {
        convert::listener_id(
            self.client
                .add_listener(Arc::new(ForeignChangeListener(listener))),
        )
    }

    /// Registers a status listener; returns its id for `remove_listener`.
    pub fn add_status_listener(&self, listener: Arc<dyn StatusListener>) -> u64 {
        convert::listener_id(
            self.client
                .add_listener(Arc::new(ForeignStatusListener(listener))),
        )
    }

    /// Removes a listener; false when it was not registered.
    pub fn remove_listener(&self, id: u64) -> bool {
        self.client.remove_listener(convert::core_listener_id(id))
    }
}
}

fn date_arg(text: &str) -> Result<chrono::NaiveDate, FitKartError> {
    date(text).ok_or_else(|| FitKartError::InvalidInput {
        field: "date".into(),
        reason: "a date is YYYY-MM-DD".into(),
    })
}

fn uuid_arg(field: &str, text: &str) -> Result<uuid::Uuid, FitKartError> {
    uuid(text).ok_or_else(|| FitKartError::InvalidInput {
        field: field.into(),
        reason: "not an id".into(),
    })
}

//! The sync protocol: pushing offline mutations (applied at most once, results stored and
//! answered again for a repeated id) and pulling every change after a cursor, in pages.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::UserProfile;
use crate::orders::{Order, Product};
use crate::steps::{CoinTransaction, StepReport, Wallet};

/// The header that carries the client's protocol version on `/sync/*` requests.
pub const PROTOCOL_VERSION_HEADER: &str = "x-fitkart-protocol-version";
/// The oldest protocol version the server still accepts.
pub const MIN_SUPPORTED_PROTOCOL_VERSION: u32 = 1;
/// Most mutations one push may carry.
pub const MAX_MUTATIONS_PER_PUSH: usize = 500;
/// Largest pull page (changes).
pub const MAX_PULL_LIMIT: i64 = 1000;

/// The kinds of offline mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    /// Day totals observed on the device (payload: [`RecordStepsPayload`]).
    RecordSteps,
    /// An order placed offline (payload: [`crate::orders::PlaceOrderRequest`]).
    PlaceOrder,
    /// Cancelling an order (payload: [`CancelOrderPayload`]).
    CancelOrder,
    /// Profile changes (payload: [`crate::auth::ProfilePatch`]).
    UpdateProfile,
}

impl MutationKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordSteps => "record_steps",
            Self::PlaceOrder => "place_order",
            Self::CancelOrder => "cancel_order",
            Self::UpdateProfile => "update_profile",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "record_steps" => Some(Self::RecordSteps),
            "place_order" => Some(Self::PlaceOrder),
            "cancel_order" => Some(Self::CancelOrder),
            "update_profile" => Some(Self::UpdateProfile),
            _ => None,
        }
    }
}

/// Payload of a `record_steps` mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordStepsPayload {
    /// The day totals (1 to 1,000).
    pub records: Vec<StepReport>,
}

/// Payload of a `cancel_order` mutation: the order by the server's id or by the device's
/// `client_order_id` (an order placed offline is known to the device only by the latter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CancelOrderPayload {
    /// The server's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    /// The device's id for the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<Uuid>,
}

/// One offline write, as the device queued it. The payload's shape depends on `kind`; an
/// unknown kind or a malformed payload rejects this mutation only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    /// Generated on the device; the same id is never applied twice.
    pub id: Uuid,
    /// `record_steps`, `place_order`, `cancel_order` or `update_profile`.
    pub kind: String,
    /// The mutation's body.
    pub payload: serde_json::Value,
    /// When the device queued it.
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/sync/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The pushing device (registered to the caller on first use).
    pub device_id: Uuid,
    /// 1 to [`MAX_MUTATIONS_PER_PUSH`] mutations, applied in order.
    pub mutations: Vec<Mutation>,
}

/// What happened to one mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MutationStatus {
    /// Applied now.
    Applied,
    /// Seen before: `original` carries the stored result.
    Duplicate,
    /// Refused (see `code`); it will never apply. It does not block later mutations.
    Rejected,
}

/// The stored outcome of a mutation's first arrival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredOutcome {
    /// `applied` or `rejected`.
    pub status: MutationStatus,
    /// The rejection code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The rejection message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The effect (an order, step results, a profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// The result of one mutation, in push order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MutationResult {
    /// The mutation's id.
    pub id: Uuid,
    /// Applied now, a duplicate, or rejected.
    pub status: MutationStatus,
    /// For `applied` and `rejected`: the outcome; for `duplicate`: the stored first outcome.
    pub outcome: StoredOutcome,
}

/// Answer of `POST /api/v1/sync/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResponse {
    /// One result per mutation, in order.
    pub results: Vec<MutationResult>,
}

/// A step record as devices sync it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncStepRecord {
    /// Local date.
    pub date: NaiveDate,
    /// Source.
    pub source: String,
    /// Highest total the server holds.
    pub steps: i64,
    /// Verified part.
    pub verified_steps: i64,
    /// `accepted`, `flagged` or `rejected`.
    pub status: String,
    /// Change version.
    pub version: i64,
}

/// An unlocked achievement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncUnlock {
    /// Achievement code.
    pub code: String,
    /// When.
    pub unlocked_at: DateTime<Utc>,
}

/// An achievement definition (shared data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncAchievement {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Icon.
    pub icon: Option<String>,
    /// Unlock rule.
    pub criteria: serde_json::Value,
    /// Bonus coins.
    pub bonus_coins: i64,
    /// Whether it is offered.
    pub is_active: bool,
}

/// A public setting (shared data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncSetting {
    /// Key.
    pub key: String,
    /// Value.
    pub value: serde_json::Value,
}

/// Changes after a cursor. Absent or empty fields did not change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Changes {
    /// The caller's profile.
    pub profile: Option<UserProfile>,
    /// The caller's wallet.
    pub wallet: Option<Wallet>,
    /// New ledger entries, oldest first.
    pub coin_transactions: Vec<CoinTransaction>,
    /// Step records with their verification status.
    pub step_records: Vec<SyncStepRecord>,
    /// Achievements unlocked.
    pub achievements_unlocked: Vec<SyncUnlock>,
    /// Orders (new or changed status).
    pub orders: Vec<Order>,
    /// Catalogue products (inactive ones say so).
    pub products: Vec<Product>,
    /// Achievement definitions.
    pub achievements: Vec<SyncAchievement>,
    /// Public settings.
    pub settings: Vec<SyncSetting>,
}

/// Answer of `GET /api/v1/sync/pull?cursor=&limit=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullResponse {
    /// The changes of this page.
    pub changes: Changes,
    /// Pass as `cursor` next time (also when `has_more` is false: it is where to resume).
    pub next_cursor: String,
    /// Whether more changes wait beyond this page.
    pub has_more: bool,
}

/// `POST /api/v1/devices`: registers (or updates) a device of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    /// Generated on the device, stable across launches.
    pub device_id: Uuid,
    /// `ios`, `android` or `other`.
    pub platform: String,
    /// OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// App version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Device model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

//! Wire types of the FitKart HTTP API and sync protocol.
//! Shared by `fitkart-core` (the device) and `fitkart-sync-server` so the two cannot drift.

use serde::{Deserialize, Serialize};

pub mod auth;
pub mod leaderboard;
pub mod orders;
pub mod steps;
pub mod sync;
pub mod validate;

/// The version of the sync protocol this build speaks. Sent by clients; the server refuses
/// versions it no longer accepts.
pub const PROTOCOL_VERSION: u32 = 1;

/// Prefix of every versioned HTTP route.
pub const API_PREFIX: &str = "/api/v1";

/// The error envelope every failing API response carries:
/// `{"error": {"code": "...", "message": "...", "details": ...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: ErrorBody,
}

/// The body of an [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `email_taken` or `insufficient_coins`.
    pub code: String,
    /// A human-readable explanation, in English, without personal data.
    pub message: String,
    /// Optional structured details (the field that failed validation, the missing stock, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// Answer of `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthStatus {
    /// `ok` when healthy.
    pub status: String,
    /// The newest applied schema migration, when the database was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_round_trips_and_omits_null_details() {
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: "email_taken".into(),
                message: "an account with this email exists".into(),
                details: serde_json::Value::Null,
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"email_taken","message":"an account with this email exists"}}"#
        );
        let back: ErrorEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, envelope);
    }
}

//! Accounts and tokens: the bodies of `/auth/*` and `/me`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/auth/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address; trimmed, unique case-insensitively.
    pub email: String,
    /// At least 10 characters and not one of the most common passwords.
    pub password: String,
    /// Name shown on leaderboards, 1 to 100 characters.
    pub display_name: String,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `POST /api/v1/auth/refresh` and `POST /api/v1/auth/logout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last token response.
    pub refresh_token: String,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A FitKart app user.
    User,
    /// An operator with access to `/api/v1/admin/`.
    Admin,
}

impl Role {
    /// The role's name as stored and sent (`user`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The caller's own account, as `GET /api/v1/me` and token responses show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserProfile {
    /// Account id.
    pub id: Uuid,
    /// Email address as registered (case kept).
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// IANA time zone (e.g. `Europe/Berlin`) that defines the user's local days.
    pub timezone: String,
    /// Daily step goal.
    pub daily_step_goal: i32,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// Answer of register, login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The account.
    pub user: UserProfile,
    /// JWT access token for `Authorization: Bearer ...`.
    pub access_token: String,
    /// Opaque refresh token; single use, rotated by `/auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: String,
}

/// `PATCH /api/v1/me`: only these fields may change; any other field is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// New display name, 1 to 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// New daily step goal, 100 to 100,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_step_goal: Option<i32>,
}

/// `POST /api/v1/me/password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// The current password.
    pub current_password: String,
    /// The new password (same rules as registration).
    pub new_password: String,
}

/// Profile field limits, shared by device-side validation and the server.
pub mod limits {
    /// Longest display name, in characters.
    pub const DISPLAY_NAME_MAX_CHARS: usize = 100;
    /// Smallest daily step goal.
    pub const DAILY_STEP_GOAL_MIN: i32 = 100;
    /// Largest daily step goal.
    pub const DAILY_STEP_GOAL_MAX: i32 = 100_000;
    /// Shortest password, in characters.
    pub const PASSWORD_MIN_CHARS: usize = 10;
    /// Longest password, in bytes.
    pub const PASSWORD_MAX_BYTES: usize = 1024;
    /// Longest email address, in bytes.
    pub const EMAIL_MAX_BYTES: usize = 320;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_patch_refuses_fields_it_does_not_own() {
        let err = serde_json::from_str::<ProfilePatch>(r#"{"display_name":"Ann","role":"admin"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `role`"), "{err}");
        let ok: ProfilePatch = serde_json::from_str(r#"{"daily_step_goal":8000}"#).unwrap();
        assert_eq!(ok.daily_step_goal, Some(8000));
    }
}

//! `/api/v1/admin/*`: administrator routes. Every handler takes [`AdminUser`], so a user
//! token is 403 and a missing or bad one 401.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::AdminUser;
use crate::accounts::{self, AdminUserSummary};
use crate::error::ApiError;

/// Query of `GET /api/v1/admin/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSearch {
    /// Prefix of the email or display name (case-insensitive).
    #[serde(default)]
    pub q: String,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// Answer of `GET /api/v1/admin/users`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserPage {
    /// The page.
    pub users: Vec<AdminUserSummary>,
    /// Matches in all.
    pub total: i64,
}

/// `GET /api/v1/admin/users?q=&limit=&offset=`.
pub async fn list_users(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Query(search): Query<UserSearch>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = search.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    let offset = search.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation(
            "offset",
            "offset must not be negative",
        ));
    }
    let (users, total) = accounts::search_users(&state.pool, &search.q, limit, offset).await?;
    Ok(Json(UserPage { users, total }))
}

//! `/api/v1/me`: the caller's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use fitkart_protocol::auth::{PasswordChangeRequest, ProfilePatch, TokenResponse, UserProfile};

use super::AppState;
use super::extract::{AuthUser, Client};
use super::json::ApiJson;
use crate::accounts;
use crate::error::ApiError;

/// `GET /api/v1/me`.
pub async fn get_me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(accounts::profile(&state.pool, user.id).await?))
}

/// `PATCH /api/v1/me`: display name, time zone, daily goal; anything else is 422.
pub async fn patch_me(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        accounts::update_profile(&state.pool, user.id, &patch).await?,
    ))
}

/// `DELETE /api/v1/me` → 204: soft delete, every session revoked.
pub async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    accounts::delete_account(&state.pool, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/me/password` → 200 with a new token pair; every other session ends.
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let response = accounts::change_password(
        &state.pool,
        &state.sessions(),
        user.id,
        &body.current_password,
        &body.new_password,
        &client,
    )
    .await?;
    Ok(Json(response))
}

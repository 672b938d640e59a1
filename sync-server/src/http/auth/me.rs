//! `/api/v1/me`: the caller's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::auth::{PasswordChangeRequest, ProfilePatch, TokenResponse, UserProfile};

use crate::auth::accounts;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AuthUser, Client, PendingAuth};
use crate::http::json::ApiJson;
use crate::http::openapi::TAG_ACCOUNT;

/// `GET /api/v1/me`.
#[utoipa::path(
    get,
    path = "/me",
    tag = TAG_ACCOUNT,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = UserProfile),
    )
)]
pub async fn get_me(
    State(state): State<AppState>,
    auth: PendingAuth,
) -> Result<Json<UserProfile>, ApiError> {
    // The profile is the account's own row: the check reads it with the profile, in one
    // statement.
    let conn = state.pool.get().await?;
    let read = accounts::profile_and_standing(&conn, auth.claimed_user()).await?;
    auth.check_standing(read.as_ref().map(|(_, standing)| standing))?;
    let (profile, _) = read.ok_or_else(ApiError::internal)?;
    Ok(Json(profile))
}

/// `PATCH /api/v1/me`: display name, time zone, daily goal; anything else is 422.
#[utoipa::path(
    patch,
    path = "/me",
    tag = TAG_ACCOUNT,
    security(("bearer" = [])),
    request_body = ProfilePatch,
    responses(
        (status = 200, description = "The changed profile", body = UserProfile),
        (status = 422, body = ErrorEnvelope,
         description = "A field is invalid, or not one the caller may change \
             (`validation_failed`, `unknown_field`)"),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/me",
    tag = TAG_ACCOUNT,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The account is deleted and every session revoked"),
    )
)]
pub async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    accounts::delete_account(&state.pool, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/me/password` → 200 with a new token pair; every other session ends.
#[utoipa::path(
    post,
    path = "/me/password",
    tag = TAG_ACCOUNT,
    security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses(
        (status = 200, body = TokenResponse,
         description = "The password changed; a new token pair, every other session ended"),
        (status = 403, body = ErrorEnvelope,
         description = "The current password is wrong (`wrong_password`)"),
        (status = 422, body = ErrorEnvelope,
         description = "The new password is too weak or unchanged (`weak_password`), or a field \
             is missing"),
        (status = 429, body = ErrorEnvelope,
         description = "Too many wrong current passwords (`too_many_attempts`)"),
    )
)]
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

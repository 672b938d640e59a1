//! `/api/v1/auth/*`: register, login, refresh, logout.

mod me;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::auth::{LoginRequest, RefreshRequest, RegisterRequest, TokenResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::Client;
use super::json::ApiJson;
use super::openapi::TAG_AUTH;
use crate::auth::accounts;
use crate::http::ApiError;

/// The account routes: signing up and in, tokens, and the caller's own account (`/me`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me::get_me, me::patch_me, me::delete_me))
        .routes(routes!(me::change_password))
}

/// `POST /api/v1/auth/register` → 201 with a token pair.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = TAG_AUTH,
    request_body = RegisterRequest,
    responses(
        (status = 201, body = TokenResponse,
         description = "The account was created; a signed-in token pair"),
        (status = 409, body = ErrorEnvelope,
         description = "An account with this email exists (`email_taken`)"),
        (status = 429, body = ErrorEnvelope,
         description = "Too many accounts created from this address \
             (`too_many_registrations`, with `Retry-After`)"),
        (status = 422, body = ErrorEnvelope,
         description = "A field is missing, unknown or invalid (`validation_failed`, \
             `unknown_field`, `weak_password`)"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let response = accounts::register(
        &state.pool,
        &state.sessions(),
        &body.email,
        &body.password,
        &body.display_name,
        &client,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(response)))
}

/// `POST /api/v1/auth/login` → 200 with a token pair.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = TAG_AUTH,
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token pair", body = TokenResponse),
        (status = 401, body = ErrorEnvelope,
         description = "The email or password is wrong (`invalid_credentials`)"),
        (status = 403, body = ErrorEnvelope,
         description = "The password is right but an administrator disabled the account \
             (`account_disabled`)"),
        (status = 422, description = "A field is missing or unknown", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope,
         description = "Too many failed sign-ins for this account or address \
             (`too_many_attempts`, with `Retry-After`)"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let response = accounts::login(
        &state.pool,
        &state.sessions(),
        &body.email,
        &body.password,
        &client,
    )
    .await?;
    Ok(Json(response))
}

/// `POST /api/v1/auth/refresh` → 200 with a new pair; the old refresh token is spent.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = TAG_AUTH,
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse,
         description = "A new token pair; the refresh token sent is spent"),
        (status = 401, body = ErrorEnvelope,
         description = "The refresh token is unknown, expired, revoked or reused (a reuse revokes \
             its whole family)"),
        (status = 403, body = ErrorEnvelope,
         description = "An administrator disabled the account (`account_disabled`)"),
        (status = 422, description = "A field is missing or unknown", body = ErrorEnvelope),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let response =
        accounts::refresh(&state.pool, &state.sessions(), &body.refresh_token, &client).await?;
    Ok(Json(response))
}

/// `POST /api/v1/auth/logout` → 204; the refresh token's family is revoked.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = TAG_AUTH,
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out: the refresh token's family is revoked"),
        (status = 401, body = ErrorEnvelope,
         description = "The refresh token is unknown, expired or revoked (`invalid_refresh_token`)"),
        (status = 422, description = "A field is missing or unknown", body = ErrorEnvelope),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    accounts::logout(&state.pool, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

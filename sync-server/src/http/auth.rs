//! `/api/v1/auth/*`: register, login, refresh, logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use fitkart_protocol::auth::{LoginRequest, RefreshRequest, RegisterRequest, TokenResponse};

use super::AppState;
use super::extract::Client;
use super::json::ApiJson;
use crate::accounts;
use crate::error::ApiError;

/// `POST /api/v1/auth/register` → 201 with a token pair.
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
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    accounts::logout(&state.pool, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

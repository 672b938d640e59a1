//! Request extractors: who is calling (`AuthUser`, `AdminUser`) and from where (`Client`).
//! A missing or bad token is 401 on every route; a user token on an admin route is 403.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use fitkart_protocol::auth::Role;
use uuid::Uuid;

use super::AppState;
use crate::accounts::ClientInfo;
use crate::error::ApiError;
use crate::tokens::TokenError;

/// A caller with a valid access token whose account is live.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user's id.
    pub id: Uuid,
    /// The user's current role (read from the database, not trusted from the token).
    pub role: Role,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing_token", "sign in first: no access token")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_token",
                    "send the token as Authorization: Bearer <token>",
                )
            })?;
        let claims = state.tokens.verify(token).map_err(|err| match err {
            TokenError::Expired => {
                ApiError::unauthorized("token_expired", "the access token has expired; refresh it")
            }
            TokenError::Invalid => {
                ApiError::unauthorized("invalid_token", "the access token is not valid")
            }
        })?;
        let conn = state.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT role, session_epoch FROM users WHERE id = $1 AND deleted_at IS NULL",
                &[&claims.sub],
            )
            .await?;
        let Some(row) = row else {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the account no longer exists",
            ));
        };
        let epoch: i32 = row.get(1);
        if epoch != claims.epoch {
            return Err(ApiError::unauthorized(
                "token_revoked",
                "this session has ended (password changed or signed out everywhere)",
            ));
        }
        let role: String = row.get(0);
        Ok(Self {
            id: claims.sub,
            role: Role::parse(&role).ok_or_else(ApiError::internal)?,
        })
    }
}

/// A caller with a valid access token and the admin role.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden("this route is for administrators"));
        }
        Ok(Self(user))
    }
}

/// The client's address and user agent.
#[derive(Debug, Clone)]
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| {
                parts
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .and_then(|ip| ip.trim().parse().ok())
            })
            .flatten();
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect());
        Ok(Self(ClientInfo {
            address: forwarded.unwrap_or(peer),
            user_agent,
        }))
    }
}

//! Request extractors: who is calling (`AuthUser`, `AdminUser`) and from where (`Client`).
//! A missing or bad token is 401 on every route; a user token on an admin route is 403.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use deadpool_postgres::GenericClient;
use fitkart_protocol::auth::Role;
use uuid::Uuid;

use super::AppState;
use crate::auth::accounts::{ClientInfo, STANDING_COLUMNS, Standing};
use crate::auth::tokens::{Claims, TokenError};
use crate::db::CachedStatements as _;
use crate::http::ApiError;

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
        let pending = PendingAuth::from_request_parts(parts, state).await?;
        let (user, _) = pending.check_on_pooled(&state.pool).await?;
        Ok(user)
    }
}

/// A caller whose access token is valid, before its account is checked: for read routes that
/// check the account and run their read on one connection in one round trip
/// ([`PendingAuth::check_with`]) instead of one after the other.
#[derive(Debug)]
pub struct PendingAuth {
    claims: Claims,
}

impl PendingAuth {
    /// The user the token names. Not checked yet: only for a read whose result
    /// [`PendingAuth::check_with`] discards when the check fails.
    pub fn claimed_user(&self) -> Uuid {
        self.claims.sub
    }

    /// Checks the account (it exists, is live and the token's session has not ended), as
    /// [`AuthUser`] does.
    pub async fn check(&self, client: &impl GenericClient) -> Result<AuthUser, ApiError> {
        let row = client
            .query_opt_cached(
                &format!(
                    "SELECT {STANDING_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
                ),
                &[&self.claims.sub],
            )
            .await?;
        self.check_standing(row.as_ref().map(Standing::from_row).as_ref())
    }

    /// Checks the account on a connection taken from `pool` and returns that connection
    /// with the caller, for a route that works on it next: the request waits for the pool
    /// once, not once for the check and again for its work.
    pub async fn check_on_pooled(
        &self,
        pool: &deadpool_postgres::Pool,
    ) -> Result<(AuthUser, deadpool_postgres::Client), ApiError> {
        let conn = pool.get().await?;
        let user = self.check(&conn).await?;
        Ok((user, conn))
    }

    /// The account check on the caller's [`Standing`] read with a read of their own row
    /// (`None`: no live account), for a read that is one statement with its check.
    pub fn check_standing(&self, standing: Option<&Standing>) -> Result<AuthUser, ApiError> {
        let Some(standing) = standing else {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the account no longer exists",
            ));
        };
        if standing.disabled {
            return Err(crate::auth::accounts::account_disabled().into());
        }
        if standing.session_epoch != self.claims.epoch {
            return Err(ApiError::unauthorized(
                "token_revoked",
                "this session has ended (password changed or signed out everywhere)",
            ));
        }
        Ok(AuthUser {
            id: self.claims.sub,
            role: Role::parse(&standing.role).ok_or_else(ApiError::internal)?,
        })
    }

    /// Checks the account on `client` and runs `read` (of [`PendingAuth::claimed_user`]'s
    /// data, on the same client) in the same round trip: the check goes first, and the read's
    /// result, or its error, is used only when the check passes. Only for reads: `read` runs
    /// whatever the check finds.
    pub async fn check_with<T, E>(
        &self,
        client: &impl GenericClient,
        read: impl Future<Output = Result<T, E>>,
    ) -> Result<(AuthUser, T), ApiError>
    where
        ApiError: From<E>,
    {
        let (user, value) = tokio::join!(biased; self.check(client), read);
        Ok((user?, value?))
    }
}

impl FromRequestParts<AppState> for PendingAuth {
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
        Ok(Self { claims })
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

/// The client address in `X-Forwarded-For` (every header line, in order) behind `hops`
/// trusted proxies that each append the address they received the request from: the entry
/// `hops` places from the right. Entries further left were written by the client and are
/// never used. Fewer entries than hops: the leftmost, which a trusted proxy still added.
/// `None` when the header is missing or that entry is not an address.
fn forwarded_client(
    headers: axum::http::header::GetAll<'_, axum::http::HeaderValue>,
    hops: usize,
) -> Option<std::net::IpAddr> {
    let entries: Vec<&str> = headers
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let position = entries.len().saturating_sub(hops.max(1));
    let entry = entries.get(position)?;
    entry
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
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
                forwarded_client(
                    parts.headers.get_all("x-forwarded-for"),
                    state.config.trusted_proxy_hops,
                )
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

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn client(lines: &[&str], hops: usize) -> Option<std::net::IpAddr> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        forwarded_client(headers.get_all("x-forwarded-for"), hops)
    }

    #[test]
    fn the_client_address_is_the_one_the_outermost_trusted_proxy_added() {
        let ip = |s: &str| Some(s.parse().unwrap());
        // The client sent "1.1.1.1"; one proxy appended the real peer.
        assert_eq!(client(&["1.1.1.1, 203.0.113.7"], 1), ip("203.0.113.7"));
        // Two proxies: the CDN appended the client, the load balancer the CDN.
        assert_eq!(
            client(&["9.9.9.9, 203.0.113.7, 10.0.0.2"], 2),
            ip("203.0.113.7")
        );
        // Several header lines are one list, in order.
        assert_eq!(client(&["9.9.9.9", "203.0.113.7"], 1), ip("203.0.113.7"));
        // Fewer entries than hops: the leftmost, which a trusted proxy added.
        assert_eq!(client(&["203.0.113.7"], 2), ip("203.0.113.7"));
        // Ports and IPv6.
        assert_eq!(client(&["203.0.113.7:4711"], 1), ip("203.0.113.7"));
        assert_eq!(client(&["[2001:db8::1]:80"], 1), ip("2001:db8::1"));
        assert_eq!(client(&["2001:db8::1"], 1), ip("2001:db8::1"));
        // Garbage where the proxy's entry should be, or no header: not an address.
        assert_eq!(client(&["1.1.1.1, garbage"], 1), None);
        assert_eq!(client(&[], 1), None);
    }
}

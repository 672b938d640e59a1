//! Users for administrators: searching accounts, a user's detail, disabling and enabling.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::validate::{self, Invalid, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin;
use crate::auth::accounts::{self, AdminUserSummary};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, Client};
use crate::http::json::ApiJson;
use crate::http::openapi::TAG_ADMIN;
use crate::http::query::ApiQuery;

/// Query of `GET /api/v1/admin/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserPage {
    /// The page.
    pub users: Vec<AdminUserSummary>,
    /// Matches in all.
    pub total: i64,
}

/// `GET /api/v1/admin/users?q=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(UserSearch),
    responses(
        (status = 200, description = "Live accounts, newest first", body = UserPage),
        (status = 400, description = "A query value is not a number", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "`limit` is not between 1 and 200, `offset` is negative, or an unknown \
             query parameter (`validation_failed`)"),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(search): ApiQuery<UserSearch>,
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

/// `GET /api/v1/admin/users/{id}`: wallet, step stats and recent orders.
#[utoipa::path(
    get,
    path = "/admin/users/{id}",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, body = admin::UserDetail,
         description = "The user with wallet, step statistics and recent orders"),
        (status = 404, description = "No such user (`not_found`)", body = ErrorEnvelope),
    )
)]
pub async fn user_detail(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<admin::UserDetail>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::not_found("no such user"))?;
    let conn = state.pool.get().await?;
    Ok(Json(admin::user_detail(&conn, id).await?))
}

impl Validate for admin::AccountStatusChange {
    fn validate(&self) -> Result<(), Invalid> {
        validate::text("reason", &self.reason, 500)
    }
}

/// `POST /api/v1/admin/users/{id}/disable` `{reason}`: disables the account and ends its sessions; audited as `user.disable`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/disable",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = admin::AccountStatusChange,
    responses(
        (status = 200, body = admin::AccountStatus,
         description = "The account's status afterwards (unchanged, with no audit entry, when it \
             already was disabled)"),
        (status = 404, description = "No such user (`not_found`)", body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope,
         description = "The administrator's own account (`cannot_disable_self`)"),
        (status = 422, body = ErrorEnvelope,
         description = "`reason` is missing or longer than 500 characters, or an unknown field \
             (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn disable_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<admin::AccountStatusChange>,
) -> Result<Json<admin::AccountStatus>, ApiError> {
    set_access(&state, admin, &client, id, &body, true).await
}

/// `POST /api/v1/admin/users/{id}/enable` `{reason}`: lets a disabled account sign in again; audited as `user.enable`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/enable",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = admin::AccountStatusChange,
    responses(
        (status = 200, body = admin::AccountStatus,
         description = "The account's status afterwards (unchanged, with no audit entry, when it \
             already was enabled)"),
        (status = 404, description = "No such user (`not_found`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "`reason` is missing or longer than 500 characters, or an unknown field \
             (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn enable_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<admin::AccountStatusChange>,
) -> Result<Json<admin::AccountStatus>, ApiError> {
    set_access(&state, admin, &client, id, &body, false).await
}

/// The body of `disable_user` and `enable_user`.
async fn set_access(
    state: &AppState,
    admin: crate::http::extract::AuthUser,
    client: &crate::auth::accounts::ClientInfo,
    id: Result<Path<Uuid>, PathRejection>,
    body: &admin::AccountStatusChange,
    disable: bool,
) -> Result<Json<admin::AccountStatus>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::not_found("no such user"))?;
    Ok(Json(
        admin::set_account_disabled(&state.pool, admin.id, id, disable, &body.reason, client)
            .await?,
    ))
}

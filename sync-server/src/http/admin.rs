//! `/api/v1/admin/*`: administrator routes. Every handler takes [`AdminUser`], so a user
//! token is 403 and a missing or bad one 401.

use axum::Json;
use axum::extract::{Path, State};
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::steps::Wallet;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{AdminUser, Client};
use super::json::ApiJson;
use super::openapi::TAG_ADMIN;
use super::query::ApiQuery;
use crate::admin;
use crate::auth::accounts::{self, AdminUserSummary};
use crate::error::ApiError;
use crate::rewards::review::{self, Decision, Validation};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use fitkart_protocol::validate::{self, Invalid, Validate};
use uuid::Uuid;

/// The admin API's routes over the `admin` domain: users, the review queue, analytics,
/// settings, the audit log and wallet adjustments.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(user_detail))
        .routes(routes!(adjust_wallet))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(analytics))
        .routes(routes!(list_settings))
        .routes(routes!(put_setting))
        .routes(routes!(logs))
        .routes(routes!(list_validations))
        .routes(routes!(approve_validation))
        .routes(routes!(reject_validation))
}

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
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
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

/// Query of `GET /api/v1/admin/validations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ValidationQuery {
    /// `pending_review` (default), `approved` or `rejected`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// Answer of `GET /api/v1/admin/validations`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValidationPage {
    /// The page, oldest first.
    pub validations: Vec<Validation>,
}

/// `GET /api/v1/admin/validations?status=&limit=&offset=`: the review queue.
#[utoipa::path(
    get,
    path = "/admin/validations",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(ValidationQuery),
    responses(
        (status = 200, description = "The review queue, oldest first", body = ValidationPage),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 400, description = "A query value is not a number", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "`limit` is not between 1 and 200, or `status` is unknown \
             (`validation_failed`)"),
    )
)]
pub async fn list_validations(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(query): ApiQuery<ValidationQuery>,
) -> Result<Json<ValidationPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    let offset = query.offset.unwrap_or(0).max(0);
    let status = query.status.as_deref().unwrap_or("pending_review");
    let conn = state.pool.get().await?;
    Ok(Json(ValidationPage {
        validations: review::list(&conn, status, limit, offset).await?,
    }))
}

/// Body of the review routes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// Why, for the audit log.
    pub note: Option<String>,
}

async fn review(
    state: AppState,
    admin: AdminUser,
    client: Client,
    id: Uuid,
    decision: Decision,
    body: Bytes,
) -> Result<Json<Validation>, ApiError> {
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ReviewBody>(&body)
            .map_err(|e| {
                if e.is_syntax() || e.is_eof() {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "malformed_json",
                        "the request body is not valid JSON",
                    )
                } else {
                    ApiError::validation("note", e.to_string())
                }
            })?
            .note
    };
    validate::optional_text("note", note.as_deref(), 1000)?;
    let Client(client) = client;
    Ok(Json(
        review::decide(
            &state.pool,
            admin.0.id,
            id,
            decision,
            note.as_deref(),
            &client,
        )
        .await?,
    ))
}

/// `POST /api/v1/admin/validations/{id}/approve`.
#[utoipa::path(
    post,
    path = "/admin/validations/{id}/approve",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Validation id")),
    request_body(
        content = Option<ReviewBody>,
        content_type = "application/json",
        description = "Optional: an empty body is no note"
    ),
    responses(
        (status = 200, body = Validation,
         description = "The approved validation; the withheld coins are paid"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`)"),
        (status = 404, description = "No such validation (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "Already reviewed (`already_reviewed`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "The body has an unknown field or a bad note (`validation_failed`)"),
    )
)]
pub async fn approve_validation(
    State(state): State<AppState>,
    admin: AdminUser,
    client: Client,
    id: Result<Path<Uuid>, PathRejection>,
    body: Bytes,
) -> Result<Json<Validation>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::not_found("no such validation"))?;
    review(state, admin, client, id, Decision::Approve, body).await
}

/// `POST /api/v1/admin/validations/{id}/reject`.
#[utoipa::path(
    post,
    path = "/admin/validations/{id}/reject",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Validation id")),
    request_body(
        content = Option<ReviewBody>,
        content_type = "application/json",
        description = "Optional: an empty body is no note"
    ),
    responses(
        (status = 200, body = Validation,
         description = "The rejected validation; its coins are never paid"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`)"),
        (status = 404, description = "No such validation (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "Already reviewed (`already_reviewed`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "The body has an unknown field or a bad note (`validation_failed`)"),
    )
)]
pub async fn reject_validation(
    State(state): State<AppState>,
    admin: AdminUser,
    client: Client,
    id: Result<Path<Uuid>, PathRejection>,
    body: Bytes,
) -> Result<Json<Validation>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::not_found("no such validation"))?;
    review(state, admin, client, id, Decision::Reject, body).await
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
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
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

/// Query of `GET /api/v1/admin/analytics`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// First day (default: 29 days before `to`).
    pub from: Option<chrono::NaiveDate>,
    /// Last day (default: today, UTC).
    pub to: Option<chrono::NaiveDate>,
}

/// `GET /api/v1/admin/analytics?from=&to=`.
#[utoipa::path(
    get,
    path = "/admin/analytics",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(AnalyticsQuery),
    responses(
        (status = 200, body = admin::Analytics,
         description = "Per-day activity and coin flows, active users, orders by status"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 422, body = ErrorEnvelope,
         description = "A date is invalid, `from` is after `to` or the range is too long \
             (`validation_failed`, `range_too_large`)"),
    )
)]
pub async fn analytics(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> Result<Json<admin::Analytics>, ApiError> {
    query
        .from
        .map(|from| validate::date("from", from))
        .transpose()?;
    query.to.map(|to| validate::date("to", to)).transpose()?;
    let to = query.to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = match query.from {
        Some(from) => from,
        None => to
            .checked_sub_days(chrono::Days::new(29))
            .ok_or_else(|| ApiError::validation("to", "to is too early"))?,
    };
    crate::rewards::steps::check_range(from, to)?;
    let conn = state.pool.get().await?;
    Ok(Json(admin::analytics(&conn, from, to).await?))
}

/// Answer of `GET /api/v1/admin/settings`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingList {
    /// Every setting, by key.
    pub settings: Vec<admin::Setting>,
}

/// `GET /api/v1/admin/settings`.
#[utoipa::path(
    get,
    path = "/admin/settings",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every setting", body = SettingList),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
    )
)]
pub async fn list_settings(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
) -> Result<Json<SettingList>, ApiError> {
    let conn = state.pool.get().await?;
    Ok(Json(SettingList {
        settings: admin::settings(&conn).await?,
    }))
}

impl Validate for SettingValue {
    fn validate(&self) -> Result<(), Invalid> {
        validate::json_value("value", &self.value)
    }
}

impl Validate for admin::WalletAdjustment {
    fn validate(&self) -> Result<(), Invalid> {
        validate::text("reason", &self.reason, 500)?;
        validate::optional_text("idempotency_key", self.idempotency_key.as_deref(), 100)
    }
}

impl Validate for admin::AccountStatusChange {
    fn validate(&self) -> Result<(), Invalid> {
        validate::text("reason", &self.reason, 500)
    }
}

/// Body of `PUT /api/v1/admin/settings/{key}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingValue {
    /// The new value.
    pub value: serde_json::Value,
}

/// `PUT /api/v1/admin/settings/{key}`.
#[utoipa::path(
    put,
    path = "/admin/settings/{key}",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(
        ("key" = String, Path,
         description = "Dotted setting key, e.g. `rewards.coins_per_1000_steps`")
    ),
    request_body = SettingValue,
    responses(
        (status = 200, description = "The changed setting", body = admin::Setting),
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`)"),
        (status = 413, body = ErrorEnvelope,
         description = "The body is larger than the server's limit (`payload_too_large`)"),
        (status = 415, body = ErrorEnvelope,
         description = "The body is not sent as `application/json` (`unsupported_media_type`)"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 404, description = "No such setting (`unknown_setting`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "The value is out of the setting's range or of the wrong type \
             (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn put_setting(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    key: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<SettingValue>,
) -> Result<Json<admin::Setting>, ApiError> {
    let Path(key) = key.map_err(|_| ApiError::not_found("no such setting"))?;
    validate::text("key", &key, 100)?;
    Ok(Json(
        admin::put_setting(&state.pool, admin.id, &key, &body.value, &client).await?,
    ))
}

/// Answer of `GET /api/v1/admin/logs`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPage {
    /// Newest first.
    pub logs: Vec<admin::AuditLogEntry>,
}

/// `GET /api/v1/admin/logs?admin_id=&action=&entity_type=&entity_id=&from=&to=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/admin/logs",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(admin::LogFilter),
    responses(
        (status = 200, description = "The audit log, newest first", body = LogPage),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 422, body = ErrorEnvelope,
         description = "A filter is invalid, `limit` is not between 1 and 200, or an unknown \
             query parameter (`validation_failed`)"),
    )
)]
pub async fn logs(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(filter): ApiQuery<admin::LogFilter>,
) -> Result<Json<LogPage>, ApiError> {
    filter
        .from
        .map(|from| validate::timestamp("from", from))
        .transpose()?;
    filter
        .to
        .map(|to| validate::timestamp("to", to))
        .transpose()?;
    for (field, value) in [
        ("action", &filter.action),
        ("entity_type", &filter.entity_type),
        ("entity_id", &filter.entity_id),
    ] {
        validate::optional_text(field, value.as_deref(), 200)?;
    }
    let conn = state.pool.get().await?;
    Ok(Json(LogPage {
        logs: admin::logs(&conn, &filter).await?,
    }))
}

/// `POST /api/v1/admin/users/{id}/wallet/adjust` `{amount, reason, idempotency_key?}`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/wallet/adjust",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = admin::WalletAdjustment,
    responses(
        (status = 200, body = Wallet,
         description = "The wallet after the `admin_adjustment` entry"),
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`)"),
        (status = 413, body = ErrorEnvelope,
         description = "The body is larger than the server's limit (`payload_too_large`)"),
        (status = 415, body = ErrorEnvelope,
         description = "The body is not sent as `application/json` (`unsupported_media_type`)"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
        (status = 404, description = "No such user (`not_found`)", body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope,
         description = "The balance would become negative (`insufficient_coins`)"),
        (status = 422, body = ErrorEnvelope,
         description = "`amount` is zero or too large, `reason` is missing, or an unknown field \
             (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn adjust_wallet(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<admin::WalletAdjustment>,
) -> Result<Json<fitkart_protocol::steps::Wallet>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::not_found("no such user"))?;
    Ok(Json(
        admin::adjust_wallet(&state.pool, admin.id, id, &body, &client).await?,
    ))
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
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`)"),
        (status = 413, body = ErrorEnvelope,
         description = "The body is larger than the server's limit (`payload_too_large`)"),
        (status = 415, body = ErrorEnvelope,
         description = "The body is not sent as `application/json` (`unsupported_media_type`)"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
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
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`)"),
        (status = 413, body = ErrorEnvelope,
         description = "The body is larger than the server's limit (`payload_too_large`)"),
        (status = 415, body = ErrorEnvelope,
         description = "The body is not sent as `application/json` (`unsupported_media_type`)"),
        (status = 401, body = ErrorEnvelope,
         description = "No, a malformed, an expired or a revoked access token"),
        (status = 403, body = ErrorEnvelope,
         description = "The token is not an administrator's (`forbidden`)"),
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

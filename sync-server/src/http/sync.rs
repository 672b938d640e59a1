//! `/api/v1/sync/*` and `/api/v1/devices`: the sync protocol's HTTP surface. Every sync
//! request names its protocol version in the `x-fitkart-protocol-version` header.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use fitkart_protocol::sync::{
    DeviceRegistration, MIN_SUPPORTED_PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, PullResponse,
    PushRequest, PushResponse,
};
use serde::Deserialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use super::AppState;
use super::extract::{AuthUser, Client, PendingAuth};
use super::json::ApiJson;
use super::openapi::TAG_SYNC;
use super::query::ApiQuery;
use crate::http::ApiError;
use crate::replica::Freshness;
use crate::sync::{self, Cursor};
use fitkart_protocol::ErrorEnvelope;

/// `/api/v1/devices` and `/api/v1/sync/*`: answers are gzip-compressed when the client
/// accepts it (a snapshot pull can be large), and push bodies may be up to 4 MiB (500
/// mutations). Layered on its own in [`super::routes`].
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_device))
        .routes(routes!(push).layer(DefaultBodyLimit::max(4 * 1024 * 1024)))
        .routes(routes!(pull))
}

/// Checks the client's protocol version: 426 for one the server no longer accepts.
pub fn check_protocol_version(headers: &HeaderMap) -> Result<u32, ApiError> {
    let version = headers
        .get(PROTOCOL_VERSION_HEADER)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_protocol_version",
                format!("send the sync protocol version in the {PROTOCOL_VERSION_HEADER} header"),
            )
        })?
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_protocol_version",
                "the protocol version must be a whole number",
            )
        })?;
    let supported = serde_json::json!({
        "min": MIN_SUPPORTED_PROTOCOL_VERSION,
        "max": fitkart_protocol::PROTOCOL_VERSION,
    });
    if version < MIN_SUPPORTED_PROTOCOL_VERSION {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "protocol_version_unsupported",
            "this app's sync protocol is no longer supported; update the app",
        )
        .with_details(supported));
    }
    if version > fitkart_protocol::PROTOCOL_VERSION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "protocol_version_unknown",
            "this server does not know that sync protocol version yet",
        )
        .with_details(supported));
    }
    Ok(version)
}

/// `POST /api/v1/devices`: registers or updates one of the caller's devices.
#[utoipa::path(
    post,
    path = "/devices",
    tag = TAG_SYNC,
    security(("bearer" = [])),
    request_body = DeviceRegistration,
    responses(
        (status = 204, description = "Registered (or updated)"),
        (status = 400, body = ErrorEnvelope,
         description = "The body is not valid JSON (`malformed_json`), or the protocol version \
             header is missing or unknown"),
        (status = 409, body = ErrorEnvelope, description = "`device_taken`: the id belongs to another account"),
        (status = 422, body = ErrorEnvelope, description = "`validation_failed` or `unknown_field`")
    )
)]
pub async fn register_device(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(device): ApiJson<DeviceRegistration>,
) -> Result<StatusCode, ApiError> {
    let conn = state.pool.get().await?;
    sync::register_device(&conn, user.id, &device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/sync/push`: applies offline mutations, each at most once.
#[utoipa::path(
    post,
    path = "/sync/push",
    tag = TAG_SYNC,
    security(("bearer" = [])),
    params(("x-fitkart-protocol-version" = u32, Header, description = "The client's sync protocol version")),
    request_body = PushRequest,
    responses(
        (status = 200, body = PushResponse, description = "One result per mutation, in order"),
        (status = 400, body = ErrorEnvelope, description = "`missing_protocol_version`, `invalid_protocol_version`, `protocol_version_unknown`, `malformed_json`"),
        (status = 409, body = ErrorEnvelope, description = "`device_taken`"),
        (status = 413, body = ErrorEnvelope, description = "`payload_too_large`"),
        (status = 422, body = ErrorEnvelope, description = "`validation_failed` (1 to 500 mutations) or `unknown_field`"),
        (status = 426, body = ErrorEnvelope, description = "`protocol_version_unsupported`: update the app")
    )
)]
pub async fn push(
    State(state): State<AppState>,
    auth: PendingAuth,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<ApiJson<PushRequest>, ApiError>,
) -> Result<Json<PushResponse>, ApiError> {
    // The account is checked first, on the connection the push then runs on (one wait for
    // the pool): an ended session hears 401 whatever it sent, and only a live account hears
    // what is wrong with its request.
    let (user, mut conn) = auth.check_on_pooled(&state.pool).await?;
    let ApiJson(request) = body?;
    check_protocol_version(&headers)?;
    let response = sync::push(
        &mut conn,
        user.id,
        request.device_id,
        &request.mutations,
        state.config.sync_replay_window,
        &client,
    )
    .await?;
    state.metrics.sync.pushes.inc();
    state.metrics.observe_push(&response);
    Ok(Json(response))
}

/// Query of `GET /api/v1/sync/pull`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    /// The `next_cursor` of the last pull; absent for a full snapshot.
    pub cursor: Option<String>,
    /// Target changes per page, 1 to 1,000 (default 500).
    pub limit: Option<i64>,
}

/// `GET /api/v1/sync/pull?cursor=&limit=`: every change after the cursor, in pages.
#[utoipa::path(
    get,
    path = "/sync/pull",
    tag = TAG_SYNC,
    security(("bearer" = [])),
    params(
        PullQuery,
        ("x-fitkart-protocol-version" = u32, Header, description = "The client's sync protocol version")
    ),
    responses(
        (status = 200, body = PullResponse, description = "Changes, the next cursor and whether more wait (gzip when accepted)"),
        (status = 400, body = ErrorEnvelope, description = "`invalid_cursor` (malformed or another account's), or a protocol version problem"),
        (status = 410, body = ErrorEnvelope, description = "`cursor_expired`: pull a fresh snapshot"),
        (status = 422, body = ErrorEnvelope, description = "`validation_failed` (limit 1 to 1000)"),
        (status = 426, body = ErrorEnvelope, description = "`protocol_version_unsupported`: update the app")
    )
)]
pub async fn pull(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PullQuery>,
) -> Result<Json<PullResponse>, ApiError> {
    check_protocol_version(&headers)?;
    let cursor = match query.cursor.as_deref() {
        None | Some("") => Cursor::start(user.id),
        Some(text) => Cursor::decode(text, user.id)?,
    };
    // A replica serves the pull only once it shows the caller's own latest change and the
    // catalogue version the cursor holds: a device sees its push, and lag never expires a cursor.
    let mut conn = state
        .reads
        .get(Freshness::OwnWrites {
            user_id: user.id,
            shared_at_least: cursor.shared_version,
        })
        .await?;
    let response = sync::pull(&mut conn, cursor, query.limit.unwrap_or(500)).await?;
    state.metrics.sync.pulls.inc();
    Ok(Json(response))
}

//! `GET /api/v1/leaderboard` (any signed-in user) and `POST /api/v1/admin/leaderboard/refresh`
//! (administrators): reading a board and rebuilding boards on demand.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::leaderboard::{
    Leaderboard, LeaderboardPeriod, RefreshLeaderboardRequest, RefreshLeaderboardResponse,
    RefreshedBoard,
};
use serde::Deserialize;

use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, Client, PendingAuth};
use crate::http::openapi::{TAG_ADMIN, TAG_LEADERBOARD};
use crate::http::query::ApiQuery;
use crate::replica::Freshness;
use crate::rewards::leaderboard::{self, RefreshRequester};

/// Query of `GET /api/v1/leaderboard`. Values are parsed by hand so each bad one is named.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    /// `weekly` (default), `monthly` or `all_time`.
    pub period: Option<String>,
    /// How many entries, 1 to the `leaderboard.size` setting (default 10).
    pub limit: Option<String>,
}

/// `GET /api/v1/leaderboard?period=&limit=`.
#[utoipa::path(
    get,
    path = "/leaderboard",
    tag = TAG_LEADERBOARD,
    security(("bearer" = [])),
    params(BoardQuery),
    responses(
        (status = 200, body = Leaderboard,
         description = "The board's top and the caller's own place"),
        (status = 422, body = ErrorEnvelope,
         description = "`period` or `limit` is invalid, or an unknown query parameter \
             (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn read_board(
    State(state): State<AppState>,
    auth: PendingAuth,
    ApiQuery(query): ApiQuery<BoardQuery>,
) -> Result<Json<Leaderboard>, ApiError> {
    let period = match query.period.as_deref() {
        None => LeaderboardPeriod::Weekly,
        Some(name) => name
            .parse()
            .map_err(|err| ApiError::validation("period", format!("{err}")))?,
    };
    let limit = query
        .limit
        .as_deref()
        .map(|limit| {
            limit
                .parse::<i64>()
                .map_err(|_| ApiError::validation("limit", "limit must be a whole number"))
        })
        .transpose()?;
    // Boards are rebuilt nightly: a replica's copy is as good as the primary's. The account
    // is checked on the primary: with the read when that is where the board is read.
    let conn = state.reads.get(Freshness::AnyLag).await?;
    let read = leaderboard::read(&conn, auth.claimed_user(), period, limit);
    let (_, board) = match state.reads.replica() {
        None => auth.check_with(&conn, read).await?,
        Some(_) => auth.check_with(&state.pool.get().await?, read).await?,
    };
    Ok(Json(board))
}

/// `POST /api/v1/admin/leaderboard/refresh` with an optional `{"period": ...}` body.
#[utoipa::path(
    post,
    path = "/admin/leaderboard/refresh",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    request_body(
        content = Option<RefreshLeaderboardRequest>,
        content_type = "application/json",
        description = "Optional: an empty body rebuilds every period"
    ),
    responses(
        (status = 200, body = RefreshLeaderboardResponse,
         description = "How many users each rebuilt board ranks"),
        (status = 422, body = ErrorEnvelope,
         description = "Unknown period or field (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn admin_refresh(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    body: Bytes,
) -> Result<Json<RefreshLeaderboardResponse>, ApiError> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshLeaderboardRequest::default()
    } else {
        serde_json::from_slice::<RefreshLeaderboardRequest>(&body).map_err(body_error)?
    };
    let counts = leaderboard::refresh_audited(
        &state.pool,
        request.period,
        RefreshRequester {
            admin_id: Some(admin.id),
            client: Some(&client),
        },
    )
    .await?;
    Ok(Json(RefreshLeaderboardResponse {
        boards: counts
            .into_iter()
            .map(|(period, entries)| RefreshedBoard { period, entries })
            .collect(),
    }))
}

/// 422 `unknown_field` when serde's message names an unknown field.
fn unknown_field(text: &str) -> Option<ApiError> {
    let field = text.split("unknown field `").nth(1)?.split('`').next()?;
    Some(
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("the field `{field}` is unknown here"),
        )
        .with_details(serde_json::json!({ "field": field })),
    )
}

fn body_error(err: serde_json::Error) -> ApiError {
    if err.is_syntax() || err.is_eof() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is not valid JSON",
        );
    }
    unknown_field(&err.to_string()).unwrap_or_else(|| {
        ApiError::validation("period", "period must be one of weekly, monthly, all_time")
    })
}

//! The review queue's admin routes: listing flagged step records and approving or
//! rejecting them (approval pays the withheld coins, rejection never does).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::validate::{self};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, Client};
use crate::http::openapi::TAG_ADMIN;
use crate::http::query::ApiQuery;
use crate::rewards::review::{self, Decision, Validation};

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

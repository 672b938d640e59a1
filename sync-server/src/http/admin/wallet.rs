//! `POST /api/v1/admin/users/{id}/wallet/adjust`: adjusting a wallet, audited.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::steps::Wallet;
use fitkart_protocol::validate::{self, Invalid, Validate};
use uuid::Uuid;

use crate::admin;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, Client};
use crate::http::json::ApiJson;
use crate::http::openapi::TAG_ADMIN;

impl Validate for admin::WalletAdjustment {
    fn validate(&self) -> Result<(), Invalid> {
        validate::text("reason", &self.reason, 500)?;
        validate::optional_text("idempotency_key", self.idempotency_key.as_deref(), 100)
    }
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

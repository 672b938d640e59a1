//! Settings for administrators: listing them and changing one, validated and audited.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::validate::{self, Invalid, Validate};
use serde::{Deserialize, Serialize};

use crate::admin;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, Client};
use crate::http::json::ApiJson;
use crate::http::openapi::TAG_ADMIN;

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

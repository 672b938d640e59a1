//! `POST /api/v1/admin/products/import`: imports a Shopify product export into the reward
//! catalogue, sent as the body or fetched from `{"url": ...}` (see [`crate::shop::shopify`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::orders::ImportReport;
use serde::Deserialize;

use crate::error::DomainError;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, Client};
use crate::http::openapi::TAG_ADMIN;
use crate::http::query::ApiQuery;
use crate::shop::shopify::{self, Feed, FeedRequest, ImportContext, ImportOptions};

/// Query of the import route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Accept a feed without products, deactivating every imported product.
    #[serde(default)]
    pub allow_empty: bool,
}

/// `POST /api/v1/admin/products/import[?allow_empty=true]` with a Shopify `products.json`
/// document or `{"url": "https://..."}` as the JSON body: 200 with the [`ImportReport`].
#[utoipa::path(
    post,
    path = "/admin/products/import",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(ImportQuery),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "A Shopify `products.json` export (`{\"products\": [...]}`, up to 20 MiB) \
                       or `{\"url\": \"https://...\"}` to fetch it from"
    ),
    responses(
        (status = 200, body = ImportReport,
         description = "What the import created, updated, deactivated and skipped"),
        (status = 400, description = "The body could not be read", body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope,
         description = "A setting the import needs is invalid (`invalid_setting`), or the \
             catalogue changed meanwhile (`import_conflict`)"),
        (status = 413, body = ErrorEnvelope,
         description = "The body is larger than 20 MiB (`payload_too_large`)"),
        (status = 415, body = ErrorEnvelope,
         description = "The body is not JSON (`unsupported_media_type`)"),
        (status = 422, body = ErrorEnvelope,
         description = "The feed is invalid, empty, unreachable or too large, or the URL is bad \
             (`invalid_feed`, `empty_feed`, `feed_unreachable`, `feed_too_large`, \
             `validation_failed`)"),
    )
)]
pub async fn import_products(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    ApiQuery(query): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the feed as Content-Type: application/json",
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the feed is larger than {} MiB",
                    shopify::MAX_FEED_BYTES / (1024 * 1024)
                ),
            )
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    let (feed, source) = match read_feed(&state, body).await {
        Ok(read) => read,
        Err((err, source)) => {
            shopify::audit_failure(&state.pool, admin.id, &client, &source, &err).await;
            return Err(DomainError::from(err).into());
        }
    };
    let mut conn = state.pool.get().await?;
    let imported = shopify::import(
        &mut conn,
        &feed,
        ImportOptions {
            allow_empty: query.allow_empty,
            dry_run: false,
        },
        ImportContext {
            admin_id: Some(admin.id),
            client: Some(&client),
            source: &source,
        },
    )
    .await;
    match imported {
        Ok(report) => Ok(Json(report)),
        Err(err) => {
            shopify::audit_failure(&state.pool, admin.id, &client, &source, &err).await;
            Err(DomainError::from(err).into())
        }
    }
}

/// The feed of an import request (parsed off the async workers, or fetched) and its source
/// as the audit log names it; on failure, the error and the source tried.
async fn read_feed(
    state: &AppState,
    body: Bytes,
) -> Result<(Feed, String), (shopify::ImportError, String)> {
    let upload = || "upload".to_owned();
    let request = shopify::on_blocking_thread(move || FeedRequest::from_json(&body))
        .await
        .map_err(|err| (err.into(), upload()))?
        .map_err(|err| (err, upload()))?;
    match request {
        FeedRequest::Inline(feed) => Ok((feed, upload())),
        FeedRequest::Url(url) => {
            let source = shopify::describe_url(&url);
            match shopify::fetch_feed(&url, &state.config.import_allowed_hosts).await {
                Ok(feed) => Ok((feed, source)),
                Err(err) => Err((err, source)),
            }
        }
    }
}

/// Whether the body is declared as JSON (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| {
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

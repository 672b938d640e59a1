//! The OpenAPI 3 document: its header (info, tags, the bearer scheme, the error envelope) and
//! `GET /openapi.json`. Its paths come from the router's own registrations in `http/mod.rs`.

use axum::Extension;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use fitkart_protocol::ErrorEnvelope;
use utoipa::openapi::RefOr;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Name of the security scheme handlers list in `security((BEARER = []))`: an access token
/// (JWT) sent as `Authorization: Bearer <token>`.
pub const BEARER: &str = "bearer";

/// Tag of the health, metrics and document routes.
pub const TAG_OPS: &str = "ops";
/// Tag of `/auth/*`.
pub const TAG_AUTH: &str = "auth";
/// Tag of `/me*`.
pub const TAG_ACCOUNT: &str = "account";
/// Tag of `/steps*`, `/wallet*` and `/achievements`.
pub const TAG_STEPS: &str = "steps";
/// Tag of `/products*` and `/orders*`.
pub const TAG_ORDERS: &str = "orders";
/// Tag of `/leaderboard`.
pub const TAG_LEADERBOARD: &str = "leaderboard";
/// Tag of `/admin/*`.
pub const TAG_ADMIN: &str = "admin";
/// Tag of `/sync/*`.
pub const TAG_SYNC: &str = "sync";

/// The document's header; [`super::routes`] adds every path to it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "FitKart sync server",
        description = "Auth, steps and coins, the reward catalogue and orders, leaderboards, \
                       the sync protocol and the admin API. Every error answers \
                       `{\"error\": {\"code\", \"message\", \"details\"}}` (`ErrorEnvelope`) \
                       with a 4xx status; a 5xx is a bug or an outage."
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorEnvelope)),
    tags(
        (name = TAG_OPS, description = "Health, readiness, metrics and this document (no token)"),
        (name = TAG_AUTH, description = "Registration, sign-in and token rotation"),
        (name = TAG_ACCOUNT, description = "The caller's own account"),
        (name = TAG_STEPS, description = "Recording steps, the coins they earned, achievements"),
        (name = TAG_ORDERS, description = "The reward catalogue and the caller's orders"),
        (name = TAG_LEADERBOARD, description = "Leaderboards by period"),
        (name = TAG_SYNC, description = "The offline sync protocol: push mutations, pull changes"),
        (name = TAG_ADMIN, description = "Administrators only: a user token is 403"),
    )
)]
pub struct ApiDoc;

/// Adds the [`BEARER`] security scheme: HTTP bearer with a JWT.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `/api/v1/auth/login`, `/register` or `/refresh`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route that takes an access token also answers 403 `account_disabled` once an
/// administrator disabled the caller's account (the token extractor checks it for all of them).
/// Documented here, once, on every operation that lists the [`BEARER`] scheme: a 403 the
/// operation already documents (`forbidden` on admin routes) gains the code, others get a 403
/// shaped like their 401.
pub fn document_disabled_accounts(document: &mut utoipa::openapi::OpenApi) {
    const DISABLED: &str = "The account was disabled by an administrator (`account_disabled`)";
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.security.as_ref().is_none_or(|s| s.is_empty()) {
                continue;
            }
            let responses = &mut operation.responses.responses;
            match responses.get_mut("403") {
                Some(RefOr::T(forbidden)) => {
                    forbidden.description = format!("{}; or: {DISABLED}", forbidden.description);
                }
                Some(RefOr::Ref(_)) => {}
                None => {
                    if let Some(RefOr::T(unauthorized)) = responses.get("401") {
                        let mut disabled = unauthorized.clone();
                        disabled.description = DISABLED.to_owned();
                        responses.insert("403".to_owned(), RefOr::T(disabled));
                    }
                }
            }
        }
    }
}

/// The finished document, serialised once when the router is built.
#[derive(Clone)]
pub struct ServedDocument(Bytes);

impl ServedDocument {
    /// Serialises `document` for [`openapi_json`].
    pub fn new(document: &utoipa::openapi::OpenApi) -> Self {
        // Serialising a document of plain maps and strings cannot fail; an empty object would
        // still be valid JSON if it ever did.
        let json = document.to_json().unwrap_or_else(|_| "{}".to_owned());
        Self(Bytes::from(json))
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = TAG_OPS,
    responses(
        (status = 200, description = "The OpenAPI 3 document of this server",
         content_type = "application/json", body = Object),
    )
)]
pub async fn openapi_json(Extension(document): Extension<ServedDocument>) -> Response {
    ([(CONTENT_TYPE, "application/json")], document.0).into_response()
}

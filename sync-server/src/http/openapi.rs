//! The OpenAPI 3 document: its header (info, tags, the bearer scheme, the error envelope) and
//! `GET /openapi.json`. Its paths come from the router's own registrations in `http/mod.rs`.

use axum::Extension;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use fitkart_protocol::ErrorEnvelope;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
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

/// The answers every route of a kind shares, documented here once instead of on each
/// handler (a handler documents only what is its own, and may override one of these with a
/// more precise description):
///
/// - every route that takes an access token (lists the [`BEARER`] scheme) answers 401 for a
///   missing or bad token, and 403 `account_disabled` once an administrator disabled the
///   caller's account (the token extractor checks both for all of them); an admin route
///   (`/api/v1/admin/...`) also answers 403 `forbidden` to a user's token;
/// - every route with a JSON body answers 400 `malformed_json` and 413 `payload_too_large`,
///   and 415 `unsupported_media_type` when the body is required (read by `ApiJson`).
pub fn document_shared_responses(document: &mut utoipa::openapi::OpenApi) {
    const UNAUTHORIZED: &str = "No, a malformed, an expired or a revoked access token";
    const DISABLED: &str = "The account was disabled by an administrator (`account_disabled`)";
    const NOT_ADMIN: &str = "The token is not an administrator's (`forbidden`)";
    const ADMIN_PREFIX: &str = "/api/v1/admin/";
    const BODY: [(&str, &str); 3] = [
        ("400", "The body is not valid JSON (`malformed_json`)"),
        (
            "413",
            "The body is larger than the server's limit (`payload_too_large`)",
        ),
        (
            "415",
            "The body is not sent as `application/json` (`unsupported_media_type`)",
        ),
    ];
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            if let Some(body) = operation.request_body.as_ref()
                && body.content.contains_key("application/json")
            {
                // An optional body (an empty one means "no options") is read leniently: only
                // a required one is refused for its content type.
                let optional = matches!(body.required, Some(Required::False));
                for (status, description) in BODY {
                    if status == "415" && optional {
                        continue;
                    }
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
            if operation.security.as_ref().is_none_or(|s| s.is_empty()) {
                continue;
            }
            responses
                .entry("401".to_owned())
                .or_insert_with(|| error_response(UNAUTHORIZED));
            if path.starts_with(ADMIN_PREFIX) {
                responses
                    .entry("403".to_owned())
                    .or_insert_with(|| error_response(NOT_ADMIN));
            }
            match responses.get_mut("403") {
                Some(RefOr::T(forbidden)) => {
                    forbidden.description = format!("{}; or: {DISABLED}", forbidden.description);
                }
                Some(RefOr::Ref(_)) => {}
                None => {
                    responses.insert("403".to_owned(), error_response(DISABLED));
                }
            }
        }
    }
}

/// An answer with the error envelope as its body.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name(
                        "ErrorEnvelope",
                    )))
                    .build(),
            )
            .build(),
    )
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

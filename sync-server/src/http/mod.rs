//! The HTTP surface: the router and its OpenAPI document (built from the same registrations,
//! see [`routes`]), its middleware (request ids, tracing, timeouts, body limits) and the
//! health routes. Handlers are thin: parse, authorize, call a domain function.

mod admin;
mod auth;
pub mod error;
pub mod extract;
mod health;
pub mod json;
pub mod openapi;
pub mod query;
mod rewards;
mod shop;
mod sync;

pub use error::ApiError;
pub use health::metrics_router;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::{Extension, Router};
use deadpool_postgres::Pool;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::accounts::Sessions;
use crate::auth::tokens::AccessTokens;
use crate::config::ServerConfig;

/// The header carrying the request id, set by the server when the client sends none.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database pool (the primary): every write and every read that must be current.
    pub pool: Pool,
    /// Reads that tolerate lag: the replica when one is configured and fresh enough.
    pub reads: crate::replica::ReadPools,
    /// The server's configuration.
    pub config: Arc<ServerConfig>,
    /// Signs and verifies access tokens.
    pub tokens: Arc<AccessTokens>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Group commit of the step reports of different users that arrive together.
    pub step_groups: crate::rewards::groups::ReportGroups<ApiError>,
}

impl AppState {
    /// State for the primary pool, an optional read replica's pool, and the configuration.
    /// Starts the step-report group workers: needs a Tokio runtime.
    pub fn new(pool: Pool, replica: Option<Pool>, config: ServerConfig) -> Self {
        let tokens = Arc::new(AccessTokens::rotating(
            &config.jwt_secret,
            config.jwt_previous_secret.as_ref(),
            config.access_token_ttl,
        ));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let step_groups = crate::rewards::groups::ReportGroups::start(
            pool.clone(),
            metrics.clone(),
            config.step_report_groups,
            config.step_report_group_max,
        );
        Self {
            step_groups,
            reads: crate::replica::ReadPools::new(pool.clone(), replica, metrics.clone()),
            pool,
            config: Arc::new(config),
            tokens,
            metrics,
        }
    }

    /// What the account functions need.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions {
            tokens: &self.tokens,
            refresh_ttl: self.config.refresh_token_ttl,
            limits: &self.config.login_limits,
        }
    }
}

/// Builds the full router with its middleware, and serves its OpenAPI document at
/// `GET /openapi.json`.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    // Timeouts are not here: each group of routes in [`routes`] carries its own.
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes));

    let (routes, mut document) = routes(&state.config).split_for_parts();
    openapi::document_shared_responses(&mut document);
    // The admin console (HTML for browsers, outside the OpenAPI document: see
    // docs/adr/0008-admin-console-server-rendered.md).
    routes
        .merge(crate::console::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            health::track,
        ))
        .layer(Extension(openapi::ServedDocument::new(&document)))
        .layer(middleware)
        .with_state(state)
}

/// The OpenAPI document of every route, as `GET /openapi.json` serves it.
pub fn openapi_document(config: &ServerConfig) -> utoipa::openapi::OpenApi {
    let mut document = routes(config).into_openapi();
    openapi::document_shared_responses(&mut document);
    document
}

/// Every route of the server, each registered ONCE for both the router and the OpenAPI
/// document, so that neither can have a route the other lacks.
///
/// # Adding a route
///
/// 1. Write the handler in its domain's module (`http/auth/`, `http/rewards/`, `http/shop/`,
///    `http/sync.rs`, `http/admin/`, mirroring the domain folders) and annotate it with
///    `#[utoipa::path(method, path = "/area/{id}", tag = openapi::TAG_..., params(...),
///    request_body = ..., responses(...), security(("bearer" = [])))]`. The path is relative to
///    [`fitkart_protocol::API_PREFIX`]; list every status the handler can answer, errors with
///    `body = ErrorEnvelope`, except the ones every route of its kind shares, which
///    [`openapi::document_shared_responses`] adds (401 and 403 `account_disabled` with a token;
///    400, 413 and, when required, 415 with a JSON body); `security` whenever it takes [`extract::AuthUser`] or
///    [`extract::AdminUser`] (admin paths start with `/admin/`, and the tests then check that
///    a user token gets 403 there).
/// 2. Derive `ToSchema` on its body types (in `protocol`:
///    `#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]`) and `IntoParams` with
///    `#[into_params(parameter_in = Query)]` on its query struct.
/// 3. Register it with `.routes(routes!(handler))` in that module's `routes()`; handlers of
///    one path with different methods go in one `routes!(get_x, patch_x)`. Each domain's
///    `routes()` is merged into [`api_routes`] (the standard limits); a route that needs another
///    timeout, body limit or layer (compression, say) gets a group function of its own like
///    `shop::import_routes` or `sync::routes`, layered and merged below. Group functions only
///    register routes: layers are added here, so none can miss a route registered after it.
///
/// Never use `.route(...)`, `.nest_service(...)` or a plain `axum::Router` here: a route
/// registered that way would be missing from the document (a unit test below refuses them).
fn routes(config: &ServerConfig) -> OpenApiRouter<AppState> {
    let api = api_routes()
        .layer(request_timeout(config.request_timeout))
        .merge(shop::import_routes().layer(request_timeout(config.import_timeout)))
        .merge(
            sync::routes()
                // The fastest level: a year's pull is 7.6 times smaller, where the default
                // level (8.9 times) spent 45% of the server's CPU on the pull
                // (docs/benchmarks.md, tuning step 31).
                .layer(
                    tower_http::compression::CompressionLayer::new()
                        .gzip(true)
                        .quality(tower_http::CompressionLevel::Fastest),
                )
                .layer(request_timeout(config.request_timeout)),
        );
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::openapi_json))
        .layer(request_timeout(config.request_timeout))
        .nest(fitkart_protocol::API_PREFIX, api)
}

/// The `/api/v1` routes with the standard timeout and body limit (see [`routes`]), each
/// domain's routes registered beside its handlers.
fn api_routes() -> OpenApiRouter<AppState> {
    auth::routes()
        .merge(rewards::routes())
        .merge(shop::routes())
        .merge(admin::routes())
}

/// Answers 408 (empty body) when a request takes longer than `limit`.
fn request_timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limit)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtSecret;
    use utoipa::openapi::path::Operation;

    fn document() -> utoipa::openapi::OpenApi {
        openapi_document(&ServerConfig::new(
            "postgres://127.0.0.1/unused",
            JwtSecret::generate(),
        ))
    }

    fn operations(doc: &utoipa::openapi::OpenApi) -> Vec<(String, &'static str, &Operation)> {
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
                ("head", &item.head),
                ("options", &item.options),
                ("trace", &item.trace),
            ];
            for (method, operation) in methods {
                if let Some(operation) = operation {
                    all.push((path.clone(), method, operation));
                }
            }
        }
        all
    }

    #[test]
    fn routes_are_registered_only_through_the_openapi_router() {
        // Built by concatenation so this test does not match itself.
        let forbidden = [
            concat!(".", "route("),
            concat!(".", "route_service("),
            concat!(".", "nest_service("),
            concat!(".", "fallback_service("),
            concat!("Router::", "new()"),
        ];
        let files = [
            ("mod.rs", include_str!("mod.rs")),
            ("admin/mod.rs", include_str!("admin/mod.rs")),
            ("auth/mod.rs", include_str!("auth/mod.rs")),
            ("rewards/mod.rs", include_str!("rewards/mod.rs")),
            ("shop/mod.rs", include_str!("shop/mod.rs")),
            ("sync.rs", include_str!("sync.rs")),
        ];
        for (file, text) in files {
            for (number, line) in text.lines().enumerate() {
                let code = line.trim_start().replace("OpenApiRouter", "");
                if code.starts_with("//") {
                    continue;
                }
                for pattern in forbidden {
                    assert!(
                        !code.contains(pattern),
                        "http/{file}:{}: `{pattern}` adds a route the OpenAPI document cannot \
                         see; register it with `.routes(routes!(...))`",
                        number + 1
                    );
                }
            }
        }
    }

    #[test]
    fn every_operation_is_tagged_named_answered_and_declares_its_path_parameters() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, method, operation) in operations(&doc) {
            let at = format!("{method} {path}");
            assert!(
                operation.tags.as_ref().is_some_and(|t| !t.is_empty()),
                "{at}: no tag"
            );
            let id = operation.operation_id.clone().unwrap_or_default();
            assert!(
                ids.insert(id.clone()),
                "{at}: operation id `{id}` is not unique"
            );
            assert!(
                !operation.responses.responses.is_empty(),
                "{at}: no response"
            );
            let declared: Vec<&str> = operation
                .parameters
                .iter()
                .flatten()
                .filter(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path))
                .map(|p| p.name.as_str())
                .collect();
            let in_template: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_template, "{at}: path parameters");
        }
    }

    #[test]
    fn admin_operations_need_a_token_and_document_401_and_403() {
        let doc = document();
        let admin: Vec<_> = operations(&doc)
            .into_iter()
            .filter(|(path, _, _)| path.starts_with("/api/v1/admin/"))
            .collect();
        assert!(admin.len() >= 17, "only {} admin operations", admin.len());
        for (path, method, operation) in admin {
            let at = format!("{method} {path}");
            assert!(
                operation.security.is_some(),
                "{at}: no security requirement"
            );
            for status in ["401", "403"] {
                assert!(
                    operation.responses.responses.contains_key(status),
                    "{at}: {status} is not documented"
                );
            }
        }
    }

    #[test]
    fn every_token_route_documents_401_and_403_and_every_json_body_400_413_and_415_if_required() {
        let doc = document();
        for (path, method, operation) in operations(&doc) {
            let at = format!("{method} {path}");
            let responses = &operation.responses.responses;
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{at}: {status} missing");
                }
            }
            if let Some(body) = operation.request_body.as_ref()
                && body.content.contains_key("application/json")
            {
                let required = !matches!(body.required, Some(utoipa::openapi::Required::False));
                for status in ["400", "413"] {
                    assert!(responses.contains_key(status), "{at}: {status} missing");
                }
                assert_eq!(responses.contains_key("415"), required, "{at}: 415");
            }
        }
    }

    #[test]
    fn the_bearer_scheme_is_declared() {
        let doc = document();
        let schemes = &doc.components.as_ref().map(|c| &c.security_schemes);
        assert!(schemes.is_some_and(|s| s.contains_key(openapi::BEARER)));
    }
}

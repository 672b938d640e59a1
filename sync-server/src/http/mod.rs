//! The HTTP surface: the router, its middleware (request ids, tracing, timeouts, body limits)
//! and the health routes. Handlers are thin: parse, authorize, call a domain function.

mod admin;
mod auth;
pub mod extract;
mod health;
mod import;
pub mod json;
mod leaderboard;
mod me;
mod orders;
mod steps;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use deadpool_postgres::Pool;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::accounts::Sessions;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::tokens::AccessTokens;

/// The header carrying the request id, set by the server when the client sends none.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: Pool,
    /// The server's configuration.
    pub config: Arc<ServerConfig>,
    /// Signs and verifies access tokens.
    pub tokens: Arc<AccessTokens>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// State for a pool and configuration.
    pub fn new(pool: Pool, config: ServerConfig) -> Self {
        let tokens = Arc::new(AccessTokens::new(
            &config.jwt_secret,
            config.access_token_ttl,
        ));
        Self {
            pool,
            config: Arc::new(config),
            tokens,
            metrics: Arc::new(crate::metrics::Metrics::new()),
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

/// Builds the full router with its middleware.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
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
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes));

    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route(
            "/me",
            get(me::get_me).patch(me::patch_me).delete(me::delete_me),
        )
        .route("/me/password", post(me::change_password))
        .route("/steps/record", post(steps::record))
        .route("/steps/today", get(steps::today))
        .route("/steps", get(steps::history))
        .route("/wallet", get(steps::wallet))
        .route("/wallet/transactions", get(steps::transactions))
        .route("/achievements", get(steps::achievements))
        .route("/products", get(orders::list_products))
        .route("/products/{id}", get(orders::get_product))
        .route(
            "/orders",
            get(orders::list_orders).post(orders::place_order),
        )
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/admin/orders", get(orders::admin_list_orders))
        .route(
            "/admin/orders/{id}/status",
            post(orders::admin_order_status),
        )
        .route("/admin/products", post(orders::admin_create_product))
        .route(
            "/admin/products/{id}",
            axum::routing::patch(orders::admin_update_product),
        )
        .route(
            "/admin/products/{id}/deactivate",
            post(orders::admin_deactivate_product),
        )
        .route("/leaderboard", get(leaderboard::read_board))
        .route(
            "/admin/leaderboard/refresh",
            post(leaderboard::admin_refresh),
        )
        .route("/admin/users", get(admin::list_users))
        .route("/admin/users/{id}", get(admin::user_detail))
        .route(
            "/admin/users/{id}/wallet/adjust",
            post(admin::adjust_wallet),
        )
        .route("/admin/analytics", get(admin::analytics))
        .route("/admin/settings", get(admin::list_settings))
        .route(
            "/admin/settings/{key}",
            axum::routing::put(admin::put_setting),
        )
        .route("/admin/logs", get(admin::logs))
        .route(
            "/admin/products/import",
            post(import::import_products)
                .layer(DefaultBodyLimit::max(crate::shopify::MAX_FEED_BYTES)),
        )
        .route("/admin/validations", get(admin::list_validations))
        .route(
            "/admin/validations/{id}/approve",
            post(admin::approve_validation),
        )
        .route(
            "/admin/validations/{id}/reject",
            post(admin::reject_validation),
        );

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest(fitkart_protocol::API_PREFIX, api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            health::track,
        ))
        .layer(middleware)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

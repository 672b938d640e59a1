//! The admin console: server-rendered HTML pages under `/admin/` for the people who run FitKart
//! (review queue, orders, users, products, settings, audit log, dashboard). Every action calls
//! the same domain function as the JSON admin API, so it writes the same `admin_logs` rows.
//!
//! Pages are askama templates (compile-time checked, every value HTML-escaped), the stylesheet
//! and the one small script are embedded in the binary, and charts are inline SVG drawn here.
//! Every answer carries a strict Content-Security-Policy. See
//! docs/adr/0008-admin-console-server-rendered.md and docs/admin-console.md.

mod assets;
mod charts;
mod data;
mod pages;
mod session;

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::http::ApiError;
use crate::http::AppState;

pub use session::{AdminSession, SESSION_COOKIE};

/// The Content-Security-Policy of every console answer: only the console's own stylesheet,
/// script and images (plus `data:` images), forms only to the console, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The console's routes, with their own timeouts, body limits and security headers. Merged
/// into the server's router beside the JSON API (the console is HTML for browsers, so it is
/// not part of the OpenAPI document).
pub fn router(state: &AppState) -> Router<AppState> {
    let config = &state.config;
    let pages = Router::new()
        .route("/admin", get(|| async { see_other("/admin/") }))
        .route("/admin/", get(pages::dashboard))
        .route(
            "/admin/login",
            get(session::login_page).post(session::login),
        )
        .route("/admin/logout", post(session::logout))
        .route("/admin/review", get(pages::review_queue))
        .route("/admin/review/{id}/approve", post(pages::approve))
        .route("/admin/review/{id}/reject", post(pages::reject))
        .route("/admin/orders", get(pages::orders))
        .route("/admin/orders/{id}", get(pages::order_detail))
        .route("/admin/orders/{id}/status", post(pages::order_status))
        .route("/admin/users", get(pages::users))
        .route("/admin/users/{id}", get(pages::user_detail))
        .route("/admin/users/{id}/wallet", post(pages::adjust_wallet))
        .route("/admin/users/{id}/disable", post(pages::disable_user))
        .route("/admin/users/{id}/enable", post(pages::enable_user))
        .route("/admin/products", get(pages::products))
        .route(
            "/admin/products/{id}",
            get(pages::product_edit).post(pages::product_save),
        )
        .route(
            "/admin/products/{id}/deactivate",
            post(pages::product_deactivate),
        )
        .route("/admin/products/import", get(pages::import_page))
        .route("/admin/products/import/apply", post(pages::import_apply))
        .route("/admin/settings", get(pages::settings))
        .route("/admin/settings/{key}", post(pages::setting_save))
        .route("/admin/audit", get(pages::audit))
        .route("/admin/assets/{name}", get(assets::serve))
        .route("/admin/{*rest}", get(not_found).post(not_found))
        .layer(request_timeout(config.request_timeout));
    // The preview of an import reads an upload of up to 20 MiB or fetches a URL.
    let import = Router::new()
        .route("/admin/products/import", post(pages::import_preview))
        .layer(DefaultBodyLimit::max(
            crate::shop::shopify::MAX_FEED_BYTES + 64 * 1024,
        ))
        .layer(request_timeout(config.import_timeout));
    pages
        .merge(import)
        .layer(axum::middleware::from_fn(security_headers))
}

fn request_timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limit)
}

/// Adds the security headers to every console answer; pages are never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/admin/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        HeaderName::from_static("content-security-policy"),
        CONTENT_SECURITY_POLICY,
    );
    set(
        headers,
        HeaderName::from_static("x-content-type-options"),
        "nosniff",
    );
    set(
        headers,
        HeaderName::from_static("referrer-policy"),
        "no-referrer",
    );
    set(headers, HeaderName::from_static("x-frame-options"), "DENY");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if !is_asset {
        set(headers, CACHE_CONTROL, "no-store");
    }
    response
}

/// A 303 redirect to a console path.
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Why a console request was not answered with its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No (live) session: sign in first, then come back to `next`.
    SignIn {
        /// The console path to return to.
        next: Option<String>,
    },
    /// Signed in, but the account is not (or no longer) an administrator.
    NotAdmin,
    /// A form without the session's CSRF token (or with another one).
    Csrf,
    /// A domain error, shown as a page with a link back.
    Api {
        /// The error (boxed: it is large, and the happy path should not pay for it).
        error: Box<ApiError>,
        /// Where "Back" leads.
        back: Option<String>,
    },
}

impl ConsoleError {
    /// A domain error whose page links back to `back`.
    pub fn with_back(error: impl Into<ApiError>, back: impl Into<String>) -> Self {
        Self::Api {
            error: Box::new(error.into()),
            back: Some(back.into()),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::Api {
            error: Box::new(error),
            back: None,
        }
    }
}

impl From<crate::error::DomainError> for ConsoleError {
    fn from(error: crate::error::DomainError) -> Self {
        Self::from(ApiError::from(error))
    }
}

impl From<crate::Error> for ConsoleError {
    fn from(error: crate::Error) -> Self {
        Self::from(ApiError::from(error))
    }
}

impl From<tokio_postgres::Error> for ConsoleError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::from(ApiError::from(crate::Error::from(error)))
    }
}

impl From<deadpool_postgres::PoolError> for ConsoleError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::from(ApiError::from(crate::Error::from(error)))
    }
}

/// The page shown for an error.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    code: &'a str,
    back: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message, code, back) = match &self {
            ConsoleError::SignIn { next } => {
                let target = match next {
                    Some(next) => format!("/admin/login?next={next}"),
                    None => "/admin/login".to_owned(),
                };
                let mut response = see_other(&target);
                response
                    .headers_mut()
                    .append(SET_COOKIE, session::clear_session_cookie());
                return response;
            }
            ConsoleError::NotAdmin => (
                StatusCode::FORBIDDEN,
                "Administrators only",
                "This account is not an administrator. Sign in with an administrator account.",
                "forbidden",
                "/admin/login",
            ),
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "The form has expired",
                "The form was not sent from this console session (or the session changed). \
                 Reload the page and try again.",
                "csrf_failed",
                "/admin/",
            ),
            ConsoleError::Api { error, back } => (
                error.status(),
                status_title(error.status()),
                error.message(),
                error.code(),
                back.as_deref().unwrap_or("/admin/"),
            ),
        };
        let page = ErrorPage {
            title,
            message,
            code,
            back,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (
                status,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                "error",
            )
                .into_response(),
        }
    }
}

fn status_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "That did not work",
        404 => "Not found",
        409 => "That conflicts with the current state",
        413 => "Too large",
        429 => "Too many attempts",
        s if s >= 500 => "Something went wrong on the server",
        _ => "That was refused",
    }
}

/// Renders a template as a page.
pub(crate) fn render(template: &impl Template) -> Result<Html<String>, ConsoleError> {
    template.render().map(Html).map_err(|err| {
        tracing::error!(error = %err, "a console template failed to render");
        ConsoleError::from(ApiError::internal())
    })
}

async fn not_found(_session: AdminSession) -> ConsoleError {
    ConsoleError::from(ApiError::not_found("there is no such console page"))
}

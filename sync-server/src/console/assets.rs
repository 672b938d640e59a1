//! The console's stylesheet and script, embedded in the binary: nothing to deploy beside it.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// The stylesheet of every page.
const CSS: &str = include_str!("assets/console.css");
/// Keyboard shortcuts and small conveniences; every page works without it.
const JS: &str = include_str!("assets/console.js");

/// `GET /admin/assets/{name}`: public (the sign-in page needs them), nothing secret inside.
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")], body).into_response()
}

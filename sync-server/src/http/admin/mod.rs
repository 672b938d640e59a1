//! `/api/v1/admin/*`: administrator routes, mirroring the `admin` domain (users, analytics,
//! settings, the audit log, wallet adjustments). Every handler takes
//! [`AdminUser`](super::extract::AdminUser), so a user token is 403 and a missing or bad one
//! 401. The review queue's admin routes live with the rewards domain (`http/rewards/review.rs`).

mod analytics;
mod logs;
mod settings;
mod users;
mod wallet;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The admin API's routes over the `admin` domain: users, analytics, settings, the audit log
/// and wallet adjustments.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::list_users))
        .routes(routes!(users::user_detail))
        .routes(routes!(wallet::adjust_wallet))
        .routes(routes!(users::disable_user))
        .routes(routes!(users::enable_user))
        .routes(routes!(analytics::analytics))
        .routes(routes!(settings::list_settings))
        .routes(routes!(settings::put_setting))
        .routes(routes!(logs::logs))
}

//! The HTTP surface of the `rewards` domain: recording steps and reading what they earned
//! (wallet, coin history, achievements), the leaderboards, and the review queue's admin routes.

mod leaderboard;
mod review;
mod steps;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The rewards routes, under the standard limits.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(steps::record))
        .routes(routes!(steps::today))
        .routes(routes!(steps::history))
        .routes(routes!(steps::wallet))
        .routes(routes!(steps::transactions))
        .routes(routes!(steps::achievements))
        .routes(routes!(leaderboard::read_board))
        .routes(routes!(leaderboard::admin_refresh))
        .routes(routes!(review::list_validations))
        .routes(routes!(review::approve_validation))
        .routes(routes!(review::reject_validation))
}

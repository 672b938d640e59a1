//! The HTTP surface of the `shop` domain: the catalogue and orders for users and admins, and
//! the Shopify catalogue import.

mod import;
mod orders;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use super::AppState;

/// The catalogue and order routes, under the standard limits.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orders::list_products))
        .routes(routes!(orders::get_product))
        .routes(routes!(orders::list_orders, orders::place_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(orders::admin_list_orders))
        .routes(routes!(orders::admin_order_status))
        .routes(routes!(orders::admin_create_product))
        .routes(routes!(orders::admin_update_product))
        .routes(routes!(orders::admin_deactivate_product))
}

/// `POST /api/v1/admin/products/import`: it downloads a feed of up to 20 MiB, so it has its
/// own body limit and (in [`super::routes`]) a longer timeout.
pub(super) fn import_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(
        routes!(import::import_products)
            .layer(DefaultBodyLimit::max(crate::shop::shopify::MAX_FEED_BYTES)),
    )
}

//! `POST /api/v1/admin/products/import`. (Being written.)

use axum::http::StatusCode;

use super::extract::AdminUser;
use crate::error::ApiError;

/// Imports a Shopify product export (not yet available).
pub async fn import_products(AdminUser(_admin): AdminUser) -> Result<StatusCode, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "the import is being written",
    ))
}

//! `/api/v1/products*`, `/api/v1/orders*` and their admin routes.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use fitkart_protocol::orders::{
    Order, OrderPage, OrderStatusRequest, PlaceOrderRequest, Product, ProductInput, ProductPage,
};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::extract::{AdminUser, AuthUser, Client};
use super::json::ApiJson;
use crate::catalogue;
use crate::error::ApiError;
use crate::orders::{self, Actor};

/// Query of the list routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this category (products).
    pub category: Option<String>,
    /// Only this status (admin orders).
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

fn page(
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<(ListQuery, i64, i64), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::validation("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation(
            "offset",
            "offset must not be negative",
        ));
    }
    Ok((query, limit, offset))
}

fn id(path: Result<Path<Uuid>, PathRejection>, what: &str) -> Result<Uuid, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::not_found(format!("no such {what}")))
}

/// `GET /api/v1/products?category=&limit=&offset=`.
pub async fn list_products(
    State(state): State<AppState>,
    _user: AuthUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ProductPage>, ApiError> {
    let (query, limit, offset) = page(query)?;
    let conn = state.pool.get().await?;
    let (products, total) =
        catalogue::list(&conn, query.category.as_deref(), limit, offset).await?;
    Ok(Json(ProductPage { products, total }))
}

/// `GET /api/v1/products/{id}`.
pub async fn get_product(
    State(state): State<AppState>,
    _user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Product>, ApiError> {
    let id = id(path, "product")?;
    let conn = state.pool.get().await?;
    Ok(Json(catalogue::get(&conn, id).await?))
}

/// `POST /api/v1/orders` → 201 (new) or 200 (the same request again).
pub async fn place_order(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(request): ApiJson<PlaceOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let (order, created) = orders::place(&state.pool, user.id, &request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(order)))
}

/// `GET /api/v1/orders?limit=&offset=`: the caller's own orders.
pub async fn list_orders(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<OrderPage>, ApiError> {
    let (_, limit, offset) = page(query)?;
    let conn = state.pool.get().await?;
    let (orders, total) = orders::list(&conn, Some(user.id), None, limit, offset).await?;
    Ok(Json(OrderPage { orders, total }))
}

/// `GET /api/v1/orders/{id}`: the caller's own order; anyone else's is 404.
pub async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Order>, ApiError> {
    let id = id(path, "order")?;
    let conn = state.pool.get().await?;
    Ok(Json(orders::get_own(&conn, user.id, id).await?))
}

/// `POST /api/v1/orders/{id}/cancel`: the owner cancels a pending or confirmed order.
pub async fn cancel_order(
    State(state): State<AppState>,
    user: AuthUser,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Order>, ApiError> {
    let id = id(path, "order")?;
    let request = OrderStatusRequest {
        status: "cancelled".into(),
        tracking_number: None,
        reason: Some("cancelled by the customer".into()),
    };
    Ok(Json(
        orders::transition(&state.pool, Actor::Owner(user.id), id, &request, &client).await?,
    ))
}

/// `GET /api/v1/admin/orders?status=&limit=&offset=`.
pub async fn admin_list_orders(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<OrderPage>, ApiError> {
    let (query, limit, offset) = page(query)?;
    let conn = state.pool.get().await?;
    let (orders, total) = orders::list(&conn, None, query.status.as_deref(), limit, offset).await?;
    Ok(Json(OrderPage { orders, total }))
}

/// `POST /api/v1/admin/orders/{id}/status`.
pub async fn admin_order_status(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ApiJson(request): ApiJson<OrderStatusRequest>,
) -> Result<Json<Order>, ApiError> {
    let id = id(path, "order")?;
    Ok(Json(
        orders::transition(&state.pool, Actor::Admin(admin.id), id, &request, &client).await?,
    ))
}

/// `POST /api/v1/admin/products` → 201.
pub async fn admin_create_product(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    ApiJson(input): ApiJson<ProductInput>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let product = catalogue::create(&state.pool, admin.id, &input, &client).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// `PATCH /api/v1/admin/products/{id}`.
pub async fn admin_update_product(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
    ApiJson(input): ApiJson<ProductInput>,
) -> Result<Json<Product>, ApiError> {
    let id = id(path, "product")?;
    Ok(Json(
        catalogue::update(&state.pool, admin.id, id, &input, "product.update", &client).await?,
    ))
}

/// `POST /api/v1/admin/products/{id}/deactivate`.
pub async fn admin_deactivate_product(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Client(client): Client,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Product>, ApiError> {
    let id = id(path, "product")?;
    let input = ProductInput {
        is_active: Some(false),
        ..ProductInput::default()
    };
    Ok(Json(
        catalogue::update(
            &state.pool,
            admin.id,
            id,
            &input,
            "product.deactivate",
            &client,
        )
        .await?,
    ))
}

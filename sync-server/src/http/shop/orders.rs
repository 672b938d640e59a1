//! `/api/v1/products*`, `/api/v1/orders*` and their admin routes.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::orders::{
    Order, OrderPage, OrderStatusRequest, PlaceOrderRequest, Product, ProductInput, ProductPage,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::http::ApiError;
use crate::http::AppState;
use crate::http::extract::{AdminUser, AuthUser, Client, PendingAuth};
use crate::http::json::ApiJson;
use crate::http::openapi::{TAG_ADMIN, TAG_ORDERS};
use crate::http::query::ApiQuery;
use crate::replica::Freshness;
use crate::shop::catalogue;
use crate::shop::orders::{self, Actor};

/// Query of the list routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

fn page(ApiQuery(query): ApiQuery<ListQuery>) -> Result<(ListQuery, i64, i64), ApiError> {
    for (field, value) in [("category", &query.category), ("status", &query.status)] {
        fitkart_protocol::validate::optional_text(field, value.as_deref(), 64)?;
    }
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
#[utoipa::path(
    get,
    path = "/products",
    tag = TAG_ORDERS,
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = ProductPage,
         description = "Active products, by category, price and id"),
        (status = 422, body = ErrorEnvelope,
         description = "`limit` is not between 1 and 100, `offset` is negative, or an unknown \
             query parameter (`validation_failed`)"),
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    _user: AuthUser,
    query: ApiQuery<ListQuery>,
) -> Result<Json<ProductPage>, ApiError> {
    let (query, limit, offset) = page(query)?;
    // Stock shown here may lag; placing an order checks it on the primary.
    let conn = state.reads.get(Freshness::AnyLag).await?;
    let (products, total) =
        catalogue::list(&conn, query.category.as_deref(), limit, offset).await?;
    Ok(Json(ProductPage { products, total }))
}

/// `GET /api/v1/products/{id}`.
#[utoipa::path(
    get,
    path = "/products/{id}",
    tag = TAG_ORDERS,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product (`not_found`)", body = ErrorEnvelope),
    )
)]
pub async fn get_product(
    State(state): State<AppState>,
    _user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Product>, ApiError> {
    let id = id(path, "product")?;
    let conn = state.reads.get(Freshness::AnyLag).await?;
    Ok(Json(catalogue::get(&conn, id).await?))
}

/// `POST /api/v1/orders` → 201 (new) or 200 (the same request again).
#[utoipa::path(
    post,
    path = "/orders",
    tag = TAG_ORDERS,
    security(("bearer" = [])),
    request_body = PlaceOrderRequest,
    responses(
        (status = 201, body = Order,
         description = "The order was placed; its coins and stock are held"),
        (status = 200, body = Order,
         description = "The same `client_order_id` again: the order placed the first time"),
        (status = 404, body = ErrorEnvelope,
         description = "A product does not exist or is no longer available (`product_not_found`)"),
        (status = 409, body = ErrorEnvelope,
         description = "Not enough coins (`insufficient_coins`) or stock (`out_of_stock`), or the \
             `client_order_id` was used for a different order (`idempotency_conflict`)"),
        (status = 422, body = ErrorEnvelope,
         description = "The order is invalid: no or too many lines, a bad quantity or address \
             (`validation_failed`, `unknown_field`)"),
    )
)]
pub async fn place_order(
    State(state): State<AppState>,
    auth: PendingAuth,
    body: Result<ApiJson<PlaceOrderRequest>, ApiError>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    // The account is checked first, on the connection the order is then placed on (one wait
    // for the pool): an ended session hears 401 whatever it sent, and only a live account
    // hears what is wrong with its request.
    let (user, mut conn) = auth.check_on_pooled(&state.pool).await?;
    let ApiJson(request) = body?;
    let (order, created) = orders::place(&mut conn, user.id, &request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(order)))
}

/// `GET /api/v1/orders?limit=&offset=`: the caller's own orders.
#[utoipa::path(
    get,
    path = "/orders",
    tag = TAG_ORDERS,
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The caller's orders, newest first", body = OrderPage),
        (status = 422, body = ErrorEnvelope,
         description = "`limit` is not between 1 and 100, `offset` is negative, or an unknown \
             query parameter (`validation_failed`)"),
    )
)]
pub async fn list_orders(
    State(state): State<AppState>,
    user: AuthUser,
    query: ApiQuery<ListQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let (_, limit, offset) = page(query)?;
    let conn = state.reads.get(Freshness::own_writes(user.id)).await?;
    let (orders, total) = orders::list(&conn, Some(user.id), None, limit, offset).await?;
    Ok(Json(OrderPage { orders, total }))
}

/// `GET /api/v1/orders/{id}`: the caller's own order; anyone else's is 404.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = TAG_ORDERS,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, body = ErrorEnvelope,
         description = "No such order, or not the caller's (`not_found`)"),
    )
)]
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
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    tag = TAG_ORDERS,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The cancelled order; its coins are released", body = Order),
        (status = 404, body = ErrorEnvelope,
         description = "No such order, or not the caller's (`not_found`)"),
        (status = 409, body = ErrorEnvelope,
         description = "The order can no longer be cancelled (`invalid_transition`)"),
    )
)]
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
#[utoipa::path(
    get,
    path = "/admin/orders",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Every user's orders, newest first", body = OrderPage),
        (status = 422, body = ErrorEnvelope,
         description = "`limit` is not between 1 and 100, `offset` is negative, or an unknown \
             query parameter (`validation_failed`)"),
    )
)]
pub async fn admin_list_orders(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    query: ApiQuery<ListQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let (query, limit, offset) = page(query)?;
    let conn = state.pool.get().await?;
    let (orders, total) = orders::list(&conn, None, query.status.as_deref(), limit, offset).await?;
    Ok(Json(OrderPage { orders, total }))
}

/// `POST /api/v1/admin/orders/{id}/status`.
#[utoipa::path(
    post,
    path = "/admin/orders/{id}/status",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    request_body = OrderStatusRequest,
    responses(
        (status = 200, description = "The order in its new status", body = Order),
        (status = 404, description = "No such order (`not_found`)", body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope,
         description = "The order cannot move to that status (`invalid_transition`)"),
        (status = 422, body = ErrorEnvelope,
         description = "Unknown status, or a missing tracking number or reason \
             (`validation_failed`)"),
    )
)]
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
#[utoipa::path(
    post,
    path = "/admin/products",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    request_body = ProductInput,
    responses(
        (status = 201, description = "The new product", body = Product),
        (status = 409, description = "The SKU is taken (`sku_taken`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "A field is missing or invalid (`validation_failed`, `unknown_field`)"),
    )
)]
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
#[utoipa::path(
    patch,
    path = "/admin/products/{id}",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = ProductInput,
    responses(
        (status = 200, description = "The changed product", body = Product),
        (status = 404, description = "No such product (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The SKU is taken (`sku_taken`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope,
         description = "A field is invalid (`validation_failed`, `unknown_field`)"),
    )
)]
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
#[utoipa::path(
    post,
    path = "/admin/products/{id}/deactivate",
    tag = TAG_ADMIN,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product, no longer orderable", body = Product),
        (status = 404, description = "No such product (`not_found`)", body = ErrorEnvelope),
    )
)]
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

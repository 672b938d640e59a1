//! Privacy: a user never sees another user's orders.

use super::*;

#[tokio::test]
async fn another_users_order_does_not_exist_for_you() {
    let (server, api) = start().await;
    let owner = customer(&server, &api, "owner@example.com", 500).await;
    let snoop = customer(&server, &api, "snoop@example.com", 500).await;
    let lamp = add_product(&server, "Lamp", 100, 5).await;
    let order = api.place_ok(&owner, &[(lamp, 1)]).await;

    let (status, theirs) = api.get(&format!("/orders/{}", order.id), &snoop).await;
    let (_, unknown) = api
        .get(&format!("/orders/{}", Uuid::new_v4()), &snoop)
        .await;
    assert_eq!(
        (status, code(&theirs)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        code(&unknown),
        "not_found",
        "indistinguishable from unknown"
    );

    let (status, body) = api.cancel(&snoop, order.id).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = api.cancel(&snoop, Uuid::new_v4()).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let (status, body) = api.get("/orders", &snoop).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!((page.total, page.orders.len()), (0, 0));

    assert_eq!(api.order(&owner, order.id).await, order, "untouched");
    assert_eq!(balances(&api.wallet(&owner).await), (400, 100));
    assert_eq!(balances(&api.wallet(&snoop).await), (500, 0));
    assert_eq!(stock(&server, lamp).await, 4);
    assert_ledger_ok(&server).await;
}

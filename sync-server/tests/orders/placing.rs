//! Placing orders: holds, stock, idempotent retries, and every refusal changing nothing.

use super::*;

#[tokio::test]
async fn an_order_holds_its_coins_and_stock_and_shows_up_for_its_owner() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "shopper@example.com", 1000).await;
    let shoes = add_product(&server, "Shoes", 150, 10).await;
    let socks = add_product(&server, "Socks", 100, 5).await;

    let order = api.place_ok(&user, &[(shoes, 2), (socks, 1)]).await;
    assert_eq!(order.status, "pending");
    assert_eq!(order.total_coins, 400, "2 x 150 + 1 x 100");
    let suffix = order.order_code.strip_prefix("FK-").unwrap_or("");
    assert!(
        suffix.len() == 8
            && suffix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "order code {}",
        order.order_code
    );
    let mut items: Vec<(Uuid, &str, i64, i64)> = order
        .items
        .iter()
        .map(|i| {
            (
                i.product_id,
                i.product_name.as_str(),
                i.quantity,
                i.unit_coin_price,
            )
        })
        .collect();
    items.sort();
    let mut expected = vec![(shoes, "Shoes", 2, 150), (socks, "Socks", 1, 100)];
    expected.sort();
    assert_eq!(items, expected);
    assert_eq!(order.shipping_address, address());
    assert_eq!(order.tracking_number, None);
    assert_eq!(
        (order.shipped_at, order.delivered_at, order.cancelled_at),
        (None, None, None)
    );

    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (600, 400), "held, not spent");
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(
        (stock(&server, shoes).await, stock(&server, socks).await),
        (8, 4)
    );
    assert_eq!(entries(&server, &user, "order_hold").await, 1);

    assert_eq!(api.order(&user, order.id).await, order);
    let (status, body) = api.get("/orders", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!((page.total, page.orders), (1, vec![order]));
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn orders_list_newest_first_in_pages() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "shopper@example.com", 1000).await;
    let cap = add_product(&server, "Cap", 10, 50).await;
    let mut placed = Vec::new();
    for quantity in 1..=3 {
        placed.push(api.place_ok(&user, &[(cap, quantity)]).await.id);
    }
    placed.reverse();

    let (status, body) = api.get("/orders?limit=2", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: OrderPage = serde_json::from_value(body).unwrap();
    let (status, body) = api.get("/orders?limit=2&offset=2", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!((first.total, second.total), (3, 3));
    let ids: Vec<Uuid> = first
        .orders
        .iter()
        .chain(&second.orders)
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, placed, "newest first");
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn the_same_order_sent_again_returns_it_without_holding_twice() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "retry@example.com", 1000).await;
    let mat = add_product(&server, "Yoga mat", 100, 20).await;

    // Sequential retries, as after a dropped response.
    let body = order_body(Uuid::new_v4(), &[(mat, 2)]);
    let (status, first) = api.place(&user, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first: Order = serde_json::from_value(first).unwrap();
    for _ in 0..4 {
        let (status, again) = api.place(&user, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(serde_json::from_value::<Order>(again).unwrap(), first);
    }
    assert_eq!(balances(&api.wallet(&user).await), (800, 200));
    assert_eq!(stock(&server, mat).await, 18);

    // Parallel retries, as from a device that fired the same request five times.
    let body = order_body(Uuid::new_v4(), &[(mat, 3)]);
    let requests = (0..5)
        .map(|_| ("/orders".to_owned(), body.clone(), user.clone()))
        .collect();
    let answers = post_all(&api, requests).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    let mut ids = Vec::new();
    for (status, answer) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{status} {answer}"
        );
        ids.push(serde_json::from_value::<Order>(answer.clone()).unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for all five");

    assert_eq!(order_count(&server).await, 2);
    assert_eq!(entries(&server, &user, "order_hold").await, 2);
    assert_eq!(balances(&api.wallet(&user).await), (500, 500));
    assert_eq!(stock(&server, mat).await, 15);

    // The same id with another body is a conflict and changes nothing.
    let mut changed = body.clone();
    changed["items"][0]["quantity"] = json!(4);
    let mut moved = body.clone();
    moved["shipping_address"]["city"] = json!("Hamburg");
    for conflicting in [changed, moved] {
        let (status, answer) = api.place(&user, conflicting).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::CONFLICT, "idempotency_conflict"),
            "{answer}"
        );
    }
    assert_eq!(order_count(&server).await, 2);
    assert_eq!(balances(&api.wallet(&user).await), (500, 500));
    assert_eq!(stock(&server, mat).await, 15);
    assert_ledger_ok(&server).await;
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn refused_orders_change_nothing() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "careful@example.com", 500).await;
    let cheap = add_product(&server, "Band", 10, 50).await;
    let pricey = add_product(&server, "Watch", 300, 10).await;
    let scarce = add_product(&server, "Limited", 20, 2).await;
    let gone = add_product(&server, "Sold out", 20, 0).await;
    let retired = add_product(&server, "Retired", 20, 10).await;
    common::execute(
        &server,
        "UPDATE reward_products SET is_active = false WHERE id = $1",
        &[&retired],
    )
    .await;
    let mut many = Vec::new();
    for n in 0..21 {
        many.push((add_product(&server, &format!("Item {n}"), 1, 10).await, 1));
    }
    let products = [cheap, pricey, scarce, gone, retired];
    let stock_before: Vec<i64> = {
        let mut all = Vec::new();
        for p in products.iter().chain(many.iter().map(|(p, _)| p)) {
            all.push(stock(&server, *p).await);
        }
        all
    };

    let valid = || order_body(Uuid::new_v4(), &[(cheap, 1)]);
    let with = |pointer: &str, value: Value| {
        let mut body = valid();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let item = |product: Uuid, quantity: i32| json!({"product_id": product, "quantity": quantity});
    let validation = [
        (with("/items", json!([])), "items"),
        (order_body(Uuid::new_v4(), &many), "items"),
        (with("/items/0/quantity", json!(0)), "quantity"),
        (with("/items/0/quantity", json!(-1)), "quantity"),
        (with("/items/0/quantity", json!(101)), "quantity"),
        (
            with(
                "/items",
                json!([item(cheap, 1), item(pricey, 1), item(cheap, 2)]),
            ),
            "items",
        ),
        (with("/shipping_address/name", json!("")), "name"),
        (
            with("/shipping_address/name", json!("n".repeat(101))),
            "name",
        ),
        (with("/shipping_address/line1", json!("")), "line1"),
        (
            with("/shipping_address/line1", json!("l".repeat(201))),
            "line1",
        ),
        (with("/shipping_address/city", json!("")), "city"),
        (
            with("/shipping_address/city", json!("c".repeat(101))),
            "city",
        ),
        (
            with("/shipping_address/postal_code", json!("")),
            "postal_code",
        ),
        (
            with("/shipping_address/postal_code", json!("1".repeat(21))),
            "postal_code",
        ),
        (with("/shipping_address/country", json!("de")), "country"),
        (with("/shipping_address/country", json!("DEU")), "country"),
        (with("/shipping_address/country", json!("D")), "country"),
        (with("/shipping_address/country", json!("")), "country"),
    ];
    for (body, field) in validation {
        let (status, answer) = api.place(&user, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{body}: {answer}"
        );
        let named = answer["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(
            named.contains(field),
            "details.field {named:?} should name {field}: {answer}"
        );
    }

    let mut extra_top = valid();
    extra_top["coupon"] = json!("FREE");
    let mut extra_item = valid();
    extra_item["items"][0]["price"] = json!(0);
    let mut extra_address = valid();
    extra_address["shipping_address"]["floor"] = json!(3);
    for body in [extra_top, extra_item, extra_address] {
        let (status, answer) = api.place(&user, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"),
            "{body}: {answer}"
        );
    }

    for missing in [Uuid::new_v4(), retired] {
        let body = order_body(Uuid::new_v4(), &[(cheap, 1), (missing, 1)]);
        let (status, answer) = api.place(&user, body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::NOT_FOUND, "product_not_found"),
            "{answer}"
        );
    }

    let (status, answer) = api
        .place(&user, order_body(Uuid::new_v4(), &[(pricey, 2)]))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "insufficient_coins"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"],
        json!({"available": 500, "needed": 600})
    );

    let (status, answer) = api
        .place(
            &user,
            order_body(Uuid::new_v4(), &[(cheap, 1), (scarce, 3)]),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "out_of_stock"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"]["items"],
        json!([{"product_id": scarce, "requested": 3, "available": 2}])
    );
    let (status, answer) = api
        .place(&user, order_body(Uuid::new_v4(), &[(gone, 1)]))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "out_of_stock"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"]["items"],
        json!([{"product_id": gone, "requested": 1, "available": 0}])
    );

    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (500, 0), "no refusal held coins");
    assert_eq!(wallet.lifetime_spent, 0);
    let mut stock_after = Vec::new();
    for p in products.iter().chain(many.iter().map(|(p, _)| p)) {
        stock_after.push(stock(&server, *p).await);
    }
    assert_eq!(stock_after, stock_before, "no refusal took stock");
    assert_eq!(order_count(&server).await, 0);
    assert_eq!(entries(&server, &user, "order_hold").await, 0);
    let (_, body) = api.get("/orders", &user).await;
    assert_eq!(body["total"], 0);

    // The exact amount still goes through afterwards.
    let order = api.place_ok(&user, &[(cheap, 20), (pricey, 1)]).await;
    assert_eq!(order.total_coins, 500);
    assert_eq!(balances(&api.wallet(&user).await), (0, 500));
    assert_ledger_ok(&server).await;
}

#[tokio::test]
async fn a_missing_address_field_is_named_and_changes_nothing() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "forgetful@example.com", 500).await;
    let band = add_product(&server, "Band", 10, 10).await;
    for field in ["name", "line1", "city", "postal_code", "country"] {
        let mut body = order_body(Uuid::new_v4(), &[(band, 1)]);
        body["shipping_address"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        let (status, answer) = api.place(&user, body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "without {field}: {answer}"
        );
        let named = answer["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(
            named.contains(field),
            "details.field {named:?} should name {field}: {answer}"
        );
    }
    assert_eq!(balances(&api.wallet(&user).await), (500, 0));
    assert_eq!(stock(&server, band).await, 10);
    assert_eq!(order_count(&server).await, 0);
    assert_ledger_ok(&server).await;
}

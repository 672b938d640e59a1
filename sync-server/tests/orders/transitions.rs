//! Status transitions: every legal and illegal move, and cancellation racing delivery.

use super::*;

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn an_order_goes_all_the_way_to_delivery_and_back_as_a_refund() {
    let (server, api) = start().await;
    let admin = api.admin_account(&server).await;
    let user = customer(&server, &api, "happy@example.com", 1000).await;
    let tent = add_product(&server, "Tent", 200, 5).await;
    let order = api.place_ok(&user, &[(tent, 2)]).await;
    assert_eq!(balances(&api.wallet(&user).await), (600, 400));

    // Users cannot run the fulfilment.
    let (status, body) = api.move_to(&user, order.id, "confirmed").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = api.get("/admin/orders", &user).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));

    let (status, body) = api.get("/admin/orders?status=pending", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let queue: OrderPage = serde_json::from_value(body).unwrap();
    assert_eq!(queue.total, 1);
    assert_eq!(queue.orders[0].id, order.id);

    for status in ["confirmed", "processing"] {
        let moved = api.advance(&admin, order.id, &[status]).await;
        assert_eq!(moved.tracking_number, None);
        assert_eq!(balances(&api.wallet(&user).await), (600, 400));
        assert_eq!(stock(&server, tent).await, 3);
    }

    // Shipping needs a tracking number.
    let (status, body) = api
        .set_status(&admin, order.id, json!({"status": "shipped"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["field"], "tracking_number");
    assert_eq!(api.order(&user, order.id).await.status, "processing");
    let (status, body) = api
        .set_status(
            &admin,
            order.id,
            json!({"status": "shipped", "tracking_number": "JD014600006281"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shipped: Order = serde_json::from_value(body).unwrap();
    assert_eq!(shipped.status, "shipped");
    assert_eq!(shipped.tracking_number.as_deref(), Some("JD014600006281"));
    assert!(shipped.shipped_at.is_some());
    assert_eq!(balances(&api.wallet(&user).await), (600, 400));

    // Delivery spends the hold.
    let delivered = api.advance(&admin, order.id, &["delivered"]).await;
    assert!(delivered.delivered_at.is_some());
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (600, 0));
    assert_eq!(wallet.lifetime_spent, 400);
    assert_eq!(stock(&server, tent).await, 3, "delivered goods stay sold");

    // A refund needs a reason, then gives the coins back.
    let (status, body) = api
        .set_status(&admin, order.id, json!({"status": "refunded"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{body}"
    );
    assert_eq!(api.order(&user, order.id).await.status, "delivered");
    let (status, body) = api
        .set_status(
            &admin,
            order.id,
            json!({"status": "refunded", "reason": "arrived broken"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_value::<Order>(body).unwrap().status,
        "refunded"
    );
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (1000, 0));
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(api.order(&user, order.id).await.status, "refunded");

    let kinds = entries_for_order(&server, order.id).await;
    let expected: BTreeMap<String, i64> = [("order_hold", 1), ("order_capture", 1), ("refund", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    assert_eq!(kinds, expected);
    assert_eq!(
        admin_log_count(&server, "order.status").await,
        5,
        "one row per transition, none for refused ones"
    );
    let (_, body) = api.get("/admin/orders?status=refunded", &admin).await;
    assert_eq!(body["total"], 1);
    assert_ledger_ok(&server).await;
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn cancelling_releases_the_hold_and_restores_stock() {
    let (server, api) = start().await;
    let admin = api.admin_account(&server).await;
    let user = customer(&server, &api, "fickle@example.com", 1000).await;
    let ball = add_product(&server, "Ball", 50, 10).await;

    // The owner cancels from pending and from confirmed.
    let pending = api.place_ok(&user, &[(ball, 2)]).await;
    let confirmed = api.place_ok(&user, &[(ball, 3)]).await;
    api.advance(&admin, confirmed.id, &["confirmed"]).await;
    assert_eq!(balances(&api.wallet(&user).await), (750, 250));
    assert_eq!(stock(&server, ball).await, 5);

    let (status, body) = api.cancel(&user, pending.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cancelled: Order = serde_json::from_value(body).unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(balances(&api.wallet(&user).await), (850, 150));
    assert_eq!(stock(&server, ball).await, 7);

    let (status, body) = api.cancel(&user, confirmed.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(balances(&api.wallet(&user).await), (1000, 0));
    assert_eq!(stock(&server, ball).await, 10);

    let (status, body) = api.cancel(&user, pending.id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "cancelling twice releases once"
    );
    assert_eq!(balances(&api.wallet(&user).await), (1000, 0));
    assert_eq!(entries(&server, &user, "order_release").await, 2);

    // Once processing, only an admin can cancel.
    let processing = api.place_ok(&user, &[(ball, 1)]).await;
    api.advance(&admin, processing.id, &["confirmed", "processing"])
        .await;
    let (status, body) = api.cancel(&user, processing.id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "{body}"
    );
    assert_eq!(balances(&api.wallet(&user).await), (950, 50));

    // The admin cancels from pending, confirmed and processing, always with a reason.
    let admin_pending = api.place_ok(&user, &[(ball, 2)]).await;
    let admin_confirmed = api.place_ok(&user, &[(ball, 2)]).await;
    api.advance(&admin, admin_confirmed.id, &["confirmed"])
        .await;
    assert_eq!(balances(&api.wallet(&user).await), (750, 250));
    assert_eq!(stock(&server, ball).await, 5);
    let logged_before = admin_log_count(&server, "order.status").await;
    for (order, held) in [
        (&processing, 50),
        (&admin_pending, 100),
        (&admin_confirmed, 100),
    ] {
        let (status, body) = api
            .set_status(&admin, order.id, json!({"status": "cancelled"}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "a reason is required: {body}"
        );
        let before = api.wallet(&user).await;
        let stock_before = stock(&server, ball).await;
        let (status, body) = api
            .set_status(
                &admin,
                order.id,
                json!({"status": "cancelled", "reason": "customer called"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            serde_json::from_value::<Order>(body).unwrap().status,
            "cancelled"
        );
        let after = api.wallet(&user).await;
        assert_eq!(
            balances(&after),
            (before.available_coins + held, before.frozen_coins - held)
        );
        assert_eq!(stock(&server, ball).await, stock_before + held / 50);
    }
    assert_eq!(
        admin_log_count(&server, "order.status").await - logged_before,
        3,
        "one row per admin cancel, none for the refused ones"
    );
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (1000, 0));
    assert_eq!(wallet.lifetime_spent, 0);
    assert_eq!(stock(&server, ball).await, 10);
    assert_eq!(entries(&server, &user, "order_release").await, 5);
    assert_eq!(entries(&server, &user, "order_capture").await, 0);
    assert_ledger_ok(&server).await;
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn illegal_transitions_are_refused_and_change_nothing() {
    let (server, api) = start().await;
    let admin = api.admin_account(&server).await;
    let user = customer(&server, &api, "tester@example.com", 1000).await;
    let pin = add_product(&server, "Pin", 10, 100).await;

    const ALL: [&str; 7] = [
        "pending",
        "confirmed",
        "processing",
        "shipped",
        "delivered",
        "cancelled",
        "refunded",
    ];
    let paths: [(&str, &[&str], &[&str]); 7] = [
        ("pending", &[], &["confirmed", "cancelled"]),
        ("confirmed", &["confirmed"], &["processing", "cancelled"]),
        (
            "processing",
            &["confirmed", "processing"],
            &["shipped", "cancelled"],
        ),
        (
            "shipped",
            &["confirmed", "processing", "shipped"],
            &["delivered"],
        ),
        (
            "delivered",
            &["confirmed", "processing", "shipped", "delivered"],
            &["refunded"],
        ),
        ("cancelled", &["cancelled"], &[]),
        (
            "refunded",
            &[
                "confirmed",
                "processing",
                "shipped",
                "delivered",
                "refunded",
            ],
            &[],
        ),
    ];
    let user_may_cancel = ["pending", "confirmed"];

    let mut legal_moves = 0;
    for (state, path, legal) in paths {
        let order = api.place_ok(&user, &[(pin, 1)]).await;
        if !path.is_empty() {
            api.advance(&admin, order.id, path).await;
        }
        legal_moves += path.len() as i64;
        let before = api.order(&user, order.id).await;
        assert_eq!(before.status, state);
        let wallet_before = api.wallet(&user).await;
        let stock_before = stock(&server, pin).await;
        let logged_before = admin_log_count(&server, "order.status").await;

        for target in ALL.iter().filter(|t| !legal.contains(t)) {
            let (status, body) = api.move_to(&admin, order.id, target).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::CONFLICT, "invalid_transition"),
                "{state} -> {target}: {body}"
            );
        }
        if !user_may_cancel.contains(&state) {
            let (status, body) = api.cancel(&user, order.id).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::CONFLICT, "invalid_transition"),
                "user cancel from {state}: {body}"
            );
        }

        assert_eq!(api.order(&user, order.id).await, before, "{state}");
        assert_eq!(api.wallet(&user).await, wallet_before, "{state}");
        assert_eq!(stock(&server, pin).await, stock_before, "{state}");
        assert_eq!(
            admin_log_count(&server, "order.status").await,
            logged_before,
            "refusals are not logged ({state})"
        );
    }
    assert_eq!(admin_log_count(&server, "order.status").await, legal_moves);
    assert_ledger_ok(&server).await;
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_racing_fulfilment_settles_each_order_exactly_once() {
    let (server, api) = start().await;
    let admin = api.admin_account(&server).await;
    let user = customer(&server, &api, "racer@example.com", 1000).await;
    let kite = add_product(&server, "Kite", 100, 20).await;
    let status_path = |id: Uuid| format!("/admin/orders/{id}/status");
    let cancel_path = |id: Uuid| format!("/orders/{id}/cancel");

    let mut orders = Vec::new();
    for _ in 0..4 {
        let order = api.place_ok(&user, &[(kite, 1)]).await;
        api.advance(&admin, order.id, &["confirmed"]).await;
        orders.push(order.id);
    }

    for &id in &orders {
        // Confirmed: the owner cancels while the admin starts processing.
        let answers = post_all(
            &api,
            vec![
                (cancel_path(id), json!({}), user.clone()),
                (status_path(id), transition("processing"), admin.clone()),
            ],
        )
        .await;
        assert_one_wins(&answers);
        if api.order(&user, id).await.status != "processing" {
            continue;
        }
        // Processing: the admin cancels while another admin session ships.
        let answers = post_all(
            &api,
            vec![
                (status_path(id), transition("cancelled"), admin.clone()),
                (status_path(id), transition("shipped"), admin.clone()),
            ],
        )
        .await;
        assert_one_wins(&answers);
        if api.order(&user, id).await.status != "shipped" {
            continue;
        }
        // Shipped: delivery races both kinds of cancel; only delivery is legal.
        let answers = post_all(
            &api,
            vec![
                (status_path(id), transition("delivered"), admin.clone()),
                (status_path(id), transition("cancelled"), admin.clone()),
                (cancel_path(id), json!({}), user.clone()),
            ],
        )
        .await;
        assert_one_wins(&answers);
        assert_eq!(answers[0].0, StatusCode::OK, "{answers:?}");
    }

    let mut spent = 0;
    let mut delivered = 0;
    for &id in &orders {
        let order = api.order(&user, id).await;
        let kinds = entries_for_order(&server, id).await;
        let hold = kinds.get("order_hold").copied().unwrap_or(0);
        let capture = kinds.get("order_capture").copied().unwrap_or(0);
        let release = kinds.get("order_release").copied().unwrap_or(0);
        assert_eq!(hold, 1, "{kinds:?}");
        match order.status.as_str() {
            "delivered" => {
                assert_eq!((capture, release), (1, 0), "{kinds:?}");
                spent += order.total_coins;
                delivered += 1;
            }
            "cancelled" => assert_eq!((capture, release), (0, 1), "{kinds:?}"),
            other => panic!("order left in {other}"),
        }
    }
    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (1000 - spent, 0));
    assert_eq!(wallet.lifetime_spent, spent);
    assert_eq!(stock(&server, kite).await, 20 - delivered);
    assert_ledger_ok(&server).await;
}

/// Exactly one of racing transitions succeeded; the others were refused as invalid.
fn assert_one_wins(answers: &[(StatusCode, Value)]) {
    let winners = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, code(body)),
            (StatusCode::CONFLICT, "invalid_transition"),
            "{answers:?}"
        );
    }
}

//! Concurrency: racing orders never double-spend coins nor oversell stock.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_on_one_wallet_spend_only_what_is_there() {
    let (server, api) = start().await;
    let user = customer(&server, &api, "eager@example.com", 1000).await;
    let bike = add_product(&server, "Bike", 300, 100).await;

    let requests = (0..10)
        .map(|_| {
            let body = order_body(Uuid::new_v4(), &[(bike, 1)]);
            ("/orders".to_owned(), body, user.clone())
        })
        .collect();
    let answers = post_all(&api, requests).await;
    let mut created = 0;
    for (status, answer) in &answers {
        match *status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(code(answer), "insufficient_coins", "{answer}");
                assert_eq!(answer["error"]["details"]["needed"], 300);
                let available = answer["error"]["details"]["available"].as_i64().unwrap();
                assert!((0..300).contains(&available), "{answer}");
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(
        created, 3,
        "only three orders fit into 1000 coins: {answers:?}"
    );

    let wallet = api.wallet(&user).await;
    assert_eq!(balances(&wallet), (100, 900));
    assert_eq!(stock(&server, bike).await, 97);
    assert_eq!(order_count(&server).await, 3);
    assert_eq!(entries(&server, &user, "order_hold").await, 3);
    assert_ledger_ok(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_for_the_last_unit_sell_it_once() {
    let (server, api) = start().await;
    let last = add_product(&server, "Last one", 100, 1).await;
    let mut buyers = Vec::new();
    for n in 0..5 {
        buyers.push(customer(&server, &api, &format!("buyer{n}@example.com"), 1000).await);
    }

    let requests = buyers
        .iter()
        .map(|buyer| {
            let body = order_body(Uuid::new_v4(), &[(last, 1)]);
            ("/orders".to_owned(), body, buyer.clone())
        })
        .collect();
    let answers = post_all(&api, requests).await;
    let mut winners = Vec::new();
    for (buyer, (status, answer)) in buyers.iter().zip(&answers) {
        match *status {
            StatusCode::CREATED => winners.push(buyer.clone()),
            StatusCode::CONFLICT => {
                assert_eq!(code(answer), "out_of_stock", "{answer}");
                assert_eq!(
                    answer["error"]["details"]["items"],
                    json!([{"product_id": last, "requested": 1, "available": 0}])
                );
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(winners.len(), 1, "one unit, one buyer: {answers:?}");
    assert_eq!(stock(&server, last).await, 0);
    assert_eq!(order_count(&server).await, 1);
    for buyer in &buyers {
        let expected = if buyer.id == winners[0].id {
            (900, 100)
        } else {
            (1000, 0)
        };
        assert_eq!(balances(&api.wallet(buyer).await), expected);
    }
    assert_ledger_ok(&server).await;
}

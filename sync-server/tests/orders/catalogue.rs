//! The catalogue and its admin: listing, creating and editing products.

use super::*;

#[tokio::test]
async fn the_catalogue_lists_active_products_in_order_and_pages() {
    let (server, api) = start().await;
    let user = api.account("shopper@example.com").await;
    let hidden = add_product(&server, "Hidden", 10, 5).await;
    let dearer = add_product(&server, "Dearer", 30, 5).await;
    let cheaper = add_product(&server, "Cheaper", 20, 5).await;
    common::execute(
        &server,
        "UPDATE reward_products SET is_active = false WHERE id = $1",
        &[&hidden],
    )
    .await;
    let expected: Vec<Uuid> = common::rows(
        &server,
        "SELECT id FROM reward_products WHERE is_active ORDER BY category, coin_price, id",
        &[],
    )
    .await
    .iter()
    .map(|row| row.get("id"))
    .collect();
    assert!(expected.len() >= 10, "the seeded catalogue is there");

    let (status, body) = api.get("/products", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: ProductPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.total, expected.len() as i64);
    let ids: Vec<Uuid> = page.products.iter().map(|p| p.id).collect();
    assert_eq!(ids, expected, "active only, by category, price and id");
    assert!(page.products.iter().all(|p| p.is_active));

    let (status, body) = api.get("/products?limit=3&offset=2", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: ProductPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.total, expected.len() as i64);
    let ids: Vec<Uuid> = page.products.iter().map(|p| p.id).collect();
    assert_eq!(ids, expected[2..5]);

    let (status, body) = api.get("/products?category=test", &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: ProductPage = serde_json::from_value(body).unwrap();
    let ids: Vec<Uuid> = page.products.iter().map(|p| p.id).collect();
    assert_eq!((page.total, ids), (2, vec![cheaper, dearer]));

    for limit in ["0", "101", "-1"] {
        let (status, body) = api.get(&format!("/products?limit={limit}"), &user).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit {limit}: {body}"
        );
    }

    let (status, body) = api.get(&format!("/products/{}", expected[0]), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let product: Product = serde_json::from_value(body).unwrap();
    assert_eq!(product.id, expected[0]);
    for missing in [hidden, Uuid::new_v4()] {
        let (status, body) = api.get(&format!("/products/{missing}"), &user).await;
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    }

    let (status, _) = api.send(Method::GET, "/products", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed-in users only");
}

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn admins_manage_products_and_each_change_is_logged_once() {
    let (server, api) = start().await;
    let admin = api.admin_account(&server).await;
    let user = api.account("shopper@example.com").await;
    let new_product = json!({"name": "Water bottle", "category": "gear", "coin_price": 120});

    // A user may not touch the catalogue.
    let some_product = add_product(&server, "Existing", 50, 3).await;
    let attempts = [
        (
            Method::POST,
            "/admin/products".to_owned(),
            Some(new_product.clone()),
        ),
        (
            Method::PATCH,
            format!("/admin/products/{some_product}"),
            Some(json!({"coin_price": 1})),
        ),
        (
            Method::POST,
            format!("/admin/products/{some_product}/deactivate"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = api.send(method, &path, body, &user.token).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }

    let (status, body) = api.post("/admin/products", new_product, &admin).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Product = serde_json::from_value(body).unwrap();
    assert_eq!(
        (created.name.as_str(), created.category.as_str()),
        ("Water bottle", "gear")
    );
    assert_eq!(
        (created.coin_price, created.stock),
        (120, 0),
        "stock defaults to 0"
    );
    assert!(created.is_active);

    let (status, body) = api.get(&format!("/products/{}", created.id), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_value::<Product>(body).unwrap(), created);

    let (status, body) = api
        .send(
            Method::PATCH,
            &format!("/admin/products/{}", created.id),
            Some(json!({"coin_price": 150, "stock": 7})),
            &admin.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let patched: Product = serde_json::from_value(body).unwrap();
    assert_eq!((patched.coin_price, patched.stock), (150, 7));
    assert_eq!(patched.name, "Water bottle", "untouched fields stay");

    let invalid_creates = [
        json!({"name": "X", "category": "gear", "coin_price": 0}),
        json!({"name": "X", "category": "gear", "coin_price": -5}),
        json!({"name": "X", "category": "gear", "coin_price": 10, "stock": -1}),
        json!({"name": "", "category": "gear", "coin_price": 10}),
        json!({"category": "gear", "coin_price": 10}),
        json!({"name": "X", "coin_price": 10}),
        json!({"name": "X", "category": "gear"}),
        json!({"name": "X", "category": "gear", "coin_price": 10, "discount": 5}),
    ];
    for body in invalid_creates {
        let (status, answer) = api.post("/admin/products", body.clone(), &admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let invalid_patches = [
        json!({"coin_price": 0}),
        json!({"stock": -1}),
        json!({"name": ""}),
        json!({"price": 10}),
    ];
    for body in invalid_patches {
        let (status, answer) = api
            .send(
                Method::PATCH,
                &format!("/admin/products/{}", created.id),
                Some(body.clone()),
                &admin.token,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let (status, body) = api.get(&format!("/products/{}", created.id), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_value::<Product>(body).unwrap(),
        patched,
        "refused patches changed nothing"
    );

    let (status, body) = api
        .post(
            &format!("/admin/products/{}/deactivate", created.id),
            json!({}),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deactivated: Product = serde_json::from_value(body).unwrap();
    assert!(!deactivated.is_active);
    let (status, body) = api.get(&format!("/products/{}", created.id), &user).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, body) = api.get("/products?limit=100", &user).await;
    let page: ProductPage = serde_json::from_value(body).unwrap();
    assert!(page.products.iter().all(|p| p.id != created.id));

    assert_eq!(
        admin_log_count(&server, "product.%").await,
        3,
        "create, patch and deactivate; refused attempts log nothing"
    );
}

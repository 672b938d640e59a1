//! Refused imports: empty exports, bad bodies, body limits and callers who are not admins.

use super::*;

#[tokio::test]
async fn an_empty_export_is_refused_unless_explicitly_allowed() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let seeded = seeded_products(&db).await;
    harness.import(NIGHT_ONE).await;
    let token = Some(harness.admin_token.as_str());

    let (status, body) = harness.post(r#"{"products": []}"#, "", token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "empty_feed")
    );
    assert!(stored(&db, BACKPACK).await.unwrap().is_active);
    assert_eq!(
        import_logs(&db).await.len(),
        1,
        "a refused import is not logged"
    );

    let (status, body) = harness
        .post(r#"{"products": []}"#, "?allow_empty=true", token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: ImportReport = serde_json::from_value(body).unwrap();
    assert_eq!(
        counts(&report),
        (0, 0, 7),
        "every active imported product (the draft already is not)"
    );
    assert!(!stored(&db, BACKPACK).await.unwrap().is_active);
    assert_eq!(
        seeded_products(&db).await,
        seeded,
        "seeded products stay active"
    );
    assert_eq!(import_logs(&db).await.len(), 2);
}

#[tokio::test]
async fn bad_bodies_get_clear_codes_and_change_nothing() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let token = Some(harness.admin_token.as_str());

    for body in [
        "this is not JSON at all",
        "[1, 2, 3]",
        r#"{"products": {"id": 1}}"#,
        r#"{"items": []}"#,
        r#"{"products": [{"id": 1, "title": "Fine"}, {"title": "No id"}]}"#,
        r#"{"products": [{"id": "gid://shopify/Product/1", "title": "GraphQL id"}]}"#,
        r#"{"products": [{"id": 1, "title": "Cut off""#,
    ] {
        let (status, answer) = harness.post(body, "", token).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_feed"),
            "{body}"
        );
    }
    let (_, answer) = harness
        .post(
            r#"{"products": [{"id": 1, "title": "Fine"}, {"title": "No id"}]}"#,
            "",
            token,
        )
        .await;
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("products[1]") && message.contains("missing field `id`"),
        "the message names the problem: {message}"
    );

    let response = harness
        .api
        .request(Method::POST, IMPORT, &harness.admin_token)
        .body(NIGHT_ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // An unknown query parameter is refused the same way on every route.
    let (status, answer) = harness.post(NIGHT_ONE, "?force=yes", token).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field")
    );

    let imported: i64 = db
        .query_one(
            "SELECT count(*) FROM reward_products WHERE shopify_product_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(imported, 0);
    assert!(import_logs(&db).await.is_empty());
}

#[tokio::test]
async fn exports_above_the_default_body_limit_are_accepted_up_to_20_mib() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let token = Some(harness.admin_token.as_str());
    let long_description = format!("<p>{}</p>", "Walk more, earn more. ".repeat(100_000));
    let big = json!({"products": [{
        "id": 9001, "title": "Catalogue Poster", "handle": "poster", "product_type": "Merch",
        "body_html": long_description,
        "variants": [{"sku": "POSTER", "price": "5.00", "inventory_quantity": 3}],
        "images": []
    }]})
    .to_string();
    assert!(big.len() > 2 * 1024 * 1024);
    let (status, body) = harness.post(big, "", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let poster = stored(&db, 9001).await.unwrap();
    assert_eq!(
        poster.description.chars().count(),
        10_000,
        "capped at 10,000 characters"
    );
    assert!(poster.description.starts_with("Walk more, earn more. Walk"));

    let huge = format!(
        "{{\"products\": [], \"padding\": \"{}\"}}",
        "x".repeat(21 * 1024 * 1024)
    );
    let (status, body) = harness.post(huge, "", token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(import_logs(&db).await.len(), 1);
}

#[tokio::test]
async fn only_admins_may_import() {
    let harness = Harness::start().await;
    let user = harness.api.sign_up("walker@example.com", "W").await;

    let (status, body) = harness.post(NIGHT_ONE, "", Some(&user.access_token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = harness.post(NIGHT_ONE, "", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    let db = harness.db().await;
    assert_eq!(stored(&db, BACKPACK).await, None);
    assert!(import_logs(&db).await.is_empty());
}

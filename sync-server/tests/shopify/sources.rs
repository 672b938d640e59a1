//! Where a feed comes from: URLs (and unreachable ones) and the nightly job's file from the
//! command line.

use super::*;

#[tokio::test]
async fn feeds_are_fetched_from_urls_and_unreachable_ones_are_reported() {
    let harness = Harness::start().await;
    let db = harness.db().await;
    let feed = serve_feed().await;
    let token = Some(harness.admin_token.as_str());
    let import_url = |url: String| {
        let body = json!({ "url": url }).to_string();
        harness.post(body, "", token)
    };

    let (status, body) = import_url(format!(
        "http://{feed}/products.json?access_token=shpat_secret"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: ImportReport = serde_json::from_value(body).unwrap();
    assert_eq!(counts(&report), (8, 0, 0));
    assert_eq!(stored(&db, CHEST_STRAP).await.unwrap().coin_price, 59_950);
    let logs = import_logs(&db).await;
    assert_eq!(
        logs[0].get::<_, Option<String>>(2),
        Some(format!("http://{feed}/products.json")),
        "the audit log names the feed without its query (tokens live there)"
    );

    let (status, body) = import_url(format!("http://{feed}/missing.json")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "feed_unreachable")
    );
    assert_eq!(body["error"]["details"]["status"], 404);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (status, body) = import_url(format!("http://{closed}/products.json")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "feed_unreachable"),
        "{body}"
    );

    let (status, body) = import_url(format!("http://{feed}/page.html")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_feed")
    );

    for url in ["ftp://shop.example/products.json", "not a url"] {
        let (status, body) = import_url(url.to_owned()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{url}"
        );
        assert_eq!(body["error"]["details"]["field"], "url");
    }
    assert_eq!(
        import_logs(&db).await.len(),
        1,
        "failed imports are not logged"
    );
}

#[tokio::test]
async fn the_nightly_job_imports_a_file_from_the_command_line() {
    let db = TestDb::seeded().await.unwrap();
    let night_one = fixture("shopify_products.json");
    let out = cli(&db, &["import-products", &night_one]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("created 8, updated 0, deactivated 0, skipped 3\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "skipped: product {BANDS_BAD_PRICE} \"Resistance Bands Set\": skipped"
        )),
        "each skipped entry is printed: {stdout}"
    );

    let out = cli(
        &db,
        &[
            "import-products",
            &fixture("shopify_products_next_night.json"),
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("created 1, updated 1, deactivated 1, skipped 3\n")
    );

    let garbage = std::env::temp_dir().join(format!("fitkart-feed-{}.json", Uuid::new_v4()));
    std::fs::write(&garbage, "<html>502 Bad Gateway</html>").unwrap();
    let out = cli(&db, &["import-products", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a bad feed exits 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid feed"));

    std::fs::write(&garbage, r#"{"products": []}"#).unwrap();
    let out = cli(&db, &["import-products", garbage.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty feed needs --allow-empty"
    );
    let out = cli(
        &db,
        &[
            "import-products",
            garbage.to_str().unwrap(),
            "--allow-empty",
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("created 0, updated 0, deactivated 7, skipped 0\n")
    );
    let _ = std::fs::remove_file(&garbage);

    let out = cli(&db, &["import-products", "/nonexistent/products.json"]);
    assert_eq!(out.status.code(), Some(2));

    let client = db.client().await.unwrap();
    let logs = import_logs(&client).await;
    assert_eq!(logs.len(), 3, "one audit row per completed import");
    assert!(
        logs.iter()
            .all(|log| log.get::<_, Option<Uuid>>(0).is_none())
    );
    assert!(
        logs[0]
            .get::<_, Option<String>>(2)
            .is_some_and(|source| source.starts_with("file:/")),
        "the audit log names the file"
    );
}

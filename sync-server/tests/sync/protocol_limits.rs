//! The wire protocol: cursors, protocol versions, request limits and compression.

use super::*;

fn crafted_cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn invalid_and_foreign_cursors_are_refused_and_a_future_cursor_has_expired() {
    let (_server, api) = start().await;
    let quin = api.account("quin@example.com").await;
    let rex = api.account("rex@example.com").await;
    let rex_cursor = api.pull(&rex, None, None).await.next_cursor;
    let own_cursor = api.pull(&quin, None, None).await.next_cursor;

    let invalid = [
        "garbage".to_owned(),
        "!!!".to_owned(),
        crafted_cursor("c1:not-a-uuid:1:1"),
        crafted_cursor(&format!("c2:{}:1:1", quin.id)),
        crafted_cursor(&format!("c1:{}:1", quin.id)),
        crafted_cursor(&format!("c1:{}:-5:0", quin.id)),
        rex_cursor.clone(),
    ];
    for cursor in invalid {
        let (status, body) = api
            .pull_raw(&quin, &[("cursor", cursor.clone())], Some("1"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cursor}: {body}");
        assert_eq!(error_code(&body), "invalid_cursor", "{cursor}");
    }

    let big = i64::MAX / 2;
    for future in [
        crafted_cursor(&format!("c1:{}:{big}:{big}", quin.id)),
        crafted_cursor(&format!("c1:{}:{big}:0", quin.id)),
        crafted_cursor(&format!("c1:{}:0:{big}", quin.id)),
    ] {
        let (status, body) = api
            .pull_raw(&quin, &[("cursor", future.clone())], Some("1"))
            .await;
        assert_eq!(status, StatusCode::GONE, "{future}: {body}");
        assert_eq!(error_code(&body), "cursor_expired");
    }

    // The device's own cursor still works, and so does a fresh snapshot after a 410.
    let page = api.pull(&quin, Some(&own_cursor), None).await;
    assert!(!page.has_more);
    let snapshot = api.pull(&quin, None, None).await;
    assert_eq!(snapshot.changes.profile.map(|p| p.id), Some(quin.id));
}

#[tokio::test]
async fn sync_requests_must_name_a_supported_protocol_version() {
    let (_server, api) = start().await;
    let sam = api.account("sam@example.com").await;
    let push = json!({
        "device_id": Uuid::new_v4(),
        "mutations": [update_profile(json!({"display_name": "Sam"}))],
    });

    for (version, status, code) in [
        (None, StatusCode::BAD_REQUEST, "missing_protocol_version"),
        (
            Some("0"),
            StatusCode::UPGRADE_REQUIRED,
            "protocol_version_unsupported",
        ),
        (
            Some("99"),
            StatusCode::BAD_REQUEST,
            "protocol_version_unknown",
        ),
    ] {
        let (got, body) = api.push_raw(&sam, &push, version).await;
        assert_eq!(got, status, "push with {version:?}: {body}");
        assert_eq!(error_code(&body), code);
        let (got, body) = api.pull_raw(&sam, &[], version).await;
        assert_eq!(got, status, "pull with {version:?}: {body}");
        assert_eq!(error_code(&body), code);
        if status == StatusCode::UPGRADE_REQUIRED {
            assert_eq!(body["error"]["details"], json!({"min": 1, "max": 1}));
        }
    }
    let (got, body) = api.pull_raw(&sam, &[], Some("one")).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(api.me(&sam).await.display_name, "Walker", "nothing applied");

    let (got, body) = api.push_raw(&sam, &push, Some("1")).await;
    assert_eq!(got, StatusCode::OK, "{body}");
    assert_eq!(api.me(&sam).await.display_name, "Sam");
}

#[tokio::test]
async fn pull_limits_outside_1_to_1000_are_refused() {
    let (_server, api) = start().await;
    let tia = api.account("tia@example.com").await;
    for limit in ["0", "1001", "-3", "many"] {
        let (status, body) = api
            .pull_raw(&tia, &[("limit", limit.to_owned())], Some("1"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{limit}: {body}");
        assert_eq!(error_code(&body), "validation_failed");
    }
    for limit in [1, 1000] {
        api.pull(&tia, None, Some(limit)).await;
    }
}

#[tokio::test]
async fn sync_responses_are_gzip_compressed_for_clients_that_accept_it() {
    let (_server, api) = start().await;
    let uma = api.account("uma@example.com").await;

    let plain = api
        .versioned(Method::GET, "/sync/pull", &uma, Some("1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    serde_json::from_slice::<PullResponse>(&plain).unwrap();

    let gzipped = api
        .versioned(Method::GET, "/sync/pull", &uma, Some("1"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), StatusCode::OK);
    assert_eq!(
        gzipped
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let body = gzipped.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(
        body.len() < plain.len(),
        "{} compressed vs {} plain bytes",
        body.len(),
        plain.len()
    );

    let push = json!({
        "device_id": Uuid::new_v4(),
        "mutations": [update_profile(json!({"display_name": "Uma"}))],
    });
    let pushed = api
        .versioned(Method::POST, "/sync/push", &uma, Some("1"))
        .header("accept-encoding", "gzip")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK);
    assert_eq!(
        pushed
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
}

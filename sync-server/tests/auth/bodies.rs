//! Bad bodies: oversized, malformed and mistyped bodies get clear 4xx answers.

use super::*;

#[tokio::test]
async fn oversized_malformed_and_mistyped_bodies_get_clear_4xx_answers() {
    let server = TestServer::start_with(|config| config.body_limit_bytes = 4096)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/auth/register");

    let huge =
        json!({"email": "a@example.com", "password": "p".repeat(10_000), "display_name": "A"});
    let response = http.post(&url).json(&huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<ErrorEnvelope>().await.unwrap().error.code,
        "payload_too_large"
    );

    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<ErrorEnvelope>().await.unwrap().error.code,
        "malformed_json"
    );

    let response = http.post(&url).body("email=a").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        response.json::<ErrorEnvelope>().await.unwrap().error.code,
        "unsupported_media_type"
    );

    let response = http
        .post(&url)
        .json(&json!([1, 2, 3]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.json::<ErrorEnvelope>().await.unwrap().error.code,
        "method_not_allowed"
    );
}

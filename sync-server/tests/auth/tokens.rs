//! Access tokens: forged, expired and missing tokens are refused, and admin routes refuse
//! users and anonymous callers.

use super::*;

// Long on purpose: one scenario whose each step acts on the state the one before left.
#[tokio::test]
async fn forged_expired_and_missing_tokens_are_refused() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("forger@example.com").await;
    let user = session.user.id;

    let (status, body) = api.get("/api/v1/me", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );

    let expired = sign(&claims_for(user, "user", -120), SECRET.as_bytes());
    let (status, body) = api.get("/api/v1/me", &expired).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );

    let other_key = sign(
        &claims_for(user, "user", 600),
        b"another-secret-another-secret-12345678",
    );
    let wrong_issuer = {
        let mut claims = claims_for(user, "user", 600);
        claims["iss"] = json!("someone-else");
        sign(&claims, SECRET.as_bytes())
    };
    let wrong_audience = {
        let mut claims = claims_for(user, "user", 600);
        claims["aud"] = json!("another-api");
        sign(&claims, SECRET.as_bytes())
    };
    let alg_none = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims_for(user, "admin", 600).to_string());
        format!("{header}.{payload}.")
    };
    let edited_claims = {
        // Keep the real signature, change the payload to claim the admin role.
        let parts: Vec<&str> = session.access_token.split('.').collect();
        let mut claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims.role = Role::Admin;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims_for(user, "user", 600),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    for (name, token) in [
        ("another key", other_key),
        ("wrong issuer", wrong_issuer),
        ("wrong audience", wrong_audience),
        ("alg none", alg_none),
        ("edited claims", edited_claims),
        ("another algorithm", hs512),
        ("garbage", "garbage".to_owned()),
    ] {
        let (status, body) = api.get("/api/v1/me", &token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{name}"
        );
        let (status, _) = api.get("/api/v1/admin/users", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} on an admin route");
    }

    // A correctly signed token is accepted (the forgeries failed for their flaw alone).
    let good = sign(&claims_for(user, "user", 600), SECRET.as_bytes());
    let (status, _) = api.get("/api/v1/me", &good).await;
    assert_eq!(status, StatusCode::OK);
    // A role claim in the token does not override the database.
    let claims_admin = sign(&claims_for(user, "admin", 600), SECRET.as_bytes());
    let (status, body) = api.get("/api/v1/admin/users", &claims_admin).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
}

#[tokio::test]
async fn admin_routes_refuse_users_and_anonymous_callers() {
    let server = start().await;
    let api = Api::new(&server);
    let user = api.register("plain@example.com").await;
    let (status, body) = api.get("/api/v1/admin/users", &user.access_token).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = api.get("/api/v1/admin/users", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );

    create_admin(&server, "boss@example.com", "Boss").await;
    let (status, admin) = api.login("boss@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let admin: TokenResponse = serde_json::from_value(admin).unwrap();
    assert_eq!(admin.user.role, Role::Admin);
    let (status, body) = api
        .get("/api/v1/admin/users?q=PLAIN", &admin.access_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["users"][0]["email"], "plain@example.com");
}

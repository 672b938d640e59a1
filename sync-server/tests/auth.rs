//! Accounts and authentication, black-box over HTTP: the full flows, and the abuse a real
//! attacker tries (wrong and unknown credentials, forged and expired tokens, refresh token
//! reuse, deleted accounts, rate limits, mass assignment, bad bodies).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::auth::{Role, TokenResponse, UserProfile};
use fitkart_sync_server::auth::tokens::{AUDIENCE, Claims, ISSUER};
use fitkart_sync_server::config::{JwtSecret, LoginLimits};
use fitkart_sync_server::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

mod common;
use common::{Api, PASSWORD, code, create_admin};

const SECRET: &str = "test-secret-test-secret-test-secret-1234";

async fn start() -> TestServer {
    TestServer::start_with(|config| {
        config.jwt_secret = JwtSecret::new(SECRET).unwrap();
    })
    .await
    .unwrap()
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn claims_for(user: Uuid, role: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": user, "role": role, "epoch": 0, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now, "exp": now + exp_offset, "jti": Uuid::now_v7(),
    })
}

#[tokio::test]
async fn register_login_and_profile_round_trip() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("  Ann.Walker@Example.com ").await;
    assert_eq!(
        session.user.email, "Ann.Walker@Example.com",
        "trimmed, case kept"
    );
    assert_eq!(session.user.role, Role::User);
    assert_eq!(session.expires_in, 900);
    assert_eq!(session.token_type, "Bearer");
    assert_eq!(session.user.daily_step_goal, 10000, "seeded default goal");

    let db = server.db().client().await.unwrap();
    let row = db
        .query_one(
            "SELECT u.password_hash, w.available_coins, w.frozen_coins
             FROM users u JOIN wallets w ON w.user_id = u.id WHERE u.id = $1",
            &[&session.user.id],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, String>(0)
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert_eq!((row.get::<_, i64>(1), row.get::<_, i64>(2)), (0, 0));

    let (status, me) = api.get("/api/v1/me", Some(&session.access_token)).await;
    assert_eq!(status, StatusCode::OK);
    let me: UserProfile = serde_json::from_value(me).unwrap();
    assert_eq!(me, session.user);

    // Login is case-insensitive on the email.
    let (status, body) = api.login("ann.walker@EXAMPLE.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let login: TokenResponse = serde_json::from_value(body).unwrap();
    assert_eq!(login.user.id, session.user.id);
    assert_ne!(login.refresh_token, session.refresh_token);
}

#[tokio::test]
async fn registration_refuses_taken_emails_weak_passwords_and_bad_fields() {
    let server = start().await;
    let api = Api::new(&server);
    api.register("taken@example.com").await;

    let cases = [
        (
            json!({"email": "TAKEN@example.com", "password": PASSWORD, "display_name": "X"}),
            StatusCode::CONFLICT,
            "email_taken",
        ),
        (
            json!({"email": "new@example.com", "password": "short", "display_name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "new@example.com", "password": "Password123", "display_name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "display_name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD, "display_name": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD, "display_name": "x".repeat(101)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "new@example.com", "password": PASSWORD, "display_name": "X", "role": "admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
        ),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = api.post("/api/v1/auth/register", body.clone(), None).await;
        assert_eq!((got, code(&answer)), (status, expected), "{body}");
    }
    let users: i64 = server
        .db()
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "no refused registration created an account");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let server = start().await;
    let api = Api::new(&server);
    api.register("known@example.com").await;
    let (wrong_status, wrong) = api.login("known@example.com", "not the password!").await;
    let (unknown_status, unknown) = api.login("nobody@example.com", PASSWORD).await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&wrong), "invalid_credentials");
    assert_eq!(
        wrong, unknown,
        "the answers must not tell which case it was"
    );
}

#[tokio::test]
async fn imported_bcrypt_accounts_sign_in_and_move_to_argon2id() {
    let server = start().await;
    let api = Api::new(&server);
    let db = server.db().client().await.unwrap();
    let legacy = bcrypt::hash("legacy password 42", 4).unwrap();
    let id = Uuid::now_v7();
    db.execute(
        "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, 'old@example.com', $2, 'Old')",
        &[&id, &legacy],
    )
    .await
    .unwrap();
    db.execute("INSERT INTO wallets (user_id) VALUES ($1)", &[&id])
        .await
        .unwrap();

    let (status, _) = api.login("old@example.com", "wrong password 42").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api.login("old@example.com", "legacy password 42").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hash: String = db
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "re-hashed: {hash}");
    let (status, _) = api.login("old@example.com", "legacy password 42").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_account() {
    let server = TestServer::start_with(|config| {
        config.login_limits = LoginLimits {
            per_account: 3,
            per_address: 100,
            window: Duration::from_secs(600),
            ..LoginLimits::default()
        };
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    api.register("target@example.com").await;
    for _ in 0..3 {
        let (status, _) = api.login("target@example.com", "guess guess guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now, with a Retry-After.
    let response = api
        .http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": "TARGET@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    let body: ErrorEnvelope = response.json().await.unwrap();
    assert_eq!(body.error.code, "too_many_attempts");
    // Another account from the same address is not affected by this account's limit.
    api.register("other@example.com").await;
    let (status, _) = api.login("other@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_address() {
    let server = TestServer::start_with(|config| {
        config.login_limits = LoginLimits {
            per_account: 100,
            per_address: 4,
            window: Duration::from_secs(600),
            ..LoginLimits::default()
        };
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    api.register("sprayed@example.com").await;
    for i in 0..4 {
        let (status, _) = api.login(&format!("victim{i}@example.com"), PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = api.login("sprayed@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

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
    let (status, body) = api.get("/api/v1/me", Some(&expired)).await;
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
        let (status, body) = api.get("/api/v1/me", Some(&token)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{name}"
        );
        let (status, _) = api.get("/api/v1/admin/users", Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} on an admin route");
    }

    // A correctly signed token is accepted (the forgeries failed for their flaw alone).
    let good = sign(&claims_for(user, "user", 600), SECRET.as_bytes());
    let (status, _) = api.get("/api/v1/me", Some(&good)).await;
    assert_eq!(status, StatusCode::OK);
    // A role claim in the token does not override the database.
    let claims_admin = sign(&claims_for(user, "admin", 600), SECRET.as_bytes());
    let (status, body) = api.get("/api/v1/admin/users", Some(&claims_admin)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let server = start().await;
    let api = Api::new(&server);
    let first = api.register("rotate@example.com").await;
    let (status, other_login) = api.login("rotate@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let other_login: TokenResponse = serde_json::from_value(other_login).unwrap();

    let (status, body) = api.refresh(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: TokenResponse = serde_json::from_value(body).unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let (status, _) = api.get("/api/v1/me", Some(&second.access_token)).await;
    assert_eq!(status, StatusCode::OK);

    // The spent token comes back: theft. The whole family dies, including the new token.
    let (status, body) = api.refresh(&first.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let (status, body) = api.refresh(&second.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_revoked")
    );
    // Another sign-in (another family) is untouched.
    let (status, _) = api.refresh(&other_login.refresh_token).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api.refresh("made-up-token").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_never_both_succeed() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("race@example.com").await;
    let (a, b) = tokio::join!(
        api.refresh(&session.refresh_token),
        api.refresh(&session.refresh_token)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    // The reuse revoked the family, so the winner's new token is dead too.
    let winner: TokenResponse =
        serde_json::from_value(if a.0 == StatusCode::OK { a.1 } else { b.1 }).unwrap();
    let (status, _) = api.refresh(&winner.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_and_refresh_after_it_fails() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("leaver@example.com").await;
    let (status, _) = api
        .post(
            "/api/v1/auth/logout",
            json!({"refresh_token": session.refresh_token}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.refresh(&session.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_revoked")
    );
    let (status, _) = api
        .post(
            "/api/v1/auth/logout",
            json!({"refresh_token": "unknown"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let server = start().await;
    let api = Api::new(&server);
    let phone = api.register("changer@example.com").await;
    let (_, tablet) = api.login("changer@example.com", PASSWORD).await;
    let tablet: TokenResponse = serde_json::from_value(tablet).unwrap();

    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": "not my password", "new_password": "a brand new passphrase"}),
            Some(&phone.access_token),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "1234567890"}),
            Some(&phone.access_token),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password")
    );

    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
            Some(&phone.access_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh: TokenResponse = serde_json::from_value(body).unwrap();

    for token in [&phone.access_token, &tablet.access_token] {
        let (status, body) = api.get("/api/v1/me", Some(token)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token_revoked")
        );
    }
    for refresh in [&phone.refresh_token, &tablet.refresh_token] {
        let (status, _) = api.refresh(refresh).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = api.get("/api/v1/me", Some(&fresh.access_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.login("changer@example.com", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("changer@example.com", "a brand new passphrase")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_deleted_account_cannot_sign_in_and_its_data_is_kept() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("gone@example.com").await;
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/me",
            None,
            Some(&session.access_token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, _) = api.get("/api/v1/me", Some(&session.access_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api.refresh(&session.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api.login("gone@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    let db = server.db().client().await.unwrap();
    let row = db
        .query_one(
            "SELECT u.deleted_at IS NOT NULL, (SELECT count(*) FROM wallets w WHERE w.user_id = u.id),
                    (SELECT count(*) FROM refresh_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL)
             FROM users u WHERE u.id = $1",
            &[&session.user.id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i64>(1), 1, "the wallet is kept for audit");
    assert_eq!(row.get::<_, i64>(2), 0, "no live refresh token remains");
}

#[tokio::test]
async fn patch_me_changes_only_what_it_owns() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("patch@example.com").await;
    let token = Some(session.access_token.as_str());
    let patch = |body: Value| api.send(reqwest::Method::PATCH, "/api/v1/me", Some(body), token);

    for (body, expected) in [
        (json!({"role": "admin"}), "unknown_field"),
        (
            json!({"display_name": "Ann", "role": "admin"}),
            "unknown_field",
        ),
        (json!({"available_coins": 1000000}), "unknown_field"),
        (json!({"email": "evil@example.com"}), "unknown_field"),
        (
            json!({"timezone": "Mars/Olympus_Mons"}),
            "validation_failed",
        ),
        (json!({"daily_step_goal": 5}), "validation_failed"),
        (json!({"daily_step_goal": "lots"}), "validation_failed"),
        (json!({"display_name": ""}), "validation_failed"),
    ] {
        let (status, answer) = patch(body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, expected),
            "{body}"
        );
    }
    let (_, unchanged) = api.get("/api/v1/me", token).await;
    let unchanged: UserProfile = serde_json::from_value(unchanged).unwrap();
    assert_eq!(unchanged, session.user, "refused patches changed nothing");

    let (status, body) = patch(
        json!({"display_name": " Ann ", "timezone": "Europe/Berlin", "daily_step_goal": 8000}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated: UserProfile = serde_json::from_value(body).unwrap();
    assert_eq!(updated.display_name, "Ann");
    assert_eq!(updated.timezone, "Europe/Berlin");
    assert_eq!(updated.daily_step_goal, 8000);
    assert_eq!(updated.role, Role::User);
    let db = server.db().client().await.unwrap();
    let version: i64 = db
        .query_one(
            "SELECT change_version FROM users WHERE id = $1",
            &[&session.user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(version >= 1, "the profile change is visible to sync");
}

#[tokio::test]
async fn admin_routes_refuse_users_and_anonymous_callers() {
    let server = start().await;
    let api = Api::new(&server);
    let user = api.register("plain@example.com").await;
    let (status, body) = api
        .get("/api/v1/admin/users", Some(&user.access_token))
        .await;
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
        .get("/api/v1/admin/users?q=PLAIN", Some(&admin.access_token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["users"][0]["email"], "plain@example.com");
}

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

//! Accounts: registration, sign-in and the profile round trip, refused registrations,
//! imported bcrypt accounts, and what PATCH /me may change.

use super::*;

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

    let (status, me) = api.get("/api/v1/me", &session.access_token).await;
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
async fn patch_me_changes_only_what_it_owns() {
    let server = start().await;
    let api = Api::new(&server);
    let session = api.register("patch@example.com").await;
    let token = Some(session.access_token.as_str());
    let patch = |body: Value| api.patch("/api/v1/me", body, token);

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

//! Accounts and authentication, black-box over HTTP: the full flows, and the abuse a real
//! attacker tries (wrong and unknown credentials, forged and expired tokens, refresh token
//! reuse, deleted accounts, rate limits, mass assignment, bad bodies).
//!
//! One test binary: each behaviour is a module of this directory; this file holds the helpers
//! they share beside `common`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fitkart_protocol::ErrorEnvelope;
use fitkart_protocol::auth::{Role, TokenResponse, UserProfile};
use fitkart_sync_server::auth::tokens::{AUDIENCE, Claims, ISSUER};
use fitkart_sync_server::config::{JwtSecret, LoginLimits};
use fitkart_sync_server::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

mod accounts;
mod bodies;
#[path = "../common/mod.rs"]
mod common;
mod failed_sign_ins;
mod sessions;
mod tokens;

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

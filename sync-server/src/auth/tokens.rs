//! Access and refresh tokens. Access tokens are short-lived HS256 JWTs verified strictly
//! (algorithm pinned, signature, expiry, issuer, audience). Refresh tokens are random, opaque,
//! and stored only as a SHA-256 hash.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fitkart_protocol::auth::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::config::JwtSecret;

/// The `iss` claim of every access token.
pub const ISSUER: &str = "fitkart-sync-server";
/// The `aud` claim of every access token.
pub const AUDIENCE: &str = "fitkart-api";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// `user` or `admin` at issue time (the server re-reads the role on every request).
    pub role: Role,
    /// The user's session epoch at issue time; a newer epoch invalidates the token.
    pub epoch: i32,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Token id.
    pub jti: Uuid,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Past its expiry.
    Expired,
    /// Malformed, wrongly signed, another algorithm, issuer or audience.
    Invalid,
}

/// Signs and verifies access tokens. Tokens are signed with the current secret; during a
/// secret rotation, tokens signed with the previous secret still verify until they expire.
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    previous: Option<DecodingKey>,
    validation: Validation,
    ttl: Duration,
}

impl AccessTokens {
    /// Keys from the server's secret; tokens live `ttl`.
    pub fn new(secret: &JwtSecret, ttl: Duration) -> Self {
        Self::rotating(secret, None, ttl)
    }

    /// Keys from the server's secret, also accepting tokens signed with `previous` (the
    /// secret before a rotation); tokens live `ttl`.
    pub fn rotating(secret: &JwtSecret, previous: Option<&JwtSecret>, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation.validate_exp = true;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            previous: previous.map(|p| DecodingKey::from_secret(p.as_bytes())),
            validation,
            ttl,
        }
    }

    /// Lifetime of the tokens this issues, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)
    }

    /// Issues a token for the user.
    pub fn issue(&self, user_id: Uuid, role: Role, epoch: i32) -> Result<String, crate::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            epoch,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now.saturating_add(self.ttl_secs()),
            jti: Uuid::now_v7(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| crate::Error::Config(format!("cannot sign an access token: {e}")))
    }

    /// Verifies a token and returns its claims: signed with the current secret, or with the
    /// previous one while a rotation's grace period lasts.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match self.verify_with(token, &self.decoding) {
            Err(TokenError::Invalid) => match &self.previous {
                Some(previous) => self.verify_with(token, previous),
                None => Err(TokenError::Invalid),
            },
            verified => verified,
        }
    }

    fn verify_with(&self, token: &str, key: &DecodingKey) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// A new random refresh token (256 bits, base64url) and the hash stored for it.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes[..]);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// The SHA-256 of a refresh token, as stored in `refresh_tokens.token_hash`.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AccessTokens {
        AccessTokens::new(&JwtSecret::generate(), Duration::from_secs(900))
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_user() {
        let tokens = tokens();
        let user = Uuid::now_v7();
        let claims = tokens
            .verify(&tokens.issue(user, Role::Admin, 3).unwrap())
            .unwrap();
        assert_eq!(claims.sub, user);
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.epoch, 3);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn tokens_of_another_key_or_edited_are_invalid() {
        let (a, b) = (tokens(), tokens());
        let token = a.issue(Uuid::now_v7(), Role::User, 0).unwrap();
        assert_eq!(b.verify(&token), Err(TokenError::Invalid));
        let mut edited = token.clone();
        edited.pop();
        edited.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(a.verify(&edited), Err(TokenError::Invalid));
        assert_eq!(a.verify("not.a.jwt"), Err(TokenError::Invalid));
    }

    #[test]
    fn after_a_rotation_tokens_of_the_previous_secret_verify_and_new_ones_use_the_current() {
        let (old, new) = (JwtSecret::generate(), JwtSecret::generate());
        let ttl = Duration::from_secs(900);
        let before = AccessTokens::new(&old, ttl);
        let during = AccessTokens::rotating(&new, Some(&old), ttl);
        let after = AccessTokens::new(&new, ttl);
        let user = Uuid::now_v7();
        let old_token = before.issue(user, Role::User, 0).unwrap();
        assert_eq!(during.verify(&old_token).unwrap().sub, user);
        assert_eq!(after.verify(&old_token), Err(TokenError::Invalid));
        let new_token = during.issue(user, Role::User, 0).unwrap();
        assert_eq!(after.verify(&new_token).unwrap().sub, user);
        assert_eq!(before.verify(&new_token), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (one, hash) = new_refresh_token();
        let (two, _) = new_refresh_token();
        assert_ne!(one, two);
        assert_eq!(one.len(), 43);
        assert_eq!(hash, hash_refresh_token(&one));
        assert_eq!(hash.len(), 32);
    }
}

//! Password policy and hashing: argon2id at OWASP-recommended parameters.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// The longest password accepted (hashing cost must stay bounded).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 iterations, 1 lane.
fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|_| Error::PasswordHash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Shorter than [`MIN_PASSWORD_LEN`] characters.
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters long")]
    TooShort,
    /// Longer than [`MAX_PASSWORD_LEN`] bytes.
    #[error("the password must be at most {MAX_PASSWORD_LEN} bytes long")]
    TooLong,
    /// One of the most common passwords.
    #[error("the password is too common")]
    TooCommon,
}

/// The most common passwords of at least the minimum length (from public breach statistics);
/// compared case-insensitively.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "1111111111",
    "0000000000",
    "1234512345",
    "1q2w3e4r5t",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "1qaz2wsx3edc",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "iloveyou123",
    "abcdefghij",
    "abc1234567",
    "asdfghjkl1",
    "football123",
    "baseball123",
    "princess123",
    "welcome123",
    "sunshine123",
    "letmein1234",
    "administrator",
    "changeme123",
    "fitkart123",
    "fitkartfitkart",
];

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> std::result::Result<(), PasswordPolicyError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordPolicyError::TooShort);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordPolicyError::TooLong);
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lowered.as_str())
        || lowered
            .chars()
            .next()
            .is_some_and(|first| lowered.chars().all(|c| c == first))
    {
        return Err(PasswordPolicyError::TooCommon);
    }
    Ok(())
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String> {
    let hash = hasher()?
        .hash_password(password.as_bytes())
        .map_err(|_| Error::PasswordHash)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the argon2id PHC string `hash`. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    hasher()
        .map(|h| h.verify_password(password.as_bytes(), hash).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let first = hash_password("correct horse battery").unwrap();
        let second = hash_password("correct horse battery").unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &first));
        assert!(!verify_password("correct horse battery!", &first));
        assert!(!verify_password("correct horse battery", "not a hash"));
    }

    #[test]
    fn policy_refuses_short_common_and_repeated_passwords() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(
            check_policy("Password123"),
            Err(PasswordPolicyError::TooCommon)
        );
        assert_eq!(
            check_policy("aaaaaaaaaaaa"),
            Err(PasswordPolicyError::TooCommon)
        );
        assert_eq!(
            check_policy(&"x1".repeat(600)),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(check_policy("walk to the shop daily"), Ok(()));
    }
}

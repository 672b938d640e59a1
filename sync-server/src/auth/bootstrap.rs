//! User accounts as the operator CLI manages them: bootstrapping an administrator.
//! (Registration, login and tokens live with the HTTP auth routes.)

use uuid::Uuid;

use crate::auth::password;
use crate::error::{Error, Result};

/// What `create-admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// A new administrator account was created.
    Created(Uuid),
    /// An existing account was made an administrator and given the new password.
    Promoted(Uuid),
}

/// Why `create-admin` refused.
#[derive(Debug, thiserror::Error)]
pub enum CreateAdminError {
    /// The email address is not plausible.
    #[error("'{0}' is not a valid email address")]
    InvalidEmail(String),
    /// The password breaks the policy.
    #[error(transparent)]
    WeakPassword(#[from] password::PasswordPolicyError),
    /// An account with this email exists and `--promote` was not given.
    #[error("an account with this email already exists; pass --promote to make it an admin")]
    Exists,
    /// An internal failure.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<tokio_postgres::Error> for CreateAdminError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// Normalises an email address (trimmed) and checks it is plausible.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 320
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then(|| email.to_owned())
}

/// Creates an administrator (with a wallet), or with `promote` makes an existing account an
/// administrator with the given password. Writes an audit row in the same transaction.
pub async fn create_admin(
    client: &mut deadpool_postgres::Client,
    email: &str,
    display_name: &str,
    new_password: &str,
    promote: bool,
) -> Result<AdminBootstrap, CreateAdminError> {
    let email =
        normalize_email(email).ok_or_else(|| CreateAdminError::InvalidEmail(email.into()))?;
    password::check_policy(new_password)?;
    let hash = password::hash_password(new_password)?;
    let tx = client.transaction().await?;
    let existing = tx
        .query_opt(
            "SELECT id, role FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL
             FOR UPDATE",
            &[&email],
        )
        .await?;
    let outcome = match existing {
        Some(_) if !promote => return Err(CreateAdminError::Exists),
        Some(row) => {
            let id: Uuid = row.get("id");
            let before_role: String = row.get("role");
            tx.execute(
                "UPDATE users SET role = 'admin', password_hash = $2 WHERE id = $1",
                &[&id, &hash],
            )
            .await?;
            // Sessions made with the old password must not survive the reset: neither its
            // refresh tokens nor its access tokens.
            crate::auth::accounts::end_all_sessions(
                &tx,
                id,
                crate::auth::accounts::SessionsEnd::PasswordChange,
            )
            .await?;
            audit(
                &tx,
                "user.promote_admin",
                id,
                serde_json::json!({ "role": before_role }),
            )
            .await?;
            AdminBootstrap::Promoted(id)
        }
        None => {
            let id = Uuid::now_v7();
            tx.execute(
                "INSERT INTO users (id, email, password_hash, display_name, role)
                 VALUES ($1, $2, $3, $4, 'admin')",
                &[&id, &email, &hash, &display_name],
            )
            .await?;
            tx.execute("INSERT INTO wallets (user_id) VALUES ($1)", &[&id])
                .await?;
            crate::sync::versions::start_user(&tx, id).await?;
            audit(&tx, "user.create_admin", id, serde_json::Value::Null).await?;
            AdminBootstrap::Created(id)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn audit(
    tx: &deadpool_postgres::Transaction<'_>,
    action: &str,
    user_id: Uuid,
    before: serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    let before = (!before.is_null()).then_some(before);
    tx.execute(
        "INSERT INTO admin_logs (admin_id, action, entity_type, entity_id, before, after, user_agent)
         VALUES (NULL, $1, 'user', $2, $3, jsonb_build_object('role', 'admin'), 'fitkart-sync-server CLI')",
        &[&action, &user_id.to_string(), &before],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.com "),
            Some("Ann@Example.com".into())
        );
        assert_eq!(normalize_email("no-at-sign"), None);
        assert_eq!(normalize_email("@example.com"), None);
        assert_eq!(normalize_email("ann@localhost"), None);
        assert_eq!(normalize_email("a nn@example.com"), None);
    }
}

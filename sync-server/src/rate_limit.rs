//! Sign-in rate limiting, shared by every server instance through PostgreSQL: failed
//! attempts are counted per account (a hash of the email) and per client address within a
//! sliding window.

use std::net::IpAddr;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use sha2::{Digest as _, Sha256};

use crate::config::LoginLimits;
use crate::error::Result;

/// The keys one sign-in attempt is counted under.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    account: String,
    address: String,
}

impl AttemptKeys {
    /// Keys for an attempt on `email` (normalised here) from `address`.
    pub fn new(email: &str, address: IpAddr) -> Self {
        let normalised = email.trim().to_lowercase();
        let digest = Sha256::digest(normalised.as_bytes());
        let account = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            account,
            address: address.to_string(),
        }
    }
}

/// Whether another attempt may be made now; if not, how long to wait.
pub async fn check(
    client: &impl GenericClient,
    keys: &AttemptKeys,
    limits: &LoginLimits,
) -> Result<Option<Duration>> {
    let window_secs = limits.window.as_secs_f64();
    let row = client
        .query_one(
            "SELECT
                 count(*) FILTER (WHERE scope = 'account'),
                 count(*) FILTER (WHERE scope = 'address'),
                 extract(epoch FROM max(failed_at) FILTER (WHERE scope = 'account')
                     + make_interval(secs => $3) - now())::float8,
                 extract(epoch FROM max(failed_at) FILTER (WHERE scope = 'address')
                     + make_interval(secs => $3) - now())::float8
             FROM auth_failures
             WHERE failed_at > now() - make_interval(secs => $3)
               AND ((scope = 'account' AND key = $1) OR (scope = 'address' AND key = $2))",
            &[&keys.account, &keys.address, &window_secs],
        )
        .await?;
    let account_failures: i64 = row.get(0);
    let address_failures: i64 = row.get(1);
    let account_wait: Option<f64> = row.get(2);
    let address_wait: Option<f64> = row.get(3);
    let mut wait: Option<f64> = None;
    if account_failures >= i64::from(limits.per_account) {
        wait = account_wait;
    }
    if address_failures >= i64::from(limits.per_address) {
        wait = Some(wait.unwrap_or(0.0).max(address_wait.unwrap_or(0.0)));
    }
    Ok(wait.map(|secs| Duration::from_secs(secs.max(1.0).ceil() as u64)))
}

/// Records a failed attempt under both keys.
pub async fn record_failure(client: &impl GenericClient, keys: &AttemptKeys) -> Result<()> {
    client
        .execute(
            "INSERT INTO auth_failures (scope, key) VALUES ('account', $1), ('address', $2)",
            &[&keys.account, &keys.address],
        )
        .await?;
    Ok(())
}

/// Forgets the account's failures after a successful sign-in.
pub async fn clear_account(client: &impl GenericClient, keys: &AttemptKeys) -> Result<()> {
    client
        .execute(
            "DELETE FROM auth_failures WHERE scope = 'account' AND key = $1",
            &[&keys.account],
        )
        .await?;
    Ok(())
}

/// Deletes failures older than the window. Returns how many were removed.
pub async fn purge(client: &impl GenericClient, limits: &LoginLimits) -> Result<u64> {
    Ok(client
        .execute(
            "DELETE FROM auth_failures WHERE failed_at < now() - make_interval(secs => $1)",
            &[&limits.window.as_secs_f64()],
        )
        .await?)
}

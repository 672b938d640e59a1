//! Sign-in and sign-up rate limiting, shared by every server instance through PostgreSQL:
//! failed sign-ins are counted per account (a hash of the email) and per client address, and
//! accounts created per client address, each within a sliding window.
//!
//! Check and count are one step: an attempt takes transaction-scoped advisory locks on its
//! keys, checks the count and, when allowed, records itself as a failure before the password
//! is verified ([`begin_attempt`]); success removes that record ([`attempt_succeeded`]). So
//! parallel guesses cannot all pass the check before any failure is counted.

use std::net::IpAddr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

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
                 count(*) FILTER (WHERE scope = 'account') AS account_failures,
                 count(*) FILTER (WHERE scope = 'address') AS address_failures,
                 extract(epoch FROM max(failed_at) FILTER (WHERE scope = 'account')
                     + make_interval(secs => $3) - now())::float8 AS account_wait,
                 extract(epoch FROM max(failed_at) FILTER (WHERE scope = 'address')
                     + make_interval(secs => $3) - now())::float8 AS address_wait
             FROM auth_failures
             WHERE failed_at > now() - make_interval(secs => $3)
               AND ((scope = 'account' AND key = $1) OR (scope = 'address' AND key = $2))",
            &[&keys.account, &keys.address, &window_secs],
        )
        .await?;
    let account_failures: i64 = row.get("account_failures");
    let address_failures: i64 = row.get("address_failures");
    let account_wait: Option<f64> = row.get("account_wait");
    let address_wait: Option<f64> = row.get("address_wait");
    let mut wait: Option<f64> = None;
    if account_failures >= i64::from(limits.per_account) {
        wait = account_wait;
    }
    if address_failures >= i64::from(limits.per_address) {
        wait = Some(wait.unwrap_or(0.0).max(address_wait.unwrap_or(0.0)));
    }
    Ok(wait.map(|secs| Duration::from_secs(secs.max(1.0).ceil() as u64)))
}

/// An attempt counted as a failure until it succeeds.
#[derive(Debug)]
#[must_use = "a successful attempt must be passed to attempt_succeeded"]
pub struct Attempt {
    failure_ids: Vec<Uuid>,
}

/// Checks the limits for `keys` and, when another attempt is allowed, counts this one as a
/// failure under both keys, atomically: the keys' advisory locks (account, then address)
/// serialise concurrent attempts on either key until `tx` ends, so the caller commits `tx`
/// at once. Returns how long to wait when refused.
pub async fn begin_attempt(
    tx: &Transaction<'_>,
    keys: &AttemptKeys,
    limits: &LoginLimits,
) -> Result<std::result::Result<Attempt, Duration>> {
    lock_key(tx, "account", &keys.account).await?;
    lock_key(tx, "address", &keys.address).await?;
    if let Some(wait) = check(tx, keys, limits).await? {
        return Ok(Err(wait));
    }
    let failure_ids = tx
        .query(
            "INSERT INTO auth_failures (scope, key) VALUES ('account', $1), ('address', $2)
             RETURNING id",
            &[&keys.account, &keys.address],
        )
        .await?
        .iter()
        .map(|row| row.get("id"))
        .collect();
    Ok(Ok(Attempt { failure_ids }))
}

/// The attempt succeeded: it no longer counts as a failure.
pub async fn attempt_succeeded(client: &impl GenericClient, attempt: Attempt) -> Result<()> {
    client
        .execute(
            "DELETE FROM auth_failures WHERE id = ANY($1)",
            &[&attempt.failure_ids],
        )
        .await?;
    Ok(())
}

/// Takes the transaction-scoped advisory lock of one rate-limit key.
async fn lock_key(tx: &Transaction<'_>, scope: &str, key: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('fitkart.auth.' || $1 || ':' || $2, 0))",
        &[&scope, &key],
    )
    .await?;
    Ok(())
}

/// Checks the registration limit of `address` and, when another account may be created,
/// counts this one, atomically (the address's advisory lock is held until `tx` ends). Call
/// it in the transaction that creates the account, so a registration that fails is not
/// counted. Returns how long to wait when refused.
pub async fn count_registration(
    tx: &Transaction<'_>,
    address: IpAddr,
    limits: &LoginLimits,
) -> Result<Option<Duration>> {
    let key = address.to_string();
    lock_key(tx, "registration", &key).await?;
    let window_secs = limits.registration_window.as_secs_f64();
    let row = tx
        .query_one(
            "SELECT count(*) AS made,
                    extract(epoch FROM min(failed_at) + make_interval(secs => $2) - now())::float8 AS wait
             FROM auth_failures
             WHERE scope = 'registration' AND key = $1
               AND failed_at > now() - make_interval(secs => $2)",
            &[&key, &window_secs],
        )
        .await?;
    let (made, wait): (i64, Option<f64>) = (row.get("made"), row.get("wait"));
    if made >= i64::from(limits.registrations_per_address) {
        let secs = wait.unwrap_or(window_secs).max(1.0).ceil() as u64;
        return Ok(Some(Duration::from_secs(secs)));
    }
    tx.execute(
        "INSERT INTO auth_failures (scope, key) VALUES ('registration', $1)",
        &[&key],
    )
    .await?;
    Ok(None)
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

/// Deletes failures and registrations older than their windows. Returns how many were
/// removed.
pub async fn purge(client: &impl GenericClient, limits: &LoginLimits) -> Result<u64> {
    Ok(client
        .execute(
            "DELETE FROM auth_failures
             WHERE (scope <> 'registration' AND failed_at < now() - make_interval(secs => $1))
                OR (scope = 'registration' AND failed_at < now() - make_interval(secs => $2))",
            &[
                &limits.window.as_secs_f64(),
                &limits.registration_window.as_secs_f64(),
            ],
        )
        .await?)
}

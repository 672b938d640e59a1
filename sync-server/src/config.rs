//! Server configuration: where the database is, where to listen, secrets and limits.
//! Built from the command line and environment in `main.rs`; tests build it directly.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt as _;

/// The database URL the server uses when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/fitkart";

/// The address the server listens on when `FITKART_LISTEN` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The default of [`ServerConfig::db_pool_size`]. The usual rule for a pool in front of
/// PostgreSQL, twice the database server's cores plus its disks, was measured against it on
/// the 2-core benchmark machine (5 connections against 16, 13 pairs of runs): the wallet and
/// leaderboard reads gained a quarter a second on average and the profile 4%, the writes
/// nothing beyond the noise, and the worst read tails grew (a p99 above 25 ms in 6 of 13 runs
/// against 1 of 15 with 16), so the default stayed (`docs/benchmarks.md`, tuning step 10;
/// ADR 0014).
pub const DEFAULT_DB_POOL_SIZE: usize = 16;

/// The shortest JWT signing secret accepted, in bytes.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// Everything `serve` needs to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// PostgreSQL URL of the FitKart database (created if it does not exist).
    pub database_url: String,
    /// PostgreSQL URL of a streaming replica of that database, for reads that tolerate lag
    /// (history, catalogue, leaderboards, pulls; see [`crate::replica`]). `None`: every read
    /// goes to `database_url`.
    pub read_database_url: Option<String>,
    /// Socket address to listen on.
    pub listen: SocketAddr,
    /// Secret used to sign access tokens (HS256).
    pub jwt_secret: JwtSecret,
    /// Apply pending migrations on start.
    pub migrate_on_start: bool,
    /// Load the seed data (idempotent) on start.
    pub seed_on_start: bool,
    /// Maximum number of pooled database connections serving requests (each read replica's
    /// pool has as many); the background jobs have their own
    /// ([`crate::jobs::BACKGROUND_POOL_SIZE`]). Default: [`DEFAULT_DB_POOL_SIZE`].
    pub db_pool_size: usize,
    /// Group transactions of step reports in flight at once (`0`: every step report in a
    /// transaction of its own; [`crate::rewards::groups`]). Default:
    /// [`crate::rewards::groups::DEFAULT_GROUPS`].
    pub step_report_groups: usize,
    /// Requests of different users in one group transaction at most (`0` or `1`: no
    /// grouping). Default: [`crate::rewards::groups::DEFAULT_MAX_GROUP`].
    pub step_report_group_max: usize,
    /// Longest time one request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Longest time `POST /api/v1/admin/products/import` may take (it may download a feed).
    pub import_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Lifetime of an access token (JWT).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token.
    pub refresh_token_ttl: Duration,
    /// Sign-in rate limits.
    pub login_limits: LoginLimits,
    /// Hosts a catalogue import may fetch from although they resolve to a loopback, private,
    /// link-local or unique-local address (on-premises feeds). Empty: public addresses only.
    pub import_allowed_hosts: Vec<String>,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// UTC time of day of the nightly leaderboard rebuild.
    pub leaderboard_refresh_at: chrono::NaiveTime,
    /// Rebuild the leaderboards this often instead of nightly (tests and development).
    pub leaderboard_refresh_interval: Option<Duration>,
    /// With `trust_forwarded_for`, how many proxies in front of the server append to
    /// `X-Forwarded-For` (at least 1): the client address is the entry that many places from
    /// the right, the one the outermost trusted proxy added. Entries to its left were sent by
    /// the client and are ignored.
    pub trusted_proxy_hops: usize,
    /// A second address that serves only `GET /metrics`, without a token: bind it to an
    /// interface only the monitoring network reaches. `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// The bearer token `GET /metrics` on the public listener requires. `None`: the public
    /// listener answers `/metrics` with 404, so metrics are never served to anyone by default.
    pub metrics_token: Option<MetricsToken>,
    /// The secret that signed access tokens before the last rotation: tokens it signed are
    /// still accepted (new ones are signed with `jwt_secret`). Remove it once the access-token
    /// lifetime has passed since every instance runs with the new secret.
    pub jwt_previous_secret: Option<JwtSecret>,
    /// How often the database upkeep runs (partitions ahead, retention, pruning).
    pub upkeep_interval: Duration,
    /// Months of step records kept in `step_records`; older monthly partitions are detached
    /// and moved to the `archive` schema. `None` (the default) keeps everything.
    pub step_retention_months: Option<u32>,
    /// The replay window: a pushed mutation created longer ago than this that the server has
    /// no stored outcome for is rejected `mutation_expired`, and stored outcomes older than
    /// this are pruned.
    pub sync_replay_window: Duration,
    /// How often the ledger is verified in the background (`None`: never).
    pub ledger_verify_interval: Option<Duration>,
}

/// The default replay window of pushed mutations: 30 days.
pub const DEFAULT_SYNC_REPLAY_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The fewest months of step records a retention may keep: the current and the previous
/// month always stay, so a late report within the backfill window finds its partition.
pub const MIN_STEP_RETENTION_MONTHS: u32 = 2;

/// How many failed sign-ins are tolerated before `429 too_many_attempts`, and how many
/// accounts one address may create before `429 too_many_registrations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures per account within the window.
    pub per_account: u32,
    /// Failures per client address within the window.
    pub per_address: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// Accounts created per client address within `registration_window`.
    pub registrations_per_address: u32,
    /// The sliding window registrations are counted in.
    pub registration_window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
            registrations_per_address: 20,
            registration_window: Duration::from_secs(60 * 60),
        }
    }
}

impl ServerConfig {
    /// A configuration with the defaults for everything but the database URL and secret.
    pub fn new(database_url: impl Into<String>, jwt_secret: JwtSecret) -> Self {
        Self {
            database_url: database_url.into(),
            read_database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_secret,
            migrate_on_start: true,
            seed_on_start: true,
            db_pool_size: DEFAULT_DB_POOL_SIZE,
            step_report_groups: crate::rewards::groups::DEFAULT_GROUPS,
            step_report_group_max: crate::rewards::groups::DEFAULT_MAX_GROUP,
            request_timeout: Duration::from_secs(30),
            import_timeout: Duration::from_secs(120),
            body_limit_bytes: 1024 * 1024,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            login_limits: LoginLimits::default(),
            import_allowed_hosts: Vec::new(),
            trust_forwarded_for: false,
            leaderboard_refresh_at: chrono::NaiveTime::from_hms_opt(3, 0, 0)
                .unwrap_or(chrono::NaiveTime::MIN),
            leaderboard_refresh_interval: None,
            trusted_proxy_hops: 1,
            metrics_listen: None,
            metrics_token: None,
            jwt_previous_secret: None,
            upkeep_interval: Duration::from_secs(6 * 60 * 60),
            step_retention_months: None,
            sync_replay_window: DEFAULT_SYNC_REPLAY_WINDOW,
            ledger_verify_interval: Some(Duration::from_secs(24 * 60 * 60)),
        }
    }
}

/// The secret that signs access tokens. Its `Debug` output never shows the value.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

/// Why a JWT secret was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtSecretError {
    /// The secret is shorter than [`MIN_JWT_SECRET_LEN`] bytes.
    #[error("FITKART_JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} bytes long")]
    TooShort,
    /// No secret was given to a release build.
    #[error(
        "FITKART_JWT_SECRET is not set; a release build refuses to start without one \
         (generate one with `openssl rand -base64 48`)"
    )]
    Missing,
}

impl JwtSecret {
    /// Accepts a secret given by the operator.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, JwtSecretError> {
        let secret = secret.into();
        if secret.len() < MIN_JWT_SECRET_LEN {
            return Err(JwtSecretError::TooShort);
        }
        Ok(Self(secret))
    }

    /// A random secret, for debug builds and tests: tokens die with the process.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 48];
        rand::rng().fill(&mut bytes[..]);
        Self(bytes)
    }

    /// Resolves the secret for `serve`: the given one, or (debug builds only) a generated one.
    /// Returns the secret and whether it was generated.
    pub fn from_option(secret: Option<String>) -> Result<(Self, bool), JwtSecretError> {
        match secret {
            Some(value) if !value.is_empty() => Ok((Self::new(value.into_bytes())?, false)),
            _ if cfg!(debug_assertions) => Ok((Self::generate(), true)),
            _ => Err(JwtSecretError::Missing),
        }
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// The shortest metrics token accepted, in bytes.
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

/// The bearer token that guards `GET /metrics` on the public listener. Its `Debug` output
/// never shows the value.
#[derive(Clone)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Accepts a token given by the operator: at least [`MIN_METRICS_TOKEN_LEN`] bytes of
    /// visible ASCII (it travels in an HTTP header).
    pub fn new(token: impl Into<String>) -> Result<Self, String> {
        let token = token.into();
        if token.len() < MIN_METRICS_TOKEN_LEN {
            return Err(format!(
                "FITKART_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LEN} bytes long"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("FITKART_METRICS_TOKEN must be visible ASCII without spaces".into());
        }
        Ok(Self(token))
    }

    /// Whether `presented` is this token. Compares SHA-256 digests, so the time taken does
    /// not tell how much of a guess was right.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest as _, Sha256};
        Sha256::digest(self.0.as_bytes()) == Sha256::digest(presented.as_bytes())
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_and_debug_hides_the_value() {
        assert!(matches!(
            JwtSecret::new("short"),
            Err(JwtSecretError::TooShort)
        ));
        let secret = JwtSecret::new("x".repeat(40)).unwrap();
        assert_eq!(format!("{secret:?}"), "JwtSecret(..)");
    }

    #[test]
    fn metrics_tokens_are_checked_and_hidden() {
        assert!(MetricsToken::new("short").is_err());
        assert!(MetricsToken::new("a token with spaces in it").is_err());
        let token = MetricsToken::new("0123456789abcdef-metrics").unwrap();
        assert!(token.matches("0123456789abcdef-metrics"));
        assert!(!token.matches("0123456789abcdef-metricz"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "MetricsToken(..)");
    }

    #[test]
    fn a_debug_build_generates_a_secret_when_none_is_given() {
        let resolved = JwtSecret::from_option(None);
        if cfg!(debug_assertions) {
            let (secret, generated) = resolved.unwrap();
            assert!(generated);
            assert!(secret.as_bytes().len() >= MIN_JWT_SECRET_LEN);
        } else {
            assert!(matches!(resolved, Err(JwtSecretError::Missing)));
        }
    }
}

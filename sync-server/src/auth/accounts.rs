//! Accounts and sessions: registration, sign-in (argon2id, legacy bcrypt re-hashed), refresh
//! token rotation with reuse detection, logout, password change, profile and deletion.
//! Every function here owns its transaction; handlers only parse and respond.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use fitkart_protocol::auth::{ProfilePatch, Role, TokenResponse, UserProfile, limits};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::auth::bootstrap::normalize_email;
use crate::auth::password::{self, PasswordPolicyError};
use crate::auth::rate_limit::{self, AttemptKeys};
use crate::auth::tokens::{AccessTokens, hash_refresh_token, new_refresh_token};
use crate::config::LoginLimits;
use crate::db::CachedStatements as _;
use crate::error::{DomainError, ErrorKind};
use crate::sync::versions::{self, next_user_version};

/// Where a request came from, for rate limits and token records.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's address.
    pub address: std::net::IpAddr,
    /// Its `User-Agent`, truncated.
    pub user_agent: Option<String>,
}

/// What the account functions need besides the database.
pub struct Sessions<'a> {
    /// Signs access tokens.
    pub tokens: &'a AccessTokens,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: std::time::Duration,
    /// Sign-in rate limits.
    pub limits: &'a LoginLimits,
}

const PROFILE_COLUMNS: &str =
    "id, email, display_name, role, timezone, daily_step_goal, created_at, session_epoch";

struct Account {
    profile: UserProfile,
    epoch: i32,
}

/// What a request's account check reads of the caller's live account
/// (`crate::http::extract::PendingAuth`): its role, its session epoch and whether it is
/// disabled. A read of the caller's own row selects these with its columns, so the check and
/// the read are one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The role as stored (`users.role`).
    pub role: String,
    /// The account's session epoch (`users.session_epoch`): a token of another has ended.
    pub session_epoch: i32,
    /// Whether an administrator has disabled the account.
    pub disabled: bool,
}

/// The columns of `users` that [`Standing::from_row`] reads.
pub const STANDING_COLUMNS: &str = "role, session_epoch, disabled_at IS NOT NULL AS disabled";

impl Standing {
    /// Reads the [`STANDING_COLUMNS`] of `row`.
    pub fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            role: row.get("role"),
            session_epoch: row.get("session_epoch"),
            disabled: row.get("disabled"),
        }
    }
}

fn account_from_row(row: &tokio_postgres::Row) -> Result<Account, DomainError> {
    let role: String = row.get("role");
    Ok(Account {
        profile: UserProfile {
            id: row.get("id"),
            email: row.get("email"),
            display_name: row.get("display_name"),
            role: Role::parse(&role).ok_or_else(DomainError::internal)?,
            timezone: row.get("timezone"),
            daily_step_goal: row.get("daily_step_goal"),
            created_at: row.get::<_, DateTime<Utc>>("created_at"),
        },
        epoch: row.get("session_epoch"),
    })
}

fn weak_password(err: PasswordPolicyError) -> DomainError {
    DomainError::new(ErrorKind::Invalid, "weak_password", err.to_string())
        .with_details(serde_json::json!({ "field": "password" }))
}

fn invalid_credentials() -> DomainError {
    DomainError::unauthorized("invalid_credentials", "the email or password is wrong")
}

/// Validates and normalises a display name.
fn display_name(value: &str) -> Result<String, DomainError> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > limits::DISPLAY_NAME_MAX_CHARS || trimmed.chars().any(char::is_control)
    {
        return Err(DomainError::validation(
            "display_name",
            format!(
                "display_name must be 1 to {} characters without control characters",
                limits::DISPLAY_NAME_MAX_CHARS
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Runs CPU-heavy password work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DomainError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| DomainError::internal())
}

/// A hash to verify against when the email is unknown, so both cases take similar time.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        password::hash_password("a password nobody has, for timing only")
            .unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$invalid"))
    })
}

/// Checks a password against a stored hash: argon2id, or bcrypt from the old system.
fn verify_stored(candidate: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        bcrypt::verify(candidate, stored).unwrap_or(false)
    } else {
        password::verify_password(candidate, stored)
    }
}

/// Issues a new refresh token in `family` (a new family when `None`) and an access token.
async fn issue_session(
    tx: &impl GenericClient,
    sessions: &Sessions<'_>,
    account: Account,
    family: Option<Uuid>,
    parent: Option<Uuid>,
    client: &ClientInfo,
) -> Result<TokenResponse, DomainError> {
    let (refresh_token, hash) = new_refresh_token();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(sessions.refresh_ttl).map_err(|_| DomainError::internal())?;
    let family = family.unwrap_or_else(Uuid::now_v7);
    tx.execute(
        "INSERT INTO refresh_tokens
             (id, user_id, family_id, token_hash, parent_id, user_agent, ip_address, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &Uuid::now_v7(),
            &account.profile.id,
            &family,
            &hash,
            &parent,
            &client.user_agent,
            &client.address,
            &expires_at,
        ],
    )
    .await?;
    let access_token = sessions
        .tokens
        .issue(account.profile.id, account.profile.role, account.epoch)
        .map_err(DomainError::from)?;
    Ok(TokenResponse {
        user: account.profile,
        access_token,
        refresh_token,
        expires_in: sessions.tokens.ttl_secs(),
        token_type: "Bearer".into(),
    })
}

/// Creates an account with its wallet and signs it in.
pub async fn register(
    pool: &Pool,
    sessions: &Sessions<'_>,
    email: &str,
    new_password: &str,
    name: &str,
    client: &ClientInfo,
) -> Result<TokenResponse, DomainError> {
    let email = normalize_email(email)
        .ok_or_else(|| DomainError::validation("email", "email is not a valid address"))?;
    let name = display_name(name)?;
    password::check_policy(new_password).map_err(weak_password)?;

    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // Counted (and refused) before the costly hash; the count rolls back if this fails.
    if let Some(wait) = rate_limit::count_registration(&tx, client.address, sessions.limits).await?
    {
        return Err(DomainError::too_many(
            "too_many_registrations",
            "too many accounts were created from this address; retry later",
            wait,
        ));
    }
    let owned = new_password.to_owned();
    let hash = blocking(move || password::hash_password(&owned)).await??;
    let id = Uuid::now_v7();
    let inserted = tx
        .query_one(
            &format!(
                "INSERT INTO users (id, email, password_hash, display_name, daily_step_goal)
                 VALUES ($1, $2, $3, $4, coalesce(
                     (SELECT (value #>> '{{}}')::int FROM settings
                      WHERE key = $5 AND jsonb_typeof(value) = 'number'), 10000))
                 RETURNING {PROFILE_COLUMNS}"
            ),
            &[
                &id,
                &email,
                &hash,
                &name,
                &crate::rewards::settings::SettingKey::DailyGoalDefault.as_str(),
            ],
        )
        .await;
    let row = match inserted {
        Ok(row) => row,
        Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(DomainError::new(
                ErrorKind::Conflict,
                "email_taken",
                "an account with this email already exists",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    tx.execute("INSERT INTO wallets (user_id) VALUES ($1)", &[&id])
        .await?;
    versions::start_user(&tx, id).await?;
    let response =
        issue_session(&tx, sessions, account_from_row(&row)?, None, None, client).await?;
    tx.commit().await?;
    Ok(response)
}

/// Signs in with email and password, subject to the rate limits.
pub async fn login(
    pool: &Pool,
    sessions: &Sessions<'_>,
    email: &str,
    candidate: &str,
    client: &ClientInfo,
) -> Result<TokenResponse, DomainError> {
    let keys = AttemptKeys::new(email, client.address);
    let mut conn = pool.get().await?;
    let attempt = begin_attempt(&mut conn, &keys, sessions.limits).await?;
    let found = conn
        .query_opt(
            &format!(
                "SELECT {PROFILE_COLUMNS}, password_hash, disabled_at FROM users
                 WHERE lower(email) = lower($1) AND deleted_at IS NULL"
            ),
            &[&email.trim()],
        )
        .await?;
    let stored: String = match &found {
        Some(row) => row.get("password_hash"),
        None => dummy_hash().to_owned(),
    };
    let owned = candidate.to_owned();
    let stored_for_check = stored.clone();
    let matches = blocking(move || verify_stored(&owned, &stored_for_check)).await?;
    // A failed attempt stays counted.
    let row = match (found, matches) {
        (Some(row), true) => row,
        _ => return Err(invalid_credentials()),
    };
    if row.get::<_, Option<DateTime<Utc>>>(9).is_some() {
        // Said only to someone who knows the password; the attempt stays counted.
        return Err(account_disabled());
    }
    let account = account_from_row(&row)?;
    // Accounts imported with bcrypt hashes move to argon2id on their first sign-in.
    let rehash = if stored.starts_with("$2") {
        let owned = candidate.to_owned();
        Some(blocking(move || password::hash_password(&owned)).await??)
    } else {
        None
    };
    let tx = conn.transaction().await?;
    tx.execute(
        "UPDATE users SET last_login_at = now(), password_hash = coalesce($2, password_hash)
         WHERE id = $1",
        &[&account.profile.id, &rehash],
    )
    .await?;
    rate_limit::attempt_succeeded(&tx, attempt).await?;
    rate_limit::clear_account(&tx, &keys).await?;
    let response = issue_session(&tx, sessions, account, None, None, client).await?;
    tx.commit().await?;
    Ok(response)
}

/// Counts a sign-in attempt before the password is checked, or refuses it (429) when a limit
/// is reached; atomic across concurrent attempts and server instances.
async fn begin_attempt(
    conn: &mut deadpool_postgres::Client,
    keys: &AttemptKeys,
    limits: &LoginLimits,
) -> Result<rate_limit::Attempt, DomainError> {
    let tx = conn.transaction().await?;
    let attempt = rate_limit::begin_attempt(&tx, keys, limits).await?;
    tx.commit().await?;
    attempt.map_err(|wait| {
        DomainError::too_many(
            "too_many_attempts",
            "too many failed sign-in attempts; retry later",
            wait,
        )
    })
}

/// Exchanges a refresh token for a new pair. A token that was already spent revokes its
/// whole family: someone else holds a copy.
pub async fn refresh(
    pool: &Pool,
    sessions: &Sessions<'_>,
    refresh_token: &str,
    client: &ClientInfo,
) -> Result<TokenResponse, DomainError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let token = PresentedToken::lock(&tx, &hash_refresh_token(refresh_token)).await?;
    if token.disabled && !token.deleted {
        return Err(account_disabled());
    }
    if token.used {
        revoke_reused_family(&tx, token.family).await?;
        tx.commit().await?;
        return Err(DomainError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; every session of this sign-in is revoked",
        ));
    }
    if let Some(refusal) = token.refusal() {
        return Err(refusal);
    }
    tx.execute(
        "UPDATE refresh_tokens SET used_at = now() WHERE id = $1",
        &[&token.id],
    )
    .await?;
    let row = tx
        .query_one(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM users
                 WHERE id = (SELECT user_id FROM refresh_tokens WHERE id = $1)"
            ),
            &[&token.id],
        )
        .await?;
    let response = issue_session(
        &tx,
        sessions,
        account_from_row(&row)?,
        Some(token.family),
        Some(token.id),
        client,
    )
    .await?;
    tx.commit().await?;
    Ok(response)
}

/// A refresh token as presented, locked until commit, with what decides whether it may be
/// exchanged.
struct PresentedToken {
    id: Uuid,
    family: Uuid,
    used: bool,
    revoked: bool,
    expired: bool,
    deleted: bool,
    disabled: bool,
}

impl PresentedToken {
    /// Locks the token with this hash; an unknown one is 401 `invalid_refresh_token`.
    async fn lock(tx: &Transaction<'_>, hash: &[u8]) -> Result<Self, DomainError> {
        let row = tx
            .query_opt(
                "SELECT t.id, t.family_id, t.used_at IS NOT NULL AS used,
                        t.revoked_at IS NOT NULL AS revoked, t.expires_at <= now() AS expired,
                        u.deleted_at IS NOT NULL AS deleted, u.disabled_at IS NOT NULL AS disabled
                 FROM refresh_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1
                 FOR UPDATE OF t",
                &[&hash],
            )
            .await?
            .ok_or_else(invalid_refresh_token)?;
        Ok(Self {
            id: row.get("id"),
            family: row.get("family_id"),
            used: row.get("used"),
            revoked: row.get("revoked"),
            expired: row.get("expired"),
            deleted: row.get("deleted"),
            disabled: row.get("disabled"),
        })
    }

    /// Why a token that was not spent yet may not be exchanged, if it may not: it was
    /// revoked (or its account deleted), or it expired.
    fn refusal(&self) -> Option<DomainError> {
        if self.revoked || self.deleted {
            Some(DomainError::unauthorized(
                "refresh_token_revoked",
                "this refresh token was revoked; sign in again",
            ))
        } else if self.expired {
            Some(DomainError::unauthorized(
                "refresh_token_expired",
                "this refresh token has expired; sign in again",
            ))
        } else {
            None
        }
    }
}

/// Revokes every live token of a family whose spent token came back: someone else holds a
/// copy.
async fn revoke_reused_family(tx: &Transaction<'_>, family: Uuid) -> Result<(), DomainError> {
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = 'reuse_detected'
         WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family],
    )
    .await?;
    tracing::warn!(%family, "refresh token reused: revoked its family");
    Ok(())
}

/// 403 `account_disabled`: an administrator disabled the account.
pub fn account_disabled() -> DomainError {
    DomainError::new(
        ErrorKind::Forbidden,
        "account_disabled",
        "this account is disabled; contact support",
    )
}

fn invalid_refresh_token() -> DomainError {
    DomainError::unauthorized("invalid_refresh_token", "this refresh token is not valid")
}

/// Revokes the family of a refresh token (signs that device out).
pub async fn logout(pool: &Pool, refresh_token: &str) -> Result<(), DomainError> {
    let hash = hash_refresh_token(refresh_token);
    let conn = pool.get().await?;
    let family: Uuid = conn
        .query_opt(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1",
            &[&hash],
        )
        .await?
        .ok_or_else(invalid_refresh_token)?
        .get("family_id");
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = 'logout'
         WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family],
    )
    .await?;
    Ok(())
}

/// The live account's profile and its [`Standing`] for the account check, from one row in one
/// statement (`GET /me`); `None` when the account does not exist or was deleted.
pub async fn profile_and_standing(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<(UserProfile, Standing)>, DomainError> {
    let row = client
        .query_opt_cached(
            // PROFILE_COLUMNS carry the role and the session epoch.
            &format!(
                "SELECT {PROFILE_COLUMNS}, disabled_at IS NOT NULL AS disabled
                 FROM users WHERE id = $1 AND deleted_at IS NULL"
            ),
            &[&user_id],
        )
        .await?;
    row.map(|row| Ok((account_from_row(&row)?.profile, Standing::from_row(&row))))
        .transpose()
}

/// The profile, deleted accounts included (sync shows a deleted account as it was), when it
/// changed in versions `(after, to]`.
pub async fn profile_changed(
    client: &impl GenericClient,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Option<UserProfile>, DomainError> {
    client
        .query_opt_cached(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM users
                 WHERE id = $1 AND change_version > $2 AND change_version <= $3"
            ),
            &[&user_id, &after, &to],
        )
        .await?
        .map(|row| Ok(account_from_row(&row)?.profile))
        .transpose()
}

/// Validates a profile patch: each field it carries must be acceptable.
pub fn validate_patch(patch: &ProfilePatch) -> Result<ProfilePatch, DomainError> {
    let display_name = patch
        .display_name
        .as_deref()
        .map(display_name)
        .transpose()?;
    let timezone = match &patch.timezone {
        Some(tz) => {
            let tz = tz.trim();
            if tz.parse::<chrono_tz::Tz>().is_err() {
                return Err(DomainError::validation(
                    "timezone",
                    "timezone must be an IANA time zone such as Europe/Berlin",
                ));
            }
            Some(tz.to_owned())
        }
        None => None,
    };
    if let Some(goal) = patch.daily_step_goal
        && !(limits::DAILY_STEP_GOAL_MIN..=limits::DAILY_STEP_GOAL_MAX).contains(&goal)
    {
        return Err(DomainError::validation(
            "daily_step_goal",
            format!(
                "daily_step_goal must be between {} and {}",
                limits::DAILY_STEP_GOAL_MIN,
                limits::DAILY_STEP_GOAL_MAX
            ),
        ));
    }
    Ok(ProfilePatch {
        display_name,
        timezone,
        daily_step_goal: patch.daily_step_goal,
    })
}

/// Applies a validated profile patch and bumps the user's change version for sync.
pub async fn update_profile(
    pool: &Pool,
    user_id: Uuid,
    patch: &ProfilePatch,
) -> Result<UserProfile, DomainError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let profile = update_profile_in(&tx, user_id, patch).await?;
    tx.commit().await?;
    Ok(profile)
}

/// [`update_profile`] inside the caller's transaction (which it does not commit).
pub async fn update_profile_in(
    tx: &Transaction<'_>,
    user_id: Uuid,
    patch: &ProfilePatch,
) -> Result<UserProfile, DomainError> {
    let patch = validate_patch(patch)?;
    let version = next_user_version(tx, user_id).await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE users SET
                     display_name = coalesce($2, display_name),
                     timezone = coalesce($3, timezone),
                     daily_step_goal = coalesce($4, daily_step_goal),
                     change_version = $5
                 WHERE id = $1 AND deleted_at IS NULL
                 RETURNING {PROFILE_COLUMNS}"
            ),
            &[
                &user_id,
                &patch.display_name,
                &patch.timezone,
                &patch.daily_step_goal,
                &version,
            ],
        )
        .await?
        .ok_or_else(|| DomainError::not_found("no such account"))?;
    Ok(account_from_row(&row)?.profile)
}

/// Changes the password after checking the current one; every session of the user ends and
/// a new one is returned.
pub async fn change_password(
    pool: &Pool,
    sessions: &Sessions<'_>,
    user_id: Uuid,
    current: &str,
    new_password: &str,
    client: &ClientInfo,
) -> Result<TokenResponse, DomainError> {
    let mut conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT email, password_hash FROM users WHERE id = $1 AND deleted_at IS NULL",
            &[&user_id],
        )
        .await?
        .ok_or_else(|| DomainError::not_found("no such account"))?;
    let (email, stored): (String, String) = (row.get("email"), row.get("password_hash"));
    let keys = AttemptKeys::new(&email, client.address);
    let attempt = begin_attempt(&mut conn, &keys, sessions.limits).await?;
    let owned = current.to_owned();
    if !blocking(move || verify_stored(&owned, &stored)).await? {
        // The failed attempt stays counted.
        return Err(DomainError::new(
            ErrorKind::Forbidden,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    rate_limit::attempt_succeeded(&conn, attempt).await?;
    password::check_policy(new_password).map_err(weak_password)?;
    if current == new_password {
        return Err(DomainError::new(
            ErrorKind::Invalid,
            "weak_password",
            "the new password must differ from the current one",
        )
        .with_details(serde_json::json!({ "field": "new_password" })));
    }
    let owned = new_password.to_owned();
    let hash = blocking(move || password::hash_password(&owned)).await??;
    let tx = conn.transaction().await?;
    // First, so the session issued below carries the new epoch.
    end_all_sessions(&tx, user_id, SessionsEnd::PasswordChange).await?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING {PROFILE_COLUMNS}"
            ),
            &[&user_id, &hash],
        )
        .await?;
    rate_limit::clear_account(&tx, &keys).await?;
    let response =
        issue_session(&tx, sessions, account_from_row(&row)?, None, None, client).await?;
    tx.commit().await?;
    Ok(response)
}

/// Why every session of an account ends (`refresh_tokens.revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsEnd {
    /// The password changed (by its owner, or reset by `create-admin --promote`).
    PasswordChange,
    /// The account was deleted.
    AccountDeleted,
    /// An administrator disabled the account.
    Admin,
}

impl SessionsEnd {
    fn reason(self) -> &'static str {
        match self {
            Self::PasswordChange => "password_change",
            Self::AccountDeleted => "account_deleted",
            Self::Admin => "admin",
        }
    }
}

/// Ends every session of `user_id` at once, in the caller's transaction: access tokens die
/// through the session epoch (the extractor compares it on every request), refresh tokens are
/// revoked with `why`. The one place that does it, so no path can end one kind and forget
/// the other. A session issued later in the same transaction carries the new epoch.
pub async fn end_all_sessions(
    tx: &impl GenericClient,
    user_id: Uuid,
    why: SessionsEnd,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1",
        &[&user_id],
    )
    .await?;
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL",
        &[&user_id, &why.reason()],
    )
    .await?;
    Ok(())
}

/// Soft-deletes the account: it can no longer sign in, every session ends, its data stays
/// for audit.
pub async fn delete_account(pool: &Pool, user_id: Uuid) -> Result<(), DomainError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let updated = tx
        .execute(
            "UPDATE users SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
            &[&user_id],
        )
        .await?;
    if updated == 0 {
        return Err(DomainError::not_found("no such account"));
    }
    end_all_sessions(&tx, user_id, SessionsEnd::AccountDeleted).await?;
    tx.commit().await?;
    Ok(())
}

/// One account as the admin user list shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AdminUserSummary {
    /// The account.
    #[serde(flatten)]
    pub profile: UserProfile,
    /// Last successful sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// When an administrator disabled the account (`None`: it is enabled).
    pub disabled_at: Option<DateTime<Utc>>,
}

/// Live accounts whose email or display name starts with `query` (all when empty), newest
/// first, with the total count of matches.
pub async fn search_users(
    pool: &Pool,
    query: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AdminUserSummary>, i64), DomainError> {
    let conn = pool.get().await?;
    let pattern = format!("{}%", crate::db::like_literal(query));
    let rows = conn
        .query(
            &format!(
                "SELECT {PROFILE_COLUMNS}, last_login_at, disabled_at, count(*) OVER () AS total FROM users
                 WHERE deleted_at IS NULL
                   AND (lower(email) LIKE $1 OR lower(display_name) LIKE $1)
                 ORDER BY created_at DESC, id DESC
                 LIMIT $2 OFFSET $3"
            ),
            &[&pattern, &limit, &offset],
        )
        .await?;
    let total = rows.first().map(|r| r.get::<_, i64>("total")).unwrap_or(0);
    let users = rows
        .iter()
        .map(|row| {
            Ok(AdminUserSummary {
                profile: account_from_row(row)?.profile,
                last_login_at: row.get("last_login_at"),
                disabled_at: row.get("disabled_at"),
            })
        })
        .collect::<Result<_, DomainError>>()?;
    Ok((users, total))
}

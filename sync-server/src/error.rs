//! The server's error types, free of HTTP: [`Error`] for internal failures (database, pool,
//! migration, configuration) and [`DomainError`], what every domain function answers when it
//! will not or cannot do what was asked: a [`ErrorKind`], a stable machine-readable code, a
//! message without personal or database detail, and optional structured details. The HTTP
//! edge (`http::ApiError`) maps each kind to its status in one place and logs every
//! unexpected failure there, inside the request's span (so with its request id).

use std::time::Duration;

/// An internal failure: database, pool, migration or configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query or connection failed.
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// No pooled connection could be had.
    #[error("database pool error: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The pool could not be built from the configuration.
    #[error("database pool configuration error: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// Seed data could not be read or loaded.
    #[error("seed data error: {0}")]
    Seed(String),
    /// The configuration is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Hashing a password failed.
    #[error("password hashing failed")]
    PasswordHash,
}

/// Result alias for internal operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds a client is told to wait when the database is unavailable.
pub const RETRY_AFTER_SECONDS: u32 = 5;

impl Error {
    /// Whether the failure is an outage a retry can outlive rather than a bug: no pooled
    /// connection within the wait timeout, a lost connection, the database shutting down,
    /// refusing connections or out of resources, or a serialisation conflict.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Pool(deadpool_postgres::PoolError::Backend(db)) | Error::Database(db) => {
                is_transient_db_error(db)
            }
            Error::Pool(_) => true,
            _ => false,
        }
    }
}

fn is_transient_db_error(err: &tokio_postgres::Error) -> bool {
    let Some(code) = err.code() else {
        // No SQLSTATE: the connection itself failed (refused, closed, timed out).
        return err.as_db_error().is_none();
    };
    let code = code.code();
    // 08: connection exception, 53: insufficient resources, 57P0x: operator intervention
    // (shutdown, cannot connect now), 55000 here: the database does not accept connections,
    // 40001/40P01: serialisation failure and deadlock.
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || code == "55000"
            && err
                .as_db_error()
                .is_some_and(|db| db.message().contains("connections"))
        || code == "40001"
        || code == "40P01"
}

/// What kind of refusal or failure a [`DomainError`] is. The caller's fault or the state of
/// things, never a transport: `http::ApiError` gives each kind its one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot be understood (a bad cursor, a malformed value).
    BadRequest,
    /// Who is calling is unknown: no, a bad or an expired credential.
    Unauthenticated,
    /// The caller is known but may not do this.
    Forbidden,
    /// What the request names does not exist (for this caller).
    NotFound,
    /// The request is well formed but the current state refuses it (not enough coins, a
    /// taken email, an order that cannot move that way).
    Conflict,
    /// What the request names existed and is gone for good (a cursor past the retention).
    Gone,
    /// A field's value breaks a rule; the details name the field.
    Invalid,
    /// Too many attempts; retry after the given number of seconds.
    RateLimited {
        /// Seconds to wait before the next attempt.
        retry_after_seconds: u64,
    },
    /// The service cannot answer right now (database down, not migrated); retry later.
    Unavailable {
        /// Seconds to wait, when the server can say.
        retry_after_seconds: Option<u32>,
    },
    /// A bug or an outage the caller cannot fix; its cause is logged, never sent.
    Internal,
}

impl ErrorKind {
    /// Whether the caller (or the state it asked about) is the cause, so that retrying the
    /// same request gets the same answer: every kind but [`Self::Internal`] and
    /// [`Self::Unavailable`].
    pub fn is_refusal(self) -> bool {
        !matches!(self, Self::Internal | Self::Unavailable { .. })
    }
}

/// A domain function's refusal or failure (see the module docs).
#[derive(Debug)]
pub struct DomainError {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    details: serde_json::Value,
    /// For [`ErrorKind::Internal`]: what went wrong, for the log only.
    cause: Option<String>,
}

impl DomainError {
    /// An error of the given kind, code and message.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            cause: None,
        }
    }

    /// Adds structured details (which field failed, what was missing, ...).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// [`ErrorKind::BadRequest`] `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, "bad_request", message)
    }

    /// [`ErrorKind::Unauthenticated`] with the given code.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, code, message)
    }

    /// [`ErrorKind::Forbidden`] `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", message)
    }

    /// [`ErrorKind::NotFound`] `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }

    /// [`ErrorKind::Conflict`] with the given code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// [`ErrorKind::Invalid`] `validation_failed`, naming the field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "validation_failed", message)
            .with_details(serde_json::json!({ "field": field }))
    }

    /// [`ErrorKind::RateLimited`] with the given code: retry after `wait` (at least a second),
    /// also given in the details as `retry_after_seconds`.
    pub fn too_many(code: &'static str, message: impl Into<String>, wait: Duration) -> Self {
        let secs = wait.as_secs().max(1);
        Self::new(
            ErrorKind::RateLimited {
                retry_after_seconds: secs,
            },
            code,
            message,
        )
        .with_details(serde_json::json!({ "retry_after_seconds": secs }))
    }

    /// [`ErrorKind::Unavailable`] `unavailable`: the server cannot serve right now (not
    /// migrated, no fresh replica).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Unavailable {
                retry_after_seconds: None,
            },
            "unavailable",
            message,
        )
    }

    /// [`ErrorKind::Unavailable`] `service_unavailable`, retry after
    /// [`RETRY_AFTER_SECONDS`]: the database is down, overloaded or restarting; the same
    /// request can be sent again later.
    pub fn database_unavailable() -> Self {
        Self::new(
            ErrorKind::Unavailable {
                retry_after_seconds: Some(RETRY_AFTER_SECONDS),
            },
            "service_unavailable",
            "the database is unavailable, retry later",
        )
    }

    /// [`ErrorKind::Internal`] `internal`: a bug or an outage, without a cause to log.
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal",
            "the server failed to handle this request",
        )
    }

    /// [`ErrorKind::Internal`] `internal`, keeping `cause` for the log (never sent).
    pub fn internal_because(cause: impl std::fmt::Display) -> Self {
        let mut error = Self::internal();
        error.cause = Some(cause.to_string());
        error
    }

    /// What kind of refusal or failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The structured details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        (!self.details.is_null()).then_some(&self.details)
    }

    /// For an internal error: its cause, for the log.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// The parts, for the HTTP edge: kind, code, message, details, cause.
    pub fn into_parts(
        self,
    ) -> (
        ErrorKind,
        &'static str,
        String,
        serde_json::Value,
        Option<String>,
    ) {
        (self.kind, self.code, self.message, self.details, self.cause)
    }
}

impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DomainError {}

impl From<Error> for DomainError {
    /// An outage a retry can outlive is [`DomainError::database_unavailable`]; anything else
    /// is internal, its cause kept for the log.
    fn from(err: Error) -> Self {
        if err.is_transient() {
            let mut error = Self::database_unavailable();
            error.cause = Some(err.to_string());
            return error;
        }
        Self::internal_because(err)
    }
}

impl From<tokio_postgres::Error> for DomainError {
    fn from(err: tokio_postgres::Error) -> Self {
        Error::from(err).into()
    }
}

impl From<deadpool_postgres::PoolError> for DomainError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Error::from(err).into()
    }
}

impl From<fitkart_protocol::validate::Invalid> for DomainError {
    /// A body or value that breaks a field's rule: [`DomainError::validation`] naming it.
    fn from(invalid: fitkart_protocol::validate::Invalid) -> Self {
        Self::validation(&invalid.field, invalid.message)
    }
}

//! The server's two error layers: [`Error`] for everything internal, and [`ApiError`], the
//! only thing an HTTP handler returns, mapped to a status and a stable code in one place.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fitkart_protocol::{ErrorBody, ErrorEnvelope};

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

/// An error answered to an HTTP client: a status, a stable machine-readable code, a message
/// without personal or database detail, and optional structured details.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: serde_json::Value,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, ...).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 401 with the given code, and the `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message).with_header(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Adds structured details (which field failed, what was missing, ...).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 `validation_failed`, naming the field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(serde_json::json!({ "field": field }))
    }

    /// 503 `unavailable`: the server cannot serve right now (database down, not migrated).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`: a bug or an outage. The cause is logged, never sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
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
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        if err.is_transient() {
            tracing::error!(error = %err, "database unavailable: answering 503");
            return Self::database_unavailable();
        }
        tracing::error!(error = %err, "request failed");
        Self::internal()
    }
}

/// Seconds a client is told to wait (`Retry-After`) when the database is unavailable.
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

impl ApiError {
    /// 503 `service_unavailable` with `Retry-After`: the database is down, overloaded or
    /// restarting; the same request can be sent again later.
    pub fn database_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the database is unavailable, retry later",
        )
        .with_header(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_SECONDS),
        )
    }

    /// 500 `internal`, logging `cause` (inside the request's span, so with its request id).
    pub fn internal_because(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::internal()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        Error::from(err).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Error::from(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

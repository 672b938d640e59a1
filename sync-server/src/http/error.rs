//! `ApiError`, the only error an HTTP handler returns: a status, a stable code, a message and
//! optional details and headers, answered as the error envelope. A domain error
//! ([`DomainError`]) becomes one here, in one place: [`status_of`] gives each
//! [`ErrorKind`] its status, and every unexpected failure is logged as it becomes a 500 or a
//! 503, inside the request's span (so with its request id).

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fitkart_protocol::{ErrorBody, ErrorEnvelope};

use crate::error::{DomainError, Error, ErrorKind};

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

/// The one status of each kind of domain error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let (kind, code, message, details, cause) = err.into_parts();
        let mut api = Self::new(status_of(kind), code, message).with_details(details);
        match kind {
            ErrorKind::Unauthenticated => {
                api = api.with_header(
                    axum::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
            }
            ErrorKind::RateLimited {
                retry_after_seconds,
            } => {
                api = api.with_header(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from(retry_after_seconds),
                );
            }
            ErrorKind::Unavailable {
                retry_after_seconds,
            } => {
                if let Some(cause) = &cause {
                    tracing::error!(error = %cause, "database unavailable: answering 503");
                }
                if let Some(seconds) = retry_after_seconds {
                    api = api
                        .with_header(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
                }
            }
            ErrorKind::Internal => {
                tracing::error!(
                    error = cause.as_deref().unwrap_or("no cause recorded"),
                    "request failed"
                );
            }
            _ => {}
        }
        api
    }
}

impl ApiError {
    /// An error with the given status, code and message (for refusals of the HTTP layer
    /// itself: a malformed body, an unknown route; domain refusals come as [`DomainError`]).
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

    /// Adds structured details (which field failed, what was missing, ...).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// 400 `bad_request` (see [`DomainError::bad_request`]).
    pub fn bad_request(message: impl Into<String>) -> Self {
        DomainError::bad_request(message).into()
    }

    /// 401 with the given code and the `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::unauthorized(code, message).into()
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        DomainError::forbidden(message).into()
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        DomainError::not_found(message).into()
    }

    /// 422 `validation_failed`, naming the field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        DomainError::validation(field, message).into()
    }

    /// 503 `unavailable`: the server cannot serve right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        DomainError::unavailable(message).into()
    }

    /// 500 `internal` (a bug: the caller's data was fine).
    pub fn internal() -> Self {
        DomainError::internal().into()
    }

    /// 500 `internal`, logging `cause` (inside the request's span, so with its request id).
    pub fn internal_because(cause: impl std::fmt::Display) -> Self {
        DomainError::internal_because(cause).into()
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
        DomainError::from(err).into()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        DomainError::from(err).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        DomainError::from(err).into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_a_4xx_and_every_failure_a_5xx() {
        let kinds = [
            ErrorKind::BadRequest,
            ErrorKind::Unauthenticated,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Gone,
            ErrorKind::Invalid,
            ErrorKind::RateLimited {
                retry_after_seconds: 3,
            },
            ErrorKind::Unavailable {
                retry_after_seconds: None,
            },
            ErrorKind::Internal,
        ];
        for kind in kinds {
            let status = status_of(kind);
            assert_eq!(kind.is_refusal(), status.is_client_error(), "{kind:?}");
            assert_eq!(!kind.is_refusal(), status.is_server_error(), "{kind:?}");
        }
    }

    #[test]
    fn the_edge_adds_the_challenge_and_the_retry_headers() {
        let unauthorized = ApiError::from(DomainError::unauthorized("invalid_token", "no"));
        assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert!(
            unauthorized
                .headers
                .iter()
                .any(|(n, v)| n == "www-authenticate" && v == "Bearer")
        );
        let limited = ApiError::from(DomainError::too_many(
            "too_many_attempts",
            "slow down",
            std::time::Duration::from_millis(2500),
        ));
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            limited
                .headers
                .iter()
                .any(|(n, v)| n == "retry-after" && v == "2")
        );
        assert_eq!(
            limited.details(),
            Some(&serde_json::json!({ "retry_after_seconds": 2 }))
        );
        let down = ApiError::from(DomainError::database_unavailable());
        assert!(
            down.headers
                .iter()
                .any(|(n, v)| n == "retry-after" && v == "5")
        );
        let internal = ApiError::from(DomainError::internal_because("a bug"));
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !internal.message().contains("a bug"),
            "causes are never sent"
        );
    }
}

//! `ApiJson`: the JSON body extractor whose rejections speak the error envelope —
//! 400 `malformed_json`, 413 `payload_too_large`, 415 `unsupported_media_type`,
//! 422 `unknown_field` or `validation_failed` — never a bare text body or a 500. A body that
//! parses is then checked with its [`Validate`] rules (no NUL, bounded text, dates in range),
//! so every route answers 422 naming the field before anything reaches the database.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use fitkart_protocol::validate::{Invalid, Validate};
use serde::de::DeserializeOwned;

use crate::http::ApiError;

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        crate::error::DomainError::from(invalid).into()
    }
}

/// A JSON request body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => {
                value.validate()?;
                Ok(Self(value))
            }
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Maps axum's JSON rejection to the API's error envelope.
pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            let text = err.body_text();
            if let Some(field) = unknown_field(&text) {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_field",
                    format!("the field `{field}` is unknown or read-only here"),
                )
                .with_details(serde_json::json!({ "field": field }));
            }
            let message = clean_serde_message(&text);
            let error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                &message,
            );
            match failing_field(&message) {
                Some(field) => error.with_details(serde_json::json!({ "field": field })),
                None => error,
            }
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is not valid JSON",
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        ),
        _ => ApiError::bad_request("the request body could not be read"),
    }
}

/// The field named by serde's "unknown field `x`" message.
pub(super) fn unknown_field(text: &str) -> Option<String> {
    let rest = text.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The field a serde data error is about: `items[0].quantity: invalid type ...` gives
/// `items[0].quantity`; `shipping_address: missing field `name`` gives `shipping_address.name`.
pub(super) fn failing_field(message: &str) -> Option<String> {
    let (path, rest) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (Some(path), rest),
        _ => (None, message),
    };
    let missing = rest
        .split("missing field `")
        .nth(1)
        .and_then(|r| r.split('`').next());
    match (path, missing) {
        (Some(path), Some(name)) => Some(format!("{path}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (Some(path), None) => Some(path.to_owned()),
        (None, None) => None,
    }
}

/// serde's message without axum's prefix (and without echoing input values at length).
fn clean_serde_message(text: &str) -> String {
    let message = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(text);
    message.chars().take(300).filter(|c| *c != '\0').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named() {
        assert_eq!(
            unknown_field("unknown field `role`, expected one of `display_name`"),
            Some("role".into())
        );
        assert_eq!(unknown_field("missing field `email`"), None);
    }

    #[test]
    fn failing_fields_carry_their_path() {
        assert_eq!(
            failing_field("shipping_address: missing field `name` at line 1 column 9"),
            Some("shipping_address.name".into())
        );
        assert_eq!(
            failing_field("missing field `email` at line 1"),
            Some("email".into())
        );
        assert_eq!(
            failing_field("items[0].quantity: invalid type: string, expected i32"),
            Some("items[0].quantity".into())
        );
        assert_eq!(
            failing_field("invalid type: sequence, expected struct"),
            None
        );
    }
}

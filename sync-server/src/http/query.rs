//! `ApiQuery`: the one query-string extractor of every route. Its rejections speak the error
//! envelope and name the real parameter: 422 `unknown_field` for a parameter the route does
//! not take, 422 `validation_failed` for a bad value (a NUL, a wrong type, a duplicate).

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::json::{failing_field, unknown_field};
use crate::http::ApiError;

/// The query string of a request, deserialized into `T` (which denies unknown fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(name) = parameter_with_nul(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::validation(
                &name,
                format!("{name} must not contain NUL characters"),
            ));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection.body_text())),
        }
    }
}

/// The name of the first parameter whose name or value carries an encoded NUL (`%00`).
fn parameter_with_nul(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name.contains("%00") || value.contains("%00")).then(|| {
            let name = name.replace("%00", "");
            if name.is_empty() {
                "query".into()
            } else {
                name.chars().take(64).collect()
            }
        })
    })
}

/// Maps axum's query rejection text to the error envelope, naming the parameter.
fn query_rejection(text: &str) -> ApiError {
    let message: String = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text)
        .chars()
        .take(300)
        .collect();
    if let Some(field) = unknown_field(&message) {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("the query parameter `{field}` is unknown here"),
        )
        .with_details(serde_json::json!({ "field": field }));
    }
    let field = failing_field(&message)
        .or_else(|| {
            let rest = message.split("duplicate field `").nth(1)?;
            Some(rest.split('`').next()?.to_owned())
        })
        .unwrap_or_else(|| "query".into());
    ApiError::validation(&field, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_name_the_real_parameter() {
        let unknown = query_rejection(
            "Failed to deserialize query string: unknown field `bogus`, expected `from` or `to`",
        );
        assert_eq!(unknown.code(), "unknown_field");
        assert_eq!(unknown.details().unwrap()["field"], "bogus");
        let bad = query_rejection(
            "Failed to deserialize query string: to: input contains invalid characters",
        );
        assert_eq!(bad.code(), "validation_failed");
        assert_eq!(bad.details().unwrap()["field"], "to");
        let duplicate =
            query_rejection("Failed to deserialize query string: duplicate field `limit`");
        assert_eq!(duplicate.details().unwrap()["field"], "limit");
    }

    #[test]
    fn encoded_nul_is_found_with_its_parameter() {
        assert_eq!(parameter_with_nul("q=a%00b&limit=1"), Some("q".into()));
        assert_eq!(parameter_with_nul("q=ab"), None);
    }
}

//! Validation of what a client sends, shared by the device and the server: text carries no
//! NUL and is bounded before any trimming, dates and timestamps lie in years 1 to 9999 (inside
//! PostgreSQL's and chrono's ranges, with room for date arithmetic). Each failure names its
//! field (`records[2].source`, `shipping_address.line1`).
//!
//! The server's own rules (trimmed lengths, allowed values) run after these in its domain code.

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};

use crate::auth::{
    LoginRequest, PasswordChangeRequest, ProfilePatch, RefreshRequest, RegisterRequest, limits,
};
use crate::leaderboard::RefreshLeaderboardRequest;
use crate::orders::{OrderStatusRequest, PlaceOrderRequest, ProductInput, ShippingAddress};
use crate::steps::{MAX_SOURCE_LEN, RecordStepsRequest, StepReport};
use crate::sync::{
    CancelOrderPayload, DeviceRegistration, Mutation, PushRequest, RecordStepsPayload,
};

/// The earliest year a date or timestamp may carry.
pub const MIN_YEAR: i32 = 1;
/// The latest year a date or timestamp may carry.
pub const MAX_YEAR: i32 = 9999;

/// A value that failed validation: the field's path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field's path, e.g. `records[0].source`.
    pub field: String,
    /// Why, in English, without echoing the value.
    pub message: String,
}

impl Invalid {
    /// A failure of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same failure under a parent path: `records[2]` + `source` = `records[2].source`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

/// Validation of a request body at the edge.
pub trait Validate {
    /// `Ok` when every field is acceptable text and in range.
    fn validate(&self) -> Result<(), Invalid>;
}

/// Text of at most `max_chars` characters once trimmed: refused when it holds a NUL or when,
/// untrimmed, it is longer than `max_chars` characters plus 64 bytes of surrounding space
/// (so 300,000 spaces around a short value are refused before anyone trims them).
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<(), Invalid> {
    if value.contains('\0') {
        return Err(Invalid::new(
            field,
            format!("{field} must not contain NUL characters"),
        ));
    }
    let untrimmed_limit = max_chars.saturating_mul(4).saturating_add(64);
    if value.len() > untrimmed_limit || value.trim().chars().count() > max_chars {
        return Err(Invalid::new(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Optional text, see [`text`].
pub fn optional_text(field: &str, value: Option<&str>, max_chars: usize) -> Result<(), Invalid> {
    value.map_or(Ok(()), |value| text(field, value, max_chars))
}

/// A date in years [`MIN_YEAR`] to [`MAX_YEAR`].
pub fn date(field: &str, value: NaiveDate) -> Result<(), Invalid> {
    if (MIN_YEAR..=MAX_YEAR).contains(&value.year()) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{field} must be a date in the years {MIN_YEAR} to {MAX_YEAR}"),
        ))
    }
}

/// A timestamp in years [`MIN_YEAR`] to [`MAX_YEAR`] (UTC).
pub fn timestamp(field: &str, value: DateTime<Utc>) -> Result<(), Invalid> {
    if (MIN_YEAR..=MAX_YEAR).contains(&value.year()) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{field} must be a time in the years {MIN_YEAR} to {MAX_YEAR}"),
        ))
    }
}

/// A JSON value whose strings and keys hold no NUL (PostgreSQL's `jsonb` and `text` refuse it).
pub fn json_value(field: &str, value: &serde_json::Value) -> Result<(), Invalid> {
    let nul = || Invalid::new(field, format!("{field} must not contain NUL characters"));
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Err(nul()),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| json_value(field, v)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(key, v)| {
            if key.contains('\0') {
                Err(nul())
            } else {
                json_value(field, v)
            }
        }),
        _ => Ok(()),
    }
}

fn each<T: Validate>(field: &str, items: &[T]) -> Result<(), Invalid> {
    for (index, item) in items.iter().enumerate() {
        item.validate()
            .map_err(|err| err.within(&format!("{field}[{index}]")))?;
    }
    Ok(())
}

/// Longest refresh token accepted, in bytes.
pub const REFRESH_TOKEN_MAX_BYTES: usize = 512;
/// Longest time zone name, in characters.
pub const TIMEZONE_MAX_CHARS: usize = 64;
/// Longest mutation kind, in characters.
pub const MUTATION_KIND_MAX_CHARS: usize = 64;

impl Validate for RegisterRequest {
    fn validate(&self) -> Result<(), Invalid> {
        text("email", &self.email, limits::EMAIL_MAX_BYTES)?;
        text("password", &self.password, limits::PASSWORD_MAX_BYTES)?;
        text(
            "display_name",
            &self.display_name,
            limits::DISPLAY_NAME_MAX_CHARS,
        )
    }
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), Invalid> {
        text("email", &self.email, limits::EMAIL_MAX_BYTES)?;
        text("password", &self.password, limits::PASSWORD_MAX_BYTES)
    }
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), Invalid> {
        text(
            "refresh_token",
            &self.refresh_token,
            REFRESH_TOKEN_MAX_BYTES,
        )
    }
}

impl Validate for ProfilePatch {
    fn validate(&self) -> Result<(), Invalid> {
        optional_text(
            "display_name",
            self.display_name.as_deref(),
            limits::DISPLAY_NAME_MAX_CHARS,
        )?;
        optional_text("timezone", self.timezone.as_deref(), TIMEZONE_MAX_CHARS)
    }
}

impl Validate for PasswordChangeRequest {
    fn validate(&self) -> Result<(), Invalid> {
        text(
            "current_password",
            &self.current_password,
            limits::PASSWORD_MAX_BYTES,
        )?;
        text(
            "new_password",
            &self.new_password,
            limits::PASSWORD_MAX_BYTES,
        )
    }
}

impl Validate for StepReport {
    fn validate(&self) -> Result<(), Invalid> {
        date("date", self.date)?;
        // Only NULs and absurd lengths are refused for the whole request here; a source that
        // breaks the source rule (1 to 64 of A-Z a-z 0-9 _ . : -) rejects its own record
        // (`invalid_source`) and never blocks the others.
        text("source", &self.source, MAX_SOURCE_LEN * 4)?;
        timestamp("recorded_at", self.recorded_at)
    }
}

impl Validate for RecordStepsRequest {
    fn validate(&self) -> Result<(), Invalid> {
        each("records", &self.records)
    }
}

impl Validate for RecordStepsPayload {
    fn validate(&self) -> Result<(), Invalid> {
        each("records", &self.records)
    }
}

impl Validate for ShippingAddress {
    fn validate(&self) -> Result<(), Invalid> {
        text("name", &self.name, 100)?;
        text("line1", &self.line1, 200)?;
        optional_text("line2", self.line2.as_deref(), 200)?;
        text("city", &self.city, 100)?;
        optional_text("region", self.region.as_deref(), 100)?;
        text("postal_code", &self.postal_code, 20)?;
        text("country", &self.country, 2)?;
        optional_text("phone", self.phone.as_deref(), 32)
    }
}

impl Validate for PlaceOrderRequest {
    fn validate(&self) -> Result<(), Invalid> {
        self.shipping_address
            .validate()
            .map_err(|err| err.within("shipping_address"))
    }
}

impl Validate for OrderStatusRequest {
    fn validate(&self) -> Result<(), Invalid> {
        text("status", &self.status, 32)?;
        optional_text("tracking_number", self.tracking_number.as_deref(), 100)?;
        optional_text("reason", self.reason.as_deref(), 500)
    }
}

impl Validate for ProductInput {
    fn validate(&self) -> Result<(), Invalid> {
        optional_text("sku", self.sku.as_deref(), 64)?;
        optional_text("name", self.name.as_deref(), 200)?;
        optional_text("description", self.description.as_deref(), 10_000)?;
        optional_text("category", self.category.as_deref(), 64)?;
        for (index, image) in self.images.iter().flatten().enumerate() {
            text(&format!("images[{index}]"), image, 2048)?;
        }
        Ok(())
    }
}

impl Validate for CancelOrderPayload {
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

impl Validate for Mutation {
    fn validate(&self) -> Result<(), Invalid> {
        text("kind", &self.kind, MUTATION_KIND_MAX_CHARS)?;
        timestamp("created_at", self.created_at)
    }
}

/// A push is valid as a whole; each mutation is validated on its own (see [`Mutation`]'s
/// rules), so one bad mutation is rejected alone and never blocks the ones behind it.
impl Validate for PushRequest {
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

impl Validate for DeviceRegistration {
    fn validate(&self) -> Result<(), Invalid> {
        text("platform", &self.platform, 16)?;
        optional_text("os_version", self.os_version.as_deref(), 64)?;
        optional_text("app_version", self.app_version.as_deref(), 64)?;
        optional_text("model", self.model.as_deref(), 128)
    }
}

impl Validate for RefreshLeaderboardRequest {
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_nul_and_padding_beyond_the_untrimmed_limit() {
        assert!(text("name", "Ann", 100).is_ok());
        assert!(text("name", "  Ann  ", 100).is_ok());
        let nul = text("name", "A\0nn", 100).unwrap_err();
        assert_eq!(nul.field, "name");
        assert!(!nul.message.contains('\0'));
        assert!(text("name", &format!("Ann{}", " ".repeat(300_000)), 100).is_err());
        assert!(text("name", &"é".repeat(101), 100).is_err());
        assert!(text("name", &"é".repeat(100), 100).is_ok());
    }

    #[test]
    fn dates_and_times_stay_inside_the_years_1_to_9999() {
        let far = NaiveDate::from_ymd_opt(-262_143, 1, 15).unwrap();
        assert_eq!(date("to", far).unwrap_err().field, "to");
        assert!(date("to", NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).is_ok());
        assert!(timestamp("recorded_at", DateTime::<Utc>::MAX_UTC).is_err());
        assert!(timestamp("recorded_at", DateTime::<Utc>::MIN_UTC).is_err());
    }

    #[test]
    fn nested_failures_name_their_path() {
        let request = RecordStepsRequest {
            records: vec![
                StepReport {
                    date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                    source: "phone".into(),
                    steps: 1,
                    recorded_at: Utc::now(),
                },
                StepReport {
                    date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                    source: "ph\0ne".into(),
                    steps: 1,
                    recorded_at: Utc::now(),
                },
            ],
        };
        assert_eq!(request.validate().unwrap_err().field, "records[1].source");
    }
}

//! The sync protocol on the server: how devices exchange changes with it.
//!
//! - [`push`] applies each offline mutation at most once: its outcome is stored in
//!   `sync_mutations` in the same transaction as its effect, and a repeated id is answered
//!   with the stored outcome.
//! - [`pull`] returns every change after a [`Cursor`], read in one snapshot and paged by
//!   whole versions.
//! - [`versions`] takes the per-user and shared change versions under row locks, so a cursor
//!   never skips a change that commits late (docs/adr/0001-per-user-change-versions.md).
//! - [`cursor`] is the one opaque cursor format.
//!
//! This module keeps what push and pull share: devices and the pull [`Cursor`].

pub mod cursor;
pub mod pull;
pub mod push;
pub mod versions;

pub use pull::pull;
pub use push::{MUTATION_EXPIRED, push, strip_nul};

use deadpool_postgres::GenericClient;
use fitkart_protocol::sync::DeviceRegistration;
use uuid::Uuid;

use crate::db::CachedStatements as _;
use crate::error::{DomainError, ErrorKind};

/// Registers (or refreshes) a device of the caller. A device id belongs to one user.
pub async fn register_device(
    client: &impl GenericClient,
    user_id: Uuid,
    device: &DeviceRegistration,
) -> Result<(), DomainError> {
    if !matches!(device.platform.as_str(), "ios" | "android" | "other") {
        return Err(DomainError::validation(
            "platform",
            "platform must be ios, android or other",
        ));
    }
    for (field, value) in [
        ("os_version", &device.os_version),
        ("app_version", &device.app_version),
        ("model", &device.model),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > if field == "model" { 128 } else { 64 })
        {
            return Err(DomainError::validation(
                field,
                format!("{field} is too long"),
            ));
        }
    }
    let claimed = client
        .query_opt_cached(
            "INSERT INTO devices (id, user_id, platform, os_version, app_version, model)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET platform = EXCLUDED.platform,
                 os_version = EXCLUDED.os_version, app_version = EXCLUDED.app_version,
                 model = EXCLUDED.model, last_seen_at = now()
             WHERE devices.user_id = EXCLUDED.user_id
             RETURNING id",
            &[
                &device.device_id,
                &user_id,
                &device.platform,
                &device.os_version,
                &device.app_version,
                &device.model,
            ],
        )
        .await?;
    claimed.map(|_| ()).ok_or_else(device_taken)
}

fn device_taken() -> DomainError {
    DomainError::new(
        ErrorKind::Conflict,
        "device_taken",
        "this device id belongs to another account",
    )
}

/// Marks the device as seen (registering it as `other` on first use).
async fn touch_device(
    client: &impl GenericClient,
    user_id: Uuid,
    device_id: Uuid,
) -> Result<(), DomainError> {
    client
        .query_opt_cached(
            "INSERT INTO devices (id, user_id, platform) VALUES ($1, $2, 'other')
             ON CONFLICT (id) DO UPDATE SET last_seen_at = now()
             WHERE devices.user_id = EXCLUDED.user_id
             RETURNING id",
            &[&device_id, &user_id],
        )
        .await?
        .map(|_| ())
        .ok_or_else(device_taken)
}

/// A position in the change stream of one user: the user's and the shared versions already
/// delivered. Opaque to devices; bound to the user it was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The user it belongs to.
    pub user_id: Uuid,
    /// The user's change version delivered (-1: nothing yet).
    pub user_version: i64,
    /// The shared catalogue version delivered (-1: nothing yet).
    pub shared_version: i64,
}

impl Cursor {
    /// The start of the stream: a full snapshot.
    pub fn start(user_id: Uuid) -> Self {
        Self {
            user_id,
            user_version: -1,
            shared_version: -1,
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        crate::sync::cursor::encode(
            TAG,
            &[&self.user_id, &self.user_version, &self.shared_version],
        )
    }

    /// Parses a cursor given to `user_id`; anything else is 400 `invalid_cursor`.
    pub fn decode(text: &str, user_id: Uuid) -> Result<Self, DomainError> {
        let [user, user_version, shared_version] =
            crate::sync::cursor::decode::<String, 3>(text, TAG)?;
        let cursor = Self {
            user_id: user.parse().map_err(|_| crate::sync::cursor::invalid())?,
            user_version: user_version
                .parse()
                .map_err(|_| crate::sync::cursor::invalid())?,
            shared_version: shared_version
                .parse()
                .map_err(|_| crate::sync::cursor::invalid())?,
        };
        if cursor.user_id != user_id || cursor.user_version < -1 || cursor.shared_version < -1 {
            return Err(crate::sync::cursor::invalid());
        }
        Ok(cursor)
    }
}

/// The tag of sync pull cursors (format version 1).
const TAG: &str = "c1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_user() {
        let user = Uuid::now_v7();
        let cursor = Cursor {
            user_id: user,
            user_version: 42,
            shared_version: 7,
        };
        assert_eq!(Cursor::decode(&cursor.encode(), user).unwrap(), cursor);
        assert!(Cursor::decode(&cursor.encode(), Uuid::now_v7()).is_err());
        assert!(Cursor::decode("garbage", user).is_err());
        assert!(Cursor::decode(&crate::sync::cursor::encode("c1", &[&"x", &1, &2]), user).is_err());
    }
}

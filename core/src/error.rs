//! The errors of fitkart-core: [`Error`], everything that can fail inside the crate, and
//! [`FitKartError`], the small public enum an app acts on, converted from it in one place.
//! Messages never carry personal data (values reach SQLite as bound parameters).

use std::time::Duration;

/// An error inside fitkart-core.
///
/// SQLite messages name tables, columns and constraints, never the values involved, because
/// every value reaches SQLite as a bound parameter; so the text of this error is safe to log
/// and to show in a bug report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed: the file could not be opened, a statement failed or a constraint was
    /// violated.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The on-device schema could not be migrated, for instance because the database was
    /// written by a newer version of the app or an applied migration was edited.
    #[error("schema migration failed: {0}")]
    Migration(#[from] refinery::Error),

    /// A stored or received JSON document did not have the expected shape.
    #[error("unexpected JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// The request never got an answer: no network, a refused connection, a timeout, or a
    /// connection closed before the whole answer arrived.
    #[error("network error: {0}")]
    Network(#[from] crate::transport::TransportError),

    /// The server answered with an error.
    #[error("the server answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable error code of the server's error envelope.
        code: String,
        /// The server's message.
        message: String,
        /// How long the server asked the client to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },

    /// An argument the app passed is invalid; nothing was written.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The argument's name.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The call needs a signed-in user and nobody is (or the session ended).
    #[error("not signed in")]
    NotSignedIn,

    /// Signing out would drop changes the server has not seen.
    #[error("{count} changes are not synced yet")]
    PendingChanges {
        /// How many queued mutations would be lost.
        count: u64,
    },

    /// The token store (Keychain, Keystore, file) failed.
    #[error("token store error: {0}")]
    TokenStore(String),
}

impl Error {
    /// An invalid argument.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// Whether retrying the same request later may succeed: network errors, 408, 429, 5xx.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Api { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short machine-readable code for the sync status and logs.
    pub(crate) fn code(&self) -> String {
        match self {
            Self::Sqlite(_) | Self::Migration(_) | Self::Json(_) => "storage".into(),
            Self::Network(_) => "offline".into(),
            Self::Api { code, .. } => code.clone(),
            Self::InvalidInput { .. } => "invalid_input".into(),
            Self::NotSignedIn => "unauthorized".into(),
            Self::PendingChanges { .. } => "pending_changes".into(),
            Self::TokenStore(_) => "token_store".into(),
        }
    }
}

/// What a FitKart call can fail with: each variant names something the app can act on.
///
/// Messages are for logs and bug reports; they never contain personal data and are not
/// localised. The database file is never deleted or recreated because of any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitKartError {
    /// The server could not be reached (no network, timeout, connection dropped). Nothing
    /// is lost: queued changes stay queued. Try again later.
    #[error("offline: {message}")]
    Offline {
        /// What failed, for logs.
        message: String,
    },
    /// Nobody is signed in, the credentials are wrong, or the session ended (the refresh
    /// token was revoked, expired or reused, or an administrator disabled the account:
    /// `account_disabled`, which signing in again does not cure). Show the sign-in screen.
    #[error("unauthorized: {code}")]
    Unauthorized {
        /// The server's code (`invalid_credentials`, `refresh_token_reused`, ...) or
        /// `not_signed_in`.
        code: String,
    },
    /// Signing out would drop `count` changes the server has not seen. Sync first, or sign
    /// out with `discard_pending`.
    #[error("{count} changes are not synced yet")]
    PendingChanges {
        /// How many queued changes would be lost.
        count: u64,
    },
    /// The server no longer speaks this app's protocol: the app must be updated. Nothing
    /// was changed.
    #[error("this app version is too old for the server")]
    UpgradeRequired,
    /// The server refused the request for a reason the user can see (`email_taken`,
    /// `insufficient_coins`, `out_of_stock`, ...).
    #[error("rejected: {code}: {message}")]
    Rejected {
        /// The server's stable code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// An argument is invalid; nothing was written.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The argument's name.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The on-device database (or the token store) failed: disk full, no permission, a
    /// database from a newer app. The file is left as it is.
    #[error("storage error: {message}")]
    Storage {
        /// What failed, for logs.
        message: String,
    },
    /// The server failed (5xx) or answered something this library does not understand.
    /// Queued changes stay queued; a later sync retries.
    #[error("server error {status}: {code}")]
    Server {
        /// HTTP status (0 when the answer could not be read).
        status: u16,
        /// The server's code, when it sent one.
        code: String,
    },
}

/// The server's code for an account an administrator disabled (HTTP 403): the session is
/// over and signing in is refused until the account is enabled again.
pub(crate) const ACCOUNT_DISABLED: &str = "account_disabled";

/// The one place where internal errors become public ones.
impl From<Error> for FitKartError {
    fn from(error: Error) -> Self {
        match error {
            Error::Sqlite(_) | Error::Migration(_) | Error::TokenStore(_) => Self::Storage {
                message: error.to_string(),
            },
            Error::Json(_) => Self::Server {
                status: 0,
                code: "unreadable_answer".into(),
            },
            Error::Network(err) => Self::Offline {
                message: err.to_string(),
            },
            Error::Api { status: 426, .. } => Self::UpgradeRequired,
            Error::Api {
                status: 401, code, ..
            } => Self::Unauthorized { code },
            Error::Api {
                status: 403, code, ..
            } if code == ACCOUNT_DISABLED => Self::Unauthorized { code },
            Error::Api {
                status,
                code,
                message,
                ..
            } if (400..500).contains(&status) && status != 408 && status != 429 => {
                Self::Rejected { code, message }
            }
            Error::Api { status, code, .. } => Self::Server { status, code },
            Error::InvalidInput { field, message } => Self::InvalidInput { field, message },
            Error::NotSignedIn => Self::Unauthorized {
                code: "not_signed_in".into(),
            },
            Error::PendingChanges { count } => Self::PendingChanges { count },
        }
    }
}

//! fitkart-ffi: the uniffi layer over fitkart-core. It adapts types and errors only.
//! Kotlin, Swift and Python bindings are generated from this crate into `bindings/`.

use std::sync::Arc;

uniffi::setup_scaffolding!();

/// An error a FitKart call can fail with. Each variant names something the app can act on;
/// messages are meant for logs and bug reports, never contain personal data, and are not
/// localised for display.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FitKartError {
    /// The on-device database could not be opened, migrated, read or written: the directory
    /// is missing or not writable, the disk is full, or the database was written by a newer
    /// version of the app. The database file is never deleted because of this error.
    #[error("storage error: {message}")]
    Storage {
        /// What went wrong, for logs and bug reports.
        message: String,
    },
}

/// The one place where errors of fitkart-core become errors of the public API.
impl From<fitkart_core::Error> for FitKartError {
    fn from(error: fitkart_core::Error) -> Self {
        Self::Storage {
            message: error.to_string(),
        }
    }
}

/// The FitKart on-device database. Open one per signed-in app process and share it; all
/// methods may be called from any thread.
#[derive(uniffi::Object)]
pub struct FitKartStore {
    store: fitkart_core::Store,
}

#[uniffi::export]
impl FitKartStore {
    /// Opens the database file at `path`, creating it if needed, and brings its schema up to
    /// date. The directory must already exist (use the app's private files or
    /// Application Support directory).
    ///
    /// Fails with the `Storage` error when the file cannot be opened or migrated; the file is
    /// left untouched in that case.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>, FitKartError> {
        let store = fitkart_core::Store::open(path)?;
        Ok(Arc::new(Self { store }))
    }

    /// The version of the newest schema migration applied to the database.
    pub fn schema_version(&self) -> i64 {
        self.store.schema_version()
    }
}

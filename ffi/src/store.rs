//! `FitKartStore`: the bare device database, for diagnostics (schema version).

use std::sync::Arc;

use crate::FitKartError;

/// The FitKart on-device database, opened on its own (the client opens it for you; this is
/// for diagnostics).
#[derive(uniffi::Object)]
pub struct FitKartStore {
    store: fitkart_core::Store,
}

#[uniffi::export]
impl FitKartStore {
    /// Opens the database file at `path`, creating it if needed, and brings its schema up to
    /// date. The directory must already exist.
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

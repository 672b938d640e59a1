//! The error of fitkart-core: everything that can fail inside the crate, one variant per source.
//! Messages never carry personal data (values are always bound as SQL parameters).

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
}

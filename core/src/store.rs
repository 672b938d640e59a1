//! The on-device SQLite database: opening it, its pragmas, its migrations, and access to it.
//! One writer connection behind a mutex, a few read-only readers, transactions on both.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::Error;

mod embedded {
    refinery::embed_migrations!("../migrations/device");
}

/// How long a connection waits for a lock held by another connection before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many read-only connections a store keeps. Reads beyond this many wait for a free one.
const READER_COUNT: usize = 2;

/// The on-device database of fitkart-core.
///
/// A `Store` owns one writer connection, guarded by a mutex so that writes are serialised,
/// and a small pool of read-only connections, so reads never wait for a write to finish
/// (the database runs in WAL mode). It is `Send + Sync`: share it with an `Arc`.
///
/// Opening never deletes or recreates the database file: a file that cannot be opened or
/// migrated is reported as an [`Error`] and left as it is.
pub struct Store {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    schema_version: i64,
}

impl Store {
    /// Opens the database at `path`, creating the file if it does not exist, and brings its
    /// schema up to date.
    ///
    /// The directory must exist. The path is taken literally (it is not parsed as a
    /// `file:` URI).
    ///
    /// # Errors
    ///
    /// [`Error::Sqlite`] when the file cannot be opened or configured (missing directory,
    /// no permission, not a database), [`Error::Migration`] when its schema cannot be
    /// migrated (for instance, it was written by a newer version of the app).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let write_flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let read_flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::open_with(
            |flags| Connection::open_with_flags(path, flags),
            write_flags,
            read_flags,
        )
    }

    /// Opens a new, empty database that lives in memory and disappears when the store is
    /// dropped. Meant for tests and previews; it behaves like a file-backed store except that
    /// SQLite does not support WAL in memory, so a commit waits for the reads in progress.
    ///
    /// # Errors
    ///
    /// [`Error::Sqlite`] or [`Error::Migration`], as for [`Store::open`].
    pub fn open_in_memory() -> Result<Self, Error> {
        // The memdb VFS shares a database between the connections of this process that name
        // it with a leading '/'; a fresh UUID keeps each store apart.
        let uri = format!("file:/fitkart-{}?vfs=memdb", uuid::Uuid::new_v4());
        let write_flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let read_flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        Self::open_with(
            |flags| Connection::open_with_flags(&uri, flags),
            write_flags,
            read_flags,
        )
    }

    /// Opens the writer, configures and migrates it, then opens the readers.
    fn open_with(
        open: impl Fn(OpenFlags) -> rusqlite::Result<Connection>,
        write_flags: OpenFlags,
        read_flags: OpenFlags,
    ) -> Result<Self, Error> {
        let mut writer = open(write_flags).map_err(without_path)?;
        configure_writer(&writer)?;
        let applied = migrate(&mut writer)?;
        if applied > 0 {
            tracing::info!(applied, "migrated the device database");
        }
        let schema_version = applied_schema_version(&mut writer)?;

        let readers = (0..READER_COUNT)
            .map(|_| {
                let reader = open(read_flags).map_err(without_path)?;
                configure_reader(&reader)?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, Error>>()?;

        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            schema_version,
        })
    }

    /// The version of the newest migration applied to the database, as of when this store
    /// opened it (opening applies every migration the app embeds).
    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// Runs `change` in a write transaction on the single writer connection and commits it
    /// only if `change` returns `Ok`; when it returns `Err` (or panics) every change it made
    /// is rolled back.
    ///
    /// Writes are serialised: a second `write` waits until the first one finished. Reads on
    /// other threads keep seeing the last committed state meanwhile.
    ///
    /// # Errors
    ///
    /// The error of `change`, or an [`Error`] (converted into `E`) when the transaction
    /// cannot begin or commit.
    pub fn write<T, E>(&self, change: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        // A panic inside `change` drops its transaction, which rolls back, so the connection
        // behind a poisoned mutex is still consistent and can be used again.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::from)?;
        match change(&tx) {
            Ok(value) => {
                tx.commit().map_err(Error::from)?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback_error) = tx.rollback() {
                    tracing::warn!(%rollback_error, "rolling back a failed write failed");
                }
                Err(error)
            }
        }
    }

    /// Runs `query` on a read-only connection, inside one read transaction, so every
    /// statement in it sees the same committed snapshot of the database.
    ///
    /// # Errors
    ///
    /// The error of `query`, or an [`Error`] (converted into `E`) when the read transaction
    /// cannot begin.
    pub fn read<T, E>(&self, query: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut reader = self.reader();
        // Nothing can be written through a read-only connection: dropping the transaction
        // at the end only releases its snapshot.
        let snapshot = reader.transaction().map_err(Error::from)?;
        query(&snapshot)
    }

    /// A free reader if there is one, otherwise the next one in turn, once it is free.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let turn = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[turn]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops the file path rusqlite appends to the message of a failed open: a path can contain
/// a user or account name, and errors never carry personal data. SQLite's code remains.
fn without_path(error: rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, Some(_)) => rusqlite::Error::SqliteFailure(code, None),
        other => other,
    }
}

/// Pragmas of the writer connection. `journal_mode` and `synchronous` only matter for writes.
fn configure_writer(conn: &Connection) -> Result<(), Error> {
    configure_reader(conn)?;
    let journal_mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        // In memory, or on a file system without shared memory: still correct, less
        // concurrent.
        tracing::debug!(journal_mode, "the device database does not use WAL");
    }
    // FULL: a commit is durable once `write` returns, so a write the app was told succeeded
    // survives a crash or a power loss (NORMAL in WAL mode may lose the last commits).
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Pragmas every connection needs.
fn configure_reader(conn: &Connection) -> Result<(), Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Applies the embedded migrations the database lacks and returns how many it applied.
fn migrate(conn: &mut Connection) -> Result<usize, Error> {
    let report = embedded::migrations::runner().run(conn)?;
    Ok(report.applied_migrations().len())
}

/// The version of the newest migration recorded in the database, 0 when none is.
fn applied_schema_version(conn: &mut Connection) -> Result<i64, Error> {
    let last = embedded::migrations::runner().get_last_applied_migration(conn)?;
    Ok(last.map_or(0, |migration| i64::from(migration.version())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ErrorCode;
    use rusqlite::params;

    /// Every table of the device schema (besides refinery's history table).
    const EXPECTED_TABLES: &[&str] = &[
        "achievement_progress",
        "achievement_unlocks",
        "achievements",
        "coin_transactions",
        "device_identity",
        "device_steps",
        "leaderboards",
        "orders",
        "outbox",
        "outbox_steps",
        "products",
        "profile",
        "rejections",
        "server_steps",
        "settings",
        "sync_state",
        "wallet",
    ];

    /// A store in a fresh temporary directory, with the directory kept alive alongside it.
    fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fitkart.db");
        let store = Store::open(&path).unwrap();
        (dir, path, store)
    }

    fn names_of(store: &Store, kind: &str) -> Vec<String> {
        store
            .read(|conn| -> Result<Vec<String>, Error> {
                let mut stmt = conn.prepare(
                    "SELECT name FROM sqlite_master
                     WHERE type = ?1 AND name NOT LIKE 'sqlite_%'
                       AND name <> 'refinery_schema_history'
                     ORDER BY name",
                )?;
                let names = stmt
                    .query_map([kind], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(names)
            })
            .unwrap()
    }

    /// The whole schema as SQLite stores it, for comparing two databases.
    fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut stmt = conn
            .prepare(
                "SELECT type, name, sql FROM sqlite_master
                 WHERE name <> 'refinery_schema_history' ORDER BY type, name",
            )
            .unwrap();
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store
            .read(|conn| -> Result<i64, Error> { Ok(conn.query_row(sql, [], |row| row.get(0))?) })
            .unwrap()
    }

    fn is_constraint_violation(error: &Error) -> bool {
        matches!(
            error,
            Error::Sqlite(sqlite) if sqlite.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
        )
    }

    #[test]
    fn a_fresh_file_gets_every_table_of_the_schema() {
        let (_dir, _path, store) = temp_store();

        assert_eq!(names_of(&store, "table"), EXPECTED_TABLES);
        assert!(store.schema_version() >= 1);
    }

    #[test]
    fn a_fresh_file_gets_the_indexes_of_the_common_reads() {
        let (_dir, _path, store) = temp_store();

        let indexes = names_of(&store, "index");
        for expected in [
            "coin_transactions_newest_first",
            "orders_newest_first",
            "outbox_by_sequence",
            "outbox_by_user",
            "outbox_steps_by_day",
            "rejections_by_user",
        ] {
            assert!(
                indexes.iter().any(|name| name == expected),
                "missing index {expected}"
            );
        }
    }

    #[test]
    fn reopening_an_existing_file_applies_no_migration_and_keeps_its_data() {
        let (_dir, path, store) = temp_store();
        let version = store.schema_version();
        store
            .write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                    params!["coins_per_step", "0.01"],
                )?;
                Ok(())
            })
            .unwrap();
        drop(store);

        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.schema_version(), version);
        assert_eq!(count(&reopened, "SELECT count(*) FROM settings"), 1);
        drop(reopened);

        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        let history: i64 = conn
            .query_row("SELECT count(*) FROM refinery_schema_history", [], |row| {
                row.get(0)
            })
            .unwrap();
        let embedded = embedded::migrations::runner().get_migrations().len();
        assert_eq!(usize::try_from(history).unwrap(), embedded);
    }

    #[test]
    fn migrating_from_every_earlier_version_matches_a_fresh_database() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        let fresh_schema = schema_of(&fresh);

        let runner = embedded::migrations::runner();
        for earlier in runner.get_migrations() {
            let mut conn = Connection::open_in_memory().unwrap();
            embedded::migrations::runner()
                .set_target(refinery::Target::Version(earlier.version()))
                .run(&mut conn)
                .unwrap();
            migrate(&mut conn).unwrap();
            assert_eq!(
                schema_of(&conn),
                fresh_schema,
                "upgraded from {}",
                earlier.version()
            );
        }
    }

    #[test]
    fn a_version_1_database_with_data_keeps_the_devices_own_data_when_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let mut conn = Connection::open(&path).unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(1))
            .run(&mut conn)
            .unwrap();
        let user = "0190aaaa-0000-7000-8000-000000000001";
        let device = "0190bbbb-0000-7000-8000-000000000002";
        conn.execute_batch(&format!(
            "INSERT INTO sync_state (user_id, device_id, pull_cursor)
                 VALUES ('{user}', '{device}', 'old-cursor');
             INSERT INTO step_records (local_date, source, steps, recorded_at)
                 VALUES ('2025-03-01', 'healthkit', 4200, '2025-03-01T21:00:00Z');
             INSERT INTO outbox (mutation_id, sequence, kind, payload, created_at)
                 VALUES ('0190cccc-0000-7000-8000-000000000003', 1, 'update_profile',
                         '{{\"daily_step_goal\":8000}}', '2025-03-01T21:00:00Z');
             INSERT INTO settings (key, value, updated_at)
                 VALUES ('rewards.daily_coin_cap', '200', '2025-03-01T21:00:00Z');"
        ))
        .unwrap();
        drop(conn);

        let store = Store::open(&path).unwrap();

        let kept = store
            .read(|conn| -> Result<_, Error> {
                Ok(conn.query_row(
                    "SELECT (SELECT device_id FROM device_identity),
                            (SELECT user_id || ' ' || steps FROM device_steps),
                            (SELECT user_id || ' ' || state || ' ' || payload FROM outbox),
                            (SELECT user_id FROM sync_state),
                            (SELECT pull_cursor IS NULL FROM sync_state)",
                    [],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, bool>(4)?,
                        ))
                    },
                )?)
            })
            .unwrap();
        assert_eq!(kept.0, device);
        assert_eq!(kept.1, format!("{user} 4200"));
        assert_eq!(kept.2, format!("{user} sent {{\"daily_step_goal\":8000}}"));
        assert_eq!(kept.3, user);
        assert!(
            kept.4,
            "the cache was rebuilt, so the next pull must be a snapshot"
        );

        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        let upgraded = store
            .read(|conn| -> Result<_, Error> { Ok(schema_of(conn)) })
            .unwrap();
        assert_eq!(upgraded, schema_of(&fresh));
    }

    #[test]
    fn a_database_from_a_newer_app_is_refused_and_left_untouched() {
        let (_dir, path, store) = temp_store();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [],
        )
        .unwrap();
        drop(conn);

        let error = Store::open(&path).err().unwrap();
        assert!(matches!(error, Error::Migration(_)), "{error}");
        let conn = Connection::open(&path).unwrap();
        let newest: i64 = conn
            .query_row(
                "SELECT max(version) FROM refinery_schema_history",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(newest, 9999);
    }

    #[test]
    fn opening_a_file_in_a_missing_directory_fails_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("fitkart.db");

        let error = Store::open(&path).err().unwrap();

        assert!(matches!(error, Error::Sqlite(_)), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn an_open_error_does_not_reveal_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jane.doe").join("fitkart.db");

        let error = Store::open(&path).err().unwrap();

        assert!(
            !format!("{error} {error:?}").contains("jane.doe"),
            "{error:?}"
        );
    }

    #[derive(Debug)]
    enum TestError {
        Store(#[expect(dead_code, reason = "shown by Debug when a test fails")] Error),
        GaveUp,
    }

    impl From<Error> for TestError {
        fn from(error: Error) -> Self {
            Self::Store(error)
        }
    }

    #[test]
    fn write_rolls_back_everything_when_the_closure_errs() {
        let (_dir, _path, store) = temp_store();

        let result = store.write(|tx| -> Result<(), TestError> {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ('daily_cap', '100')",
                [],
            )
            .map_err(Error::from)?;
            Err(TestError::GaveUp)
        });

        assert!(matches!(result, Err(TestError::GaveUp)));
        assert_eq!(count(&store, "SELECT count(*) FROM settings"), 0);
    }

    #[test]
    fn write_commits_when_the_closure_succeeds_and_readers_see_it() {
        let (_dir, _path, store) = temp_store();

        let inserted = store
            .write(|tx| -> Result<usize, TestError> {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES ('daily_cap', '100')",
                    [],
                )
                .map_err(|error| TestError::Store(error.into()))
            })
            .unwrap();

        assert_eq!(inserted, 1);
        assert_eq!(count(&store, "SELECT count(*) FROM settings"), 1);
    }

    #[test]
    fn the_store_is_usable_again_after_a_write_panicked() {
        let (_dir, _path, store) = temp_store();

        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.write(|tx| -> Result<(), Error> {
                tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')", [])?;
                panic!("the app crashed mid-write");
            })
        }));
        assert!(panicked.is_err());

        store
            .write(|tx| -> Result<(), Error> {
                tx.execute("INSERT INTO settings (key, value) VALUES ('b', '2')", [])?;
                Ok(())
            })
            .unwrap();
        assert_eq!(
            count(&store, "SELECT group_concat(key) = 'b' FROM settings"),
            1
        );
    }

    #[test]
    fn the_schema_rejects_a_negative_wallet_balance() {
        let (_dir, _path, store) = temp_store();

        let error = store
            .write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO wallet (available_coins, frozen_coins, lifetime_earned,
                                        lifetime_spent)
                     VALUES (?1, 0, 0, 0)",
                    [-1_i64],
                )?;
                Ok(())
            })
            .unwrap_err();

        assert!(is_constraint_violation(&error), "{error}");
        assert_eq!(count(&store, "SELECT count(*) FROM wallet"), 0);
    }

    #[test]
    fn the_schema_rejects_an_unknown_outbox_kind() {
        let (_dir, _path, store) = temp_store();
        let insert = |kind: &str| {
            store.write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO outbox (mutation_id, user_id, sequence, kind, payload, created_at)
                     VALUES (?1, ?1, 1, ?2, '{}', '2025-01-01T00:00:00Z')",
                    params![uuid::Uuid::now_v7().to_string(), kind],
                )?;
                Ok(())
            })
        };

        let error = insert("transfer_coins").unwrap_err();
        assert!(is_constraint_violation(&error), "{error}");
        insert("record_steps").unwrap();
    }

    #[test]
    fn the_schema_rejects_impossible_dates_and_negative_steps() {
        let (_dir, _path, store) = temp_store();
        let insert = |date: &str, steps: i64| {
            store.write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO device_steps (user_id, local_date, source, steps, recorded_at)
                     VALUES ('00000000-0000-0000-0000-000000000001', ?1, 'healthkit', ?2,
                             '2025-01-01T00:00:00Z')",
                    params![date, steps],
                )?;
                Ok(())
            })
        };

        assert!(is_constraint_violation(
            &insert("2025-02-30", 10).unwrap_err()
        ));
        assert!(is_constraint_violation(&insert("25-1-1", 10).unwrap_err()));
        assert!(is_constraint_violation(
            &insert("2025-02-28", -1).unwrap_err()
        ));
        insert("2025-02-28", 10).unwrap();
    }

    #[test]
    fn foreign_keys_are_enforced_on_writes() {
        let (_dir, _path, store) = temp_store();

        let error = store
            .write(|tx| -> Result<(), Error> {
                tx.execute(
                    "INSERT INTO outbox_steps (mutation_id, local_date, source, steps, recorded_at)
                     VALUES (?1, '2025-01-01', 'healthkit', 10, '2025-01-01T00:00:00Z')",
                    params![uuid::Uuid::now_v7().to_string()],
                )?;
                Ok(())
            })
            .unwrap_err();

        assert!(is_constraint_violation(&error), "{error}");
    }

    #[test]
    fn a_file_backed_store_runs_in_wal_mode() {
        let (_dir, _path, store) = temp_store();

        let journal_mode = store
            .read(|conn| -> Result<String, Error> {
                Ok(conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?)
            })
            .unwrap();

        assert_eq!(journal_mode, "wal");
    }

    #[test]
    fn the_writer_runs_with_the_documented_pragmas() {
        let (_dir, _path, store) = temp_store();

        let pragmas = store
            .write(|tx| -> Result<Vec<i64>, Error> {
                ["foreign_keys", "synchronous", "temp_store", "busy_timeout"]
                    .into_iter()
                    .map(|pragma| Ok(tx.pragma_query_value(None, pragma, |row| row.get(0))?))
                    .collect()
            })
            .unwrap();

        // foreign_keys ON, synchronous FULL (2), temp_store MEMORY (2), busy_timeout in ms.
        assert_eq!(pragmas, [1, 2, 2, 5000]);
    }

    #[test]
    fn a_store_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }

    #[test]
    fn reads_cannot_write() {
        let (_dir, _path, store) = temp_store();

        let result = store.read(|conn| -> Result<usize, Error> {
            Ok(conn.execute("INSERT INTO settings (key, value) VALUES ('a', '1')", [])?)
        });

        assert!(result.is_err());
        assert_eq!(count(&store, "SELECT count(*) FROM settings"), 0);
    }

    #[test]
    fn a_read_keeps_its_snapshot_while_a_write_commits() {
        let (_dir, _path, store) = temp_store();

        let (before, during) = store
            .read(|conn| -> Result<(i64, i64), Error> {
                let before: i64 =
                    conn.query_row("SELECT count(*) FROM settings", [], |row| row.get(0))?;
                store.write(|tx| -> Result<(), Error> {
                    tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')", [])?;
                    Ok(())
                })?;
                let during: i64 =
                    conn.query_row("SELECT count(*) FROM settings", [], |row| row.get(0))?;
                Ok((before, during))
            })
            .unwrap();

        assert_eq!((before, during), (0, 0));
        assert_eq!(count(&store, "SELECT count(*) FROM settings"), 1);
    }

    #[test]
    fn an_in_memory_store_has_the_schema_and_shares_it_between_writer_and_readers() {
        let store = Store::open_in_memory().unwrap();
        let other = Store::open_in_memory().unwrap();

        assert_eq!(names_of(&store, "table"), EXPECTED_TABLES);
        store
            .write(|tx| -> Result<(), Error> {
                tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')", [])?;
                Ok(())
            })
            .unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM settings"), 1);
        assert_eq!(count(&other, "SELECT count(*) FROM settings"), 0);
    }
}

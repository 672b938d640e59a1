//! The PostgreSQL side of the server: creating the database, the connection pool, and the
//! schema migrations in `migrations/server/` (embedded into the binary with refinery).

use std::str::FromStr;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("../migrations/server");
}

/// Advisory lock key that serialises migrations of concurrently starting servers.
const MIGRATION_LOCK_KEY: i64 = 0x0046_4b5f_4d49_4752; // "FK_MIGR"

/// Parses a PostgreSQL URL.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    tokio_postgres::Config::from_str(url)
        .map_err(|e| Error::Config(format!("DATABASE_URL is not a valid PostgreSQL URL: {e}")))
}

/// Opens one connection outside the pool; its driver task runs until the client is dropped.
pub async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "database connection closed");
        }
    });
    Ok(client)
}

/// Statements run through the connection's prepared-statement cache (deadpool-postgres'
/// `prepare_cached`). A plain `query("SELECT ...")` costs two round trips every time (parse
/// and describe, then bind and execute) and a fresh plan; a cached statement is parsed once per
/// pooled connection and each later run is one round trip. Use these for the fixed SQL of
/// request paths; SQL that differs per call (generated filters, DDL) stays on the plain methods,
/// or it would fill the cache.
pub trait CachedStatements: GenericClient {
    /// `query` of a cached statement.
    fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    /// `query_one` of a cached statement.
    fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    /// `query_opt` of a cached statement.
    fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    /// Prepares `sql` (each through the cache, one after another) so that queries on the
    /// statements can then be pipelined in a known order.
    ///
    /// tokio-postgres sends a query when its future is first polled, and a connection runs what
    /// it receives in order, so the queries of one `tokio::try_join!(biased; ...)` run in the
    /// order written: in one round trip, the later ones after the earlier ones (after a row lock
    /// they wait on, say). That holds only for prepared statements: a `query_cached` whose
    /// statement is not cached yet prepares it first (a round trip of its own) and is sent
    /// after the others. Prepare with this first, then query the statements it returns.
    fn prepare_in_order<const N: usize>(
        &self,
        sql: [&'static str; N],
    ) -> impl Future<Output = Result<[Statement; N], tokio_postgres::Error>> + Send {
        async move {
            let mut statements = Vec::with_capacity(N);
            for sql in sql {
                statements.push(self.prepare_cached(sql).await?);
            }
            Ok(statements
                .try_into()
                .unwrap_or_else(|_| unreachable!("one statement per SQL text")))
        }
    }

    /// `execute` of a cached statement.
    fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<T: GenericClient + ?Sized> CachedStatements for T {}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database named in `url` when it does not exist yet, by connecting to the
/// server's `postgres` maintenance database. Returns whether it was created.
pub async fn ensure_database(url: &str) -> Result<bool> {
    let config = parse_url(url)?;
    let name = config
        .get_dbname()
        .ok_or_else(|| Error::Config("DATABASE_URL names no database".into()))?
        .to_owned();
    // Connecting to the target succeeds when it exists: the common case needs no privilege.
    match connect(&config).await {
        Ok(_) => return Ok(false),
        Err(Error::Database(err)) if err.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(err) => return Err(err),
    }
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let client = connect(&maintenance).await?;
    match client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
        .await
    {
        Ok(()) => {
            tracing::info!(database = %name, "created the database");
            Ok(true)
        }
        // Another server created it at the same moment.
        Err(err) if err.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Makes the rest of the caller's transaction run generic plans of its prepared statements
/// (`plan_cache_mode`, transaction-local). By default PostgreSQL re-plans a statement on every
/// call while its generic plan looks dearer than a plan for the call's parameters, which is
/// always so for a query on a partitioned table (`step_records`): the generic plan's cost
/// counts every partition, though the executor skips those outside the query's range. The
/// step path's statements are all index lookups by user, for which a generic plan is as good
/// as a custom one; measured on `medium`, the records query spent 0.56 ms planning per call
/// against 0.07 ms running (`docs/benchmarks.md`, tuning step 5; ADR 0013).
pub const GENERIC_PLANS: &str = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)";

/// How long a request waits for a pooled connection, or for a new one to open, before it is
/// answered 503 `service_unavailable` (with `Retry-After`) instead of hanging until its timeout.
pub const POOL_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a read waits for a replica connection before it goes to the primary instead.
pub const REPLICA_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Builds the connection pool. Connections are opened lazily.
pub fn pool(url: &str, max_size: usize) -> Result<Pool> {
    build_pool(parse_url(url)?, max_size, POOL_WAIT_TIMEOUT)
}

/// Builds the pool of a read replica: like [`pool`], but a replica that does not answer
/// within [`REPLICA_WAIT_TIMEOUT`] is given up on quickly, since the primary can serve the read.
pub fn replica_pool(url: &str, max_size: usize) -> Result<Pool> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
        Error::Config(format!(
            "FITKART_READ_DATABASE_URL is not a valid PostgreSQL URL: {e}"
        ))
    })?;
    config.connect_timeout(REPLICA_WAIT_TIMEOUT);
    build_pool(config, max_size, REPLICA_WAIT_TIMEOUT)
}

fn build_pool(
    config: tokio_postgres::Config,
    max_size: usize,
    wait: std::time::Duration,
) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size.max(1))
        // The connection used last is handed out first: at a light load a few connections
        // (and their PostgreSQL processes) do the work with their caches warm, where the
        // default rotated through all of them; PostgreSQL spent a fifth less CPU per read
        // (docs/benchmarks.md, tuning step 23).
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .build()?)
}

/// The newest migration version this build knows.
pub fn latest_migration_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Applies every pending migration, holding an advisory lock so that servers starting
/// together migrate one after the other. Returns how many migrations were applied.
pub async fn migrate(url: &str) -> Result<usize> {
    let config = parse_url(url)?;
    let mut client = connect(&config).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(&mut client)
        .await;
    // The lock is released with the connection even if this fails.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let applied = report?.applied_migrations().len();
    if applied > 0 {
        tracing::info!(applied, "applied schema migrations");
    }
    Ok(applied)
}

/// The newest migration applied to the database, or `None` if it was never migrated.
pub async fn applied_schema_version(client: &tokio_postgres::Client) -> Result<Option<i64>> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL AS migrated",
            &[],
        )
        .await?
        .get("migrated");
    if !exists {
        return Ok(None);
    }
    let version: Option<i32> = client
        .query_one(
            "SELECT max(version) AS version FROM refinery_schema_history",
            &[],
        )
        .await?
        .get("version");
    Ok(version.map(i64::from))
}

/// `text` as a literal inside a `LIKE` pattern (with the default backslash escape): trimmed,
/// lower-cased, with backslash, `%` and `_` escaped, so a user's search matches what they
/// typed and never acts as a wildcard. Callers add their own `%` around it.
pub fn like_literal(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod like_tests {
    use super::like_literal;

    #[test]
    fn wildcards_in_a_search_are_literal() {
        assert_eq!(like_literal("  Ann_50%\\x "), "ann\\_50\\%\\\\x");
        assert_eq!(like_literal("bob"), "bob");
    }
}

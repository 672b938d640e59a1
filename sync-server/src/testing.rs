//! Test support: a fresh PostgreSQL database per test and a real server on an ephemeral port.
//! Used by this crate's tests and the end-to-end tests; not used by the server itself.
//!
//! The PostgreSQL server comes from `DATABASE_URL` (default: the local one). Each [`TestDb`]
//! creates its own database with a random name, migrates it from scratch and drops it again
//! when dropped, so tests run in parallel without seeing each other's rows.

use std::net::SocketAddr;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::{JwtSecret, ServerConfig};
use crate::db;
use crate::error::{Error, Result};
use crate::server::Server;

/// The PostgreSQL server tests use when `DATABASE_URL` is not set.
pub const DEFAULT_TEST_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL server URL tests run against.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_SERVER_URL.to_owned())
}

/// A freshly created, migrated database that is dropped when this value is dropped.
pub struct TestDb {
    name: String,
    url: String,
    admin: tokio_postgres::Config,
    pool: Pool,
}

impl TestDb {
    /// Creates and migrates a new database (no seed data).
    pub async fn new() -> Result<Self> {
        let db = Self::new_empty().await?;
        db::migrate(&db.url).await?;
        Ok(db)
    }

    /// Creates a new, migrated database with the seed data loaded.
    pub async fn seeded() -> Result<Self> {
        let db = Self::new().await?;
        crate::seeds::load(&mut db.pool.get().await?).await?;
        Ok(db)
    }

    /// Creates a new database without running any migration.
    pub async fn new_empty() -> Result<Self> {
        let mut admin = db::parse_url(&server_url())?;
        admin.dbname("postgres");
        let name = format!("fitkart_test_{}", Uuid::new_v4().simple());
        let client = db::connect(&admin).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {}", db::quote_ident(&name)))
            .await?;
        let url = database_url(&server_url(), &name)?;
        let pool = db::pool(&url, 8)?;
        Ok(Self {
            name,
            url,
            admin,
            pool,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL that connects to this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool of connections to this database.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// One pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Client> {
        Ok(self.pool.get().await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside async context (or inside a runtime that may be shutting down), so
        // the database is dropped from a thread with its own small runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = db::connect(&admin).await.map_err(|e| e.to_string())?;
                client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        db::quote_ident(&name)
                    ))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("warning: could not drop test database {}: {err}", self.name);
        }
    }
}

/// The URL of database `name` on the server of `server_url`.
fn database_url(server_url: &str, name: &str) -> Result<String> {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    db::parse_url(&url)
        .map_err(|_| Error::Config(format!("cannot derive a test URL from {server_url}")))?;
    Ok(url)
}

/// A real FitKart server on an ephemeral port over its own fresh database.
pub struct TestServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
    db: TestDb,
}

impl TestServer {
    /// Starts a server over a new database, migrated and seeded like `serve` does.
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after letting `adjust` change its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Result<Self> {
        Self::start_on(TestDb::new_empty().await?, adjust).await
    }

    /// Starts a server over an existing test database (a restored backup, say), which it
    /// migrates and seeds like `serve` does and drops when it is dropped.
    pub async fn start_on(db: TestDb, adjust: impl FnOnce(&mut ServerConfig)) -> Result<Self> {
        let mut config = ServerConfig::new(db.url(), JwtSecret::generate());
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.db_pool_size = 8;
        // Tests sign up many accounts from 127.0.0.1; those of the limit set their own.
        config.login_limits.registrations_per_address = 10_000;
        adjust(&mut config);
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        let metrics_addr = server.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            metrics_addr,
            shutdown: Some(tx),
            task: Some(task),
            db,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of `GET /metrics` on the metrics listener, when the configuration has one
    /// (`config.metrics_listen`).
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_addr
            .map(|address| format!("http://{address}/metrics"))
    }

    /// The server's database.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// Stops the server gracefully and waits until it has finished in-flight requests.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Config(format!("server task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_urls_keep_credentials_host_and_parameters() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@db:5433?sslmode=disable", "t2").unwrap(),
            "postgres://u:p@db:5433/t2?sslmode=disable"
        );
    }
}

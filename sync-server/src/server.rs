//! Running the server: prepare the database (create, migrate, seed), serve HTTP, keep the
//! background upkeep going, and shut down gracefully.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::error::Result;
use crate::http::{AppState, router};
use crate::{db, maintenance, seeds};

/// Creates the database if needed, applies migrations and loads seeds, as configured.
pub async fn prepare_database(config: &ServerConfig) -> Result<deadpool_postgres::Pool> {
    db::ensure_database(&config.database_url).await?;
    if config.migrate_on_start {
        db::migrate(&config.database_url).await?;
    }
    let pool = db::pool(&config.database_url, config.db_pool_size)?;
    if config.seed_on_start {
        let report = seeds::load(&mut pool.get().await?).await?;
        if report.total() > 0 {
            tracing::info!(?report, "loaded seed data");
        }
    }
    if config.migrate_on_start {
        maintenance::ensure_partitions(&pool).await?;
    }
    Ok(pool)
}

/// A server bound to its socket, ready to run.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Server {
    /// Prepares the database and binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Self> {
        let pool = prepare_database(&config).await?;
        let replica = match &config.read_database_url {
            Some(url) => {
                tracing::info!(
                    "reads that tolerate lag go to the read replica when it has caught up"
                );
                Some(db::replica_pool(url, config.db_pool_size)?)
            }
            None => None,
        };
        let listener = bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            state: AppState::new(pool, replica, config),
        })
    }

    /// The address of the metrics listener (`FITKART_METRICS_LISTEN`), if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|source| crate::Error::Io {
                context: "no local address".into(),
                source,
            })
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let background = crate::jobs::spawn_background_jobs(&self.state)?;
        // Both listeners stop on the one shutdown signal.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let metrics = self.metrics_listener.map(|listener| {
            let app = crate::http::metrics_router(self.state.clone());
            tokio::spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(until_stopped(stopped.clone()))
                    .into_future(),
            )
        });
        let app = router(self.state);
        // Each answer goes out as soon as it is written, not held back by Nagle's algorithm
        // until the client acknowledges the previous segment (docs/benchmarks.md, step 19).
        let listener = self.listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY on a connection");
            }
        });
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(until_stopped(stopped))
        .await;
        for task in background {
            task.abort();
        }
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "the metrics listener failed"),
                Err(err) => tracing::warn!(error = %err, "the metrics listener task failed"),
            }
        }
        served.map_err(|source| crate::Error::Io {
            context: "the HTTP server failed".into(),
            source,
        })
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|source| crate::Error::Io {
            context: format!("cannot listen on {address}"),
            source,
        })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

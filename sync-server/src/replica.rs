//! Reads that tolerate replication lag, sent to an optional PostgreSQL streaming replica
//! (`FITKART_READ_DATABASE_URL`), and the rule that decides, per read, whether the replica
//! has caught up far enough or the primary must answer.
//!
//! A hot standby shows the primary's commits in their commit order, a little late. Change
//! versions (ADR 0001) commit under the user's row lock, so a replica whose
//! `change_versions` row for a user has reached the primary's has every change of that user
//! the primary had committed when the read began. That is the whole read-your-writes check:
//! one indexed lookup on each side. When the replica is behind, unreachable or failing, the
//! read goes to the primary instead; a lagging replica never shows a user less than what
//! their own requests already committed, and never makes a pull answer `cursor_expired`.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use uuid::Uuid;

use crate::error::DomainError;
use crate::metrics::{Metrics, ReadSource};

/// How fresh a read must be to be served by the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Any recently committed state will do: leaderboards (rebuilt nightly) and the
    /// catalogue (stock is checked again on the primary when an order is placed).
    AnyLag,
    /// The read shows one user's own data: every change that user committed before the read
    /// began must be visible (their push, their order, their admin-approved steps), and the
    /// shared catalogue at least up to `shared_at_least` (the version a pull cursor already
    /// holds, -1 for none).
    OwnWrites {
        /// The user whose data is read.
        user_id: Uuid,
        /// The shared catalogue version the replica must have reached.
        shared_at_least: i64,
    },
}

impl Freshness {
    /// [`Freshness::OwnWrites`] for a read that does not involve the shared catalogue.
    pub fn own_writes(user_id: Uuid) -> Self {
        Self::OwnWrites {
            user_id,
            shared_at_least: -1,
        }
    }
}

/// The primary pool and, when configured, the replica's.
#[derive(Clone)]
pub struct ReadPools {
    primary: Pool,
    replica: Option<Pool>,
    metrics: Arc<Metrics>,
}

impl ReadPools {
    /// Reads go to `replica` when it is given (and fresh enough), to `primary` otherwise.
    pub fn new(primary: Pool, replica: Option<Pool>, metrics: Arc<Metrics>) -> Self {
        Self {
            primary,
            replica,
            metrics,
        }
    }

    /// The replica's pool, if one is configured.
    pub fn replica(&self) -> Option<&Pool> {
        self.replica.as_ref()
    }

    /// A connection for a read that must be at least as fresh as `freshness`: the replica's
    /// when one is configured, reachable and caught up, the primary's otherwise. Use it for
    /// reads only; a write on a replica connection fails.
    pub async fn get(&self, freshness: Freshness) -> Result<Object, DomainError> {
        let Some(replica) = &self.replica else {
            return Ok(self.primary.get().await?);
        };
        match self.replica_if_fresh(replica, freshness).await {
            Ok(Some(conn)) => {
                self.metrics.observe_read(ReadSource::Replica);
                return Ok(conn);
            }
            Ok(None) => self.metrics.observe_read(ReadSource::PrimaryReplicaBehind),
            Err(err) => {
                tracing::warn!(error = %err, "the read replica failed: reading from the primary");
                self.metrics.observe_read(ReadSource::PrimaryReplicaFailed);
            }
        }
        Ok(self.primary.get().await?)
    }

    /// A replica connection if the replica has caught up as far as `freshness` needs.
    async fn replica_if_fresh(
        &self,
        replica: &Pool,
        freshness: Freshness,
    ) -> Result<Option<Object>, crate::Error> {
        match freshness {
            Freshness::AnyLag => Ok(Some(replica.get().await?)),
            Freshness::OwnWrites {
                user_id,
                shared_at_least,
            } => {
                // The primary first: whatever the replica shows after this is at least as
                // new, because a replica only moves forward.
                let needed = user_version(&**self.primary.get().await?, user_id).await?;
                let conn = replica.get().await?;
                let reached = user_version(&conn, user_id).await?;
                let shared: i64 = conn
                    .query_one(
                        "SELECT version FROM shared_change_version WHERE singleton",
                        &[],
                    )
                    .await?
                    .get("version");
                Ok((reached >= needed && shared >= shared_at_least).then_some(conn))
            }
        }
    }
}

/// The user's newest committed change version (0 before the first change).
async fn user_version(
    client: &tokio_postgres::Client,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT version FROM change_versions WHERE user_id = $1",
            &[&user_id],
        )
        .await?
        .map_or(0, |row| row.get("version")))
}

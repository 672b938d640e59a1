//! Change versions: the one place that starts, advances and reads the per-user
//! (`change_versions`) and shared catalogue (`shared_change_version`) versions that pull
//! cursors follow. Every advance happens under the version row's lock, held until the
//! caller's transaction commits, so versions commit in order and a cursor never skips a
//! change that commits late (docs/adr/0001-per-user-change-versions.md). That is why these
//! functions take a transaction, not any client.

use deadpool_postgres::Transaction;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::CachedStatements as _;
use crate::error::Error;

/// Starts the change versions of a new user at zero, in the transaction creating the user.
pub async fn start_user(tx: &Transaction<'_>, user_id: Uuid) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO change_versions (user_id) VALUES ($1)",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// The statement that takes a user's next change version under the version row's lock.
/// Callers that send the reads that must follow the lock in the same round trip prepare it
/// with [`crate::db::CachedStatements::prepare_in_order`] and run it with
/// [`next_user_version_on`].
pub const NEXT_USER_VERSION: &str = "INSERT INTO change_versions (user_id, version) VALUES ($1, 1)
     ON CONFLICT (user_id) DO UPDATE SET version = change_versions.version + 1
     RETURNING version";

/// Takes the next change version of a user under its row lock (held until commit), so that
/// versions commit in order. See docs/adr/0001-per-user-change-versions.md.
pub async fn next_user_version(tx: &Transaction<'_>, user_id: Uuid) -> Result<i64, Error> {
    let statement = tx.prepare_cached(NEXT_USER_VERSION).await?;
    Ok(next_user_version_on(tx, &statement, user_id).await?)
}

/// [`next_user_version`] with its statement ([`NEXT_USER_VERSION`]) prepared: the request is
/// sent when the future is first polled.
pub async fn next_user_version_on(
    tx: &Transaction<'_>,
    statement: &Statement,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    Ok(tx.query_one(statement, &[&user_id]).await?.get("version"))
}

/// Takes the next shared catalogue version; the row stays locked until commit.
pub async fn next_shared_version(tx: &Transaction<'_>) -> Result<i64, Error> {
    Ok(tx
        .query_one(
            "UPDATE shared_change_version SET version = version + 1 WHERE singleton RETURNING version",
            &[],
        )
        .await?
        .get("version"))
}

/// The shared catalogue version a batch of changes will carry (seed loading, a Shopify import),
/// held until commit: [`PendingSharedVersion::lock`] locks the version row, so catalogue
/// changes commit in version order, and the batch writes its rows with `version`;
/// [`PendingSharedVersion::publish`] advances the row to it only when something changed, so
/// an import that changed nothing leaves devices nothing to pull. For a single change,
/// [`next_shared_version`].
#[derive(Debug, Clone, Copy)]
pub struct PendingSharedVersion {
    /// The version the batch's rows carry.
    pub version: i64,
}

impl PendingSharedVersion {
    /// Locks the shared version row until commit and answers the next version.
    pub async fn lock(tx: &Transaction<'_>) -> Result<Self, Error> {
        let current: i64 = tx
            .query_one(
                "SELECT version FROM shared_change_version WHERE singleton FOR UPDATE",
                &[],
            )
            .await?
            .get("version");
        Ok(Self {
            version: current + 1,
        })
    }

    /// Advances the shared version to [`Self::version`]: call when the batch changed rows.
    pub async fn publish(self, tx: &Transaction<'_>) -> Result<(), Error> {
        tx.execute(
            "UPDATE shared_change_version SET version = $1 WHERE singleton",
            &[&self.version],
        )
        .await?;
        Ok(())
    }
}

/// The committed per-user and shared versions as seen by the caller's snapshot (a user
/// without a version row is at 0). Versions commit in order under their row locks, so
/// everything up to these versions is complete in that snapshot.
pub async fn committed(tx: &Transaction<'_>, user_id: Uuid) -> Result<(i64, i64), Error> {
    // Both in one round trip (tokio-postgres pipelines them).
    let user_params: [&(dyn ToSql + Sync); 1] = [&user_id];
    let (user_now, shared_now) = tokio::try_join!(
        tx.query_opt_cached(
            "SELECT version FROM change_versions WHERE user_id = $1",
            &user_params,
        ),
        tx.query_one_cached(
            "SELECT version FROM shared_change_version WHERE singleton",
            &[],
        ),
    )?;
    Ok((
        user_now.map_or(0, |r| r.get("version")),
        shared_now.get("version"),
    ))
}

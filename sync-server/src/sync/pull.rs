//! Pull: every change after a cursor, read in one read-only snapshot, paged by whole change
//! versions so a page never splits a version.

use deadpool_postgres::Transaction;
use fitkart_protocol::steps::CoinTransaction;
use fitkart_protocol::sync::{
    Changes, MAX_PULL_LIMIT, PullResponse, SyncAchievement, SyncSetting, SyncStepRecord, SyncUnlock,
};
use uuid::Uuid;

use super::{Cursor, versions};
use crate::db::CachedStatements as _;
use crate::error::{DomainError, ErrorKind};
use crate::rewards::ledger;
use crate::shop::orders;

/// The user-owned tables pull reads, as `SELECT change_version` sources.
const USER_VERSION_SOURCES: &str = "
    SELECT change_version AS v FROM users WHERE id = $1
    UNION ALL SELECT change_version FROM wallets WHERE user_id = $1
    UNION ALL SELECT change_version FROM coin_transactions WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
    UNION ALL SELECT change_version FROM step_records WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
    UNION ALL SELECT change_version FROM user_achievements WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
    UNION ALL SELECT change_version FROM orders WHERE user_id = $1 AND change_version > $2 AND change_version <= $3";

const SHARED_VERSION_SOURCES: &str = "
    SELECT change_version AS v FROM reward_products WHERE change_version > $1 AND change_version <= $2
    UNION ALL SELECT change_version FROM achievements WHERE change_version > $1 AND change_version <= $2
    UNION ALL SELECT change_version FROM settings WHERE is_public AND change_version > $1 AND change_version <= $2";

/// The highest version `v` in `(after, ..]` such that the rows of versions up to `v` fit in
/// `budget` (at least one version, so a page always moves on). `counts` are (version, rows)
/// sorted by version.
fn cutoff(counts: &[(i64, i64)], budget: i64) -> Option<(i64, i64)> {
    let mut used = 0;
    let mut last = None;
    for &(version, rows) in counts {
        if last.is_some() && used + rows > budget {
            break;
        }
        used += rows;
        last = Some((version, used));
    }
    last
}

/// Every change after `cursor`, in one snapshot, paged by whole versions (a version is never
/// split across pages). `limit` is the target number of changed rows per page. `conn` may be
/// a read replica's that has caught up with the user (see [`crate::replica`]).
pub async fn pull(
    conn: &mut deadpool_postgres::Client,
    cursor: Cursor,
    limit: i64,
) -> Result<PullResponse, DomainError> {
    if !(1..=MAX_PULL_LIMIT).contains(&limit) {
        return Err(DomainError::validation(
            "limit",
            format!("limit must be between 1 and {MAX_PULL_LIMIT}"),
        ));
    }
    let user_id = cursor.user_id;
    let tx = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // Versions commit in order under their row locks, so everything up to the committed
    // versions read here is complete in this snapshot.
    let (user_now, shared_now) = versions::committed(&tx, user_id).await?;
    if cursor.user_version > user_now || cursor.shared_version > shared_now {
        return Err(DomainError::new(
            ErrorKind::Gone,
            "cursor_expired",
            "the server can no longer serve this cursor; pull a fresh snapshot (no cursor)",
        ));
    }

    // Both scopes' change counts in one round trip: the catalogue's are read even when the
    // user's part fills the page, a scan of its changed versions where a round trip was.
    let (user_counts, shared_counts) = tokio::try_join!(
        user_counts(&tx, cursor, user_now),
        shared_counts(&tx, cursor, shared_now),
    )?;
    let (user_to, used, user_more) = user_page_end(&user_counts, user_now, limit);
    // Then the shared catalogue, in the room the page has left.
    let shared_to = if user_more || (used >= limit && used > 0) {
        cursor.shared_version
    } else {
        shared_page_end(&shared_counts, cursor, shared_now, limit - used, used)
    };

    let changes = read_changes(&tx, user_id, cursor, user_to, shared_to).await?;
    tx.commit().await?;
    let next = Cursor {
        user_id,
        user_version: user_to,
        shared_version: shared_to,
    };
    Ok(PullResponse {
        changes,
        next_cursor: next.encode(),
        has_more: user_to < user_now || shared_to < shared_now,
    })
}

/// The user's changed rows per version in `(cursor, user_now]`, by version.
async fn user_counts(
    tx: &Transaction<'_>,
    cursor: Cursor,
    user_now: i64,
) -> Result<Vec<(i64, i64)>, DomainError> {
    Ok(tx
        .query_cached(
            &format!(
                "SELECT v, count(*) AS changed FROM ({USER_VERSION_SOURCES}) s
                 WHERE v > $2 AND v <= $3 GROUP BY v ORDER BY v"
            ),
            &[&cursor.user_id, &cursor.user_version, &user_now],
        )
        .await?
        .iter()
        .map(|r| (r.get("v"), r.get("changed")))
        .collect())
}

/// The shared catalogue's changed rows per version in `(cursor, shared_now]`, by version.
async fn shared_counts(
    tx: &Transaction<'_>,
    cursor: Cursor,
    shared_now: i64,
) -> Result<Vec<(i64, i64)>, DomainError> {
    Ok(tx
        .query_cached(
            &format!(
                "SELECT v, count(*) AS changed FROM ({SHARED_VERSION_SOURCES}) s GROUP BY v ORDER BY v"
            ),
            &[&cursor.shared_version, &shared_now],
        )
        .await?
        .iter()
        .map(|r| (r.get("v"), r.get("changed")))
        .collect())
}

/// Where the user's part of a page ends: the version it reaches, the rows it uses, and
/// whether user changes are left for later pages. A version past the last one with rows has
/// nothing to send, so a page holding the last user rows reaches `user_now`.
fn user_page_end(user_counts: &[(i64, i64)], user_now: i64, limit: i64) -> (i64, i64, bool) {
    match cutoff(user_counts, limit) {
        Some((version, used)) => {
            let last = user_counts.last().map_or(version, |(v, _)| *v);
            if version == last {
                (user_now, used, false)
            } else {
                (version, used, true)
            }
        }
        None => (user_now, 0, false),
    }
}

/// Where the shared part of a page ends, given the `budget` of rows the user's part left
/// (`used` rows already on the page).
fn shared_page_end(
    shared_counts: &[(i64, i64)],
    cursor: Cursor,
    shared_now: i64,
    budget: i64,
    used: i64,
) -> i64 {
    match cutoff(shared_counts, budget) {
        // A first shared version bigger than the room left waits for the next page,
        // unless the page is otherwise empty.
        Some((_, rows)) if used > 0 && rows > budget => cursor.shared_version,
        Some((version, _)) if shared_counts.last().is_some_and(|(v, _)| *v > version) => version,
        _ => shared_now,
    }
}

/// Reads the rows changed in `(cursor, to]` of each scope, every table's read sent at once
/// (tokio-postgres pipelines them: one round trip, not one per table).
async fn read_changes(
    tx: &Transaction<'_>,
    user_id: Uuid,
    cursor: Cursor,
    user_to: i64,
    shared_to: i64,
) -> Result<Changes, DomainError> {
    let (after_u, after_s) = (cursor.user_version, cursor.shared_version);
    let user = async {
        if user_to > after_u {
            read_user_changes(tx, user_id, after_u, user_to).await
        } else {
            Ok(Changes::default())
        }
    };
    let shared = async {
        if shared_to > after_s {
            tokio::try_join!(
                crate::shop::catalogue::changed_since(tx, after_s, shared_to),
                achievements_changed(tx, after_s, shared_to),
                public_settings_changed(tx, after_s, shared_to),
            )
        } else {
            Ok(Default::default())
        }
    };
    let (mut changes, (products, achievements, settings)) = tokio::try_join!(user, shared)?;
    changes.products = products;
    changes.achievements = achievements;
    changes.settings = settings;
    Ok(changes)
}

/// The user's own changes in `(after, to]`: profile, wallet, coin movements, step records,
/// unlocks and orders.
async fn read_user_changes(
    tx: &Transaction<'_>,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Changes, DomainError> {
    let (profile, wallet, coin_transactions, step_records, achievements_unlocked, orders) = tokio::try_join!(
        crate::auth::accounts::profile_changed(tx, user_id, after, to),
        async { Ok::<_, DomainError>(ledger::wallet_changed(tx, user_id, after, to).await?) },
        coin_transactions_changed(tx, user_id, after, to),
        step_records_changed(tx, user_id, after, to),
        unlocks_changed(tx, user_id, after, to),
        orders::changed_since(tx, user_id, after, to),
    )?;
    Ok(Changes {
        profile,
        wallet,
        coin_transactions,
        step_records,
        achievements_unlocked,
        orders,
        ..Changes::default()
    })
}

/// The user's coin movements booked in `(after, to]`, in ledger order.
async fn coin_transactions_changed(
    tx: &Transaction<'_>,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Vec<CoinTransaction>, DomainError> {
    Ok(tx
        .query_cached(
            &format!(
                "SELECT {}
                 FROM coin_transactions
                 WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
                 ORDER BY ledger_seq",
                ledger::TRANSACTION_COLUMNS
            ),
            &[&user_id, &after, &to],
        )
        .await?
        .iter()
        .map(ledger::transaction_from_row)
        .collect())
}

/// The user's step records changed in `(after, to]`.
async fn step_records_changed(
    tx: &Transaction<'_>,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Vec<SyncStepRecord>, DomainError> {
    Ok(tx
        .query_cached(
            "SELECT day, source, steps, verified_steps, status, change_version
             FROM step_records
             WHERE user_id = $1 AND change_version > $2 AND change_version <= $3
             ORDER BY change_version, day, source",
            &[&user_id, &after, &to],
        )
        .await?
        .iter()
        .map(|row| SyncStepRecord {
            date: row.get("day"),
            source: row.get("source"),
            steps: i64::from(row.get::<_, i32>("steps")),
            verified_steps: i64::from(row.get::<_, i32>("verified_steps")),
            status: row.get("status"),
            version: row.get("change_version"),
        })
        .collect())
}

/// The achievements the user unlocked in `(after, to]`.
async fn unlocks_changed(
    tx: &Transaction<'_>,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Vec<SyncUnlock>, DomainError> {
    Ok(tx
        .query_cached(
            "SELECT a.code, ua.unlocked_at FROM user_achievements ua
             JOIN achievements a ON a.id = ua.achievement_id
             WHERE ua.user_id = $1 AND ua.change_version > $2 AND ua.change_version <= $3
             ORDER BY ua.change_version, a.code",
            &[&user_id, &after, &to],
        )
        .await?
        .iter()
        .map(|row| SyncUnlock {
            code: row.get("code"),
            unlocked_at: row.get("unlocked_at"),
        })
        .collect())
}

/// The achievement definitions changed in shared versions `(after, to]`.
async fn achievements_changed(
    tx: &Transaction<'_>,
    after: i64,
    to: i64,
) -> Result<Vec<SyncAchievement>, DomainError> {
    Ok(tx
        .query_cached(
            "SELECT code, name, description, icon, criteria, bonus_coins,
                    is_active AND deleted_at IS NULL AS is_active
             FROM achievements WHERE change_version > $1 AND change_version <= $2
             ORDER BY sort_order, code",
            &[&after, &to],
        )
        .await?
        .iter()
        .map(|row| SyncAchievement {
            code: row.get("code"),
            name: row.get("name"),
            description: row.get("description"),
            icon: row.get("icon"),
            criteria: row.get("criteria"),
            bonus_coins: row.get("bonus_coins"),
            is_active: row.get("is_active"),
        })
        .collect())
}

/// The public settings changed in shared versions `(after, to]`, by key.
async fn public_settings_changed(
    tx: &Transaction<'_>,
    after: i64,
    to: i64,
) -> Result<Vec<SyncSetting>, DomainError> {
    Ok(tx
        .query_cached(
            "SELECT key, value FROM settings
             WHERE is_public AND change_version > $1 AND change_version <= $2 ORDER BY key",
            &[&after, &to],
        )
        .await?
        .iter()
        .map(|row| SyncSetting {
            key: row.get("key"),
            value: row.get("value"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_on_whole_versions() {
        let counts = [(1, 3), (2, 5), (3, 1)];
        assert_eq!(cutoff(&counts, 4), Some((1, 3)));
        assert_eq!(cutoff(&counts, 8), Some((2, 8)));
        assert_eq!(cutoff(&counts, 100), Some((3, 9)));
        // A version larger than the page still moves the cursor on.
        assert_eq!(cutoff(&[(5, 50)], 10), Some((5, 50)));
        assert_eq!(cutoff(&[], 10), None);
    }
}

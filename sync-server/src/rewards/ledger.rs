//! The coin ledger: the only way coins move. Entries are appended to `coin_transactions`
//! and the wallet row changes in the same transaction, under the wallet's row lock.
//! [`verify`] proves every wallet equals the sums of its ledger.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use fitkart_protocol::steps::{CoinTransaction, Wallet};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::CachedStatements as _;
use crate::error::{Error, Result};

/// The kinds of ledger entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Coins for verified steps (+available).
    StepReward,
    /// An achievement's bonus (+available).
    AchievementBonus,
    /// An order holds its coins (available -> frozen).
    OrderHold,
    /// A delivered order spends its hold (-frozen).
    OrderCapture,
    /// A cancelled order releases its hold (frozen -> available).
    OrderRelease,
    /// Coins credited back after delivery (+available).
    Refund,
    /// An admin's correction (+/- available).
    AdminAdjustment,
}

impl EntryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StepReward => "step_reward",
            Self::AchievementBonus => "achievement_bonus",
            Self::OrderHold => "order_hold",
            Self::OrderCapture => "order_capture",
            Self::OrderRelease => "order_release",
            Self::Refund => "refund",
            Self::AdminAdjustment => "admin_adjustment",
        }
    }
}

/// One entry to book.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Kind.
    pub kind: EntryKind,
    /// Change of available coins.
    pub available_delta: i64,
    /// Change of frozen coins.
    pub frozen_delta: i64,
    /// What it refers to: (`step_day`, `2026-11-25`), (`order`, id), ...
    pub reference: Option<(&'static str, String)>,
    /// Unique key: booking the same key twice fails, so a bug can never pay twice.
    pub idempotency_key: String,
    /// Human-readable description.
    pub description: Option<String>,
    /// The admin who made it, for adjustments.
    pub created_by: Option<Uuid>,
}

impl Entry {
    /// How this entry changes lifetime earned and spent.
    fn lifetime_effect(&self) -> (i64, i64) {
        match self.kind {
            EntryKind::StepReward | EntryKind::AchievementBonus => (self.available_delta, 0),
            EntryKind::AdminAdjustment if self.available_delta > 0 => (self.available_delta, 0),
            EntryKind::OrderCapture => (0, -self.frozen_delta),
            EntryKind::Refund => (0, -self.available_delta),
            _ => (0, 0),
        }
    }
}

/// Booking would make a balance negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not enough coins: {available} available, {needed} needed")]
pub struct InsufficientCoins {
    /// Available coins before the booking.
    pub available: i64,
    /// Coins the booking needs.
    pub needed: i64,
}

/// Either an internal failure or a refused booking.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// A balance would go negative; nothing was booked.
    #[error(transparent)]
    Insufficient(#[from] InsufficientCoins),
    /// Database failure.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<PostError> for crate::error::ApiError {
    /// A refused booking is 409 `insufficient_coins` with what was available and needed; the
    /// one mapping every caller (orders, adjustments, rewards) answers with.
    fn from(err: PostError) -> Self {
        match err {
            PostError::Insufficient(e) => Self::new(
                axum::http::StatusCode::CONFLICT,
                "insufficient_coins",
                "not enough coins",
            )
            .with_details(serde_json::json!({ "available": e.available, "needed": e.needed })),
            PostError::Internal(e) => e.into(),
        }
    }
}

impl From<tokio_postgres::Error> for PostError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// Books `entries` for `user_id` in order, in the caller's transaction: locks the wallet,
/// appends the entries with their running balances (one statement), updates the wallet.
/// `change_version` stamps the rows for sync. Returns the wallet after.
pub async fn post(
    tx: &impl GenericClient,
    user_id: Uuid,
    change_version: i64,
    entries: &[Entry],
) -> Result<Wallet, PostError> {
    let wallet = tx
        .query_one_cached(
            "SELECT id, available_coins, frozen_coins, lifetime_earned, lifetime_spent
             FROM wallets WHERE user_id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?;
    let wallet_id: Uuid = wallet.get(0);
    let (mut available, mut frozen): (i64, i64) = (wallet.get(1), wallet.get(2));
    let (mut earned, mut spent): (i64, i64) = (wallet.get(3), wallet.get(4));
    if entries.is_empty() {
        return Ok(Wallet {
            available_coins: available,
            frozen_coins: frozen,
            lifetime_earned: earned,
            lifetime_spent: spent,
        });
    }
    let n = entries.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut available_deltas = Vec::with_capacity(n);
    let mut frozen_deltas = Vec::with_capacity(n);
    let mut available_afters = Vec::with_capacity(n);
    let mut frozen_afters = Vec::with_capacity(n);
    let mut reference_types: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut reference_ids: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut descriptions = Vec::with_capacity(n);
    let mut creators = Vec::with_capacity(n);
    for entry in entries {
        let next_available = available + entry.available_delta;
        let next_frozen = frozen + entry.frozen_delta;
        if next_available < 0 || next_frozen < 0 {
            return Err(InsufficientCoins {
                available,
                needed: -entry.available_delta,
            }
            .into());
        }
        available = next_available;
        frozen = next_frozen;
        let (more_earned, more_spent) = entry.lifetime_effect();
        earned += more_earned;
        spent = (spent + more_spent).max(0);
        ids.push(Uuid::now_v7());
        kinds.push(entry.kind.as_str());
        available_deltas.push(entry.available_delta);
        frozen_deltas.push(entry.frozen_delta);
        available_afters.push(available);
        frozen_afters.push(frozen);
        reference_types.push(entry.reference.as_ref().map(|(t, _)| *t));
        reference_ids.push(entry.reference.as_ref().map(|(_, id)| id.as_str()));
        keys.push(entry.idempotency_key.as_str());
        descriptions.push(entry.description.as_deref());
        creators.push(entry.created_by);
    }
    // The entries and the wallet they end at go out together, in this order, once both
    // statements are prepared (the wallet row is locked above).
    let (insert, update) = tokio::try_join!(
        tx.prepare_cached(
            "INSERT INTO coin_transactions
                 (id, user_id, wallet_id, kind, available_delta, frozen_delta, available_after,
                  frozen_after, reference_type, reference_id, idempotency_key, description,
                  created_by, change_version)
             SELECT e.id, $1, $2, e.kind, e.ad, e.fd, e.aa, e.fa, e.rt, e.ri, e.k, e.d, e.cb, $14
             FROM unnest($3::uuid[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
                         $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[],
                         $13::uuid[]) WITH ORDINALITY
                  AS e(id, kind, ad, fd, aa, fa, rt, ri, k, d, cb, ord)
             ORDER BY e.ord",
        ),
        tx.prepare_cached(
            "UPDATE wallets SET available_coins = $2, frozen_coins = $3, lifetime_earned = $4,
                 lifetime_spent = $5, change_version = $6
             WHERE id = $1",
        ),
    )?;
    let entry_params: [&(dyn ToSql + Sync); 14] = [
        &user_id,
        &wallet_id,
        &ids,
        &kinds,
        &available_deltas,
        &frozen_deltas,
        &available_afters,
        &frozen_afters,
        &reference_types,
        &reference_ids,
        &keys,
        &descriptions,
        &creators,
        &change_version,
    ];
    let wallet_params: [&(dyn ToSql + Sync); 6] = [
        &wallet_id,
        &available,
        &frozen,
        &earned,
        &spent,
        &change_version,
    ];
    tokio::try_join!(
        tx.execute(&insert, &entry_params),
        tx.execute(&update, &wallet_params),
    )?;
    Ok(Wallet {
        available_coins: available,
        frozen_coins: frozen,
        lifetime_earned: earned,
        lifetime_spent: spent,
    })
}

/// The user's wallet.
pub async fn wallet(client: &impl GenericClient, user_id: Uuid) -> Result<Wallet> {
    let row = client
        .query_one_cached(
            "SELECT available_coins, frozen_coins, lifetime_earned, lifetime_spent
             FROM wallets WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    Ok(Wallet {
        available_coins: row.get(0),
        frozen_coins: row.get(1),
        lifetime_earned: row.get(2),
        lifetime_spent: row.get(3),
    })
}

/// A page of the user's entries, newest first, before the entry `before_seq` (exclusive).
/// Returns the page and the sequence to continue from, if there is more.
pub async fn transactions(
    client: &impl GenericClient,
    user_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<CoinTransaction>, Option<i64>)> {
    let rows = client
        .query(
            "SELECT id, kind, available_delta, frozen_delta, available_after, frozen_after,
                    reference_type, reference_id, description, created_at, ledger_seq
             FROM coin_transactions
             WHERE user_id = $1 AND ($2::bigint IS NULL OR ledger_seq < $2)
             ORDER BY ledger_seq DESC
             LIMIT $3",
            &[&user_id, &before_seq, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|row| row.get::<_, i64>(10))
    } else {
        None
    };
    let transactions = page
        .iter()
        .map(|row| CoinTransaction {
            id: row.get(0),
            kind: row.get(1),
            available_delta: row.get(2),
            frozen_delta: row.get(3),
            available_after: row.get(4),
            frozen_after: row.get(5),
            reference_type: row.get(6),
            reference_id: row.get(7),
            description: row.get(8),
            created_at: row.get::<_, DateTime<Utc>>(9),
        })
        .collect();
    Ok((transactions, next))
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// Wallets examined.
    pub wallets_checked: u64,
    /// Ledger entries examined.
    pub entries_checked: u64,
    /// Every inconsistency found, one line each.
    pub problems: Vec<String>,
}

impl LedgerReport {
    /// Whether the ledger is consistent.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Proves, for every wallet, that available and frozen equal the sums of the ledger, that
/// each entry's recorded balances follow from the previous one, and that no balance was
/// ever negative.
pub async fn verify(client: &impl GenericClient) -> Result<LedgerReport> {
    let mut report = LedgerReport::default();
    let wallets = client
        .query(
            "SELECT w.user_id, w.available_coins, w.frozen_coins,
                    coalesce(sum(t.available_delta), 0)::bigint,
                    coalesce(sum(t.frozen_delta), 0)::bigint,
                    count(t.id)
             FROM wallets w LEFT JOIN coin_transactions t ON t.user_id = w.user_id
             GROUP BY w.user_id, w.available_coins, w.frozen_coins",
            &[],
        )
        .await?;
    for row in &wallets {
        report.wallets_checked += 1;
        let user: Uuid = row.get(0);
        let (available, frozen, sum_available, sum_frozen, entries): (i64, i64, i64, i64, i64) =
            (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        report.entries_checked += entries as u64;
        if available != sum_available {
            report.problems.push(format!(
                "wallet of user {user}: available_coins {available} but the ledger sums to {sum_available}"
            ));
        }
        if frozen != sum_frozen {
            report.problems.push(format!(
                "wallet of user {user}: frozen_coins {frozen} but the ledger sums to {sum_frozen}"
            ));
        }
        if available < 0 || frozen < 0 {
            report
                .problems
                .push(format!("wallet of user {user} is negative"));
        }
    }
    // The running balances, recomputed in booking order, must match each entry and never dip.
    let chain = client
        .query(
            "SELECT user_id, ledger_seq, available_after, frozen_after, run_available, run_frozen
             FROM (
                 SELECT user_id, ledger_seq, available_after, frozen_after,
                        (sum(available_delta) OVER w)::bigint AS run_available,
                        (sum(frozen_delta) OVER w)::bigint AS run_frozen
                 FROM coin_transactions
                 WINDOW w AS (PARTITION BY user_id ORDER BY ledger_seq)
             ) r
             WHERE available_after <> run_available OR frozen_after <> run_frozen
                OR run_available < 0 OR run_frozen < 0
             LIMIT 1000",
            &[],
        )
        .await?;
    for row in &chain {
        let user: Uuid = row.get(0);
        let seq: i64 = row.get(1);
        report.problems.push(format!(
            "ledger of user {user}, entry #{seq}: recorded balances ({}, {}) but the running sums are ({}, {})",
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
            row.get::<_, i64>(4),
            row.get::<_, i64>(5),
        ));
    }
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM coin_transactions t
             WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = t.user_id)",
            &[],
        )
        .await?
        .get(0);
    if orphans > 0 {
        report
            .problems
            .push(format!("{orphans} ledger entries belong to no wallet"));
    }
    Ok(report)
}

//! The coin ledger: the only way coins move. Entries are appended to `coin_transactions`
//! and the wallet row changes in the same transaction, under the wallet's row lock.
//! [`verify`] proves every wallet equals the sums of its ledger.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use fitkart_protocol::steps::{CoinTransaction, Wallet};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::auth::accounts::Standing;
use crate::db::CachedStatements as _;
use crate::error::{Error, ErrorKind, Result};

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

impl From<PostError> for crate::error::DomainError {
    /// A refused booking is 409 `insufficient_coins` with what was available and needed; the
    /// one mapping every caller (orders, adjustments, rewards) answers with.
    fn from(err: PostError) -> Self {
        match err {
            PostError::Insufficient(e) => Self::new(
                ErrorKind::Conflict,
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

/// A wallet's balances: what [`post`] reads under the wallet's lock and writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balances {
    /// Spendable coins.
    pub available: i64,
    /// Coins held by open orders.
    pub frozen: i64,
    /// Coins ever earned.
    pub earned: i64,
    /// Coins ever spent.
    pub spent: i64,
}

impl Balances {
    /// The balances after booking `entry`; refused when a balance would go negative.
    pub fn book(self, entry: &Entry) -> Result<Self, InsufficientCoins> {
        let available = self.available + entry.available_delta;
        let frozen = self.frozen + entry.frozen_delta;
        if available < 0 || frozen < 0 {
            return Err(InsufficientCoins {
                available: self.available,
                needed: -entry.available_delta,
            });
        }
        let (more_earned, more_spent) = entry.lifetime_effect();
        Ok(Self {
            available,
            frozen,
            earned: self.earned + more_earned,
            spent: (self.spent + more_spent).max(0),
        })
    }

    /// The balances after each of `entries` in order; refused, booking none, when any
    /// balance would go negative on the way.
    pub fn book_all(self, entries: &[Entry]) -> Result<Vec<Self>, InsufficientCoins> {
        let mut balances = self;
        entries
            .iter()
            .map(|entry| {
                balances = balances.book(entry)?;
                Ok(balances)
            })
            .collect()
    }

    fn wallet(self) -> Wallet {
        Wallet {
            available_coins: self.available,
            frozen_coins: self.frozen,
            lifetime_earned: self.earned,
            lifetime_spent: self.spent,
        }
    }
}

/// Books `entries` for `user_id` in order, in the caller's transaction: locks the wallet,
/// appends the entries with their running balances (one statement), updates the wallet.
/// `change_version` stamps the rows for sync. Returns the wallet after.
pub async fn post(
    tx: &Transaction<'_>,
    user_id: Uuid,
    change_version: i64,
    entries: &[Entry],
) -> Result<Wallet, PostError> {
    let wallet = lock(tx, user_id).await?;
    book(tx, &wallet, change_version, entries).await
}

/// A user's wallet row, locked by the caller's transaction until it commits.
#[derive(Debug, Clone, Copy)]
pub struct LockedWallet {
    user_id: Uuid,
    id: Uuid,
    balances: Balances,
}

/// Locks the user's wallet row and reads its id and balances: the first half of [`post`], for
/// callers that send the lock with other statements.
pub async fn lock(tx: &Transaction<'_>, user_id: Uuid) -> Result<LockedWallet, Error> {
    let wallet = tx
        .query_one_cached(
            "SELECT user_id, id, available_coins, frozen_coins, lifetime_earned, lifetime_spent
             FROM wallets WHERE user_id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?;
    Ok(LockedWallet::from_row(&wallet))
}

/// Locks the wallet rows of `users` (sorted), in that order, and reads them, in one statement
/// (parameter: the users): [`lock`] for a group of users whose change-version rows the
/// caller's transaction holds. A user without a wallet has no row.
pub const LOCK_WALLETS: &str =
    "SELECT user_id, id, available_coins, frozen_coins, lifetime_earned, lifetime_spent
 FROM wallets WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE";

impl LockedWallet {
    /// A row of [`lock`]'s or [`LOCK_WALLETS`]' statement.
    pub fn from_row(wallet: &Row) -> Self {
        Self {
            user_id: wallet.get("user_id"),
            id: wallet.get("id"),
            balances: Balances {
                available: wallet.get("available_coins"),
                frozen: wallet.get("frozen_coins"),
                earned: wallet.get("lifetime_earned"),
                spent: wallet.get("lifetime_spent"),
            },
        }
    }

    /// The user whose wallet it is.
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
}

/// [`book`] for several wallets at once, each [`lock`]ed (or locked by [`LOCK_WALLETS`]) in
/// this transaction with its change version and entries: every entry in one statement, every
/// wallet in another. Refused, booking nothing, when any balance would go negative.
pub async fn book_group(
    tx: &Transaction<'_>,
    bookings: &[(&LockedWallet, i64, &[Entry])],
) -> Result<(), PostError> {
    let mut entries = GroupEntries::default();
    let mut wallets = GroupWallets::default();
    for &(wallet, change_version, booked) in bookings {
        if booked.is_empty() {
            continue;
        }
        let running = wallet.balances.book_all(booked)?;
        for (entry, balances) in booked.iter().zip(&running) {
            entries.push(wallet, change_version, entry, balances);
        }
        let after = running.last().copied().unwrap_or(wallet.balances);
        wallets.ids.push(wallet.id);
        wallets.available.push(after.available);
        wallets.frozen.push(after.frozen);
        wallets.earned.push(after.earned);
        wallets.spent.push(after.spent);
        wallets.versions.push(change_version);
    }
    if wallets.ids.is_empty() {
        return Ok(());
    }
    let (insert, update) = tokio::try_join!(
        tx.prepare_cached(APPEND_GROUP),
        tx.prepare_cached(UPDATE_WALLETS)
    )?;
    let e = &entries;
    let entry_params: [&(dyn ToSql + Sync); 14] = [
        &e.ids,
        &e.users,
        &e.wallets,
        &e.kinds,
        &e.available_deltas,
        &e.frozen_deltas,
        &e.available_afters,
        &e.frozen_afters,
        &e.reference_types,
        &e.reference_ids,
        &e.keys,
        &e.descriptions,
        &e.creators,
        &e.versions,
    ];
    let w = &wallets;
    let wallet_params: [&(dyn ToSql + Sync); 6] = [
        &w.ids,
        &w.available,
        &w.frozen,
        &w.earned,
        &w.spent,
        &w.versions,
    ];
    tokio::try_join!(
        tx.execute(&insert, &entry_params),
        tx.execute(&update, &wallet_params),
    )?;
    Ok(())
}

/// The columns of [`APPEND_GROUP`].
#[derive(Default)]
struct GroupEntries {
    ids: Vec<Uuid>,
    users: Vec<Uuid>,
    wallets: Vec<Uuid>,
    kinds: Vec<&'static str>,
    available_deltas: Vec<i64>,
    frozen_deltas: Vec<i64>,
    available_afters: Vec<i64>,
    frozen_afters: Vec<i64>,
    reference_types: Vec<Option<&'static str>>,
    reference_ids: Vec<Option<String>>,
    keys: Vec<String>,
    descriptions: Vec<Option<String>>,
    creators: Vec<Option<Uuid>>,
    versions: Vec<i64>,
}

impl GroupEntries {
    /// Adds `entry` of `wallet`, after which its balances are `balances`.
    fn push(&mut self, wallet: &LockedWallet, version: i64, entry: &Entry, balances: &Balances) {
        self.ids.push(Uuid::now_v7());
        self.users.push(wallet.user_id);
        self.wallets.push(wallet.id);
        self.kinds.push(entry.kind.as_str());
        self.available_deltas.push(entry.available_delta);
        self.frozen_deltas.push(entry.frozen_delta);
        self.available_afters.push(balances.available);
        self.frozen_afters.push(balances.frozen);
        self.reference_types
            .push(entry.reference.as_ref().map(|(t, _)| *t));
        self.reference_ids
            .push(entry.reference.as_ref().map(|(_, id)| id.clone()));
        self.keys.push(entry.idempotency_key.clone());
        self.descriptions.push(entry.description.clone());
        self.creators.push(entry.created_by);
        self.versions.push(version);
    }
}

/// The columns of [`UPDATE_WALLETS`].
#[derive(Default)]
struct GroupWallets {
    ids: Vec<Uuid>,
    available: Vec<i64>,
    frozen: Vec<i64>,
    earned: Vec<i64>,
    spent: Vec<i64>,
    versions: Vec<i64>,
}

/// Books `entries` on a wallet [`lock`]ed in this transaction: the second half of [`post`].
pub async fn book(
    tx: &Transaction<'_>,
    wallet: &LockedWallet,
    change_version: i64,
    entries: &[Entry],
) -> Result<Wallet, PostError> {
    if entries.is_empty() {
        return Ok(wallet.balances.wallet());
    }
    let running = wallet.balances.book_all(entries)?;
    let after = running.last().copied().unwrap_or(wallet.balances);
    append_and_update(
        tx,
        Booking {
            user_id: wallet.user_id,
            wallet_id: wallet.id,
            change_version,
            entries,
            running: &running,
            after,
        },
    )
    .await?;
    Ok(after.wallet())
}

/// Entries to append to a locked wallet, with the balances after each and after all.
struct Booking<'a> {
    user_id: Uuid,
    wallet_id: Uuid,
    change_version: i64,
    entries: &'a [Entry],
    running: &'a [Balances],
    after: Balances,
}

/// The insert that [`APPEND_ONE`] and [`APPEND_MANY`] start with.
macro_rules! append_entries {
    () => {
        "INSERT INTO coin_transactions
             (id, user_id, wallet_id, kind, available_delta, frozen_delta, available_after,
              frozen_after, reference_type, reference_id, idempotency_key, description,
              created_by, change_version)"
    };
}

/// Appends one entry (parameters as [`APPEND_MANY`]'s, each a value instead of an array). A
/// step report books one entry, and a row of values costs PostgreSQL less than unnesting
/// eleven one-element arrays and sorting them (docs/benchmarks.md, tuning step 13).
const APPEND_ONE: &str = concat!(
    append_entries!(),
    " VALUES ($3, $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);

/// Appends entries in their order (parameters: the user, the wallet, the entries' columns as
/// arrays, the change version), so their ledger sequence follows the running balances.
const APPEND_MANY: &str = concat!(
    append_entries!(),
    " SELECT e.id, $1, $2, e.kind, e.ad, e.fd, e.aa, e.fa, e.rt, e.ri, e.k, e.d, e.cb, $14
     FROM unnest($3::uuid[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
                 $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[],
                 $13::uuid[]) WITH ORDINALITY
          AS e(id, kind, ad, fd, aa, fa, rt, ri, k, d, cb, ord)
     ORDER BY e.ord"
);

/// Writes a wallet's balances (parameters: the wallet, its four balances, the change version).
const UPDATE_WALLET: &str = "UPDATE wallets SET available_coins = $2, frozen_coins = $3,
     lifetime_earned = $4, lifetime_spent = $5, change_version = $6
 WHERE id = $1";

/// Appends the entries of several wallets in their order (parameters: the entries' ids,
/// users, wallets, then the columns of [`APPEND_MANY`] and their change versions, all arrays).
const APPEND_GROUP: &str = concat!(
    append_entries!(),
    " SELECT e.id, e.user_id, e.wallet_id, e.kind, e.ad, e.fd, e.aa, e.fa, e.rt, e.ri, e.k,
            e.d, e.cb, e.v
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[],
                 $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[],
                 $13::uuid[], $14::bigint[]) WITH ORDINALITY
          AS e(id, user_id, wallet_id, kind, ad, fd, aa, fa, rt, ri, k, d, cb, v, ord)
     ORDER BY e.ord"
);

/// Writes several wallets' balances (parameters: the wallets, their four balances and change
/// versions, all arrays).
const UPDATE_WALLETS: &str = "UPDATE wallets w SET available_coins = u.available,
     frozen_coins = u.frozen, lifetime_earned = u.earned, lifetime_spent = u.spent,
     change_version = u.version
 FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
      AS u(id, available, frozen, earned, spent, version)
 WHERE w.id = u.id";

/// Appends the entries (one statement: [`APPEND_ONE`] or [`APPEND_MANY`]) and writes the
/// wallet's balances after them; both go out together, in this order, once both statements
/// are prepared (the wallet row is locked).
async fn append_and_update(tx: &Transaction<'_>, booking: Booking<'_>) -> Result<(), Error> {
    let Booking {
        user_id,
        wallet_id,
        change_version,
        entries,
        running,
        after,
    } = booking;
    let wallet_params: [&(dyn ToSql + Sync); 6] = [
        &wallet_id,
        &after.available,
        &after.frozen,
        &after.earned,
        &after.spent,
        &change_version,
    ];
    if let ([entry], [balances]) = (entries, running) {
        let (insert, update) = tokio::try_join!(
            tx.prepare_cached(APPEND_ONE),
            tx.prepare_cached(UPDATE_WALLET)
        )?;
        let id = Uuid::now_v7();
        let kind = entry.kind.as_str();
        let (reference_type, reference_id) = entry
            .reference
            .as_ref()
            .map(|(t, id)| (*t, id.as_str()))
            .unzip();
        let entry_params: [&(dyn ToSql + Sync); 14] = [
            &user_id,
            &wallet_id,
            &id,
            &kind,
            &entry.available_delta,
            &entry.frozen_delta,
            &balances.available,
            &balances.frozen,
            &reference_type,
            &reference_id,
            &entry.idempotency_key,
            &entry.description,
            &entry.created_by,
            &change_version,
        ];
        tokio::try_join!(
            tx.execute(&insert, &entry_params),
            tx.execute(&update, &wallet_params),
        )?;
        return Ok(());
    }
    let ids: Vec<Uuid> = entries.iter().map(|_| Uuid::now_v7()).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let available_deltas: Vec<i64> = entries.iter().map(|e| e.available_delta).collect();
    let frozen_deltas: Vec<i64> = entries.iter().map(|e| e.frozen_delta).collect();
    let available_afters: Vec<i64> = running.iter().map(|b| b.available).collect();
    let frozen_afters: Vec<i64> = running.iter().map(|b| b.frozen).collect();
    let reference_types: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.reference.as_ref().map(|(t, _)| *t))
        .collect();
    let reference_ids: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.reference.as_ref().map(|(_, id)| id.as_str()))
        .collect();
    let keys: Vec<&str> = entries.iter().map(|e| e.idempotency_key.as_str()).collect();
    let descriptions: Vec<Option<&str>> =
        entries.iter().map(|e| e.description.as_deref()).collect();
    let creators: Vec<Option<Uuid>> = entries.iter().map(|e| e.created_by).collect();
    let (insert, update) = tokio::try_join!(
        tx.prepare_cached(APPEND_MANY),
        tx.prepare_cached(UPDATE_WALLET)
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
    tokio::try_join!(
        tx.execute(&insert, &entry_params),
        tx.execute(&update, &wallet_params),
    )?;
    Ok(())
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
    Ok(wallet_from_row(&row))
}

fn wallet_from_row(row: &tokio_postgres::Row) -> Wallet {
    Wallet {
        available_coins: row.get("available_coins"),
        frozen_coins: row.get("frozen_coins"),
        lifetime_earned: row.get("lifetime_earned"),
        lifetime_spent: row.get("lifetime_spent"),
    }
}

/// The user's wallet when it changed in versions `(after, to]` (sync's pull).
pub async fn wallet_changed(
    client: &impl GenericClient,
    user_id: Uuid,
    after: i64,
    to: i64,
) -> Result<Option<Wallet>> {
    Ok(client
        .query_opt_cached(
            "SELECT available_coins, frozen_coins, lifetime_earned, lifetime_spent
             FROM wallets WHERE user_id = $1 AND change_version > $2 AND change_version <= $3",
            &[&user_id, &after, &to],
        )
        .await?
        .map(|row| wallet_from_row(&row)))
}

/// The live account's wallet and its [`Standing`] for the account check, in one statement
/// (`GET /wallet`); `None` when the account does not exist or was deleted.
pub async fn wallet_and_standing(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<(Wallet, Standing)>> {
    let row = client
        .query_opt_cached(
            "SELECT u.role, u.session_epoch, u.disabled_at IS NOT NULL AS disabled,
                    w.available_coins, w.frozen_coins, w.lifetime_earned, w.lifetime_spent
             FROM users u LEFT JOIN wallets w ON w.user_id = u.id
             WHERE u.id = $1 AND u.deleted_at IS NULL",
            &[&user_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    // Every account has its wallet from registration on; a NULL here fails as a missing
    // wallet did before (an internal error).
    let wallet = Wallet {
        available_coins: row.try_get("available_coins")?,
        frozen_coins: row.try_get("frozen_coins")?,
        lifetime_earned: row.try_get("lifetime_earned")?,
        lifetime_spent: row.try_get("lifetime_spent")?,
    };
    Ok(Some((wallet, Standing::from_row(&row))))
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
            &format!(
                "SELECT {TRANSACTION_COLUMNS}, ledger_seq
                 FROM coin_transactions
                 WHERE user_id = $1 AND ($2::bigint IS NULL OR ledger_seq < $2)
                 ORDER BY ledger_seq DESC
                 LIMIT $3"
            ),
            &[&user_id, &before_seq, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|row| row.get::<_, i64>("ledger_seq"))
    } else {
        None
    };
    let transactions = page.iter().map(|row| transaction_from_row(row)).collect();
    Ok((transactions, next))
}

/// The columns of `coin_transactions` a [`CoinTransaction`] is read from (by
/// [`transaction_from_row`]): the history page and the sync pull select the same ones.
pub const TRANSACTION_COLUMNS: &str = "id, kind, available_delta, frozen_delta, available_after, frozen_after, \
     reference_type, reference_id, description, created_at";

/// A ledger entry as devices and the history see it, from a row of [`TRANSACTION_COLUMNS`].
pub fn transaction_from_row(row: &tokio_postgres::Row) -> CoinTransaction {
    CoinTransaction {
        id: row.get("id"),
        kind: row.get("kind"),
        available_delta: row.get("available_delta"),
        frozen_delta: row.get("frozen_delta"),
        available_after: row.get("available_after"),
        frozen_after: row.get("frozen_after"),
        reference_type: row.get("reference_type"),
        reference_id: row.get("reference_id"),
        description: row.get("description"),
        created_at: row.get::<_, DateTime<Utc>>("created_at"),
    }
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
    check_wallet_sums(client, &mut report).await?;
    check_running_balances(client, &mut report).await?;
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) AS orphans FROM coin_transactions t
             WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = t.user_id)",
            &[],
        )
        .await?
        .get("orphans");
    if orphans > 0 {
        report
            .problems
            .push(format!("{orphans} ledger entries belong to no wallet"));
    }
    Ok(report)
}

/// Every wallet's balances against the sums of its ledger, and never negative.
async fn check_wallet_sums(client: &impl GenericClient, report: &mut LedgerReport) -> Result<()> {
    let wallets = client
        .query(
            "SELECT w.user_id, w.available_coins, w.frozen_coins,
                    coalesce(sum(t.available_delta), 0)::bigint AS sum_available,
                    coalesce(sum(t.frozen_delta), 0)::bigint AS sum_frozen,
                    count(t.id) AS entries
             FROM wallets w LEFT JOIN coin_transactions t ON t.user_id = w.user_id
             GROUP BY w.user_id, w.available_coins, w.frozen_coins",
            &[],
        )
        .await?;
    for row in &wallets {
        report.wallets_checked += 1;
        let user: Uuid = row.get("user_id");
        let (available, frozen, sum_available, sum_frozen, entries): (i64, i64, i64, i64, i64) = (
            row.get("available_coins"),
            row.get("frozen_coins"),
            row.get("sum_available"),
            row.get("sum_frozen"),
            row.get("entries"),
        );
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
    Ok(())
}

/// The running balances, recomputed in booking order, must match each entry and never dip.
async fn check_running_balances(
    client: &impl GenericClient,
    report: &mut LedgerReport,
) -> Result<()> {
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
        let user: Uuid = row.get("user_id");
        let seq: i64 = row.get("ledger_seq");
        report.problems.push(format!(
            "ledger of user {user}, entry #{seq}: recorded balances ({}, {}) but the running sums are ({}, {})",
            row.get::<_, i64>("available_after"),
            row.get::<_, i64>("frozen_after"),
            row.get::<_, i64>("run_available"),
            row.get::<_, i64>("run_frozen"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, available_delta: i64, frozen_delta: i64) -> Entry {
        Entry {
            kind,
            available_delta,
            frozen_delta,
            reference: None,
            idempotency_key: String::new(),
            description: None,
            created_by: None,
        }
    }

    fn kind() -> impl proptest::strategy::Strategy<Value = EntryKind> {
        use proptest::prelude::*;
        prop_oneof![
            Just(EntryKind::StepReward),
            Just(EntryKind::AchievementBonus),
            Just(EntryKind::OrderHold),
            Just(EntryKind::OrderCapture),
            Just(EntryKind::OrderRelease),
            Just(EntryKind::Refund),
            Just(EntryKind::AdminAdjustment),
        ]
    }

    proptest::proptest! {
        /// Booking a run of entries either refuses it (some balance would go negative on the
        /// way) or ends at the start plus the sum of the deltas, with no balance ever negative.
        #[test]
        fn booked_balances_follow_the_deltas_and_never_go_negative(
            start in (0i64..1_000, 0i64..1_000),
            moves in proptest::collection::vec((kind(), -500i64..500, -500i64..500), 0..20),
        ) {
            let before = Balances { available: start.0, frozen: start.1, earned: 0, spent: 0 };
            let entries: Vec<Entry> = moves.iter().map(|(k, a, f)| entry(*k, *a, *f)).collect();
            let mut running = before;
            let mut refused = false;
            for e in &entries {
                match running.book(e) {
                    Ok(next) => running = next,
                    Err(_) => { refused = true; break; }
                }
            }
            match before.book_all(&entries) {
                Ok(all) => {
                    proptest::prop_assert!(!refused);
                    proptest::prop_assert_eq!(all.len(), entries.len());
                    let last = all.last().copied().unwrap_or(before);
                    proptest::prop_assert_eq!(last, running);
                    proptest::prop_assert_eq!(
                        last.available,
                        start.0 + entries.iter().map(|e| e.available_delta).sum::<i64>()
                    );
                    proptest::prop_assert_eq!(
                        last.frozen,
                        start.1 + entries.iter().map(|e| e.frozen_delta).sum::<i64>()
                    );
                    proptest::prop_assert!(all.iter().all(|b| b.available >= 0 && b.frozen >= 0 && b.spent >= 0));
                }
                Err(_) => proptest::prop_assert!(refused),
            }
        }
    }

    #[test]
    fn a_booking_past_the_available_coins_is_refused_with_what_was_there() {
        let before = Balances {
            available: 100,
            frozen: 0,
            earned: 100,
            spent: 0,
        };
        assert_eq!(
            before.book(&entry(EntryKind::OrderHold, -150, 150)),
            Err(InsufficientCoins {
                available: 100,
                needed: 150
            })
        );
        let held = before.book(&entry(EntryKind::OrderHold, -60, 60)).unwrap();
        let captured = held.book(&entry(EntryKind::OrderCapture, 0, -60)).unwrap();
        assert_eq!(
            (
                captured.available,
                captured.frozen,
                captured.earned,
                captured.spent
            ),
            (40, 0, 100, 60)
        );
    }
}

//! The cache of server state: writing what pulls and push answers bring, and every read the
//! app makes offline. Reads combine the cache with the user's pending mutations (held coins,
//! pending orders, unsynced steps); pending effects are never written into the cache.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use fitkart_protocol::auth::{ProfilePatch, UserProfile};
use fitkart_protocol::leaderboard::{Leaderboard, LeaderboardPeriod};
use fitkart_protocol::orders::{Order, OrderItem, PlaceOrderRequest, Product, ShippingAddress};
use fitkart_protocol::steps::{AchievementProgress, CoinTransaction, Wallet};
use fitkart_protocol::sync::{Changes, SyncSetting};
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use uuid::Uuid;

use crate::Error;
use crate::engine::parse_time;
use crate::events::Part;
use crate::outbox::timestamp;

/// Tables emptied when another user signs in or a snapshot replaces the cache.
const CACHE_TABLES: &[&str] = &[
    "profile",
    "wallet",
    "coin_transactions",
    "server_steps",
    "achievement_unlocks",
    "achievement_progress",
    "orders",
    "leaderboards",
];

/// Empties the user's cache (shared catalogue data is refetched with it too).
pub(crate) fn clear(tx: &Transaction<'_>) -> Result<(), Error> {
    for table in CACHE_TABLES
        .iter()
        .chain(&["products", "achievements", "settings"])
    {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    Ok(())
}

/// Writes the server's profile.
pub(crate) fn upsert_profile(tx: &Connection, profile: &UserProfile) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO profile (singleton, user_id, body) VALUES (1, ?1, ?2)
         ON CONFLICT (singleton) DO UPDATE SET user_id = excluded.user_id, body = excluded.body",
    )?
    .execute(params![
        profile.id.to_string(),
        serde_json::to_string(profile)?
    ])?;
    Ok(())
}

/// Writes orders the server sent.
pub(crate) fn upsert_orders(tx: &Connection, orders: &[Order]) -> Result<(), Error> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO orders (id, client_order_id, status, created_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
    )?;
    for order in orders {
        stmt.execute(params![
            order.id.to_string(),
            order.client_order_id.to_string(),
            order.status,
            timestamp(order.created_at),
            serde_json::to_string(order)?
        ])?;
    }
    Ok(())
}

/// Applies a pulled page's changes; returns the rows written by kind and the parts changed.
pub(crate) fn apply_changes(
    tx: &Transaction<'_>,
    changes: &Changes,
) -> Result<(BTreeMap<String, u64>, Vec<Part>), Error> {
    let mut rows = BTreeMap::new();
    let mut parts = Vec::new();
    let mut count = |kind: &str, n: usize, part: Part, parts: &mut Vec<Part>| {
        if n > 0 {
            *rows.entry(kind.to_owned()).or_insert(0) += n as u64;
            parts.push(part);
        }
    };
    if let Some(profile) = &changes.profile {
        upsert_profile(tx, profile)?;
        count("profile", 1, Part::Profile, &mut parts);
    }
    if let Some(wallet) = &changes.wallet {
        tx.prepare_cached(
            "INSERT INTO wallet (singleton, available_coins, frozen_coins, lifetime_earned,
                                 lifetime_spent)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (singleton) DO UPDATE SET available_coins = excluded.available_coins,
                 frozen_coins = excluded.frozen_coins, lifetime_earned = excluded.lifetime_earned,
                 lifetime_spent = excluded.lifetime_spent",
        )?
        .execute(params![
            wallet.available_coins,
            wallet.frozen_coins,
            wallet.lifetime_earned,
            wallet.lifetime_spent
        ])?;
        count("wallet", 1, Part::Wallet, &mut parts);
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO coin_transactions (id, kind, available_delta, frozen_delta,
                 available_after, frozen_after, reference_type, reference_id, description,
                 created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for t in &changes.coin_transactions {
            stmt.execute(params![
                t.id.to_string(),
                t.kind,
                t.available_delta,
                t.frozen_delta,
                t.available_after,
                t.frozen_after,
                t.reference_type,
                t.reference_id,
                t.description,
                timestamp(t.created_at)
            ])?;
        }
        count(
            "coin_transactions",
            changes.coin_transactions.len(),
            Part::Wallet,
            &mut parts,
        );
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO server_steps (local_date, source, steps, verified_steps, status)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (local_date, source) DO UPDATE SET steps = excluded.steps,
                 verified_steps = excluded.verified_steps, status = excluded.status",
        )?;
        for r in &changes.step_records {
            stmt.execute(params![
                r.date.to_string(),
                r.source,
                r.steps,
                r.verified_steps,
                r.status
            ])?;
        }
        count(
            "step_records",
            changes.step_records.len(),
            Part::Steps,
            &mut parts,
        );
        if !changes.step_records.is_empty() {
            parts.push(Part::Wallet);
        }
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO achievement_unlocks (code, unlocked_at) VALUES (?1, ?2)
             ON CONFLICT (code) DO NOTHING",
        )?;
        for u in &changes.achievements_unlocked {
            stmt.execute(params![u.code, timestamp(u.unlocked_at)])?;
        }
        count(
            "achievements_unlocked",
            changes.achievements_unlocked.len(),
            Part::Achievements,
            &mut parts,
        );
    }
    upsert_orders(tx, &changes.orders)?;
    count("orders", changes.orders.len(), Part::Orders, &mut parts);
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO products (id, name, category, coin_price, is_active, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, category = excluded.category,
                 coin_price = excluded.coin_price, is_active = excluded.is_active,
                 body = excluded.body",
        )?;
        for p in &changes.products {
            stmt.execute(params![
                p.id.to_string(),
                p.name,
                p.category,
                p.coin_price,
                p.is_active,
                serde_json::to_string(p)?
            ])?;
        }
        count(
            "products",
            changes.products.len(),
            Part::Products,
            &mut parts,
        );
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO achievements (code, name, description, icon, criteria, bonus_coins,
                                       is_active)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                 description = excluded.description, icon = excluded.icon,
                 criteria = excluded.criteria, bonus_coins = excluded.bonus_coins,
                 is_active = excluded.is_active",
        )?;
        for a in &changes.achievements {
            stmt.execute(params![
                a.code,
                a.name,
                a.description,
                a.icon,
                serde_json::to_string(&a.criteria)?,
                a.bonus_coins,
                a.is_active
            ])?;
        }
        count(
            "achievements",
            changes.achievements.len(),
            Part::Achievements,
            &mut parts,
        );
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?;
        for s in &changes.settings {
            stmt.execute(params![s.key, serde_json::to_string(&s.value)?])?;
        }
        count(
            "settings",
            changes.settings.len(),
            Part::Settings,
            &mut parts,
        );
    }
    parts.sort();
    parts.dedup();
    Ok((rows, parts))
}

/// Writes achievement progress as the server computed it.
pub(crate) fn store_achievement_progress(
    tx: &Transaction<'_>,
    list: &[AchievementProgress],
) -> Result<(), Error> {
    tx.execute("DELETE FROM achievement_progress", [])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO achievement_progress (code, position, progress, target)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, a) in list.iter().enumerate() {
        stmt.execute(params![a.code, position as i64, a.progress, a.target])?;
        if let Some(at) = a.unlocked_at {
            tx.prepare_cached(
                "INSERT INTO achievement_unlocks (code, unlocked_at) VALUES (?1, ?2)
                 ON CONFLICT (code) DO NOTHING",
            )?
            .execute(params![a.code, timestamp(at)])?;
        }
    }
    Ok(())
}

/// Writes a fetched leaderboard.
pub(crate) fn store_leaderboard(
    tx: &Transaction<'_>,
    board: &Leaderboard,
    fetched_at: DateTime<Utc>,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO leaderboards (period, fetched_at, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (period) DO UPDATE SET fetched_at = excluded.fetched_at, body = excluded.body",
    )?
    .execute(params![
        board.period.as_str(),
        timestamp(fetched_at),
        serde_json::to_string(board)?
    ])?;
    Ok(())
}

// ---- Reads -------------------------------------------------------------------------------

/// The profile as the app shows it: the server's, with pending changes applied on top.
pub(crate) fn profile(conn: &Connection, user_id: &str) -> Result<Option<UserProfile>, Error> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM profile WHERE user_id = ?1",
            [user_id],
            |row| row.get(0),
        )
        .optional()?;
    let Some(body) = body else {
        return Ok(None);
    };
    let mut profile: UserProfile = serde_json::from_str(&body)?;
    let mut stmt = conn.prepare_cached(
        "SELECT payload FROM outbox WHERE user_id = ?1 AND kind = 'update_profile'
         ORDER BY sequence",
    )?;
    let patches = stmt.query_map([user_id], |row| row.get::<_, String>(0))?;
    for patch in patches {
        let patch: ProfilePatch = serde_json::from_str(&patch?)?;
        if let Some(name) = patch.display_name {
            profile.display_name = name;
        }
        if let Some(zone) = patch.timezone {
            profile.timezone = zone;
        }
        if let Some(goal) = patch.daily_step_goal {
            profile.daily_step_goal = goal;
        }
    }
    Ok(Some(profile))
}

/// One source's steps on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStepsView {
    /// The source (`healthkit`, `health_connect`, a watch, ...).
    pub source: String,
    /// The highest total known: the device's or the server's.
    pub steps: i64,
    /// The total the server holds (0 before it saw any).
    pub server_steps: i64,
    /// The part the server verified (coins are paid on it).
    pub verified_steps: i64,
    /// `pending` (the server has not seen the latest total), `accepted`, `flagged` (waiting
    /// for review) or `rejected`.
    pub status: String,
}

/// One day's steps: the day counts its largest source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStepsView {
    /// The local date.
    pub date: NaiveDate,
    /// The day's total (largest source).
    pub total_steps: i64,
    /// The day's verified total (largest verified source).
    pub verified_steps: i64,
    /// Whether a higher total waits to be synced.
    pub pending: bool,
    /// Per source.
    pub sources: Vec<SourceStepsView>,
}

/// Days from `from` to `to` (inclusive) that have any steps, newest first.
pub(crate) fn step_days(
    conn: &Connection,
    user_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayStepsView>, Error> {
    let mut stmt = conn.prepare_cached(
        "WITH keys AS (
             SELECT local_date, source FROM device_steps
             WHERE user_id = ?1 AND local_date BETWEEN ?2 AND ?3
             UNION
             SELECT local_date, source FROM server_steps WHERE local_date BETWEEN ?2 AND ?3)
         SELECT k.local_date, k.source, coalesce(d.steps, 0), coalesce(s.steps, 0),
                coalesce(s.verified_steps, 0), s.status
         FROM keys k
         LEFT JOIN device_steps d
                ON d.user_id = ?1 AND d.local_date = k.local_date AND d.source = k.source
         LEFT JOIN server_steps s ON s.local_date = k.local_date AND s.source = k.source
         ORDER BY k.local_date DESC, k.source",
    )?;
    let rows = stmt.query_map(params![user_id, from.to_string(), to.to_string()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut days: Vec<DayStepsView> = Vec::new();
    for row in rows {
        let (date, source, device, server, verified, status) = row?;
        let date: NaiveDate = date
            .parse()
            .map_err(|_| Error::invalid("date", "a stored date is unreadable"))?;
        let pending = device > server;
        let source = SourceStepsView {
            source,
            steps: device.max(server),
            server_steps: server,
            verified_steps: verified,
            status: if pending {
                "pending".into()
            } else {
                status.unwrap_or_else(|| "pending".into())
            },
        };
        match days.last_mut() {
            Some(day) if day.date == date => {
                day.total_steps = day.total_steps.max(source.steps);
                day.verified_steps = day.verified_steps.max(source.verified_steps);
                day.pending |= pending;
                day.sources.push(source);
            }
            _ => days.push(DayStepsView {
                date,
                total_steps: source.steps,
                verified_steps: source.verified_steps,
                pending,
                sources: vec![source],
            }),
        }
    }
    Ok(days)
}

/// The wallet as the app shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletView {
    /// Coins the user can spend now: the server's available balance minus the coins that
    /// orders placed on this device (not yet confirmed) hold. Negative when pending orders
    /// exceed the confirmed balance: the server will refuse one unless unsynced steps cover it.
    pub available_coins: i64,
    /// Coins held: the server's frozen balance plus pending orders' holds.
    pub held_coins: i64,
    /// Of the held coins, those held by orders the server has not confirmed yet.
    pub pending_hold_coins: i64,
    /// The server's available balance, as last synced.
    pub server_available_coins: i64,
    /// The server's frozen balance, as last synced.
    pub server_frozen_coins: i64,
    /// Coins earned in all.
    pub lifetime_earned: i64,
    /// Coins spent in all.
    pub lifetime_spent: i64,
    /// An estimate of the coins unsynced steps will earn, from the cached reward settings
    /// and daily cap. Not spendable until the server confirms it; shown separately.
    pub estimated_pending_coins: i64,
}

/// The reward rules the estimate uses, from the cached public settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewardRules {
    /// Coins per 1,000 verified steps.
    pub coins_per_1000_steps: i64,
    /// Most step coins one day pays.
    pub daily_coin_cap: i64,
}

impl RewardRules {
    /// The coins a day total pays (integer arithmetic, as the server computes it).
    pub fn coins_for(&self, steps: i64) -> i64 {
        (steps.max(0).saturating_mul(self.coins_per_1000_steps) / 1000).min(self.daily_coin_cap)
    }
}

pub(crate) fn reward_rules(conn: &Connection) -> Result<Option<RewardRules>, Error> {
    let get = |key: &str| -> Result<Option<i64>, Error> {
        let value: Option<String> = conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()?;
        Ok(value.and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok()?.as_i64()))
    };
    Ok(
        match (
            get("rewards.coins_per_1000_steps")?,
            get("rewards.daily_coin_cap")?,
        ) {
            (Some(rate), Some(cap)) => Some(RewardRules {
                coins_per_1000_steps: rate,
                daily_coin_cap: cap,
            }),
            _ => None,
        },
    )
}

pub(crate) fn wallet(conn: &Connection, user_id: &str, holds: i64) -> Result<WalletView, Error> {
    let server: Wallet = conn
        .query_row(
            "SELECT available_coins, frozen_coins, lifetime_earned, lifetime_spent FROM wallet",
            [],
            |row| {
                Ok(Wallet {
                    available_coins: row.get(0)?,
                    frozen_coins: row.get(1)?,
                    lifetime_earned: row.get(2)?,
                    lifetime_spent: row.get(3)?,
                })
            },
        )
        .optional()?
        .unwrap_or(Wallet {
            available_coins: 0,
            frozen_coins: 0,
            lifetime_earned: 0,
            lifetime_spent: 0,
        });
    let mut estimate = 0;
    if let Some(rules) = reward_rules(conn)? {
        let mut stmt = conn.prepare_cached(
            "WITH local AS (SELECT local_date, max(steps) AS steps FROM device_steps
                            WHERE user_id = ?1 GROUP BY local_date),
                  server AS (SELECT local_date, max(steps) AS steps,
                                    max(verified_steps) AS verified
                             FROM server_steps GROUP BY local_date)
             SELECT l.steps, coalesce(s.verified, 0) FROM local l
             LEFT JOIN server s USING (local_date)
             WHERE l.steps > coalesce(s.steps, 0)",
        )?;
        let days = stmt.query_map([user_id], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?;
        for day in days {
            let (local, verified) = day?;
            estimate += (rules.coins_for(local) - rules.coins_for(verified)).max(0);
        }
    }
    Ok(WalletView {
        available_coins: server.available_coins - holds,
        held_coins: server.frozen_coins + holds,
        pending_hold_coins: holds,
        server_available_coins: server.available_coins,
        server_frozen_coins: server.frozen_coins,
        lifetime_earned: server.lifetime_earned,
        lifetime_spent: server.lifetime_spent,
        estimated_pending_coins: estimate,
    })
}

/// Coin history, newest first: `limit` entries older than `before` (an entry id).
pub(crate) fn coin_history(
    conn: &Connection,
    limit: u32,
    before: Option<Uuid>,
) -> Result<Vec<CoinTransaction>, Error> {
    let anchor: Option<(String, String)> = match before {
        Some(id) => conn
            .query_row(
                "SELECT created_at, id FROM coin_transactions WHERE id = ?1",
                [id.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?,
        None => None,
    };
    let (at, id) = anchor.unwrap_or_else(|| ("9999".into(), String::new()));
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, available_delta, frozen_delta, available_after, frozen_after,
                reference_type, reference_id, description, created_at
         FROM coin_transactions
         WHERE (created_at, id) < (?1, ?2) OR ?2 = ''
         ORDER BY created_at DESC, id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![at, id, limit], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, Option<String>>(6)?,
            row.get::<_, Option<String>>(7)?,
            row.get::<_, Option<String>>(8)?,
            row.get::<_, String>(9)?,
        ))
    })?;
    rows.map(|row| {
        let (id, kind, ad, fd, aa, fa, rt, ri, desc, at) = row?;
        Ok(CoinTransaction {
            id: id
                .parse()
                .map_err(|_| Error::invalid("id", "a stored id is unreadable"))?,
            kind,
            available_delta: ad,
            frozen_delta: fd,
            available_after: aa,
            frozen_after: fa,
            reference_type: rt,
            reference_id: ri,
            description: desc,
            created_at: parse_time(&at)?,
        })
    })
    .collect()
}

/// An achievement with the user's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct AchievementView {
    /// Stable code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Icon name.
    pub icon: Option<String>,
    /// Bonus coins it pays once.
    pub bonus_coins: i64,
    /// Progress as the server last computed it.
    pub progress: i64,
    /// The target.
    pub target: i64,
    /// When it unlocked.
    pub unlocked_at: Option<DateTime<Utc>>,
}

pub(crate) fn achievements(conn: &Connection) -> Result<Vec<AchievementView>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.code, a.name, a.description, a.icon, a.bonus_coins,
                coalesce(p.progress, 0), coalesce(p.target, 0), u.unlocked_at
         FROM achievements a
         LEFT JOIN achievement_progress p USING (code)
         LEFT JOIN achievement_unlocks u USING (code)
         WHERE a.is_active = 1 OR u.code IS NOT NULL
         ORDER BY coalesce(p.position, 1000000), a.code",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, i64>(6)?,
            row.get::<_, Option<String>>(7)?,
        ))
    })?;
    rows.map(|row| {
        let (code, name, description, icon, bonus_coins, progress, target, unlocked) = row?;
        Ok(AchievementView {
            code,
            name,
            description,
            icon,
            bonus_coins,
            progress,
            target,
            unlocked_at: unlocked.as_deref().map(parse_time).transpose()?,
        })
    })
    .collect()
}

/// Active products, by category and name.
pub(crate) fn products(conn: &Connection) -> Result<Vec<Product>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM products WHERE is_active = 1 ORDER BY category, name, id",
    )?;
    let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
    rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
}

/// Where an order stands between the device and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSync {
    /// The server confirmed it; `status` is the server's.
    Synced,
    /// Placed on this device and not confirmed by the server yet: its coins show as held.
    PendingPlacement,
    /// A cancellation waits to be sent.
    PendingCancellation,
}

/// An order as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    /// The device's id for the order.
    pub client_order_id: Uuid,
    /// The server's id, once it has the order.
    pub order_id: Option<Uuid>,
    /// The server's human-readable code, once it has the order.
    pub order_code: Option<String>,
    /// The server's status, or `pending` for an order not yet confirmed.
    pub status: String,
    /// Where it stands between device and server.
    pub sync: OrderSync,
    /// The coins it costs.
    pub total_coins: i64,
    /// Its lines.
    pub items: Vec<OrderItem>,
    /// Where it goes.
    pub shipping_address: ShippingAddress,
    /// The tracking number, once shipped.
    pub tracking_number: Option<String>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

/// The user's orders, newest first: pending ones from the outbox, then the server's.
pub(crate) fn orders(conn: &Connection, user_id: &str) -> Result<Vec<OrderView>, Error> {
    let cancelling: Vec<String> = conn
        .prepare_cached(
            "SELECT order_ref FROM outbox WHERE user_id = ?1 AND kind = 'cancel_order'",
        )?
        .query_map([user_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut views: Vec<OrderView> = Vec::new();
    let mut confirmed: HashMap<Uuid, ()> = HashMap::new();
    let mut stmt =
        conn.prepare_cached("SELECT body FROM orders ORDER BY created_at DESC, id DESC")?;
    for body in stmt.query_map([], |row| row.get::<_, String>(0))? {
        let order: Order = serde_json::from_str(&body?)?;
        confirmed.insert(order.client_order_id, ());
        let sync = if cancelling.contains(&order.client_order_id.to_string()) {
            OrderSync::PendingCancellation
        } else {
            OrderSync::Synced
        };
        views.push(OrderView {
            client_order_id: order.client_order_id,
            order_id: Some(order.id),
            order_code: Some(order.order_code),
            status: order.status,
            sync,
            total_coins: order.total_coins,
            items: order.items,
            shipping_address: order.shipping_address,
            tracking_number: order.tracking_number,
            created_at: order.created_at,
        });
    }
    let mut pending = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT payload, hold_coins, created_at FROM outbox
         WHERE user_id = ?1 AND kind = 'place_order' ORDER BY sequence DESC",
    )?;
    let rows = stmt.query_map([user_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut names = conn.prepare_cached("SELECT name FROM products WHERE id = ?1")?;
    let mut prices = conn.prepare_cached("SELECT coin_price FROM products WHERE id = ?1")?;
    for row in rows {
        let (payload, hold, created_at) = row?;
        let request: PlaceOrderRequest = serde_json::from_str(&payload)?;
        if confirmed.contains_key(&request.client_order_id) {
            continue;
        }
        let mut items = Vec::with_capacity(request.items.len());
        for line in &request.items {
            let key = line.product_id.to_string();
            items.push(OrderItem {
                product_id: line.product_id,
                product_name: names
                    .query_row([&key], |row| row.get(0))
                    .optional()?
                    .unwrap_or_default(),
                quantity: i64::from(line.quantity),
                unit_coin_price: prices
                    .query_row([&key], |row| row.get(0))
                    .optional()?
                    .unwrap_or_default(),
            });
        }
        pending.push(OrderView {
            client_order_id: request.client_order_id,
            order_id: None,
            order_code: None,
            status: "pending".into(),
            sync: OrderSync::PendingPlacement,
            total_coins: hold,
            items,
            shipping_address: request.shipping_address,
            tracking_number: None,
            created_at: parse_time(&created_at)?,
        });
    }
    pending.extend(views);
    Ok(pending)
}

/// A leaderboard as last fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderboardView {
    /// The board (with when the server computed it).
    pub board: Leaderboard,
    /// When this device fetched it.
    pub fetched_at: DateTime<Utc>,
}

pub(crate) fn leaderboard(
    conn: &Connection,
    period: LeaderboardPeriod,
) -> Result<Option<LeaderboardView>, Error> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT body, fetched_at FROM leaderboards WHERE period = ?1",
            [period.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    row.map(|(body, at)| {
        Ok(LeaderboardView {
            board: serde_json::from_str(&body)?,
            fetched_at: parse_time(&at)?,
        })
    })
    .transpose()
}

pub(crate) fn settings(conn: &Connection) -> Result<Vec<SyncSetting>, Error> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM settings ORDER BY key")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (key, value) = row?;
        Ok(SyncSetting {
            key,
            value: serde_json::from_str(&value)?,
        })
    })
    .collect()
}

/// A mutation the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The mutation's id.
    pub mutation_id: Uuid,
    /// `record_steps`, `place_order`, `cancel_order` or `update_profile`.
    pub kind: String,
    /// The server's code (`insufficient_coins`, `out_of_stock`, ...).
    pub code: String,
    /// The server's message.
    pub message: String,
    /// For orders: the device's order id.
    pub client_order_id: Option<Uuid>,
    /// When the device learned of it.
    pub rejected_at: DateTime<Utc>,
}

pub(crate) fn rejections(conn: &Connection, user_id: &str) -> Result<Vec<Rejection>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT mutation_id, kind, code, message, order_ref, rejected_at FROM rejections
         WHERE user_id = ?1 ORDER BY rejected_at DESC, mutation_id",
    )?;
    let rows = stmt.query_map([user_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, String>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (id, kind, code, message, order_ref, at) = row?;
        Ok(Rejection {
            mutation_id: id
                .parse()
                .map_err(|_| Error::invalid("id", "a stored id is unreadable"))?,
            kind,
            code,
            message,
            client_order_id: order_ref.and_then(|r| r.parse().ok()),
            rejected_at: parse_time(&at)?,
        })
    })
    .collect()
}

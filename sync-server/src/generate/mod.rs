//! `fitkart-sync-server generate`: fills a database with a deterministic synthetic world at
//! benchmark scale (users, step history, rewards, achievements, orders) through binary COPY,
//! consistent with the ledger rules, then rebuilds the leaderboards.
//!
//! The world is computed per user by [`model`] (plain functions of the seed); this module only
//! streams its rows into PostgreSQL. The three large tables (step records, day totals, ledger)
//! are copied concurrently on their own connections while the users are simulated; the rest is
//! small and copied afterwards. Wallets are created empty first (ledger rows refer to them) and
//! set to their final balances at the end.

pub mod model;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::rewards::achievements::Criteria;
use crate::rewards::leaderboard;
use crate::rewards::settings::RewardSettings;
use crate::{db, seeds};
use model::{Catalogue, History, Plan, User};

/// The password every generated account has (benchmarks may sign in with it).
pub const PASSWORD: &str = "generated-password";

/// A named size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// About 1,000 users and 70,000 step records over 90 days (CI).
    Small,
    /// About 10,000 users and 3 million step records over 18 months.
    Medium,
    /// About 100,000 users and 50 million step records over 30 months (the seed's scale;
    /// registrations grow over time, so the average user has about a third of the history).
    Seed,
}

impl Preset {
    /// Users and days of history.
    pub fn size(self) -> (u64, u32) {
        match self {
            Self::Small => (1_000, 90),
            Self::Medium => (10_000, 550),
            Self::Seed => (100_000, 900),
        }
    }
}

/// What one run wrote.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Rows per table, in the order they were written.
    pub tables: Vec<(&'static str, u64)>,
    /// Time spent writing rows.
    pub load_time: Duration,
    /// Time of `VACUUM ANALYZE` after the load.
    pub vacuum_time: Duration,
    /// Time of the rebuild of every leaderboard.
    pub leaderboard_time: Duration,
    /// Users each board ranks.
    pub boards: Vec<(leaderboard::Period, u64)>,
}

impl Report {
    /// Rows written in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }
}

/// One row of a COPY: its statement, column types and values.
trait CopyRow: Send + Sync + 'static {
    const TABLE: &'static str;
    const COPY: &'static str;
    const TYPES: &'static [Type];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>);
}

/// A user with the password hash every generated account shares.
struct UserRow {
    user: User,
    password_hash: Arc<String>,
}

impl CopyRow for UserRow {
    const TABLE: &'static str = "users";
    const COPY: &'static str = "COPY users (id, email, password_hash, display_name, timezone,
        daily_step_goal, created_at, updated_at, last_login_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        let u = &self.user;
        out.extend([
            &u.id as &(dyn ToSql + Sync),
            &u.email,
            self.password_hash.as_ref(),
            &u.display_name,
            &u.timezone,
            &u.daily_step_goal,
            &u.created_at,
            &u.created_at,
            &u.created_at,
        ]);
    }
}

/// An empty wallet and change version of a new user.
struct WalletRow(User);

impl CopyRow for WalletRow {
    const TABLE: &'static str = "wallets";
    const COPY: &'static str = "COPY wallets (id, user_id, created_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[Type::UUID, Type::UUID, Type::TIMESTAMPTZ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.extend([
            &self.0.wallet_id as &(dyn ToSql + Sync),
            &self.0.id,
            &self.0.created_at,
        ]);
    }
}

impl CopyRow for model::StepRecord {
    const TABLE: &'static str = "step_records";
    const COPY: &'static str = "COPY step_records (id, user_id, day, source, steps,
        verified_steps, status, report_count, first_recorded_at, last_recorded_at,
        change_version, created_at, updated_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::UUID,
        Type::DATE,
        Type::TEXT,
        Type::INT4,
        Type::INT4,
        Type::TEXT,
        Type::INT4,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.extend([
            &self.id as &(dyn ToSql + Sync),
            &self.user_id,
            &self.day,
            &self.source,
            &self.steps,
            &self.verified_steps,
            &self.status,
            &self.report_count,
            &self.first_recorded_at,
            &self.last_recorded_at,
            &self.change_version,
            &self.first_recorded_at,
            &self.last_recorded_at,
        ]);
    }
}

impl CopyRow for model::StepDay {
    const TABLE: &'static str = "step_days";
    const COPY: &'static str = "COPY step_days (user_id, day, verified_steps, coins_paid,
        change_version, created_at, updated_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::DATE,
        Type::INT4,
        Type::INT8,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.extend([
            &self.user_id as &(dyn ToSql + Sync),
            &self.day,
            &self.verified_steps,
            &self.coins_paid,
            &self.change_version,
            &self.updated_at,
            &self.updated_at,
        ]);
    }
}

impl CopyRow for model::LedgerEntry {
    const TABLE: &'static str = "coin_transactions";
    const COPY: &'static str = "COPY coin_transactions (id, user_id, wallet_id, kind,
        available_delta, frozen_delta, available_after, frozen_after, reference_type,
        reference_id, idempotency_key, change_version, created_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.extend([
            &self.id as &(dyn ToSql + Sync),
            &self.user_id,
            &self.wallet_id,
            &self.kind,
            &self.available_delta,
            &self.frozen_delta,
            &self.available_after,
            &self.frozen_after,
            &self.reference_type,
            &self.reference_id,
            &self.idempotency_key,
            &self.change_version,
            &self.created_at,
        ]);
    }
}

impl CopyRow for model::Validation {
    const TABLE: &'static str = "step_validations";
    const COPY: &'static str = "COPY step_validations (id, user_id, step_record_id, step_day,
        previous_steps, claimed_steps, anomaly_score, reasons, status, reviewed_at,
        change_version, created_at, updated_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::DATE,
        Type::INT4,
        Type::INT4,
        Type::FLOAT8,
        Type::JSONB,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        static REASONS: std::sync::LazyLock<serde_json::Value> =
            std::sync::LazyLock::new(|| serde_json::json!(["outlier"]));
        static ZERO: i32 = 0;
        out.extend([
            &self.id as &(dyn ToSql + Sync),
            &self.user_id,
            &self.step_record_id,
            &self.step_day,
            &ZERO,
            &self.claimed_steps,
            &self.anomaly_score,
            &*REASONS,
            &self.status,
            &self.reviewed_at,
            &self.change_version,
            &self.created_at,
            &self.created_at,
        ]);
    }
}

impl CopyRow for model::Unlock {
    const TABLE: &'static str = "user_achievements";
    const COPY: &'static str = "COPY user_achievements (id, user_id, achievement_id,
        unlocked_at, bonus_transaction_id, change_version, created_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::TIMESTAMPTZ,
        Type::UUID,
        Type::INT8,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.extend([
            &self.id as &(dyn ToSql + Sync),
            &self.user_id,
            &self.achievement_id,
            &self.unlocked_at,
            &self.bonus_transaction_id,
            &self.change_version,
            &self.unlocked_at,
        ]);
    }
}

/// An order row, with the address every generated order ships to.
impl CopyRow for model::Order {
    const TABLE: &'static str = "orders";
    const COPY: &'static str = "COPY orders (id, user_id, order_code, client_order_id,
        request_fingerprint, status, total_coins, shipping_address, tracking_number,
        confirmed_at, shipped_at, delivered_at, cancelled_at, refunded_at, change_version,
        created_at, updated_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::UUID,
        Type::BYTEA,
        Type::TEXT,
        Type::INT8,
        Type::JSONB,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        static ADDRESS: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
            serde_json::json!({"name": "Generated Walker", "line1": "1 Bench Street",
                "city": "Springfield", "postal_code": "12345", "country": "US"})
        });
        out.extend([
            &self.id as &(dyn ToSql + Sync),
            &self.user_id,
            &self.order_code,
            &self.client_order_id,
            &self.request_fingerprint,
            &self.status,
            &self.total_coins,
            &*ADDRESS,
            &self.tracking_number,
            &self.confirmed_at,
            &self.shipped_at,
            &self.delivered_at,
            &self.cancelled_at,
            &self.refunded_at,
            &self.change_version,
            &self.created_at,
            &self.created_at,
        ]);
    }
}

/// The single item of an order.
struct OrderItemRow(model::Order);

impl CopyRow for OrderItemRow {
    const TABLE: &'static str = "order_items";
    const COPY: &'static str = "COPY order_items (id, order_id, user_id, product_id,
        product_name, quantity, unit_coin_price, created_at) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::INT4,
        Type::INT8,
        Type::TIMESTAMPTZ,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        static ONE: i32 = 1;
        let o = &self.0;
        out.extend([
            &o.item_id as &(dyn ToSql + Sync),
            &o.id,
            &o.user_id,
            &o.product_id,
            &o.product_name,
            &ONE,
            &o.total_coins,
            &o.created_at,
        ]);
    }
}

/// A user's final wallet and version, copied into a temporary table.
struct FinalRow(uuid::Uuid, model::Totals);

impl CopyRow for FinalRow {
    const TABLE: &'static str = "wallet balances";
    const COPY: &'static str = "COPY generated_totals (user_id, available, frozen, earned,
        spent, version) FROM STDIN (FORMAT binary)";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
    ];
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        let t = &self.1;
        out.extend([
            &self.0 as &(dyn ToSql + Sync),
            &t.available,
            &t.frozen,
            &t.earned,
            &t.spent,
            &t.version,
        ]);
    }
}

/// Streams every chunk received into one COPY on `client`; counts rows into `counter`.
async fn copy_stream<R: CopyRow>(
    client: &tokio_postgres::Client,
    mut chunks: mpsc::Receiver<Vec<R>>,
    counter: &AtomicU64,
) -> anyhow::Result<u64> {
    let sink = client
        .copy_in(R::COPY)
        .await
        .with_context(|| format!("COPY into {}", R::TABLE))?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, R::TYPES));
    while let Some(chunk) = chunks.recv().await {
        let mut values = Vec::with_capacity(R::TYPES.len());
        for row in &chunk {
            values.clear();
            row.values(&mut values);
            writer
                .as_mut()
                .write(&values)
                .await
                .with_context(|| format!("COPY into {}", R::TABLE))?;
        }
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(writer.finish().await?)
}

/// Copies `rows` into their table.
async fn copy_all<R: CopyRow>(
    client: &tokio_postgres::Client,
    rows: Vec<R>,
    counter: &AtomicU64,
) -> anyhow::Result<u64> {
    let (tx, rx) = mpsc::channel(1);
    tx.send(rows).await.ok();
    drop(tx);
    copy_stream(client, rx, counter).await
}

async fn load_catalogue(client: &deadpool_postgres::Client) -> anyhow::Result<Catalogue> {
    let products = client
        .query(
            "SELECT id, name, coin_price FROM reward_products
             WHERE is_active AND deleted_at IS NULL ORDER BY coin_price, name, id",
            &[],
        )
        .await?
        .iter()
        .map(|row| model::Product {
            id: row.get("id"),
            name: row.get("name"),
            coin_price: row.get("coin_price"),
        })
        .collect();
    let achievements = client
        .query(
            "SELECT id, criteria, bonus_coins FROM achievements
             WHERE is_active AND deleted_at IS NULL ORDER BY sort_order, code, id",
            &[],
        )
        .await?
        .iter()
        .map(|row| model::Achievement {
            id: row.get("id"),
            criteria: Criteria::parse(&row.get::<_, serde_json::Value>("criteria")),
            bonus_coins: row.get("bonus_coins"),
        })
        .collect();
    Ok(Catalogue {
        products,
        achievements,
        rewards: RewardSettings::load(client).await?,
    })
}

fn progress_bar(users: u64, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(users), target);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} users  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Migrates and seeds the database at `database_url` (created if missing), then fills it with
/// `plan`'s world. Refuses a database that already has users. `show_progress` draws a
/// progress bar with rows per second on stderr (when it is a terminal); without it, the same
/// figures are logged every 30 seconds.
pub async fn generate(
    database_url: &str,
    plan: Plan,
    show_progress: bool,
) -> anyhow::Result<Report> {
    let pool = prepare_database(database_url).await?;
    let config = db::parse_url(database_url)?;
    let main = db::connect(&config).await?;
    refuse_existing_users(&main).await?;
    let catalogue = Arc::new(load_catalogue(&pool.get().await?).await?);
    create_partitions(&main, &plan).await?;

    let started = Instant::now();
    let mut report = Report::default();
    let rows = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(plan.users, show_progress);
    let ticker = spawn_ticker(bar.clone(), rows.clone());

    let users = copy_accounts(&main, &plan, &rows, &mut report).await?;
    let histories =
        stream_histories(&config, plan, catalogue, users, &bar, &rows, &mut report).await?;
    let totals = copy_small_tables(&main, histories, &rows, &mut report).await?;
    set_final_balances(&main, totals, &rows).await?;
    ticker.abort();
    bar.finish_and_clear();
    report.load_time = started.elapsed();

    vacuum_and_rank(&main, &pool, &mut report).await?;
    Ok(report)
}

/// Creates (if missing), migrates and seeds the database; returns a small pool on it.
async fn prepare_database(database_url: &str) -> anyhow::Result<deadpool_postgres::Pool> {
    db::ensure_database(database_url).await?;
    db::migrate(database_url).await?;
    let pool = db::pool(database_url, 2)?;
    seeds::load(&mut pool.get().await?).await?;
    Ok(pool)
}

/// Generated worlds go into new databases only.
async fn refuse_existing_users(main: &tokio_postgres::Client) -> anyhow::Result<()> {
    let existing: i64 = main
        .query_one("SELECT count(*) AS users FROM users", &[])
        .await?
        .get("users");
    if existing > 0 {
        bail!(
            "the database already has {existing} user(s): generate into a new database \
             (e.g. postgres://.../fitkart_bench_medium)"
        );
    }
    Ok(())
}

/// Step-record partitions for the whole history and a few months beyond.
async fn create_partitions(main: &tokio_postgres::Client, plan: &Plan) -> anyhow::Result<()> {
    let months = (plan.days / 28 + 3) as i32;
    main.execute(
        "SELECT ensure_step_record_partitions($1, $2)",
        &[&plan.first_day(), &months],
    )
    .await?;
    Ok(())
}

/// How often progress is logged when no bar is drawn (stderr is not a terminal: a log file,
/// CI, a service manager).
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(30);

/// Shows the rows written so far and their rate on `bar`, four times a second; when the bar
/// is hidden, logs them every [`PROGRESS_LOG_EVERY`] instead, so a long run in a log still
/// says how far it got.
fn spawn_ticker(bar: ProgressBar, rows: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut logged = start;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let n = rows.load(Ordering::Relaxed);
            let rate = n as f64 / start.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{n} rows, {rate:.0} rows/s"));
            if bar.is_hidden() && logged.elapsed() >= PROGRESS_LOG_EVERY {
                logged = Instant::now();
                tracing::info!(
                    users = bar.position(),
                    of = bar.length().unwrap_or_default(),
                    rows = n,
                    rows_per_second = rate.round() as u64,
                    elapsed_seconds = start.elapsed().as_secs(),
                    "generating"
                );
            }
        }
    })
}

/// Accounts and empty wallets first: everything else refers to them. Returns the users.
async fn copy_accounts(
    main: &tokio_postgres::Client,
    plan: &Plan,
    rows: &AtomicU64,
    report: &mut Report,
) -> anyhow::Result<Vec<User>> {
    let password_hash = Arc::new(crate::auth::password::hash_password(PASSWORD)?);
    let users: Vec<User> = (0..plan.users).map(|n| model::user(plan, n)).collect();
    let user_rows = users
        .iter()
        .map(|user| UserRow {
            user: user.clone(),
            password_hash: password_hash.clone(),
        })
        .collect();
    report
        .tables
        .push(("users", copy_all(main, user_rows, rows).await?));
    let wallets = users.iter().cloned().map(WalletRow).collect();
    report
        .tables
        .push(("wallets", copy_all(main, wallets, rows).await?));
    main.execute(
        "INSERT INTO change_versions (user_id) SELECT id FROM users",
        &[],
    )
    .await?;
    Ok(users)
}

/// Where the simulation sends the three large tables' rows, a chunk of users at a time.
struct LargeTables {
    records: mpsc::Sender<Vec<model::StepRecord>>,
    days: mpsc::Sender<Vec<model::StepDay>>,
    ledger: mpsc::Sender<Vec<model::LedgerEntry>>,
}

/// The three large tables, each on its own connection, while the users are simulated.
/// Returns every user with their history (the large tables' rows already taken out).
async fn stream_histories(
    config: &tokio_postgres::Config,
    plan: Plan,
    catalogue: Arc<Catalogue>,
    users: Vec<User>,
    bar: &ProgressBar,
    rows: &Arc<AtomicU64>,
    report: &mut Report,
) -> anyhow::Result<Vec<(User, History)>> {
    let (records, records_rx) = mpsc::channel(4);
    let (days, days_rx) = mpsc::channel(4);
    let (ledger, ledger_rx) = mpsc::channel(4);
    let writers = {
        let (a, b, c) = (
            db::connect(config).await?,
            db::connect(config).await?,
            db::connect(config).await?,
        );
        let rows = rows.clone();
        tokio::spawn(async move {
            for client in [&a, &b, &c] {
                client.batch_execute("SET synchronous_commit = off").await?;
            }
            let (r, d, l) = tokio::try_join!(
                copy_stream(&a, records_rx, &rows),
                copy_stream(&b, days_rx, &rows),
                copy_stream(&c, ledger_rx, &rows),
            )?;
            anyhow::Ok([
                ("step_records", r),
                ("step_days", d),
                ("coin_transactions", l),
            ])
        })
    };
    let sinks = LargeTables {
        records,
        days,
        ledger,
    };
    let bar = bar.clone();
    let simulation =
        tokio::task::spawn_blocking(move || simulate(&plan, &catalogue, &users, &sinks, &bar));
    let simulated = simulation.await?;
    let copied = writers.await??;
    let histories = simulated?;
    report.tables.extend(copied);
    Ok(histories)
}

/// Simulates every user in turn, sending the large tables' rows to `sinks` a hundred users
/// at a time.
fn simulate(
    plan: &Plan,
    catalogue: &Catalogue,
    users: &[User],
    sinks: &LargeTables,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<(User, History)>> {
    const CHUNK: usize = 100;
    let mut kept = Vec::with_capacity(users.len());
    for chunk in users.chunks(CHUNK) {
        let (mut records, mut days, mut ledger) = (Vec::new(), Vec::new(), Vec::new());
        for user in chunk {
            let n = kept.len() as u64;
            let mut history = model::history(plan, catalogue, n, user);
            // Moved out with their allocations: `append` would leave each emptied vector's
            // capacity in the kept history, every user's rows held to the end (`medium`'s
            // peak resident set: 1,069,380 KiB, now 128,372 KiB; `seed`'s passed 16 GB).
            records.extend(std::mem::take(&mut history.records));
            days.extend(std::mem::take(&mut history.days));
            ledger.extend(std::mem::take(&mut history.ledger));
            kept.push((user.clone(), history));
        }
        let sent = sinks.records.blocking_send(records).is_ok()
            && sinks.days.blocking_send(days).is_ok()
            && sinks.ledger.blocking_send(ledger).is_ok();
        if !sent {
            bail!("a COPY stopped early");
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(kept)
}

/// The small tables (validations, unlocks, orders and their items); returns each user's
/// final wallet.
async fn copy_small_tables(
    main: &tokio_postgres::Client,
    histories: Vec<(User, History)>,
    rows: &AtomicU64,
    report: &mut Report,
) -> anyhow::Result<Vec<FinalRow>> {
    let mut validations = Vec::new();
    let mut unlocks = Vec::new();
    let mut orders = Vec::new();
    let mut totals = Vec::with_capacity(histories.len());
    for (user, history) in histories {
        validations.extend(history.validations);
        unlocks.extend(history.unlocks);
        orders.extend(history.orders);
        totals.push(FinalRow(user.id, history.totals));
    }
    let items = orders.iter().cloned().map(OrderItemRow).collect();
    report
        .tables
        .push(("step_validations", copy_all(main, validations, rows).await?));
    report
        .tables
        .push(("user_achievements", copy_all(main, unlocks, rows).await?));
    report
        .tables
        .push(("orders", copy_all(main, orders, rows).await?));
    report
        .tables
        .push(("order_items", copy_all(main, items, rows).await?));
    Ok(totals)
}

/// Sets every wallet and change version to where its user's history ended.
async fn set_final_balances(
    main: &tokio_postgres::Client,
    totals: Vec<FinalRow>,
    rows: &AtomicU64,
) -> anyhow::Result<()> {
    main.batch_execute(
        "CREATE TEMPORARY TABLE generated_totals (user_id uuid PRIMARY KEY, available bigint,
             frozen bigint, earned bigint, spent bigint, version bigint)",
    )
    .await?;
    copy_all(main, totals, rows).await?;
    main.batch_execute(
        "UPDATE wallets w SET available_coins = t.available, frozen_coins = t.frozen,
             lifetime_earned = t.earned, lifetime_spent = t.spent, change_version = t.version
         FROM generated_totals t WHERE w.user_id = t.user_id;
         UPDATE change_versions c SET version = t.version
         FROM generated_totals t WHERE c.user_id = t.user_id;
         DROP TABLE generated_totals;",
    )
    .await?;
    Ok(())
}

/// `VACUUM ANALYZE` after the load of every table that holds rows, then a rebuild of every
/// leaderboard, each timed.
///
/// The tables nothing was written to (the month partitions of `step_records` ahead of today,
/// and this month's on its first day) are left as autovacuum leaves them until they are
/// written to: never analysed, which the planner reads as "size unknown" and plans a user's
/// day by the index. Analysed empty, the planner knows them as empty and plans a sequential
/// scan; a pooled connection caches that plan as generic after five calls, and with no
/// `ANALYZE` to replace it, every read of a user's day then scanned the whole partition as the
/// bench filled it (PostgreSQL's CPU per batch of 1,000 40-57 ms instead of 15-23 ms;
/// docs/benchmarks.md, tuning step 22). The partitioned parent is left too: autovacuum never
/// analyses one, and analysing it would analyse every partition.
async fn vacuum_and_rank(
    main: &tokio_postgres::Client,
    pool: &deadpool_postgres::Pool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let vacuum = Instant::now();
    let tables: Vec<String> = main
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname = current_schema()
               AND pg_relation_size(c.oid) > 0
             ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !tables.is_empty() {
        main.batch_execute(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
            .await?;
    }
    report.vacuum_time = vacuum.elapsed();
    let rebuild = Instant::now();
    report.boards = leaderboard::refresh(pool, None).await?;
    report.leaderboard_time = rebuild.elapsed();
    Ok(())
}

/// The plan for `users` and `days` with `seed`, ending before `today`.
pub fn plan(users: u64, days: u32, seed: u64, today: NaiveDate) -> Plan {
    Plan {
        users,
        days,
        seed,
        today,
    }
}

//! `fitkart-bench`: the server at scale, each operation next to the raw-SQL limit of the same
//! work measured in the same run. Prints a markdown table and writes it to a file.
//!
//! ```sh
//! fitkart-sync-server generate --preset medium --database-url postgres://postgres@127.0.0.1/fitkart_bench_medium
//! fitkart-bench --database-url postgres://postgres@127.0.0.1/fitkart_bench_medium --out bench.md
//! ```
//! (`scripts/bench.sh medium` does both with release builds.)
//!
//! It starts measuring once the jobs a server runs when it first starts on a database (the
//! ledger verification, the upkeep) have finished, and prints how long they took.
//!
//! For each operation it measures three things against a generated database:
//! 1. **capacity**: `--clients` concurrent clients against the live server (started from the
//!    `fitkart-sync-server` binary beside this one), each sending its next request as soon as
//!    the last is answered, for `--seconds`;
//! 2. **latency under load**: requests at a fixed arrival rate (half the capacity unless
//!    `--load-share` says otherwise), each timed from the moment it was due to start, so a
//!    slow answer delays no measurement (no coordinated omission); reads first run one
//!    uncounted second at that rate, while connections open and pools grow;
//! 3. **raw-SQL limit**: the same rows read or written straight through tokio-postgres by
//!    `--clients` connections (prepared statements, one transaction per request, COPY for the
//!    step batch), for `--seconds`; for a read, a step report and an order, then also at the
//!    fixed rate of item 2 (a read after an uncounted second), so the tail the machine itself
//!    gives that request at that rate, without the server, stands beside the server's (for
//!    a write, mostly PostgreSQL's commit: its WAL flush).
//!
//! For each read with a p99 goal, after its latency run, it searches for the highest arrival
//! rate at which the p99 holds the goal: `--goal-search` more fixed-rate runs (4 by default),
//! each halfway between the highest rate that held it and the lowest that missed it.
//!
//! With `--warmup S`, each capacity and raw-limit run comes after S uncounted seconds of the
//! same work, so a database larger than PostgreSQL's buffers is measured once the pages the
//! work touches are in them (`scripts/bench.sh seed` passes 30). `--rate N` sets item 2's
//! arrival rate instead of a share of the capacity.
//!
//! Beside the capacity and raw-limit runs it reads from `/proc` (Linux) the CPU time each
//! request cost the server, PostgreSQL (every `postgres` process on the machine; left out
//! when there is none, a remote database) and itself, and prints them in a second table:
//! the figure to compare when a change is meant to make a request cheaper, since a rate on
//! a shared machine moves with everything else it runs. A third table gives the same for each
//! latency run with a raw run at its rate and that raw run, how busy the three kept the
//! machine's cores, and each one's context switches a request (from
//! `/proc/<pid>/task/*/status`): a request that arrives alone costs more than one in a closed
//! loop.
//!
//! Each run also says how much of the machine's cores the hypervisor took meanwhile (the
//! steal of `/proc/stat`: time the virtual cores were ready to run but the host ran
//! something else), beside its rate or latencies: a read that waits for a core the host has
//! taken is slow however little it costs, and no tuning of this machine's software changes
//! that.
//!
//! Through every fixed-rate run of a read a stall probe (`stalls`, Linux; `--no-stall-probe`
//! to leave it out) keeps a thread pinned to each core at real-time priority, sleeping 1 ms at
//! a time: a wake-up 1 ms or more late is a stall, the core lost to the host or the kernel. A
//! table then gives, for each such run with a p99 goal, its stalls, how many of its requests over the
//! goal were due in a stall or its drain (as long again after it), and the p99 of the
//! requests due outside them: whether a tail is the machine's stalls or the software's own.
//!
//! On Linux the reads go from a loop of the bench's own (`read_loop`: one thread driving plain
//! HTTP/1.1 connections with `epoll`, paced by a `timerfd`), elsewhere over hyper's HTTP/1.1
//! connections driven by the task sending each request (`--read-client hyper|reqwest` to
//! compare); the writes go through `reqwest`. The load generator runs on the cores it
//! measures, so what it spends on a request is kept small.
//!
//! With `--server-url`, it measures a server already running, on this machine or another,
//! instead of starting one, so that a load generator on another machine does not take the
//! server's cores (docs/benchmarks.md, "Goals still missed").
//! That server must run on the same generated database and sign tokens with the secret
//! given as `--jwt-secret` (or `FITKART_JWT_SECRET`); the CPU tables are left out, as the
//! server's processes are not this machine's to read.
//!
//! Last, it times the leaderboard rebuilds (each period, the nightly job's three, and the
//! full rebuild) while a client keeps reading the board being rebuilt.
//!
//! Writes go to generated users of the UTC time zone, so "today" is the same day for the
//! server and the bench: the server's half of them report through HTTP, the other half take
//! the raw writes, so the ledger stays consistent (`verify-ledger` passes after a run).
//! Step reports grow each user's day by 100 steps a minute of the day, within the user's own
//! best day of the last 30, so anti-cheat lets them through and each one pays a coin. The
//! server's bulk writes (pushes of 500, batches of 1,000) go to up to 20,000 users of other
//! time zones, dated with each user's own day, so that the step reports of a later run on the
//! same day do not find their users' days swollen with them; each bulk write takes the next of
//! them, those with the fewest records on their day first.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser;
use fitkart_protocol::auth::Role;
use fitkart_protocol::leaderboard::LeaderboardPeriod;
use fitkart_sync_server::auth::tokens::AccessTokens;
use fitkart_sync_server::config::JwtSecret;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

#[cfg(target_os = "linux")]
mod read_loop;
mod stalls;

use stalls::{StallProbe, StallReport};

/// Benchmarks the FitKart server on a generated database against the raw-SQL limit.
// An option given twice takes its last value (`scripts/bench.sh` passes defaults first).
#[derive(Debug, Parser)]
#[command(args_override_self = true)]
struct Args {
    /// The generated database (`fitkart-sync-server generate`).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,

    /// Seconds of each measurement (capacity, latency, raw limit).
    #[arg(long, default_value_t = 8)]
    seconds: u64,

    /// Concurrent clients (and raw connections) for capacity and raw-limit runs. The default
    /// is the server's default pool size: a closed loop of fewer leaves the server idle while
    /// each client waits for its answer, and measures the clients' latency, not the capacity.
    #[arg(long, default_value_t = fitkart_sync_server::config::DEFAULT_DB_POOL_SIZE)]
    clients: usize,

    /// Seconds of an uncounted run of the same work before each capacity and raw-limit run:
    /// on a database larger than PostgreSQL's buffers, the pages the work touches are read
    /// into them first, so the figures are the steady state and not the cache filling. Spends
    /// step budgets and coins like the measured runs do. 0: none.
    #[arg(long, default_value_t = 0)]
    warmup: u64,

    /// HTTP connections the fixed-rate runs send over, at most (as `wrk2 -c`): a request due
    /// while every one is busy waits for one, and that wait counts in its latency. Without a
    /// bound, a stall of a few milliseconds made the HTTP client open hundreds of connections
    /// at once, more than the server's accept queue took (tuning step 20). 0: no bound.
    #[arg(long, default_value_t = 64)]
    connections: usize,

    /// Arrival rate of the latency runs as a share of the measured capacity.
    #[arg(long, default_value_t = 0.5)]
    load_share: f64,

    /// Arrival rate of the latency runs in requests a second, instead of `--load-share` of the
    /// capacity: to ask whether the server holds a given rate (with `--only`).
    #[arg(long)]
    rate: Option<f64>,

    /// Only these operations (comma-separated names as in the table; `leaderboard_rebuild`
    /// for the rebuild timings).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Where to write the markdown table.
    #[arg(long)]
    out: Option<PathBuf>,

    /// A label for the table's heading (e.g. the preset).
    #[arg(long, default_value = "")]
    label: String,

    /// The server binary (default: `fitkart-sync-server` beside this binary).
    #[arg(long, conflicts_with = "server_url")]
    server: Option<PathBuf>,

    /// A server already running on the generated database (`http://host:port`), on this
    /// machine or another, to measure instead of starting one, so that the load generator can
    /// run on a machine of its own. Needs `--jwt-secret`.
    #[arg(long, requires = "jwt_secret")]
    server_url: Option<String>,

    /// The `FITKART_JWT_SECRET` of the server at `--server-url`, which the bench signs its
    /// users' tokens with. Not needed for a server the bench starts (it gives that one a
    /// secret of its own).
    #[arg(long, env = "FITKART_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Runs of the search, for each read with a p99 goal, for the highest arrival rate at
    /// which the p99 holds the goal: a bisection between none and the capacity, from the
    /// latency run's result, each run `--seconds` long. 0: no search.
    #[arg(long, default_value_t = 4)]
    goal_search: u32,

    /// A directory to write each fixed-rate run's requests to, one CSV per run
    /// (`<operation>-<run>.csv`: when each request was due, in ms from the run's start, and
    /// its latency in ms), to see whether a tail is spread over the run or a few stalls; the
    /// hypervisor's steal is sampled every 20 ms meanwhile, each run's line says in which of
    /// its windows the host took a core, and the samples go to `steal.csv` once the operations
    /// are measured (seconds since the epoch, steal seconds so far).
    #[arg(long)]
    trace: Option<PathBuf>,

    /// The HTTP client of the reads (profile, wallet, leaderboard, achievements): `loop`, a
    /// thread of its own driving plain HTTP/1.1 connections with `epoll` (Linux only; tuning
    /// step 30), `hyper`, an HTTP/1.1 connection driven by the task that sends the request
    /// (tuning step 27), or `reqwest`, the client of every other operation, to compare.
    #[arg(long, value_enum, default_value_t = ReadClientKind::DEFAULT)]
    read_client: ReadClientKind,

    /// No stall probe: by default (Linux), a thread pinned to each core at real-time
    /// priority sleeps 1 ms at a time through every fixed-rate run of a read, and a table says how
    /// long the cores were lost meanwhile and which slow requests fell in their wake
    /// (`stalls.rs`). It costs each core about 1,000 wake-ups a second during those runs.
    #[arg(long)]
    no_stall_probe: bool,
}

/// `--read-client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ReadClientKind {
    Loop,
    Hyper,
    Reqwest,
}

impl ReadClientKind {
    /// As `--read-client` takes it.
    fn name(self) -> &'static str {
        match self {
            Self::Loop => "loop",
            Self::Hyper => "hyper",
            Self::Reqwest => "reqwest",
        }
    }

    /// The reads' own loop where it runs (Linux), else hyper's connection.
    const DEFAULT: Self = if cfg!(target_os = "linux") {
        Self::Loop
    } else {
        Self::Hyper
    };
}

/// The board the leaderboard read reads: the all-time board ranks every user who has walked,
/// where the weekly one is empty on a Monday until the nightly job ranks the bench's reports.
const BOARD: LeaderboardPeriod = LeaderboardPeriod::AllTime;

/// The secret of the server the bench starts itself.
const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
const PROTOCOL: (&str, &str) = ("x-fitkart-protocol-version", "1");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Profile,
    Wallet,
    Leaderboard,
    Achievements,
    StepReport,
    Order,
    Push500,
    PullYear,
    Batch1000,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::Profile,
        Op::Wallet,
        Op::Leaderboard,
        Op::Achievements,
        Op::StepReport,
        Op::Order,
        Op::Push500,
        Op::PullYear,
        Op::Batch1000,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Profile => "profile",
            Op::Wallet => "wallet",
            Op::Leaderboard => "leaderboard",
            Op::Achievements => "achievements",
            Op::StepReport => "step_report",
            Op::Order => "order",
            Op::Push500 => "push_500",
            Op::PullYear => "pull_year",
            Op::Batch1000 => "batch_1000",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Op::Profile => "`GET /me` (profile)",
            Op::Wallet => "`GET /wallet`",
            Op::Leaderboard => "`GET /leaderboard?limit=100` (all-time top 100 + my rank)",
            Op::Achievements => "`GET /achievements` (achievement check)",
            Op::StepReport => "`POST /steps/record`, one report that pays a coin",
            Op::Order => "`POST /orders` (holds coins and stock)",
            Op::Push500 => "`POST /sync/push`, 500 step mutations",
            Op::PullYear => "full `GET /sync/pull` of a year of one user (all pages)",
            Op::Batch1000 => "`POST /steps/record`, 1,000 records",
        }
    }

    fn raw(self) -> &'static str {
        match self {
            Op::Profile => "prepared SELECT of the user row",
            Op::Wallet => "prepared SELECT of the wallet row",
            Op::Leaderboard => "prepared top-100 + own-rank SELECTs",
            Op::Achievements => "prepared SELECTs of definitions, unlocks and step totals",
            Op::StepReport => {
                "one transaction: version, record upsert, day upsert, wallet lock, ledger insert, wallet update"
            }
            Op::Order => {
                "one transaction: version, wallet lock, stock update, order + item + ledger inserts, wallet update"
            }
            Op::Push500 => "one transaction: 500 step-record upserts + 500 stored mutation results",
            Op::PullYear => "prepared SELECTs of the user's synced rows",
            Op::Batch1000 => "COPY of 1,000 step records",
        }
    }

    fn goal(self) -> &'static str {
        match self {
            Op::Profile | Op::Wallet | Op::Leaderboard => "p99 ≤ 5 ms",
            Op::Achievements => "p99 ≤ 10 ms (seed)",
            Op::StepReport => "p99 ≤ 20 ms, ≥ 1,500/s, ≥ 0.3× raw",
            Op::Order => "p99 ≤ 20 ms, ≥ 0.3× raw",
            Op::Push500 => "≥ 0.3× raw",
            Op::PullYear => "—",
            Op::Batch1000 => "≥ 50,000 records/s, ≥ 0.3× raw",
        }
    }

    /// The issue's p99 goal for a read, in milliseconds: the latency the search for the
    /// highest rate that holds it aims at (`--goal-search`).
    fn p99_goal_ms(self) -> Option<f64> {
        match self {
            Op::Profile | Op::Wallet | Op::Leaderboard => Some(5.0),
            Op::Achievements => Some(10.0),
            _ => None,
        }
    }

    /// The issue's throughput goal for this operation in units a second (1,500 step reports,
    /// 50,000 records in batches), held as an arrival rate after the latency run.
    fn goal_per_second(self) -> Option<u64> {
        match self {
            Op::StepReport => Some(1_500),
            Op::Batch1000 => Some(50_000),
            _ => None,
        }
    }

    /// What one request moves, for the throughput column.
    fn unit(self) -> &'static str {
        match self {
            Op::Push500 => "mutations",
            Op::PullYear => "rows",
            Op::Batch1000 => "records",
            _ => "",
        }
    }

    /// The units one request moves (a pull counts the rows it got instead).
    fn units_per_request(self) -> u64 {
        match self {
            Op::Push500 => 500,
            Op::Batch1000 => 1000,
            _ => 1,
        }
    }

    /// A `GET` of one path as one user, which the reads' clients send.
    #[cfg(target_os = "linux")]
    fn is_read(self) -> bool {
        matches!(
            self,
            Op::Profile | Op::Wallet | Op::Leaderboard | Op::Achievements
        )
    }

    fn is_write(self) -> bool {
        matches!(
            self,
            Op::StepReport | Op::Order | Op::Push500 | Op::Batch1000
        )
    }

    /// Whether the raw-SQL side also runs at the server's rate, to give its latency there:
    /// every read, and the writes with a latency goal of their own (the step report and the
    /// order), whose tail then shows how much of the server's is PostgreSQL's commit on this
    /// machine. Not the bulk writes: their figures are throughput.
    fn raw_at_rate(self) -> bool {
        !self.is_write() || matches!(self, Op::StepReport | Op::Order)
    }
}

/// One user's next step report: the day's total so far and the minute of the day it is read.
#[derive(Debug, Clone, Copy)]
struct StepTicket {
    steps: i64,
    minute: i64,
    cap: i64,
}

struct Actor {
    id: Uuid,
    token: String,
    /// `Bearer <token>`, as the reads' client sends it.
    authorization: hyper::header::HeaderValue,
    device: Uuid,
    steps: Mutex<StepTicket>,
    /// Set once the user has no step report left, so later reports skip them.
    spent: AtomicBool,
    orders_left: AtomicU64,
}

struct World {
    today: NaiveDate,
    run: String,
    /// UTC users whose writes go through the server.
    server_users: Vec<Actor>,
    /// UTC users whose writes go through raw SQL.
    raw_users: Vec<Actor>,
    /// Users with coins for orders, split the same way.
    server_buyers: Vec<Actor>,
    raw_buyers: Vec<Actor>,
    /// The users with a full year of history.
    veterans: Vec<Actor>,
    /// Users of other time zones, with their own date, for the server's bulk writes (pushes
    /// of 500 and batches of 1,000), so those never land on a user the step reports write
    /// for: a report reads its user's records of the day, and thousands of bulk records
    /// there, from an earlier run of the same day, would make it slower than any real report.
    /// Those with the fewest records on their day come first, and each bulk write takes the
    /// next (`bulk_counter`), for the same reason: a batch landing on the thousands of records
    /// an earlier batch left measured that pile (four runs of the batch alone in a row fell
    /// from 79,116 to 63,287 records/s; tuning step 22).
    bulk_users: Vec<(Actor, NaiveDate)>,
    product: (Uuid, String, i64),
    counter: AtomicU64,
    bulk_counter: AtomicU64,
    exhausted: AtomicU64,
}

impl World {
    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The user and day of the next bulk write.
    fn next_bulk_user(&self) -> &(Actor, NaiveDate) {
        let n = self.bulk_counter.fetch_add(1, Ordering::Relaxed) as usize;
        &self.bulk_users[n % self.bulk_users.len()]
    }
}

/// A step report's day total, reading time and day.
type Ticket = (i64, DateTime<Utc>, NaiveDate);

/// Takes the user's next step report (+100 steps, +1 minute), or None when the day is spent.
fn next_ticket(actor: &Actor, now_minute: i64) -> Option<Ticket> {
    let mut t = actor.steps.lock().unwrap_or_else(PoisonError::into_inner);
    if t.steps + 100 > t.cap || t.minute + 1 > now_minute {
        return None;
    }
    t.steps += 100;
    t.minute += 1;
    let at = Utc::now().date_naive().and_hms_opt(0, 0, 0)?.and_utc()
        + chrono::Duration::minutes(t.minute);
    Some((t.steps, at, at.date_naive()))
}

fn now_minute() -> i64 {
    let now = Utc::now();
    (now - now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc())
    .num_minutes()
}

/// The server measured: one the bench started (stopped when dropped), or one at
/// `--server-url`.
struct Server {
    child: Option<Child>,
    url: String,
}

impl Server {
    /// The process to read the server's CPU from: only one the bench started runs here.
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn start_server(args: &Args) -> anyhow::Result<Server> {
    if let Some(url) = &args.server_url {
        let server = Server {
            child: None,
            url: url.trim_end_matches('/').to_owned(),
        };
        return wait_until_ready(server).await;
    }
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("fitkart-sync-server"),
    };
    if !binary.exists() {
        bail!("{} is missing: build the server first", binary.display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&binary)
        .arg("serve")
        .env("DATABASE_URL", &args.database_url)
        .env("FITKART_LISTEN", format!("127.0.0.1:{port}"))
        .env("FITKART_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        // The service's default schedule, which wait_for_start_up_jobs expects.
        .env_remove("FITKART_LEDGER_VERIFY_INTERVAL_HOURS")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let server = Server {
        child: Some(child),
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_until_ready(server).await
}

/// `server` once its `/readyz` answers 200, within a minute.
async fn wait_until_ready(server: Server) -> anyhow::Result<Server> {
    let http = reqwest::Client::new();
    let mut last = String::from("no answer");
    for _ in 0..600 {
        match http.get(format!("{}/readyz", server.url)).send().await {
            Ok(answer) if answer.status().is_success() => return Ok(server),
            Ok(answer) => last = format!("/readyz answered {}", answer.status()),
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the server at {} did not become ready within a minute: {last}",
        server.url
    )
}

/// Waits until the jobs a server runs when it first starts on a database have finished: the
/// ledger verification (all of the ledger) and the upkeep. They run once a day or less in
/// service; measured under them, the first operations would pay for a full scan of the
/// ledger. A run started before `since` (by an earlier server that was stopped mid-run) is not
/// waited for (`None`: every run is). Returns how long they took.
async fn wait_for_start_up_jobs(
    db: &tokio_postgres::Client,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<Duration> {
    use fitkart_sync_server::jobs::{UPKEEP, VERIFY_LEDGER};
    let started = Instant::now();
    loop {
        // Registered (so due now if they have never run), not due, and not running a run this
        // server started.
        let settled: bool = db
            .query_one(
                "SELECT count(*) = cardinality($1::text[]) FROM scheduled_jobs
                 WHERE name = ANY($1) AND next_due > now() AND last_started_at IS NOT NULL
                   AND (last_finished_at >= last_started_at OR last_started_at < $2)",
                &[&[UPKEEP, VERIFY_LEDGER].as_slice(), &since],
            )
            .await?
            .get(0);
        if settled {
            let took = started.elapsed();
            println!(
                "the server's start-up jobs (ledger verification, upkeep) took {:.1} s",
                took.as_secs_f64()
            );
            return Ok(took);
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the server's start-up jobs did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn load_world(db: &tokio_postgres::Client, secret: &str) -> anyhow::Result<World> {
    let tokens = AccessTokens::new(
        &JwtSecret::new(secret).map_err(|e| anyhow::anyhow!("{e}"))?,
        Duration::from_secs(6 * 3600),
    );
    let today = Utc::now().date_naive();
    let month_ago = today - chrono::Days::new(30);
    // UTC users with their best day of the last 30 (the bench never claims more), today's
    // total and the minute of their latest reading today.
    let rows = db
        .query(
            "SELECT u.id,
                    coalesce((SELECT max(d.verified_steps) FROM step_days d
                              WHERE d.user_id = u.id AND d.day >= $2 AND d.day < $1), 0)::bigint,
                    coalesce((SELECT max(r.steps) FROM step_records r
                              WHERE r.user_id = u.id AND r.day = $1), 0)::bigint,
                    coalesce((SELECT max(extract(epoch FROM r.last_recorded_at - $1::date::timestamp AT TIME ZONE 'UTC')) / 60
                              FROM step_records r WHERE r.user_id = u.id AND r.day = $1), 0)::bigint
             FROM users u
             WHERE u.timezone = 'UTC' AND u.deleted_at IS NULL AND u.role = 'user'
             ORDER BY u.id",
            &[&today, &month_ago],
        )
        .await?;
    let actor = |id: Uuid, ticket: StepTicket, orders: u64| -> anyhow::Result<Actor> {
        let token = tokens.issue(id, Role::User, 0)?;
        Ok(Actor {
            id,
            authorization: hyper::header::HeaderValue::try_from(format!("Bearer {token}"))?,
            token,
            device: Uuid::now_v7(),
            steps: Mutex::new(ticket),
            spent: AtomicBool::new(false),
            orders_left: AtomicU64::new(orders),
        })
    };
    let (mut server_users, mut raw_users) = (Vec::new(), Vec::new());
    for (i, row) in rows.iter().enumerate() {
        let (best, steps, minute): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        let cap = best.min(15_000);
        // A new source starts from nothing at midnight: its first reading must not be faster
        // than 150 steps a minute on average.
        let minute = minute.max((steps + 100) / 150 + 1);
        let a = actor(row.get(0), StepTicket { steps, minute, cap }, 0)?;
        if i % 2 == 0 {
            server_users.push(a);
        } else {
            raw_users.push(a);
        }
    }
    let product = db
        .query_one(
            "SELECT id, name, coin_price FROM reward_products
             WHERE is_active AND deleted_at IS NULL ORDER BY coin_price, id LIMIT 1",
            &[],
        )
        .await?;
    let product: (Uuid, String, i64) = (product.get(0), product.get(1), product.get(2));
    // Orders never run out of stock in a benchmark.
    db.execute(
        "UPDATE reward_products SET stock = stock + 10000000 WHERE id = $1",
        &[&product.0],
    )
    .await?;
    let buyers = db
        .query(
            "SELECT w.user_id, w.available_coins / $1 FROM wallets w JOIN users u ON u.id = w.user_id
             WHERE w.available_coins >= $1 AND u.deleted_at IS NULL ORDER BY w.user_id LIMIT 60000",
            &[&product.2],
        )
        .await?;
    let (mut server_buyers, mut raw_buyers) = (Vec::new(), Vec::new());
    let none = StepTicket {
        steps: 0,
        minute: 0,
        cap: 0,
    };
    for (i, row) in buyers.iter().enumerate() {
        let a = actor(row.get(0), none, row.get::<_, i64>(1) as u64)?;
        if i % 2 == 0 {
            server_buyers.push(a);
        } else {
            raw_buyers.push(a);
        }
    }
    let veterans = db
        .query(
            "SELECT id FROM users WHERE role = 'user' ORDER BY created_at, id LIMIT 8",
            &[],
        )
        .await?
        .iter()
        .map(|row| actor(row.get(0), none, 0))
        .collect::<anyhow::Result<_>>()?;
    // At least an hour from their midnight either way, so their date does not change during
    // a run.
    let bulk_users = db
        .query(
            "SELECT id, day FROM (
                 SELECT id, (now() AT TIME ZONE timezone)::date AS day FROM users
                 WHERE timezone <> 'UTC' AND deleted_at IS NULL AND role = 'user'
                   AND (now() AT TIME ZONE timezone)::time BETWEEN '01:00' AND '23:00') u
             ORDER BY (SELECT count(*) FROM step_records r
                       WHERE r.user_id = u.id AND r.day = u.day), id
             LIMIT 20000",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((actor(row.get(0), none, 0)?, row.get(1))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if server_users.is_empty() || raw_users.is_empty() || bulk_users.is_empty() {
        bail!(
            "the database has too few users in the UTC time zone or in others: generate it first"
        );
    }
    Ok(World {
        today,
        run: format!("{:x}", Utc::now().timestamp() % 0xFFFFFF),
        server_users,
        raw_users,
        server_buyers,
        raw_buyers,
        veterans,
        bulk_users,
        product,
        counter: AtomicU64::new(0),
        bulk_counter: AtomicU64::new(0),
        exhausted: AtomicU64::new(0),
    })
}

/// The next user from the `i`th on with a step report left at `minute` of today, and that
/// report; None when no user has one left. A user without one is marked and skipped for the
/// rest of the run (one who had caught up with the clock would have another a minute later;
/// the bench forgoes it), so the bench sends the rate it asks for while any user can report.
fn next_reporter(users: &[Actor], i: usize, minute: i64) -> Option<(&Actor, Ticket)> {
    (0..users.len())
        .map(|k| &users[(i + k) % users.len()])
        .filter(|actor| !actor.spent.load(Ordering::Relaxed))
        .find_map(|actor| match next_ticket(actor, minute) {
            Some(ticket) => Some((actor, ticket)),
            None => {
                actor.spent.store(true, Ordering::Relaxed);
                None
            }
        })
}

/// The server's address and the clients that talk to it.
#[derive(Clone)]
struct Http {
    url: Arc<str>,
    reqwest: reqwest::Client,
    /// The reads' client (`--read-client hyper`); `None`: the reads go through `reqwest`.
    reads: Option<Arc<ReadClient>>,
    /// The reads' own loop (`--read-client loop`), which takes them before `reads`.
    #[cfg(target_os = "linux")]
    read_loop: Option<Arc<read_loop::ReadLoop>>,
}

/// An HTTP/1.1 client for the reads, lighter on the load generator than `reqwest`.
///
/// Each exchange drives its connection in the task that sent the request, where `reqwest`
/// (and hyper's pooled client under it) runs each connection as a task of its own and hands
/// every request and answer across, and parses the URL and builds the headers anew for each;
/// here the paths are parsed once and each user's `Authorization` header built once. The
/// load generator shares this machine's 2 cores with the server and PostgreSQL, so what it
/// spends on a read is taken from theirs: this client cost it about a third less CPU a read
/// at a fixed rate (tuning step 27). Idle connections are kept on a stack and the one used
/// last is taken first.
struct ReadClient {
    address: std::net::SocketAddr,
    host: hyper::header::HeaderValue,
    /// Each read and its path and query, parsed once.
    uris: Vec<(Op, hyper::Uri)>,
    idle: Mutex<Vec<ReadConnection>>,
}

/// An HTTP/1.1 connection: the handle requests are sent on, and the connection it drives.
type ReadConnection = (
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<hyper::body::Bytes>>,
    ReadConnectionDriver,
);

/// The reads' connection itself, which the task that sends a request drives.
type ReadConnectionDriver = hyper::client::conn::http1::Connection<
    hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    http_body_util::Empty<hyper::body::Bytes>,
>;

impl ReadClient {
    /// A client of the server at `url` (`http://host:port`).
    fn new(url: &str) -> anyhow::Result<Self> {
        let (address, authority) = server_address(url)?;
        let uris = [Op::Profile, Op::Wallet, Op::Leaderboard, Op::Achievements]
            .into_iter()
            .map(|op| -> anyhow::Result<_> { Ok((op, read_path(op).parse()?)) })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            address,
            host: hyper::header::HeaderValue::try_from(authority)?,
            uris,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An idle connection that is still open, else a new one.
    async fn connection(&self) -> Result<ReadConnection, String> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some((sender, _)) if sender.is_closed() => continue,
                Some(connection) => return Ok(connection),
                None => break,
            }
        }
        let stream = tokio::net::TcpStream::connect(self.address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))
    }

    /// `GET` of `op`'s path as `actor`: the answer's status and body.
    async fn get(
        &self,
        op: Op,
        actor: &Actor,
    ) -> Result<(hyper::StatusCode, hyper::body::Bytes), String> {
        use http_body_util::BodyExt as _;
        use hyper::header::{AUTHORIZATION, HOST};
        let (_, uri) = self
            .uris
            .iter()
            .find(|(read, _)| *read == op)
            .ok_or("not a read")?;
        let uri = uri.clone();
        let request = hyper::Request::get(uri)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, actor.authorization.clone())
            .header(PROTOCOL.0, PROTOCOL.1)
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = self.connection().await?;
        let mut connection = Some(connection);
        let answer = {
            let exchange = async {
                let answer = sender.send_request(request).await?;
                let status = answer.status();
                let body = answer.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            };
            tokio::pin!(exchange);
            tokio::select! {
                biased;
                answer = &mut exchange => answer,
                _ = std::future::poll_fn(|cx| drive(&mut connection, cx)) => {
                    // The connection ended, the server maybe closing it after its answer:
                    // dropped, it leaves the exchange what it passed on, or an error.
                    connection = None;
                    exchange.await
                }
            }
        };
        let answer = answer.map_err(|e| e.to_string());
        // The connection is ready for the next request once it has taken in this answer.
        let ready = answer.is_ok()
            && connection.is_some()
            && tokio::select! {
                biased;
                ready = sender.ready() => ready.is_ok(),
                _ = std::future::poll_fn(|cx| drive(&mut connection, cx)) => false,
            };
        if let Some(connection) = connection.filter(|_| ready) {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((sender, connection));
        }
        answer
    }
}

/// The address of the server at `url` (`http://host:port`), and its `host:port`. A host name
/// (a server on another machine) is looked up once, here.
fn server_address(url: &str) -> anyhow::Result<(std::net::SocketAddr, &str)> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: not an http:// URL"))?;
    let address = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("{url}: the server's address"))?
        .next()
        .with_context(|| format!("{url}: no address"))?;
    Ok((address, authority))
}

/// Reads through the reads' own loop, on a thread of tokio's blocking pool: `op` as the
/// server's users in turn, as `call` reads them.
#[cfg(target_os = "linux")]
async fn loop_reads(
    client: Arc<read_loop::ReadLoop>,
    world: Arc<World>,
    op: Op,
    pace: read_loop::Pace,
) -> Sample {
    let head = format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\n{}: {}\r\nauthorization: ",
        read_path(op),
        client.authority(),
        PROTOCOL.0,
        PROTOCOL.1
    );
    let run = tokio::task::spawn_blocking(move || {
        let mut request = |buffer: &mut Vec<u8>| -> Result<(), String> {
            let users = &world.server_users;
            if users.is_empty() {
                return Err("no users".to_owned());
            }
            let actor = &users[world.next() as usize % users.len()];
            buffer.extend_from_slice(head.as_bytes());
            buffer.extend_from_slice(actor.authorization.as_bytes());
            buffer.extend_from_slice(b"\r\n\r\n");
            Ok(())
        };
        let answer = |status: u16, body: &[u8]| {
            let status = reqwest::StatusCode::from_u16(status).map_err(|e| e.to_string())?;
            answered(op, status, body)
        };
        client.run(pace, &mut request, &answer)
    });
    match run.await {
        Ok(Ok(sample)) => sample,
        Ok(Err(err)) => Sample::failed(format!("the reads' loop: {err}")),
        Err(err) => Sample::failed(format!("the reads' loop: {err}")),
    }
}

/// Drives a reads' connection (`None`: one that ended) until it ends.
fn drive(
    connection: &mut Option<ReadConnectionDriver>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<()> {
    match connection {
        Some(connection) => connection.poll_without_shutdown(cx).map(drop),
        None => std::task::Poll::Ready(()),
    }
}

/// The path and query of a read.
fn read_path(op: Op) -> String {
    match op {
        Op::Profile => "/api/v1/me".to_owned(),
        Op::Wallet => "/api/v1/wallet".to_owned(),
        Op::Leaderboard => format!("/api/v1/leaderboard?period={BOARD}&limit=100"),
        _ => "/api/v1/achievements".to_owned(),
    }
}

/// One request through the server; returns the units it moved.
async fn call(http: &Http, world: &World, op: Op) -> Result<u64, String> {
    let i = world.next() as usize;
    let url = &http.url;
    let api = |path: &str| format!("{url}/api/v1{path}");
    let pick = |users: &'static str, list: &[Actor]| -> Result<usize, String> {
        if list.is_empty() {
            return Err(format!("no {users}"));
        }
        Ok(i % list.len())
    };
    let (actor, request) = match op {
        Op::Profile | Op::Wallet | Op::Leaderboard | Op::Achievements => {
            let actor = &world.server_users[pick("users", &world.server_users)?];
            if let Some(reads) = &http.reads {
                let (status, body) = reads.get(op, actor).await?;
                return answered(op, status, &body);
            }
            (actor, http.reqwest.get(format!("{url}{}", read_path(op))))
        }
        Op::StepReport => {
            let Some((actor, (steps, at, date))) =
                next_reporter(&world.server_users, i, now_minute())
            else {
                world.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err("no step budget left today".into());
            };
            let body = serde_json::json!({"records": [{"date": date, "source": "bench",
                "steps": steps, "recorded_at": at}]});
            (actor, http.reqwest.post(api("/steps/record")).json(&body))
        }
        Op::Order => {
            let actor = &world.server_buyers[pick("buyers", &world.server_buyers)?];
            let left = actor.orders_left.load(Ordering::Relaxed);
            if left == 0 {
                world.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err("buyer out of coins".into());
            }
            actor.orders_left.store(left - 1, Ordering::Relaxed);
            let body = serde_json::json!({"client_order_id": Uuid::now_v7(),
                "items": [{"product_id": world.product.0, "quantity": 1}],
                "shipping_address": {"name": "Bench", "line1": "1 Bench St",
                    "city": "Springfield", "postal_code": "12345", "country": "US"}});
            (actor, http.reqwest.post(api("/orders")).json(&body))
        }
        Op::Push500 => {
            let (actor, day) = world.next_bulk_user();
            let now = Utc::now();
            let mutations: Vec<_> = (0..500)
                .map(|m| {
                    serde_json::json!({"id": Uuid::now_v7(), "kind": "record_steps",
                        "created_at": now, "payload": {"records": [{"date": day,
                        "source": format!("p{}x{i}x{m}", world.run), "steps": 100,
                        "recorded_at": now}]}})
                })
                .collect();
            let body = serde_json::json!({"device_id": actor.device, "mutations": mutations});
            (actor, http.reqwest.post(api("/sync/push")).json(&body))
        }
        Op::Batch1000 => {
            let (actor, day) = world.next_bulk_user();
            let now = Utc::now();
            let records: Vec<_> = (0..1000)
                .map(|r| {
                    serde_json::json!({"date": day,
                        "source": format!("b{}x{i}x{r}", world.run), "steps": 100,
                        "recorded_at": now})
                })
                .collect();
            (
                actor,
                http.reqwest
                    .post(api("/steps/record"))
                    .json(&serde_json::json!({"records": records})),
            )
        }
        Op::PullYear => {
            let actor = &world.veterans[pick("veterans", &world.veterans)?];
            let mut cursor = String::new();
            let mut rows = 0u64;
            loop {
                let answer = http
                    .reqwest
                    .get(api("/sync/pull"))
                    .query(&[("limit", "1000"), ("cursor", cursor.as_str())])
                    .bearer_auth(&actor.token)
                    .header(PROTOCOL.0, PROTOCOL.1)
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                if !answer.status().is_success() {
                    return Err(format!("pull {}", answer.status()));
                }
                let page: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
                rows += page["changes"]
                    .as_object()
                    .map(|changes| {
                        changes
                            .values()
                            .filter_map(serde_json::Value::as_array)
                            .map(|a| a.len() as u64)
                            .sum::<u64>()
                    })
                    .unwrap_or(0);
                cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
                if page["has_more"] != serde_json::Value::Bool(true) {
                    return Ok(rows);
                }
            }
        }
    };
    let answer = request
        .bearer_auth(&actor.token)
        .header(PROTOCOL.0, PROTOCOL.1)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| e.to_string())?;
    answered(op, status, &body)
}

/// What `call` returns for an answer to `op`: its units, or the error it gave.
fn answered(op: Op, status: reqwest::StatusCode, body: &[u8]) -> Result<u64, String> {
    if !status.is_success() {
        return Err(format!(
            "{} {status}: {}",
            op.name(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(op.units_per_request())
}

/// Reads `board` (top 100 and the reader's rank) through the server, one request after the
/// other, until `done` is set; returns each read's latency.
async fn read_board_until(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    board: &str,
    done: &std::sync::atomic::AtomicBool,
) -> Sample {
    let mut sample = Sample::default();
    while !done.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = http
            .get(format!("{url}/api/v1/leaderboard?period={board}&limit=100"))
            .bearer_auth(token)
            .header(PROTOCOL.0, PROTOCOL.1)
            .send()
            .await;
        let outcome = match answer {
            Ok(answer) if answer.status().is_success() => Ok(1),
            Ok(answer) => Err(format!("leaderboard {}", answer.status())),
            Err(err) => Err(err.without_url().to_string()),
        };
        sample.add(outcome, started.elapsed());
    }
    sample
}

/// Times each leaderboard rebuild on the generated database (each period incremental, all
/// three together, then the full rebuild that recomputes the month totals first), with one
/// client reading the board being rebuilt through the server the whole time. Returns the
/// markdown section.
async fn leaderboard_rebuilds(
    pool: &deadpool_postgres::Pool,
    http: &reqwest::Client,
    url: &str,
    world: &World,
) -> anyhow::Result<String> {
    use fitkart_sync_server::rewards::leaderboard::{self, Period};
    let reader = world
        .server_users
        .first()
        .context("no UTC user to read the boards")?;
    let mut section = String::from(
        "### Leaderboard rebuild\n\n\
         | rebuild | users ranked | time | reads of that board meanwhile: count, p50 / max ms |\n\
         | --- | --- | --- | --- |\n",
    );
    let runs: [(&str, Option<Period>, bool); 5] = [
        ("weekly (current week's days)", Some(Period::Weekly), false),
        (
            "monthly (current month's totals)",
            Some(Period::Monthly),
            false,
        ),
        (
            "all time (every user's month totals)",
            Some(Period::AllTime),
            false,
        ),
        ("all three, one transaction (the nightly job)", None, false),
        (
            "full: recompute month totals from step_days, then all three",
            None,
            true,
        ),
    ];
    for (what, period, full) in runs {
        let done = std::sync::atomic::AtomicBool::new(false);
        let board = period.unwrap_or(Period::AllTime).as_str();
        let reads = read_board_until(http, url, &reader.token, board, &done);
        let rebuild = async {
            let started = Instant::now();
            let counts = if full {
                leaderboard::refresh_full(pool, period).await
            } else {
                leaderboard::refresh(pool, period).await
            };
            done.store(true, Ordering::Relaxed);
            counts.map(|counts| (counts, started.elapsed()))
        };
        let (mut sample, rebuilt) = tokio::join!(reads, rebuild);
        let (counts, took) = rebuilt?;
        let ranked: Vec<String> = counts
            .iter()
            .map(|(period, entries)| format!("{period} {entries}"))
            .collect();
        let line = format!(
            "| {what} | {} | {:.2} s | {}: {:.1} / {:.1}{} |\n",
            ranked.join(", "),
            took.as_secs_f64(),
            sample.latencies.len(),
            sample.percentile(0.5),
            sample.percentile(1.0),
            if sample.errors() > 0 {
                format!(" ({} failed)", sample.errors())
            } else {
                String::new()
            },
        );
        print!("{line}");
        section.push_str(&line);
    }
    Ok(section)
}

/// The same work straight through SQL on one connection; returns the units it moved.
async fn raw(client: &mut deadpool_postgres::Client, world: &World, op: Op) -> anyhow::Result<u64> {
    let i = world.next() as usize;
    match op {
        Op::Profile | Op::Wallet => {
            let actor = &world.raw_users[i % world.raw_users.len()];
            let sql = if op == Op::Profile {
                "SELECT id, email, display_name, role, timezone, daily_step_goal, avatar_url,
                        created_at, updated_at, change_version, session_epoch
                 FROM users WHERE id = $1 AND deleted_at IS NULL"
            } else {
                "SELECT available_coins, frozen_coins, lifetime_earned, lifetime_spent
                 FROM wallets WHERE user_id = $1"
            };
            let statement = client.prepare_cached(sql).await?;
            client.query_one(&statement, &[&actor.id]).await?;
            Ok(1)
        }
        Op::Leaderboard => {
            let actor = &world.raw_users[i % world.raw_users.len()];
            let top = client
                .prepare_cached(
                    "SELECT rank, display_name, steps, user_id = $3 FROM leaderboard_cache
                     WHERE period = $1 ORDER BY rank LIMIT $2",
                )
                .await?;
            let me = client
                .prepare_cached(
                    "SELECT rank, steps FROM leaderboard_cache WHERE period = $1 AND user_id = $2",
                )
                .await?;
            let board = BOARD.as_str();
            client.query(&top, &[&board, &100i64, &actor.id]).await?;
            client.query_opt(&me, &[&board, &actor.id]).await?;
            Ok(1)
        }
        Op::Achievements => {
            let actor = &world.raw_users[i % world.raw_users.len()];
            let defs = client
                .prepare_cached(
                    "SELECT id, code, name, description, icon, criteria, bonus_coins
                     FROM achievements WHERE is_active AND deleted_at IS NULL ORDER BY sort_order",
                )
                .await?;
            let mine = client
                .prepare_cached(
                    "SELECT achievement_id, unlocked_at FROM user_achievements WHERE user_id = $1",
                )
                .await?;
            let totals = client
                .prepare_cached(
                    "SELECT coalesce(sum(verified_steps), 0)::bigint, coalesce(max(verified_steps), 0)
                     FROM step_days WHERE user_id = $1",
                )
                .await?;
            client.query(&defs, &[]).await?;
            client.query(&mine, &[&actor.id]).await?;
            client.query_one(&totals, &[&actor.id]).await?;
            Ok(1)
        }
        Op::StepReport => {
            let Some((actor, (steps, at, day))) = next_reporter(&world.raw_users, i, now_minute())
            else {
                world.exhausted.fetch_add(1, Ordering::Relaxed);
                bail!("no step budget left today");
            };
            raw_step_report(client, actor.id, day, steps, at).await?;
            Ok(1)
        }
        Op::Order => {
            if world.raw_buyers.is_empty() {
                bail!("no users with coins for an order");
            }
            let actor = &world.raw_buyers[i % world.raw_buyers.len()];
            raw_order(client, world, actor).await?;
            Ok(1)
        }
        Op::Push500 => {
            let actor = &world.raw_users[i % world.raw_users.len()];
            raw_push(client, world, actor.id, i).await?;
            Ok(500)
        }
        Op::Batch1000 => {
            let actor = &world.raw_users[i % world.raw_users.len()];
            raw_batch(client, world, actor.id, i).await?;
            Ok(1000)
        }
        Op::PullYear => {
            let actor = &world.veterans[i % world.veterans.len()];
            let mut rows = 0;
            for sql in [
                "SELECT * FROM step_records WHERE user_id = $1 AND change_version > 0 ORDER BY change_version",
                "SELECT * FROM step_days WHERE user_id = $1 AND change_version > 0 ORDER BY change_version",
                "SELECT * FROM coin_transactions WHERE user_id = $1 AND change_version > 0 ORDER BY change_version",
                "SELECT * FROM user_achievements WHERE user_id = $1 AND change_version > 0",
                "SELECT * FROM orders WHERE user_id = $1 AND change_version > 0",
                "SELECT * FROM order_items WHERE user_id = $1",
                "SELECT * FROM step_validations WHERE user_id = $1 AND change_version > 0",
                "SELECT * FROM reward_products WHERE change_version >= 0 AND $1::uuid IS NOT NULL",
                "SELECT * FROM achievements WHERE change_version >= 0 AND $1::uuid IS NOT NULL",
            ] {
                let statement = client.prepare_cached(sql).await?;
                rows += client.query(&statement, &[&actor.id]).await?.len() as u64;
            }
            Ok(rows)
        }
    }
}

async fn bump_version(tx: &deadpool_postgres::Transaction<'_>, user: Uuid) -> anyhow::Result<i64> {
    let statement = tx
        .prepare_cached(
            "UPDATE change_versions SET version = version + 1 WHERE user_id = $1 RETURNING version",
        )
        .await?;
    Ok(tx.query_one(&statement, &[&user]).await?.get(0))
}

/// The writes a paying step report makes, in one transaction: the user's version, the
/// record, the day, the wallet and its ledger entry (100 steps = 1 coin at the seeded rate).
async fn raw_step_report(
    client: &mut deadpool_postgres::Client,
    user: Uuid,
    day: NaiveDate,
    steps: i64,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    let version = bump_version(&tx, user).await?;
    let steps32 = steps as i32;
    let record = tx
        .prepare_cached(
            "INSERT INTO step_records AS r (id, user_id, day, source, steps, verified_steps,
                 change_version, first_recorded_at, last_recorded_at, cadence_anchor_at,
                 cadence_anchor_steps)
             VALUES ($1, $2, $3, 'raw', $4, $4, $5, $6, $6, $6, $4)
             ON CONFLICT (user_id, day, source) DO UPDATE SET steps = EXCLUDED.steps,
                 verified_steps = EXCLUDED.verified_steps, change_version = EXCLUDED.change_version,
                 report_count = r.report_count + 1, last_recorded_at = EXCLUDED.last_recorded_at,
                 cadence_anchor_at = EXCLUDED.cadence_anchor_at,
                 cadence_anchor_steps = EXCLUDED.cadence_anchor_steps",
        )
        .await?;
    tx.execute(
        &record,
        &[&Uuid::now_v7(), &user, &day, &steps32, &version, &at],
    )
    .await?;
    let paid = (steps / 100).min(200);
    let day_row = tx
        .prepare_cached(
            "INSERT INTO step_days AS s (user_id, day, verified_steps, coins_paid, change_version)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, day) DO UPDATE SET verified_steps = EXCLUDED.verified_steps,
                 coins_paid = EXCLUDED.coins_paid, change_version = EXCLUDED.change_version
             RETURNING (xmax = 0)",
        )
        .await?;
    tx.query_one(&day_row, &[&user, &day, &steps32, &paid, &version])
        .await?;
    let wallet = tx
        .prepare_cached(
            "SELECT id, available_coins, frozen_coins FROM wallets WHERE user_id = $1 FOR UPDATE",
        )
        .await?;
    let w = tx.query_one(&wallet, &[&user]).await?;
    let (wallet_id, available, frozen): (Uuid, i64, i64) = (w.get(0), w.get(1), w.get(2));
    // The day paid (steps - 100) / 100 before this report: the entry books the difference.
    let award = paid - ((steps - 100) / 100).min(200);
    if award > 0 {
        let entry = tx
            .prepare_cached(
                "INSERT INTO coin_transactions (id, user_id, wallet_id, kind, available_delta,
                     frozen_delta, available_after, frozen_after, reference_type, reference_id,
                     idempotency_key, description, change_version)
                 VALUES ($1, $2, $3, 'step_reward', $4, 0, $5, $6, 'step_day', $7, $8, $9, $10)",
            )
            .await?;
        let day_text = day.to_string();
        tx.execute(
            &entry,
            &[
                &Uuid::now_v7(),
                &user,
                &wallet_id,
                &award,
                &(available + award),
                &frozen,
                &day_text,
                &fitkart_sync_server::rewards::settlement::reward_key(user, day, paid),
                &format!("Steps on {day}"),
                &version,
            ],
        )
        .await?;
        let update = tx
            .prepare_cached(
                "UPDATE wallets SET available_coins = available_coins + $2,
                     lifetime_earned = lifetime_earned + $2, change_version = $3
                 WHERE id = $1",
            )
            .await?;
        tx.execute(&update, &[&wallet_id, &award, &version]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The writes an order makes, in one transaction.
async fn raw_order(
    client: &mut deadpool_postgres::Client,
    world: &World,
    actor: &Actor,
) -> anyhow::Result<()> {
    let left = actor.orders_left.load(Ordering::Relaxed);
    if left == 0 {
        world.exhausted.fetch_add(1, Ordering::Relaxed);
        bail!("buyer out of coins");
    }
    actor.orders_left.store(left - 1, Ordering::Relaxed);
    let (product, name, price) = &world.product;
    let tx = client.transaction().await?;
    let version = bump_version(&tx, actor.id).await?;
    let wallet = tx
        .prepare_cached(
            "SELECT id, available_coins, frozen_coins FROM wallets WHERE user_id = $1 FOR UPDATE",
        )
        .await?;
    let w = tx.query_one(&wallet, &[&actor.id]).await?;
    let (wallet_id, available, frozen): (Uuid, i64, i64) = (w.get(0), w.get(1), w.get(2));
    if available < *price {
        bail!("buyer out of coins");
    }
    let stock = tx
        .prepare_cached(
            "UPDATE reward_products SET stock = stock - 1 WHERE id = $1 AND stock >= 1 RETURNING stock",
        )
        .await?;
    tx.query_one(&stock, &[product]).await?;
    let order_id = Uuid::now_v7();
    let code = format!(
        "FK-R{}",
        &order_id.simple().to_string()[20..32].to_uppercase()
    );
    let insert_order = tx
        .prepare_cached(
            "INSERT INTO orders (id, user_id, order_code, client_order_id, request_fingerprint,
                 total_coins, shipping_address, change_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    let address = serde_json::json!({"name": "Bench", "line1": "1 Bench St",
        "city": "Springfield", "postal_code": "12345", "country": "US"});
    tx.execute(
        &insert_order,
        &[
            &order_id,
            &actor.id,
            &code,
            &Uuid::now_v7(),
            &vec![7u8; 32],
            price,
            &address,
            &version,
        ],
    )
    .await?;
    let item = tx
        .prepare_cached(
            "INSERT INTO order_items (order_id, user_id, product_id, product_name, quantity,
                 unit_coin_price) VALUES ($1, $2, $3, $4, 1, $5)",
        )
        .await?;
    tx.execute(&item, &[&order_id, &actor.id, product, name, price])
        .await?;
    let entry = tx
        .prepare_cached(
            "INSERT INTO coin_transactions (id, user_id, wallet_id, kind, available_delta,
                 frozen_delta, available_after, frozen_after, reference_type, reference_id,
                 idempotency_key, change_version)
             VALUES ($1, $2, $3, 'order_hold', $4, $5, $6, $7, 'order', $8, $9, $10)",
        )
        .await?;
    tx.execute(
        &entry,
        &[
            &Uuid::now_v7(),
            &actor.id,
            &wallet_id,
            &-price,
            price,
            &(available - price),
            &(frozen + price),
            &order_id.to_string(),
            &format!("order_hold:{order_id}"),
            &version,
        ],
    )
    .await?;
    let update = tx
        .prepare_cached(
            "UPDATE wallets SET available_coins = $2, frozen_coins = $3, change_version = $4
             WHERE id = $1",
        )
        .await?;
    tx.execute(
        &update,
        &[
            &wallet_id,
            &(available - price),
            &(frozen + price),
            &version,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The rows a push of 500 step mutations stores, in one transaction.
async fn raw_push(
    client: &mut deadpool_postgres::Client,
    world: &World,
    user: Uuid,
    i: usize,
) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    let version = bump_version(&tx, user).await?;
    let ids: Vec<Uuid> = (0..500).map(|_| Uuid::now_v7()).collect();
    let sources: Vec<String> = (0..500)
        .map(|m| format!("rp{}x{i}x{m}", world.run))
        .collect();
    let hashes: Vec<Vec<u8>> = (0..500).map(|_| vec![1u8; 32]).collect();
    let results: Vec<serde_json::Value> = (0..500)
        .map(|_| serde_json::json!({"records": [{"status": "accepted", "coins_awarded": 0}]}))
        .collect();
    let records = tx
        .prepare_cached(
            "INSERT INTO step_records AS r (id, user_id, day, source, steps, verified_steps,
                 change_version, cadence_anchor_at, cadence_anchor_steps)
             SELECT u.id, $1, $2, u.source, 100, 100, $3, now(), 100
             FROM unnest($4::uuid[], $5::text[]) AS u(id, source)
             ON CONFLICT (user_id, day, source) DO UPDATE SET steps = greatest(r.steps, EXCLUDED.steps),
                 change_version = EXCLUDED.change_version",
        )
        .await?;
    tx.execute(&records, &[&user, &world.today, &version, &ids, &sources])
        .await?;
    let mutations = tx
        .prepare_cached(
            "INSERT INTO sync_mutations (user_id, mutation_id, kind, payload_hash, outcome, result)
             SELECT $1, u.id, 'record_steps', u.hash, 'applied', u.result
             FROM unnest($2::uuid[], $3::bytea[], $4::jsonb[]) AS u(id, hash, result)",
        )
        .await?;
    tx.execute(&mutations, &[&user, &ids, &hashes, &results])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// 1,000 step records through COPY.
async fn raw_batch(
    client: &mut deadpool_postgres::Client,
    world: &World,
    user: Uuid,
    i: usize,
) -> anyhow::Result<()> {
    let sink = client
        .copy_in(
            "COPY step_records (id, user_id, day, source, steps, verified_steps)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::UUID,
            Type::DATE,
            Type::TEXT,
            Type::INT4,
            Type::INT4,
        ],
    );
    let mut writer = std::pin::pin!(writer);
    for r in 0..1000 {
        let source = format!("rb{}x{i}x{r}", world.run);
        let values: [&(dyn ToSql + Sync); 6] = [
            &Uuid::now_v7(),
            &user,
            &world.today,
            &source,
            &100i32,
            &100i32,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// The `q` quantile of `sorted` latencies in milliseconds (the nearest rank), `NaN` for none:
/// every percentile the bench prints, so that its tables' columns agree.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[((n as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0,
    }
}

#[derive(Default)]
struct Sample {
    latencies: Vec<Duration>,
    units: u64,
    errors: HashMap<String, u64>,
    elapsed: Duration,
    /// Of a run at a fixed rate: each answered request's due time (from the run's start) and
    /// latency, in the order they finished.
    timeline: Vec<(Duration, Duration)>,
    /// When a run at a fixed rate started, by the wall clock (to line a trace up with other
    /// records of the machine).
    started_at: Option<SystemTime>,
    /// When a run at a fixed rate started, the instant its timeline's due times count from.
    started: Option<Instant>,
    /// The share of the machine's cores, in percent, that the hypervisor took during the run
    /// ([`Steal`]); `None` where `/proc/stat` cannot be read.
    steal: Option<f64>,
}

impl Sample {
    fn add(&mut self, outcome: Result<u64, String>, latency: Duration) {
        match outcome {
            Ok(units) => {
                self.units += units;
                self.latencies.push(latency);
            }
            Err(err) => *self.errors.entry(err).or_default() += 1,
        }
    }

    /// A run that could not be made: one error, no answer.
    #[cfg(target_os = "linux")]
    fn failed(error: String) -> Self {
        let mut sample = Self::default();
        sample.add(Err(error), Duration::ZERO);
        sample
    }

    fn merge(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.units += other.units;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn units_per_second(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Of a run at `asked` a second: the answers a second from the first answer to the last,
    /// at most `asked`. A server that keeps up answers as fast as it is asked; one that falls
    /// behind answers slower, its last answers late. (Answers over the run's whole length
    /// counted the last request's latency as time the server was not answering: a batch run
    /// of 8 s at 50 a second whose requests each took 150 ms showed 49.2 a second.)
    fn held_per_second(&self, asked: f64) -> f64 {
        let answers = self.timeline.iter().map(|(due, latency)| *due + *latency);
        let (Some(first), Some(last)) = (answers.clone().min(), answers.max()) else {
            return 0.0;
        };
        let span = (last - first).as_secs_f64();
        if span <= 0.0 {
            return self.per_second().min(asked);
        }
        ((self.timeline.len() - 1) as f64 / span).min(asked)
    }

    fn percentile(&mut self, q: f64) -> f64 {
        self.latencies.sort_unstable();
        percentile_ms(&self.latencies, q)
    }

    /// p50 / p95 / p99 / max in milliseconds, as the table prints them, or "none answered"
    /// (rather than NaNs) for a run in which no request was answered, e.g. when every user's
    /// step budget for the day was spent.
    fn latencies(&mut self) -> String {
        if self.latencies.is_empty() {
            return "none answered".to_owned();
        }
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            self.percentile(0.5),
            self.percentile(0.95),
            self.percentile(0.99),
            self.percentile(1.0)
        )
    }

    fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The hypervisor's share of the cores during the run as the tables print it
    /// ("steal 4.2%"); `None` where it is not known.
    fn steal_text(&self) -> Option<String> {
        self.steal.map(|share| format!("steal {share:.1}%"))
    }

    /// `text`, then the run's steal in brackets where it is known: "2.0 / 3.1 (steal 0.4%)".
    fn with_steal(&self, text: String) -> String {
        match self.steal_text() {
            Some(steal) => format!("{text} ({steal})"),
            None => text,
        }
    }

    /// [`Sample::latencies`], then the run's steal where it is known.
    fn latencies_and_steal(&mut self) -> String {
        let latencies = self.latencies();
        self.with_steal(latencies)
    }

    /// Writes the timeline as `<dir>/<name>.csv` and returns a line on how the requests over
    /// `slow` were spread: in how many of the run's 100 ms windows, and the worst window; with
    /// `steal` (a [`StealTimeline`]'s samples), also in how many windows the hypervisor took
    /// a core and how many of the slow requests were due in them.
    fn write_trace(
        &self,
        dir: &Path,
        name: &str,
        slow: Duration,
        steal: Option<&[(SystemTime, f64)]>,
    ) -> anyhow::Result<String> {
        let mut timeline = self.timeline.clone();
        timeline.sort_unstable();
        let mut csv = String::from("due_ms,latency_ms\n");
        let mut windows: BTreeMap<u128, usize> = BTreeMap::new();
        for (due, latency) in &timeline {
            csv.push_str(&format!(
                "{:.3},{:.3}\n",
                due.as_secs_f64() * 1000.0,
                latency.as_secs_f64() * 1000.0
            ));
            if *latency > slow {
                *windows.entry(due.as_millis() / 100).or_default() += 1;
            }
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.csv"));
        std::fs::write(&path, csv)?;
        let slow_total: usize = windows.values().sum();
        let worst = windows.iter().max_by_key(|(_, n)| **n);
        let started = self
            .started_at
            .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        let window_count = self.elapsed.as_millis().div_ceil(100);
        let stolen = match (steal, self.started_at) {
            (Some(samples), Some(started_at)) => {
                let window_start =
                    |window: u128| started_at + Duration::from_millis(window as u64 * 100);
                let with_steal: Vec<u128> = (0..window_count)
                    .filter(|window| {
                        steal_between(samples, window_start(*window), window_start(window + 1))
                            > 0.0
                    })
                    .collect();
                let slow_in_them: usize = with_steal
                    .iter()
                    .filter_map(|window| windows.get(window))
                    .sum();
                format!(
                    "; the hypervisor took a core in {} of the windows, where {slow_in_them} of the slow ones were due",
                    with_steal.len()
                )
            }
            _ => String::new(),
        };
        Ok(format!(
            "{} (started at {:.3} s since the epoch): {slow_total} of {} over {} ms, in {} of {} windows of 100 ms{}{stolen}{}",
            path.display(),
            started.as_secs_f64(),
            timeline.len(),
            slow.as_millis(),
            windows.len(),
            window_count,
            match worst {
                Some((window, n)) => format!(" (most: {n} at {} ms)", window * 100),
                None => String::new(),
            },
            match self.steal_text() {
                Some(text) => format!("; {text} of the cores over the run"),
                None => String::new(),
            }
        ))
    }
}

/// `clients` tasks in a closed loop for `seconds`: each runs `client(deadline)`, which sends
/// one request after another until the deadline and returns what it measured.
async fn closed_loop<F, R>(clients: usize, seconds: u64, client: F) -> Sample
where
    F: Fn(Instant) -> R,
    R: Future<Output = Sample> + Send + 'static,
{
    let (started, steal) = (Instant::now(), Steal::now());
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(deadline)))
        .collect();
    let mut total = Sample::default();
    for task in tasks {
        if let Ok(sample) = task.await {
            total.merge(sample);
        }
    }
    total.elapsed = started.elapsed();
    total.steal = Steal::share_since(steal, total.elapsed);
    total
}

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times: Linux's `USER_HZ`, 100 on
/// every architecture it exports to user space.
const USER_HZ: f64 = 100.0;

/// The hypervisor's steal (`/proc/stat`): time this virtual machine's cores were ready to run
/// but the host ran something else. On this shared host it came in bursts of a few seconds,
/// up to 38% of the cores over a run of 8 s (2026-12-02); a read waiting for a core in
/// one is slow however little work it needs, so each run says how much the host took.
#[derive(Clone, Copy)]
struct Steal {
    /// Seconds of steal so far, summed over the cores.
    seconds: f64,
    /// The machine's cores, as `/proc/stat` lists them.
    cores: usize,
}

impl Steal {
    /// From the text of `/proc/stat`: its `cpu` line's eighth value (user, nice, system,
    /// idle, iowait, irq, softirq, steal), in clock ticks, and its `cpuN` lines.
    fn parse(stat: &str) -> Option<Self> {
        let total = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: f64 = total.split_whitespace().nth(7)?.parse().ok()?;
        let cores = stat
            .lines()
            .filter(|line| {
                line.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Some(Self {
            seconds: ticks / USER_HZ,
            cores: cores.max(1),
        })
    }

    /// The steal so far; `None` where `/proc/stat` cannot be read (not Linux).
    fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The share of the cores, in percent, the hypervisor took from `before` to now, over
    /// `elapsed`.
    fn share_since(before: Option<Self>, elapsed: Duration) -> Option<f64> {
        let (before, now) = (before?, Self::now()?);
        let capacity = elapsed.as_secs_f64().max(1e-9) * now.cores as f64;
        Some((now.seconds - before.seconds).max(0.0) / capacity * 100.0)
    }
}

/// The steal sampled every 20 ms by a thread of its own while the bench runs with `--trace`,
/// so a trace can say in which of its 100 ms windows the hypervisor took a core.
struct StealTimeline {
    samples: Arc<Mutex<Vec<(SystemTime, f64)>>>,
}

impl StealTimeline {
    /// Starts sampling; `None` where `/proc/stat` cannot be read. The thread runs until the
    /// process ends (a read of `/proc/stat` took 17 µs from Python here, so 50 a second cost
    /// under 0.1% of a core).
    fn start() -> Option<Self> {
        Steal::now()?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        std::thread::Builder::new()
            .name("steal-sampler".into())
            .spawn(move || {
                loop {
                    if let Some(steal) = Steal::now() {
                        sink.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((SystemTime::now(), steal.seconds));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .ok()?;
        Some(Self { samples })
    }

    /// The samples so far, oldest first.
    fn samples(&self) -> Vec<(SystemTime, f64)> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `samples` (a [`StealTimeline`]'s) as `steal.csv` holds them: seconds since the epoch, steal
/// seconds so far.
fn steal_csv(samples: &[(SystemTime, f64)]) -> String {
    let mut csv = String::from("unix_s,steal_s\n");
    for (when, seconds) in samples {
        let when = when
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        csv.push_str(&format!("{:.3},{seconds:.2}\n", when.as_secs_f64()));
    }
    csv
}

/// Of `samples` (when, steal seconds so far; oldest first): the steal between `from` and
/// `to`, each end read from the last sample at or before it.
fn steal_between(samples: &[(SystemTime, f64)], from: SystemTime, to: SystemTime) -> f64 {
    let at = |time: SystemTime| {
        let index = samples.partition_point(|(when, _)| *when <= time);
        index.checked_sub(1).map(|i| samples[i].1)
    };
    match (at(from), at(to)) {
        (Some(from), Some(to)) => (to - from).max(0.0),
        _ => 0.0,
    }
}

/// A counter read from `/proc` (Linux) for each process a run measures: every process named
/// `postgres` on this machine (by pid, so that a connection opened during a measurement counts
/// from zero), the server, and this load generator.
#[derive(Default)]
struct PerProcess {
    postgres: HashMap<u32, f64>,
    server: f64,
    bench: f64,
}

impl PerProcess {
    /// How much each part's counter grew from `before` to `self`, times `scale`, per one of
    /// `requests`: (server, PostgreSQL, load generator). PostgreSQL's is `None` when no
    /// `postgres` process runs on this machine (a remote database). A counter that fell (a
    /// thread that ended took its count with it) counts as none, never below.
    fn per_request(&self, before: &Self, requests: usize, scale: f64) -> (f64, Option<f64>, f64) {
        let grew = |after: f64, before: f64| (after - before).max(0.0);
        let per = |amount: f64| amount * scale / requests.max(1) as f64;
        let postgres: f64 = self
            .postgres
            .iter()
            .map(|(pid, after)| grew(*after, before.postgres.get(pid).copied().unwrap_or(0.0)))
            .sum();
        (
            per(grew(self.server, before.server)),
            (!self.postgres.is_empty()).then(|| per(postgres)),
            per(grew(self.bench, before.bench)),
        )
    }
}

/// What the processes a run measures have used so far: CPU seconds, and context switches
/// (voluntary or not, over all their threads: how often a thread gave up its core, mostly to
/// sleep until woken).
#[derive(Default)]
struct Usage {
    cpu: PerProcess,
    switches: PerProcess,
}

/// What a run cost the processes it measures, per request: (server, PostgreSQL, load
/// generator), PostgreSQL's `None` when no `postgres` process runs on this machine.
struct Cost {
    /// CPU milliseconds.
    cpu: (f64, Option<f64>, f64),
    /// Context switches.
    switches: (f64, Option<f64>, f64),
}

/// The context switches of `/proc/<pid>/task/<tid>/status` (one thread's), voluntary and not.
fn thread_switches(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.ends_with("ctxt_switches")
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .sum()
}

/// The context switches of every live thread of the process at `/proc/<pid>`.
fn process_switches(proc_dir: &Path) -> u64 {
    let Ok(tasks) = std::fs::read_dir(proc_dir.join("task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .map(|status| thread_switches(&status))
        .sum()
}

/// The process's name and its user plus system CPU seconds, from its `/proc/<pid>/stat`.
fn process_cpu(stat: &str) -> Option<(&str, f64)> {
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    // The fields after the name: state is the first, utime the 12th and stime the 13th.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((name, (utime + stime) / USER_HZ))
}

impl Usage {
    /// The counters now; `None` where `/proc` cannot be read (not Linux) or the server does
    /// not run here (`server_pid` `None`).
    fn now(server_pid: Option<u32>) -> Option<Self> {
        let server_pid = server_pid?;
        let mut times = Self::default();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((name, seconds)) = process_cpu(&stat) else {
                continue;
            };
            let switches = || process_switches(&entry.path()) as f64;
            if pid == server_pid {
                times.cpu.server = seconds;
                times.switches.server = switches();
            } else if pid == std::process::id() {
                times.cpu.bench = seconds;
                times.switches.bench = switches();
            } else if name == "postgres" {
                times.cpu.postgres.insert(pid, seconds);
                times.switches.postgres.insert(pid, switches());
            }
        }
        Some(times)
    }

    /// The CPU milliseconds each part used and the context switches it made since `before`
    /// (taken by [`Usage::now`]), per request of `sample`, failed ones included.
    fn since(before: Option<Self>, server_pid: Option<u32>, sample: &Sample) -> Option<Cost> {
        let requests = sample.latencies.len() + sample.errors() as usize;
        let (now, before) = (Self::now(server_pid)?, before?);
        Some(Cost {
            cpu: now.cpu.per_request(&before.cpu, requests, 1000.0),
            switches: now.switches.per_request(&before.switches, requests, 1.0),
        })
    }
}

/// `clients` clients in a closed loop through the server for `seconds`.
async fn capacity(http: &Http, world: &Arc<World>, op: Op, clients: usize, seconds: u64) -> Sample {
    #[cfg(target_os = "linux")]
    if let (Some(client), true) = (&http.read_loop, op.is_read()) {
        let pace = read_loop::Pace::Closed { clients, seconds };
        return loop_reads(client.clone(), world.clone(), op, pace).await;
    }
    closed_loop(clients, seconds, |deadline| {
        let (http, world) = (http.clone(), world.clone());
        async move {
            let mut sample = Sample::default();
            while Instant::now() < deadline {
                let start = Instant::now();
                let outcome = call(&http, &world, op).await;
                sample.add(outcome, start.elapsed());
            }
            sample
        }
    })
    .await
}

/// The load generator's clock for a fixed-rate run: sleeps to a due time to the microsecond.
///
/// tokio's timer ticks in whole milliseconds: paced by it, a request started up to 1 ms after
/// it was due, and that lateness, timed from the due time, was the load generator's, not the
/// server's (tuning step 9). On Linux the clock is a `timerfd` that tokio's reactor watches,
/// so the pacing task sleeps and starts each request on a runtime thread; a thread of its own
/// sleeping on the operating system's timer and handing each due time over, as before, cost
/// two more thread wake-ups per request, and the load generator as much CPU per read as the
/// server (tuning step 23). Elsewhere each sleep is a thread of tokio's blocking pool
/// sleeping on the operating system's timer.
#[cfg(target_os = "linux")]
struct Pacer {
    timer: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

#[cfg(target_os = "linux")]
impl Pacer {
    fn new() -> std::io::Result<Self> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: an `OwnedFd` is an open descriptor that stays open, the same one, until
        // it is dropped, and the `AsyncFd` owns it: what `register_with_interest` asks.
        #[allow(unsafe_code)]
        let timer = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(timer, tokio::io::Interest::READABLE)
        }?;
        Ok(Self { timer })
    }

    /// Returns at `due` (at once if it has passed).
    async fn sleep_until(&self, due: Instant) -> std::io::Result<()> {
        if due <= Instant::now() {
            return Ok(());
        }
        arm_timer(self.timer.get_ref(), due)?;
        loop {
            let mut ready = self.timer.readable().await?;
            // The expiry count; would-block means the readiness was stale.
            let mut expiries = [0u8; 8];
            match ready.try_io(|timer| Ok(rustix::io::read(timer.get_ref(), &mut expiries)?)) {
                Ok(read) => return read.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Arms the `timerfd` `timer` to fire once, at `due` (at once if it has passed).
#[cfg(target_os = "linux")]
fn arm_timer(timer: impl std::os::fd::AsFd, due: Instant) -> std::io::Result<()> {
    use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
    // A zero `it_value` would disarm the timer rather than fire it.
    let after = due
        .saturating_duration_since(Instant::now())
        .max(Duration::from_nanos(1));
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let at = Itimerspec {
        it_interval: zero,
        it_value: Timespec {
            tv_sec: after.as_secs() as _,
            tv_nsec: after.subsec_nanos() as _,
        },
    };
    timerfd_settime(timer, TimerfdTimerFlags::empty(), &at)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
struct Pacer;

#[cfg(not(target_os = "linux"))]
impl Pacer {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn sleep_until(&self, due: Instant) -> std::io::Result<()> {
        if let Some(early) = due.checked_duration_since(Instant::now()) {
            tokio::task::spawn_blocking(move || std::thread::sleep(early))
                .await
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// The search for the highest arrival rate at which a read's p99 holds its goal: a bisection
/// between the highest rate seen to hold it and the lowest seen to miss it (none and the
/// capacity before any run says). A tail is noisy, so a run may miss at a rate below one that
/// held; both stay on record as measured, and the next rate tried lies between them.
struct RateSearch {
    goal_ms: f64,
    capacity: f64,
    /// The highest rate that held the goal, and its latencies as the table prints them.
    held: Option<(f64, String)>,
    /// The lowest rate that missed it, and its p99 as the table prints it.
    missed: Option<(f64, f64, String)>,
}

impl RateSearch {
    fn new(goal_ms: f64, capacity: f64) -> Self {
        Self {
            goal_ms,
            capacity,
            held: None,
            missed: None,
        }
    }

    /// Records a run at `rate`: it held the goal when every request was answered and the p99
    /// is within it.
    fn record(&mut self, rate: f64, sample: &mut Sample) {
        let p99 = sample.percentile(0.99);
        if sample.errors() == 0 && p99 <= self.goal_ms {
            if self.held.as_ref().is_none_or(|(held, _)| rate > *held) {
                self.held = Some((rate, sample.latencies_and_steal()));
            }
        } else if self
            .missed
            .as_ref()
            .is_none_or(|(missed, ..)| rate < *missed)
        {
            self.missed = Some((rate, p99, sample.with_steal(format!("p99 {p99:.1}"))));
        }
    }

    /// The next rate to try: halfway between the highest that held and the lowest that missed.
    fn next(&self) -> f64 {
        let low = self.held.as_ref().map_or(0.0, |(rate, _)| *rate);
        let high = self
            .missed
            .as_ref()
            .map_or(self.capacity, |(rate, ..)| *rate);
        ((low + high) / 2.0).max(1.0)
    }

    /// The table's line for `op`.
    fn line(&self, op: Op) -> String {
        let share = |rate: f64| rate / self.capacity.max(1e-9) * 100.0;
        format!(
            "| {} | p99 ≤ {} ms | {:.0}/s | {} | {} |\n",
            op.describe(),
            self.goal_ms,
            self.capacity,
            match &self.held {
                Some((rate, latencies)) => {
                    format!("{rate:.0}/s ({:.0}%): {latencies}", share(*rate))
                }
                None => "none tried".to_owned(),
            },
            match &self.missed {
                Some((rate, _, p99)) => format!("{rate:.0}/s ({:.0}%): {p99}", share(*rate)),
                None => "none tried".to_owned(),
            },
        )
    }
}

/// `request` started at `rate` a second for `seconds`, each timed from when it was due.
async fn at_fixed_rate<F, R>(rate: f64, seconds: u64, request: F) -> Sample
where
    F: Fn() -> R + Send + 'static,
    R: Future<Output = Result<u64, String>> + Send + 'static,
{
    let sample = Arc::new(Mutex::new(Sample {
        started_at: Some(SystemTime::now()),
        ..Sample::default()
    }));
    let total = ((rate * seconds as f64).round() as u64).max(1);
    let steal = Steal::now();
    // The pacing runs as a task of its own, on a runtime thread: a request it spawns waits
    // in that thread's queue and starts as soon as the pacer sleeps again.
    let pacing = {
        let sample = sample.clone();
        tokio::spawn(async move {
            let pacer = Pacer::new().expect("a timer for the fixed-rate run");
            let started = Instant::now();
            sample
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .started = Some(started);
            let mut tasks = Vec::with_capacity(total as usize);
            for n in 0..total {
                let due = started + Duration::from_secs_f64(n as f64 / rate);
                pacer
                    .sleep_until(due)
                    .await
                    .expect("the fixed-rate run's timer");
                let (request, sample) = (request(), sample.clone());
                tasks.push(tokio::spawn(async move {
                    let outcome = request.await;
                    let latency = due.elapsed();
                    let mut sample = sample.lock().unwrap_or_else(PoisonError::into_inner);
                    if outcome.is_ok() {
                        sample
                            .timeline
                            .push((due.saturating_duration_since(started), latency));
                    }
                    sample.add(outcome, latency);
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
            started.elapsed()
        })
    };
    let elapsed = pacing.await.expect("the fixed-rate run");
    let mut sample = std::mem::take(&mut *sample.lock().unwrap_or_else(PoisonError::into_inner));
    sample.elapsed = elapsed;
    sample.steal = Steal::share_since(steal, elapsed);
    sample
}

/// The line of the stalls' table for a fixed-rate run of `op` at `rate` (`what`: which run),
/// where `op` has a p99 goal and the probe watched.
fn stall_line(
    probe: Option<&StallProbe>,
    op: Op,
    what: &str,
    rate: f64,
    sample: &mut Sample,
) -> Option<String> {
    let (probe, goal_ms, started) = (probe?, op.p99_goal_ms()?, sample.started?);
    let stalls = probe.between(started, started + sample.elapsed);
    let report = StallReport::new(
        started,
        sample.elapsed,
        &sample.timeline,
        &stalls,
        Duration::from_secs_f64(goal_ms / 1000.0),
    );
    let p99 = sample.percentile(0.99);
    Some(format!(
        "| {} | {what} | {rate:.0}/s | {} | {} ({:.1}) | {} | {} | {:.1}% | {:.1} |\n",
        op.describe(),
        sample.with_steal(format!("{p99:.1}")),
        report.counted,
        report.longest_ms,
        report.slow,
        report.slow_in_shadow,
        report.shadow_share,
        report.p99_outside_ms,
    ))
}

/// Requests through the server at `rate` a second for `seconds`, each timed from when it was
/// due, over at most `connections` connections at once (0: no bound).
async fn fixed_rate(
    http: &Http,
    world: &Arc<World>,
    op: Op,
    rate: f64,
    seconds: u64,
    connections: usize,
) -> Sample {
    #[cfg(target_os = "linux")]
    if let (Some(client), true) = (&http.read_loop, op.is_read()) {
        let pace = read_loop::Pace::Fixed {
            rate,
            seconds,
            connections,
        };
        return loop_reads(client.clone(), world.clone(), op, pace).await;
    }
    let in_flight = (connections > 0).then(|| Arc::new(tokio::sync::Semaphore::new(connections)));
    let (http, world) = (http.clone(), world.clone());
    at_fixed_rate(rate, seconds, move || {
        let (http, world) = (http.clone(), world.clone());
        let in_flight = in_flight.clone();
        async move {
            // A request takes a connection for its whole exchange; the wait for one is timed.
            let _permit = match in_flight {
                Some(in_flight) => {
                    Some(in_flight.acquire_owned().await.map_err(|e| e.to_string())?)
                }
                None => None,
            };
            call(&http, &world, op).await
        }
    })
    .await
}

/// Raw requests of `op` (a read, a step report or an order: [`Op::raw_at_rate`]) at `rate` a
/// second for `seconds` on `pool`, each timed from when it was due (the wait for a pooled
/// connection included): the latency the same machine gives the same work without the server,
/// at the server's rate.
async fn raw_fixed_rate(
    pool: &deadpool_postgres::Pool,
    world: &Arc<World>,
    op: Op,
    rate: f64,
    seconds: u64,
) -> Sample {
    let (pool, world) = (pool.clone(), world.clone());
    at_fixed_rate(rate, seconds, move || {
        let (pool, world) = (pool.clone(), world.clone());
        async move {
            let mut client = pool.get().await.map_err(|err| err.to_string())?;
            raw(&mut client, &world, op)
                .await
                .map_err(|e| format!("{e:#}"))
        }
    })
    .await
}

/// PostgreSQL's WAL counters (`pg_stat_wal`), to say what a write run cost in WAL: after a
/// checkpoint begins, the first change to each page writes the whole page to the WAL, so a
/// run in the wake of one writes more full-page images than a run long after one (tuning
/// step 20).
#[derive(Clone, Copy)]
struct WalCounters {
    bytes: f64,
    full_page_images: i64,
}

impl WalCounters {
    /// The counters now; `None` when they cannot be read (a role without the statistics).
    async fn now(db: &tokio_postgres::Client) -> Option<Self> {
        let row = db
            .query_one("SELECT wal_bytes::float8, wal_fpi FROM pg_stat_wal", &[])
            .await
            .ok()?;
        Some(Self {
            bytes: row.get(0),
            full_page_images: row.get(1),
        })
    }

    /// Per request of `sample` since `before`: kB of WAL and full-page images.
    async fn since(
        before: Option<Self>,
        db: &tokio_postgres::Client,
        sample: &Sample,
    ) -> Option<(f64, f64)> {
        let (before, now) = (before?, Self::now(db).await?);
        let requests = (sample.latencies.len() as u64 + sample.errors()).max(1) as f64;
        Some((
            (now.bytes - before.bytes) / 1024.0 / requests,
            (now.full_page_images - before.full_page_images) as f64 / requests,
        ))
    }
}

/// `clients` raw connections in a closed loop for `seconds`.
async fn raw_limit(
    pool: &deadpool_postgres::Pool,
    world: &Arc<World>,
    op: Op,
    clients: usize,
    seconds: u64,
) -> Sample {
    closed_loop(clients, seconds, |deadline| {
        let (pool, world) = (pool.clone(), world.clone());
        async move {
            let mut sample = Sample::default();
            let mut client = match pool.get().await {
                Ok(client) => client,
                Err(err) => {
                    sample.add(Err(err.to_string()), Duration::ZERO);
                    return sample;
                }
            };
            while Instant::now() < deadline {
                let start = Instant::now();
                let outcome = raw(&mut client, &world, op)
                    .await
                    .map_err(|e| format!("{e:#}"));
                sample.add(outcome, start.elapsed());
            }
            sample
        }
    })
    .await
}

/// The kernel's settings a read's tail was measured against, so a run can be reproduced:
/// its autogroup scheduling, which the PostgreSQL community has advised turning off on a
/// database host (each backend calls `setsid`, so each is a scheduling group of its own; in
/// tuning step 25's alternating runs it made no clear difference to the reads' tail), and, in
/// a virtual machine with the `haltpoll` idle driver, how long an idle core polls before it
/// halts (tuning step 29: no clear difference either). Empty where the kernel has neither.
fn kernel_text() -> String {
    let setting = |path: &str, name: &str| {
        std::fs::read_to_string(path)
            .map(|value| format!("{name} {}; ", value.trim()))
            .unwrap_or_default()
    };
    setting(
        "/proc/sys/kernel/sched_autogroup_enabled",
        "kernel.sched_autogroup_enabled",
    ) + &setting(
        "/sys/module/haltpoll/parameters/guest_halt_poll_ns",
        "haltpoll.guest_halt_poll_ns",
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The server's throughput over the raw limit's, or a dash when the raw side completed
/// nothing (its users' step budgets ran out): there is then no ratio to give.
fn ratio_text(server: &Sample, raw: &Sample) -> String {
    if raw.units == 0 {
        return "—".to_owned();
    }
    // A request without a unit moves one (`Op::units_per_request`): units are requests.
    format!("{:.2}×", server.units_per_second() / raw.units_per_second())
}

/// The rate a run at `asked` a second held (`Sample::held_per_second`), and its units.
fn held_text(sample: &Sample, op: Op, asked: f64) -> String {
    let held = sample.held_per_second(asked);
    if op.unit().is_empty() {
        format!("{held:.0}/s")
    } else {
        format!(
            "{held:.1}/s = {:.0} {}/s",
            held * op.units_per_request() as f64,
            op.unit()
        )
    }
}

fn rate_text(sample: &Sample, op: Op) -> String {
    if op.unit().is_empty() {
        format!("{:.0}/s", sample.per_second())
    } else {
        format!(
            "{:.1}/s = {:.0} {}/s",
            sample.per_second(),
            sample.units_per_second(),
            op.unit()
        )
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The reads' loop runs on a thread of the blocking pool; one that ended would take
        // its context switches out of the sums `Usage` reads from `/proc` during the next
        // run, so the pool keeps its threads for the whole bench.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            outcome = run(args) => outcome,
            // Dropping the run stops the server it started (`Server`'s drop), so an interrupted
            // bench leaves no server behind holding the database's connections.
            () = fitkart_sync_server::server::shutdown_signal() => {
                bail!("interrupted: the server it started is stopped; no report was written")
            }
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = fitkart_sync_server::db::parse_url(&args.database_url)?;
    let db = fitkart_sync_server::db::connect(&config).await?;
    // A server the bench starts gets the bench's secret; one already running has its own,
    // which clap asks for with `--server-url`.
    let secret = match (&args.server_url, args.jwt_secret.as_deref()) {
        (Some(_), Some(secret)) => secret,
        _ => SECRET,
    };
    let world = Arc::new(load_world(&db, secret).await?);
    let pool = fitkart_sync_server::db::pool(&args.database_url, args.clients)?;
    let before_start: DateTime<Utc> = db.query_one("SELECT clock_timestamp()", &[]).await?.get(0);
    let server = start_server(&args).await?;
    // A server already running may have begun its start-up jobs before the bench: waited for
    // all the same.
    let since = server.child.is_some().then_some(before_start);
    let start_up_jobs = wait_for_start_up_jobs(&db, since).await?;
    let http = Http {
        url: server.url.as_str().into(),
        reqwest: reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()?,
        reads: match args.read_client {
            ReadClientKind::Hyper => Some(Arc::new(ReadClient::new(&server.url)?)),
            ReadClientKind::Loop | ReadClientKind::Reqwest => None,
        },
        #[cfg(target_os = "linux")]
        read_loop: match args.read_client {
            ReadClientKind::Loop => Some(Arc::new(read_loop::ReadLoop::new(&server.url)?)),
            ReadClientKind::Hyper | ReadClientKind::Reqwest => None,
        },
    };
    #[cfg(not(target_os = "linux"))]
    if args.read_client == ReadClientKind::Loop {
        bail!("--read-client loop runs on Linux only");
    }
    // Devices for the pushes.
    for actor in world.server_users.iter().take(64) {
        let answer = http
            .reqwest
            .post(format!("{}/api/v1/devices", server.url))
            .bearer_auth(&actor.token)
            .header(PROTOCOL.0, PROTOCOL.1)
            .json(&serde_json::json!({"device_id": actor.device, "platform": "other"}))
            .send()
            .await?;
        if answer.status() == reqwest::StatusCode::UNAUTHORIZED && server.child.is_none() {
            bail!(
                "the server at {} refused the bench's token: sign with its FITKART_JWT_SECRET (--jwt-secret)",
                server.url
            );
        }
        answer.error_for_status()?;
    }
    let scale: (i64, i64) = {
        let row = db
            .query_one(
                // The records from the planner's statistics: counting 50 million rows read
                // the whole table before every run and pushed the pages a run needs out of
                // the kernel's cache.
                "SELECT (SELECT count(*) FROM users),
                        (SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
                         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                         WHERE i.inhparent = 'step_records'::regclass)",
                &[],
            )
            .await?;
        (row.get(0), row.get(1))
    };
    // The settings every figure depends on, so a run can be reproduced.
    let postgres: String = db
        .query_one(
            "SELECT format('PostgreSQL %s, shared_buffers %s, max_wal_size %s, \
                           checkpoint_timeout %s, database %s',
                           current_setting('server_version'), current_setting('shared_buffers'),
                           current_setting('max_wal_size'), current_setting('checkpoint_timeout'),
                           pg_size_pretty(pg_database_size(current_database())))",
            &[],
        )
        .await?
        .get(0);
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| args.only.is_empty() || args.only.iter().any(|o| o == op.name()))
        .collect();
    let mut table = format!(
        "### Server at scale{}\n\n{} users, about {} step records (the planner's estimate); {} clients, {} s per measurement{}; \
         latency at {}, timed from each request's due time; the reads sent by `--read-client {}`; \
         {}measured after the server's start-up jobs (ledger verification, upkeep: {:.1} s); \
         {}; {}load average at start {}; {}.\n\n\
         | operation | capacity (server) | latency under load: rate, p50 / p95 / p99 / max ms | raw-SQL limit, same run (for a read, a step report and an order, also its latency at the server's rate: p50 / p95 / p99 / max) | ratio | goal |\n\
         | --- | --- | --- | --- | --- | --- |\n",
        if args.label.is_empty() {
            String::new()
        } else {
            format!(" (`{}`)", args.label)
        },
        scale.0,
        scale.1,
        args.clients,
        args.seconds,
        if args.warmup > 0 {
            format!(
                ", each capacity and raw-limit run after an uncounted {} s of the same work",
                args.warmup
            )
        } else {
            String::new()
        },
        match args.rate {
            Some(rate) => format!("{rate:.0} requests a second"),
            None => format!("{:.0}% of the measured capacity", args.load_share * 100.0),
        },
        args.read_client.name(),
        match &server.child {
            Some(_) => String::new(),
            None => format!(
                "the server at {}, not started by the bench (its CPU is not read); ",
                server.url
            ),
        },
        start_up_jobs.as_secs_f64(),
        postgres,
        kernel_text(),
        load_average(),
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
    );
    println!("{table}");
    let mut notes = Vec::new();
    let mut cpu_lines = Vec::new();
    let mut goal_lines = Vec::new();
    let mut wal_lines = Vec::new();
    let mut at_rate_cpu_lines = Vec::new();
    let mut search_lines = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let steal_timeline = args.trace.as_ref().and_then(|_| StealTimeline::start());
    let probe = if args.no_stall_probe {
        None
    } else {
        StallProbe::start(cores as usize)
    };
    let mut stall_lines = Vec::new();
    for op in ops {
        // Progress on stderr (the table goes to stdout), one line per phase, so that a watcher
        // of a long run knows what is being measured now.
        let phase = |what: &str, seconds: u64| {
            eprintln!(
                "bench: {} {}: {what}, {seconds} s",
                Utc::now().format("%H:%M:%S"),
                op.name()
            )
        };
        let trace = |sample: &Sample, op: Op, run: &str| {
            if let Some(dir) = &args.trace {
                let name = format!("{}-{run}", op.name());
                let steal = steal_timeline.as_ref().map(StealTimeline::samples);
                let slow = Duration::from_millis(5);
                match sample.write_trace(dir, &name, slow, steal.as_deref()) {
                    Ok(line) => eprintln!("bench: trace {line}"),
                    Err(err) => eprintln!("bench: trace {name}: {err:#}"),
                }
            }
        };
        // A fixed-rate run of `op` through the server, the stall probe watching a read's. (Not
        // a write's: in the one pair of runs with and without it, 2026-12-03, the writes were
        // slower with it, by more than the machine's moment could be told from.)
        let server_at = |rate: f64, seconds: u64| {
            let watch = probe
                .as_ref()
                .filter(|_| !op.is_write())
                .map(StallProbe::watch);
            let run = fixed_rate(&http, &world, op, rate, seconds, args.connections);
            async move {
                let sample = run.await;
                drop(watch);
                sample
            }
        };
        if args.warmup > 0 {
            phase("warm-up (not counted)", args.warmup);
            capacity(&http, &world, op, args.clients, args.warmup).await;
        }
        phase("capacity", args.seconds);
        let wal_before = WalCounters::now(&db).await;
        let usage_before = Usage::now(server.pid());
        let mut cap = capacity(&http, &world, op, args.clients, args.seconds).await;
        let cap_cost = Usage::since(usage_before, server.pid(), &cap);
        let cap_wal = WalCounters::since(wal_before, &db, &cap).await;
        let rate = args
            .rate
            .unwrap_or(cap.per_second() * args.load_share)
            .max(1.0);
        if !op.is_write() {
            // Warm-up, not counted: an open loop keeps more requests in flight than the closed
            // loop before it, so the HTTP client opens connections and the server's pool grows
            // during its first second; that is the bench starting, not the server under load.
            // (Writes skip it: it would spend the users' step budgets and coins.)
            server_at(rate, 1).await;
        }
        phase(&format!("latency at {rate:.0}/s"), args.seconds);
        let usage_before = Usage::now(server.pid());
        let mut under = server_at(rate, args.seconds).await;
        let under_cost = Usage::since(usage_before, server.pid(), &under);
        trace(&under, op, "latency");
        stall_lines.extend(stall_line(probe.as_ref(), op, "latency", rate, &mut under));
        if let (Some(goal_ms), true) = (op.p99_goal_ms(), args.goal_search > 0) {
            let mut search = RateSearch::new(goal_ms, cap.per_second());
            search.record(rate, &mut under);
            for _ in 0..args.goal_search {
                let next = search.next();
                phase(
                    &format!("the p99 goal's rate: trying {next:.0}/s"),
                    args.seconds,
                );
                let mut sample = server_at(next, args.seconds).await;
                trace(&sample, op, &format!("search-{next:.0}"));
                stall_lines.extend(stall_line(
                    probe.as_ref(),
                    op,
                    "goal search",
                    next,
                    &mut sample,
                ));
                search.record(next, &mut sample);
            }
            search_lines.push(search.line(op));
        }
        if let Some(goal) = op.goal_per_second() {
            // The throughput goal as an arrival rate: whether the server answers that many a
            // second as they come, and how fast, rather than inferred from a closed loop.
            let goal_rate = (goal / op.units_per_request()) as f64;
            phase(&format!("the goal's rate, {goal_rate:.0}/s"), args.seconds);
            let mut held = server_at(goal_rate, args.seconds).await;
            trace(&held, op, "goal");
            goal_lines.push(format!(
                "| {} | {goal_rate:.0}/s{} | {} | {} | {} |\n",
                op.describe(),
                match op.unit() {
                    "" => String::new(),
                    unit => format!(" = {goal} {unit}/s"),
                },
                held_text(&held, op, goal_rate),
                held.latencies_and_steal(),
                held.errors(),
            ));
            if held.errors() > 0 {
                notes.push(format!(
                    "{} (at the goal's rate): {} failed: {:?}",
                    op.name(),
                    held.errors(),
                    held.errors
                ));
            }
        }
        if args.warmup > 0 {
            phase("raw-SQL warm-up (not counted)", args.warmup);
            raw_limit(&pool, &world, op, args.clients, args.warmup).await;
        }
        phase("raw-SQL limit", args.seconds);
        let wal_before = WalCounters::now(&db).await;
        let usage_before = Usage::now(server.pid());
        let raw = raw_limit(&pool, &world, op, args.clients, args.seconds).await;
        let raw_cost = Usage::since(usage_before, server.pid(), &raw);
        let raw_wal = WalCounters::since(wal_before, &db, &raw).await;
        if let (true, Some(server), Some(raw)) = (op.is_write(), cap_wal, raw_wal) {
            let text = |(kb, images): (f64, f64)| format!("{kb:.1} kB, {images:.1} full pages");
            wal_lines.push(format!(
                "| {} | {} | {} |\n",
                op.describe(),
                text(server),
                text(raw)
            ));
        }
        // The raw side's latency at the server's rate too: what this machine gives without
        // the server in the way. For a read, after a second's warm-up as the server's; for a
        // step report or an order without one (a warm-up would spend the raw users' step
        // budgets and coins), nor the stall probe, as the server's runs of a write.
        let mut raw_under = if !op.raw_at_rate() {
            None
        } else {
            if !op.is_write() {
                raw_fixed_rate(&pool, &world, op, rate, 1).await;
            }
            phase(&format!("raw-SQL latency at {rate:.0}/s"), args.seconds);
            let usage_before = Usage::now(server.pid());
            let watch = probe
                .as_ref()
                .filter(|_| !op.is_write())
                .map(StallProbe::watch);
            let mut raw_under = raw_fixed_rate(&pool, &world, op, rate, args.seconds).await;
            drop(watch);
            let raw_under_cost = Usage::since(usage_before, server.pid(), &raw_under);
            trace(&raw_under, op, "raw");
            if !op.is_write() {
                stall_lines.extend(stall_line(
                    probe.as_ref(),
                    op,
                    "raw read at the server's rate",
                    rate,
                    &mut raw_under,
                ));
            }
            if let (
                Some(Cost {
                    cpu: (server_ms, Some(postgres_ms), bench_ms),
                    switches: (server_cs, Some(postgres_cs), bench_cs),
                }),
                Some(Cost {
                    cpu: (_, Some(raw_postgres_ms), raw_bench_ms),
                    switches: (_, Some(raw_postgres_cs), raw_bench_cs),
                }),
            ) = (under_cost, raw_under_cost)
            {
                // How busy the three made the machine's cores at this rate.
                let busy = |ms: f64| ms * rate / 1000.0 / cores * 100.0;
                let total = server_ms + postgres_ms + bench_ms;
                let raw_total = raw_postgres_ms + raw_bench_ms;
                at_rate_cpu_lines.push(format!(
                    "| {} | {rate:.0}/s | {server_ms:.3} | {postgres_ms:.3} | {bench_ms:.3} | {:.0}% | {server_cs:.2} / {postgres_cs:.2} / {bench_cs:.2} | {raw_postgres_ms:.3} | {raw_bench_ms:.3} | {:.0}% | {raw_postgres_cs:.2} / {raw_bench_cs:.2} |\n",
                    op.describe(),
                    busy(total),
                    busy(raw_total),
                ));
            }
            Some(raw_under)
        };
        // The raw limit's steal too: a ratio is only as good as the runs on both sides of it.
        let raw_rate = raw.with_steal(rate_text(&raw, op));
        let raw_text = match raw_under.as_mut() {
            None => raw_rate,
            Some(at_rate) => format!("{raw_rate}; at {rate:.0}/s: {}", {
                let latencies = format!("{} ms", at_rate.latencies());
                at_rate.with_steal(latencies)
            }),
        };
        let ratio = ratio_text(&cap, &raw);
        let cap_p50 = if cap.latencies.is_empty() {
            "none answered".to_owned()
        } else {
            format!("p50 {:.1} ms", cap.percentile(0.5))
        };
        let line = format!(
            "| {} | {} ({cap_p50}{}) | {:.0}/s: {} | {}: {} | {} | {} |\n",
            op.describe(),
            rate_text(&cap, op),
            cap.steal_text()
                .map(|steal| format!(", {steal}"))
                .unwrap_or_default(),
            rate,
            under.latencies_and_steal(),
            op.raw(),
            raw_text,
            ratio,
            op.goal(),
        );
        print!("{line}");
        table.push_str(&line);
        if let (
            Some((server_ms, Some(postgres_ms), bench_ms)),
            Some((_, Some(raw_postgres_ms), raw_bench_ms)),
        ) = (cap_cost.map(|cost| cost.cpu), raw_cost.map(|cost| cost.cpu))
        {
            cpu_lines.push(format!(
                "| {} | {server_ms:.3} | {postgres_ms:.3} | {bench_ms:.3} | {raw_postgres_ms:.3} | {raw_bench_ms:.3} | {:.2}× |\n",
                op.describe(),
                (server_ms + postgres_ms) / raw_postgres_ms.max(1e-9),
            ));
        }
        let raw_under = raw_under.unwrap_or_default();
        for (what, sample) in [
            ("server", &cap),
            ("under load", &under),
            ("raw", &raw),
            ("raw at the server's rate", &raw_under),
        ] {
            if sample.errors() > 0 {
                notes.push(format!(
                    "{} ({what}): {} failed: {:?}",
                    op.name(),
                    sample.errors(),
                    sample.errors
                ));
            }
        }
        if op.is_write() {
            // Let autovacuum and checkpoints of one write test not land on the next.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    // The steal of the whole run, written once (the traces' lines read it as they go).
    if let (Some(dir), Some(timeline)) = (&args.trace, &steal_timeline) {
        let path = dir.join("steal.csv");
        match std::fs::write(&path, steal_csv(&timeline.samples())) {
            Ok(()) => eprintln!("bench: steal {}", path.display()),
            Err(err) => eprintln!("bench: steal {}: {err:#}", path.display()),
        }
    }
    if !goal_lines.is_empty() {
        let section = format!(
            "\nThe throughput goals as arrival rates: requests started at the goal's rate for \
             {} s, each timed from when it was due (as the latency runs); the rate held is \
             the answers a second from the first answer to the last (at most the rate \
             asked), so a server that falls behind shows a lower rate and a growing latency; \
             requests the bench could not send (every user's step budget spent) count \
             as failed and are not answers.\n\n\
             | operation | rate asked | rate held | p50 / p95 / p99 / max ms | failed |\n\
             | --- | --- | --- | --- | --- |\n{}",
            args.seconds,
            goal_lines.concat()
        );
        print!("{section}");
        table.push_str(&section);
    }
    if !search_lines.is_empty() {
        let section = format!(
            "\nThe reads' latency goals as a rate: the highest arrival rate found at which the \
             p99 held the goal, by bisection between none and the capacity ({} runs of {} s \
             after the latency run, each at the rate halfway between the highest that held \
             and the lowest that missed); beside it the lowest rate that missed. One run is \
             one sample of a noisy tail, so the bounds are approximate.\n\n\
             | operation | goal | capacity | highest rate that held it (share of capacity): p50 / p95 / p99 / max ms | lowest rate that missed it: p99 ms |\n\
             | --- | --- | --- | --- | --- |\n{}",
            args.goal_search,
            args.seconds,
            search_lines.concat()
        );
        print!("{section}");
        table.push_str(&section);
    }
    if let (Some(probe), false) = (&probe, stall_lines.is_empty()) {
        let section = format!(
            "\nThe machine's stalls in the reads' fixed-rate runs: a thread pinned to \
             each core{} slept 1 ms at a time; a wake-up {} ms or more late is a stall, the \
             core lost to the host (steal) or to the kernel. At half a capacity, a core lost \
             leaves the other the load of both: requests queue until it is back and while the \
             backlog drains, so a stall's shadow is the stall and as long again after it. \
             Beside each run: its stalls, how many requests over the goal were due in a \
             shadow, the shadows' share of the run, and the p99 of the requests due outside \
             every shadow (what the server gave where the machine kept its cores; the goal \
             itself is judged on every request).\n\n\
             | operation | run | rate | p99 ms | stalls of {} ms or more (longest ms) | requests over the goal | of them due in a shadow | shadows' share of the run | p99 outside the shadows, ms |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n{}",
            if probe.realtime() {
                " at real-time priority (`SCHED_FIFO` 1, above every other thread here)"
            } else {
                " (at ordinary priority: the bench may not set real-time, so a wake-up also \
                 waits for this machine's own threads)"
            },
            stalls::LATE.as_millis(),
            stalls::COUNTED.as_millis(),
            stall_lines.concat()
        );
        print!("{section}");
        table.push_str(&section);
    }
    if !at_rate_cpu_lines.is_empty() {
        let section = format!(
            "\nCPU time per request in the latency runs (an open loop at the rate asked), from \
             `/proc` as below, and the share of the machine's {cores:.0} cores the three used \
             at that rate; beside it the raw request's at the same rate (the reads, the step \
             report and the order). A request that arrives alone wakes each process it needs, \
             so it costs more CPU than one in the closed loop of the capacity runs (tuning \
             step 20), and half the closed loop's capacity keeps the cores busier than half. \
             The context switches a request (from each thread's \
             `/proc/<pid>/task/<tid>/status`) say how often each process's threads gave up \
             a core for it, mostly to sleep until the next message woke them.\n\n\
             | operation | rate | server ms | PostgreSQL ms | load generator ms | cores busy | context switches a request: server / PostgreSQL / load generator | raw: PostgreSQL ms | raw: load generator ms | raw: cores busy | raw: context switches a request, PostgreSQL / load generator |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n{}",
            at_rate_cpu_lines.concat()
        );
        print!("{section}");
        table.push_str(&section);
    }
    if !cpu_lines.is_empty() {
        let section = format!(
            "\nCPU time per request in the capacity runs, from `/proc` (every `postgres` \
             process on this machine, the server, the load generator), beside the raw-SQL \
             limit's per raw request; the last column is the server's and PostgreSQL's CPU \
             per request over PostgreSQL's per raw request. It counts work, not waiting, so it \
             moves less than a rate with what else the machine runs; PostgreSQL's includes \
             its background processes (WAL writer, checkpointer, autovacuum).\n\n\
             | operation | server ms | PostgreSQL ms | load generator ms | raw: PostgreSQL ms | raw: load generator ms | CPU against raw |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n{}",
            cpu_lines.concat()
        );
        print!("{section}");
        table.push_str(&section);
    }
    if !wal_lines.is_empty() {
        let section = format!(
            "\nWAL per write request in the capacity runs (`pg_stat_wal`): after a checkpoint \
             begins, the first change to each page writes the whole page to the WAL, so more \
             full-page images a request mean a run in the wake of a checkpoint (PostgreSQL's \
             log, with `log_checkpoints`, says when each began).\n\n\
             | operation | server: WAL per request | raw: WAL per request |\n\
             | --- | --- | --- |\n{}",
            wal_lines.concat()
        );
        print!("{section}");
        table.push_str(&section);
    }
    if args.only.is_empty() || args.only.iter().any(|o| o == "leaderboard_rebuild") {
        let section = leaderboard_rebuilds(&pool, &http.reqwest, &server.url, &world).await?;
        table.push('\n');
        table.push_str(&section);
    }
    if world.exhausted.load(Ordering::Relaxed) > 0 {
        notes.push(format!(
            "{} request(s) skipped: the users' step budget for today or their coins ran out",
            world.exhausted.load(Ordering::Relaxed)
        ));
    }
    drop(server);
    let ledger = fitkart_sync_server::rewards::ledger::verify(&pool.get().await?).await?;
    notes.push(format!(
        "verify-ledger after the run: {} ({} wallets, {} entries)",
        if ledger.is_ok() { "OK" } else { "INCONSISTENT" },
        ledger.wallets_checked,
        ledger.entries_checked
    ));
    table.push('\n');
    for note in &notes {
        println!("{note}");
        table.push_str(&format!("- {note}\n"));
    }
    if let Some(path) = &args.out {
        std::fs::write(path, &table).with_context(|| format!("write {}", path.display()))?;
        println!("\nwritten to {}", path.display());
    }
    if !ledger.is_ok() {
        bail!(
            "the ledger is inconsistent after the run: {:?}",
            ledger.problems
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_starts_nothing_before_it_is_due() {
        let pacer = Pacer::new().unwrap();
        let start = Instant::now();
        for micros in [1, 150, 900, 2_500, 0] {
            let due = Instant::now() + Duration::from_micros(micros);
            pacer.sleep_until(due).await.unwrap();
            assert!(
                Instant::now() >= due,
                "woke before a due time {micros} µs ahead"
            );
        }
        // A due time already past returns at once (without arming the timer, which would
        // otherwise never fire and hang here).
        pacer.sleep_until(start).await.unwrap();
    }

    #[test]
    fn the_reads_client_looks_up_a_host_name_for_a_server_elsewhere() {
        let client = ReadClient::new("http://localhost:18080").unwrap();
        assert!(client.address.ip().is_loopback());
        assert_eq!(client.address.port(), 18080);
        assert_eq!(client.host, "localhost:18080");
        assert!(ReadClient::new("https://localhost:18080").is_err());
    }

    #[tokio::test]
    async fn the_reads_client_sends_the_users_token_and_keeps_its_connection() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // A server that accepts one connection, answers its first request with 200 and its
        // second with 404, and returns the heads it was sent.
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (mut heads, mut buffer) = (Vec::new(), Vec::new());
            while heads.len() < 2 {
                let mut chunk = [0u8; 4096];
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the client closed its connection");
                buffer.extend_from_slice(&chunk[..read]);
                while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = buffer.drain(..end + 4).collect();
                    let answer = match heads.len() {
                        0 => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
                        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found",
                    };
                    stream.write_all(answer.as_bytes()).await.unwrap();
                    heads.push(String::from_utf8(head).unwrap().to_lowercase());
                }
            }
            heads
        });
        let client = ReadClient::new(&format!("http://{address}")).unwrap();
        let actor = Actor {
            id: Uuid::now_v7(),
            token: "t0ken".to_owned(),
            authorization: hyper::header::HeaderValue::from_static("Bearer t0ken"),
            device: Uuid::now_v7(),
            steps: Mutex::new(StepTicket {
                steps: 0,
                minute: 0,
                cap: 0,
            }),
            spent: AtomicBool::new(false),
            orders_left: AtomicU64::new(0),
        };
        let within = |get| tokio::time::timeout(Duration::from_secs(10), get);
        let (status, body) = within(client.get(Op::Wallet, &actor))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"{}"[..]));
        assert_eq!(answered(Op::Wallet, status, &body), Ok(1));
        // The second read goes over the same connection: the server accepts no other.
        let (status, body) = within(client.get(Op::Profile, &actor))
            .await
            .expect("the second read over the first read's connection")
            .unwrap();
        let error = answered(Op::Profile, status, &body).unwrap_err();
        assert!(
            error.contains("404") && error.contains("not found"),
            "{error}"
        );
        let heads = server.await.unwrap();
        assert!(
            heads[0].starts_with("get /api/v1/wallet http/1.1\r\n"),
            "{heads:?}"
        );
        assert!(
            heads[1].starts_with("get /api/v1/me http/1.1\r\n"),
            "{heads:?}"
        );
        for head in &heads {
            for line in [
                "authorization: bearer t0ken\r\n".to_owned(),
                "x-fitkart-protocol-version: 1\r\n".to_owned(),
                format!("host: {address}\r\n"),
            ] {
                assert!(head.contains(&line), "{line:?} missing from {head:?}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fixed_rate_run_sends_every_request_due() {
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let sample = at_fixed_rate(2_000.0, 1, move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(1)
            }
        })
        .await;
        assert_eq!(sent.load(Ordering::Relaxed), 2_000);
        assert_eq!(sample.latencies.len(), 2_000);
        assert_eq!(sample.timeline.len(), 2_000);
        // The last request was due 999.5 ms after the first.
        assert!(sample.elapsed >= Duration::from_micros(999_500));
    }

    #[test]
    fn a_warm_up_given_after_the_scripts_default_overrides_it() {
        let url = ["--database-url", "postgres://x/y"];
        let parse =
            |more: &[&str]| Args::try_parse_from(["fitkart-bench"].iter().chain(&url).chain(more));
        assert_eq!(parse(&[]).unwrap().warmup, 0);
        assert_eq!(parse(&["--warmup", "30"]).unwrap().warmup, 30);
        assert_eq!(
            parse(&["--warmup", "30", "--warmup", "0"]).unwrap().warmup,
            0
        );
        assert!(parse(&["--warmup", "-1"]).is_err());
    }

    #[test]
    fn the_rate_held_is_the_answers_pace_and_falls_when_the_server_falls_behind() {
        let ms = Duration::from_millis;
        // 400 requests due at 50 a second.
        let run = |latency: &dyn Fn(u64) -> Duration| Sample {
            timeline: (0..400).map(|n| (ms(n * 20), latency(n))).collect(),
            elapsed: ms(7980) + latency(399),
            ..Sample::default()
        };
        // Each answered in 150 ms: held, though the whole run took 8.13 s.
        let steady = run(&|_| ms(150));
        assert!((steady.held_per_second(50.0) - 50.0).abs() < 1e-9);
        assert!(steady.per_second() < 49.3);
        // Each answered 2 ms later than the one before: the server does one every 22 ms.
        let behind = run(&|n| ms(150 + 2 * n));
        let held = behind.held_per_second(50.0);
        assert!((held - 1000.0 / 22.0).abs() < 1e-6, "{held}");
        // A stall at the start, then caught up: never more than asked.
        let caught_up = run(&|n| ms(if n < 50 { 1000 - 20 * n } else { 10 }));
        assert_eq!(caught_up.held_per_second(50.0), 50.0);
        assert_eq!(Sample::default().held_per_second(50.0), 0.0);
    }

    #[test]
    fn a_step_report_goes_to_the_next_user_with_budget_left() {
        let user = |steps: i64, cap: i64| Actor {
            id: Uuid::now_v7(),
            token: String::new(),
            authorization: hyper::header::HeaderValue::from_static("Bearer -"),
            device: Uuid::now_v7(),
            steps: Mutex::new(StepTicket {
                steps,
                minute: 10,
                cap,
            }),
            spent: AtomicBool::new(false),
            orders_left: AtomicU64::new(0),
        };
        // The second user has one report left; the others none.
        let users = [user(500, 500), user(400, 500), user(900, 900)];
        let (first, (steps, _, _)) = next_reporter(&users, 0, 60).unwrap();
        assert_eq!((first.id, steps), (users[1].id, 500));
        assert!(users[0].spent.load(Ordering::Relaxed));
        assert!(next_reporter(&users, 1, 60).is_none());
        assert!(users.iter().all(|u| u.spent.load(Ordering::Relaxed)));
        // One report a minute: none before the user's next minute has come.
        let early = [user(0, 500)];
        assert!(next_reporter(&early, 0, 10).is_none());
    }

    #[test]
    fn the_goal_search_closes_in_on_the_highest_rate_that_held_the_p99() {
        // A run whose every request took `ms`, or one that failed.
        let run = |ms: u64, failed: bool| {
            let mut sample = Sample::default();
            for _ in 0..100 {
                sample.add(Ok(1), Duration::from_millis(ms));
            }
            if failed {
                sample.add(Err("503".into()), Duration::from_millis(1));
            }
            sample
        };
        let mut search = RateSearch::new(5.0, 1000.0);
        assert_eq!(
            search.next(),
            500.0,
            "nothing tried: halfway to the capacity"
        );
        search.record(500.0, &mut run(9, false));
        assert_eq!(search.next(), 250.0, "a miss at 500: halfway below it");
        search.record(250.0, &mut run(2, false));
        assert_eq!(
            search.next(),
            375.0,
            "a hold at 250: halfway up to the miss"
        );
        // A failed request is a miss whatever the latency of the others.
        search.record(375.0, &mut run(2, true));
        assert_eq!(search.next(), 312.5);
        // Noise: a miss below the highest hold is kept as measured; the next rate lies
        // between them.
        search.record(312.5, &mut run(2, false));
        search.record(300.0, &mut run(7, false));
        assert_eq!(search.next(), 306.25);
        let line = search.line(Op::Profile);
        assert!(
            line.contains("| 312/s (31%): 2.0 / 2.0 / 2.0 / 2.0 |"),
            "{line}"
        );
        assert!(line.contains("| 300/s (30%): p99 7.0 |"), "{line}");
    }

    #[test]
    fn the_ratio_is_a_dash_when_the_raw_side_did_nothing() {
        let sample = |units: u64| Sample {
            units,
            elapsed: Duration::from_secs(8),
            ..Sample::default()
        };
        assert_eq!(ratio_text(&sample(800), &sample(1000)), "0.80×");
        assert_eq!(ratio_text(&sample(800), &sample(0)), "—");
    }

    #[test]
    fn a_trace_lists_requests_by_due_time_and_says_where_the_slow_ones_fell() {
        let ms = Duration::from_millis;
        let sample = Sample {
            // Finished out of order; two slow requests in the window of 200-300 ms, one in
            // the window of 0-100 ms.
            timeline: vec![
                (ms(250), ms(9)),
                (ms(10), ms(1)),
                (ms(220), ms(12)),
                (ms(50), ms(6)),
                (ms(150), ms(2)),
            ],
            elapsed: ms(400),
            ..Sample::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let line = sample
            .write_trace(dir.path(), "wallet-latency", ms(5), None)
            .unwrap();
        assert!(
            line.contains("3 of 5 over 5 ms, in 2 of 4 windows of 100 ms (most: 2 at 200 ms)"),
            "{line}"
        );
        let csv = std::fs::read_to_string(dir.path().join("wallet-latency.csv")).unwrap();
        let due: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(due, ["10.000", "50.000", "150.000", "220.000", "250.000"]);
        assert!(csv.starts_with("due_ms,latency_ms\n"));
    }

    #[test]
    fn a_trace_says_which_slow_requests_were_due_while_the_hypervisor_took_a_core() {
        let ms = Duration::from_millis;
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let sample = Sample {
            // Slow requests in the windows of 0-100 ms (one) and 200-300 ms (two).
            timeline: vec![(ms(50), ms(6)), (ms(220), ms(12)), (ms(250), ms(9))],
            elapsed: ms(400),
            started_at: Some(start),
            steal: Some(2.5),
            ..Sample::default()
        };
        // The host took 20 ms between 210 and 260 ms, and nothing else.
        let steal = [
            (start, 5.0),
            (start + ms(210), 5.0),
            (start + ms(260), 5.02),
            (start + ms(390), 5.02),
        ];
        let dir = tempfile::tempdir().unwrap();
        let line = sample
            .write_trace(dir.path(), "profile-latency", ms(5), Some(&steal))
            .unwrap();
        assert!(
            line.contains(
                "the hypervisor took a core in 1 of the windows, where 2 of the slow ones were due; steal 2.5% of the cores over the run"
            ),
            "{line}"
        );
        let csv = steal_csv(&steal);
        assert!(csv.starts_with("unix_s,steal_s\n"), "{csv}");
        assert_eq!(csv.lines().nth(3), Some("1000.260,5.02"), "{csv}");
    }

    #[test]
    fn steal_is_read_from_the_cpu_line_in_clock_ticks_over_every_core() {
        let stat = "cpu  120182 0 29266 81905 1139 0 1516 7241 0 0\n\
                    cpu0 60000 0 14000 41000 500 0 700 3600 0 0\n\
                    cpu1 60182 0 15266 40905 639 0 816 3641 0 0\n\
                    intr 123 0\nctxt 456\n";
        let steal = Steal::parse(stat).unwrap();
        assert_eq!(steal.seconds, 72.41);
        assert_eq!(steal.cores, 2);
        assert!(Steal::parse("intr 123\n").is_none());
        // 8 s of a 2-core machine, 0.4 s of it stolen: 2.5%.
        let samples = [
            (SystemTime::UNIX_EPOCH, 1.0),
            (SystemTime::UNIX_EPOCH + Duration::from_secs(8), 1.4),
        ];
        let stolen = steal_between(
            &samples,
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::from_secs(9),
        );
        assert!((stolen - 0.4).abs() < 1e-9, "{stolen}");
        // Before the first sample nothing is known, so nothing counts.
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(steal_between(&samples[1..], before, before), 0.0);
    }

    #[test]
    fn a_run_nobody_answered_says_so_instead_of_printing_nans() {
        let mut spent = Sample::default();
        spent.add(Err("no step budget left today".into()), Duration::ZERO);
        assert_eq!(spent.latencies(), "none answered");
        let mut answered = Sample::default();
        answered.add(Ok(1), Duration::from_millis(3));
        assert_eq!(answered.latencies(), "3.0 / 3.0 / 3.0 / 3.0");
    }

    #[test]
    fn the_raw_side_runs_at_the_servers_rate_for_reads_and_the_writes_with_a_latency_goal() {
        let not_at_rate: Vec<_> = Op::ALL.into_iter().filter(|op| !op.raw_at_rate()).collect();
        assert_eq!(not_at_rate, [Op::Push500, Op::Batch1000]);
    }

    #[test]
    fn a_rate_search_line_gives_each_runs_steal() {
        let run = |p99_ms: u64, steal: f64| Sample {
            latencies: vec![Duration::from_millis(p99_ms)],
            steal: Some(steal),
            ..Sample::default()
        };
        let mut search = RateSearch::new(5.0, 1000.0);
        search.record(500.0, &mut run(9, 6.25));
        search.record(250.0, &mut run(2, 0.0));
        let line = search.line(Op::Profile);
        assert!(
            line.contains("| 250/s (25%): 2.0 / 2.0 / 2.0 / 2.0 (steal 0.0%) | 500/s (50%): p99 9.0 (steal 6.2%) |"),
            "{line}"
        );
    }

    #[test]
    fn a_process_cpu_time_is_read_from_its_stat_line_whatever_its_name() {
        // utime 250 and stime 50 ticks: 3 s; a name may hold spaces and parentheses.
        let stat = "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194304 125 0 0 0 250 50 0 0 20 0 1 0 658692";
        assert_eq!(process_cpu(stat), Some(("postgres: a (b) c", 3.0)));
        assert_eq!(process_cpu("4242 (cut short) S 1 2"), None);
        // This process reads itself.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(process_cpu(&own).is_some_and(|(_, seconds)| seconds >= 0.0));
    }

    /// Counters of PostgreSQL's processes by pid, the server's and the load generator's.
    fn counters(postgres: &[(u32, f64)], server: f64, bench: f64) -> PerProcess {
        PerProcess {
            postgres: postgres.iter().copied().collect(),
            server,
            bench,
        }
    }

    #[test]
    fn cpu_per_request_counts_a_connection_opened_meanwhile_from_zero() {
        let before = counters(&[(1, 10.0), (2, 5.0)], 1.0, 0.5);
        // Backend 2 exited; backend 3 is new.
        let after = counters(&[(1, 11.0), (3, 1.0)], 1.5, 0.6);
        let (server, postgres, bench) = after.per_request(&before, 1000, 1000.0);
        assert!((server - 0.5).abs() < 1e-9, "{server}");
        assert!((postgres.unwrap() - 2.0).abs() < 1e-9, "{postgres:?}");
        assert!((bench - 0.1).abs() < 1e-9, "{bench}");
        let remote = PerProcess::default().per_request(&PerProcess::default(), 10, 1000.0);
        assert_eq!(remote.1, None);
    }

    #[test]
    fn context_switches_are_counted_over_every_thread_and_per_request() {
        let status =
            "Name:\tpostgres\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(thread_switches(status), 127);
        assert_eq!(thread_switches("Name:\tx\n"), 0);
        // This process has at least its main thread and the test's, each with a count.
        let own = process_switches(Path::new("/proc/self"));
        assert!(own > 0, "{own}");
        let before = counters(&[(1, 100.0), (2, 50.0)], 1_000.0, 500.0);
        // Backend 2 exited; backend 3 is new; a server thread ended, taking its count.
        let after = counters(&[(1, 300.0), (3, 100.0)], 900.0, 700.0);
        assert_eq!(after.per_request(&before, 100, 1.0), (0.0, Some(3.0), 2.0));
    }
}

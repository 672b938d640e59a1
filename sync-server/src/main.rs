//! The `fitkart-sync-server` command line: `serve` (the default), `migrate`, `seed`,
//! `create-admin`, `generate` and the operator commands. Every option can also come from the environment.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fitkart_sync_server::auth::bootstrap::{self, AdminBootstrap};
use fitkart_sync_server::config::{
    DEFAULT_DATABASE_URL, DEFAULT_LISTEN, JwtSecret, MetricsToken, ServerConfig,
};
use fitkart_sync_server::rewards::ledger;
use fitkart_sync_server::server::{self, Server};
use fitkart_sync_server::{db, seeds};

/// The server's allocator: mimalloc instead of the C library's. A push of 500 mutations
/// builds and drops tens of thousands of small JSON values, and glibc's malloc and free took
/// 35-40% of the server's `perf` samples in it (docs/benchmarks.md, tuning step 21).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The FitKart sync server: auth, idempotent sync, coin ledger, orders and admin API.
#[derive(Debug, Parser)]
#[command(
    name = "fitkart-sync-server",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// PostgreSQL URL of the FitKart database; it is created if it does not exist.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    database_url: String,

    /// Log format.
    #[arg(long, env = "FITKART_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

// Parsed once at start: the size of the `serve` variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default). Migrates and seeds on start unless told not to.
    Serve(ServeArgs),
    /// Apply pending schema migrations, then exit.
    Migrate,
    /// Load the seed data (achievements, products, settings); loading twice changes nothing.
    Seed,
    /// Create an administrator. The password comes from FITKART_ADMIN_PASSWORD or a prompt.
    CreateAdmin(CreateAdminArgs),
    /// Prove every wallet equals the sums of its ledger and no balance ever went negative.
    /// Exits 1 with a report when it finds a problem.
    VerifyLedger,
    /// Rebuild the leaderboards now (every period, or one) and print how many users each ranks.
    RefreshLeaderboard(RefreshLeaderboardArgs),
    /// Import the reward catalogue from a Shopify products.json export (a file or an http(s)
    /// URL), for a nightly job. Exits 2 when the feed is unusable.
    ImportProducts(ImportProductsArgs),
    /// Fill a new database with a deterministic synthetic world for benchmarks (users, step
    /// history, rewards, achievements, orders) through COPY, then rebuild the leaderboards.
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FITKART_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Secret (at least 32 bytes) that signs access tokens. Required by release builds.
    #[arg(long, env = "FITKART_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// PostgreSQL URL of a streaming replica of the database: reads that tolerate lag
    /// (history, catalogue, leaderboards, pulls) go there while it has caught up with the
    /// caller's own writes, to the primary otherwise.
    #[arg(long, env = "FITKART_READ_DATABASE_URL", hide_env_values = true)]
    read_database_url: Option<String>,

    /// Do not apply migrations on start (readiness then reports an old schema as not ready).
    #[arg(long, env = "FITKART_NO_MIGRATE")]
    no_migrate: bool,

    /// Do not load the seed data on start.
    #[arg(long, env = "FITKART_NO_SEED")]
    no_seed: bool,

    /// Maximum pooled database connections serving requests (the background jobs have 4 of
    /// their own).
    #[arg(long, env = "FITKART_DB_POOL_SIZE", default_value_t = fitkart_sync_server::config::DEFAULT_DB_POOL_SIZE)]
    db_pool_size: usize,

    /// Group transactions of step reports in flight at once: small step reports of different
    /// users that arrive together share one transaction and one commit (0: each alone).
    #[arg(long, env = "FITKART_STEP_REPORT_GROUPS", default_value_t = fitkart_sync_server::rewards::groups::DEFAULT_GROUPS)]
    step_report_groups: usize,

    /// Step-report requests in one group transaction at most (0 or 1: no grouping).
    #[arg(long, env = "FITKART_STEP_REPORT_GROUP_MAX", default_value_t = fitkart_sync_server::rewards::groups::DEFAULT_MAX_GROUP)]
    step_report_group_max: usize,

    /// Seconds one request may take before it is answered 408.
    #[arg(long, env = "FITKART_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,

    /// Seconds the catalogue import route may take (it may download a feed) before it is answered 408.
    #[arg(long, env = "FITKART_IMPORT_TIMEOUT_SECS", default_value_t = 120)]
    import_timeout_secs: u64,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "FITKART_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    body_limit_bytes: usize,

    /// Hosts a catalogue import by URL may fetch from although they resolve to a private,
    /// loopback or link-local address (on-premises feeds), comma-separated.
    #[arg(long, env = "FITKART_IMPORT_ALLOWED_HOSTS", value_delimiter = ',')]
    import_allowed_hosts: Vec<String>,

    /// Take the client address from X-Forwarded-For (only behind a trusted proxy).
    #[arg(long, env = "FITKART_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,

    /// UTC time of day (HH:MM) of the nightly leaderboard rebuild.
    #[arg(long, env = "FITKART_LEADERBOARD_REFRESH_AT", default_value = "03:00", value_parser = parse_time_of_day)]
    leaderboard_refresh_at: chrono::NaiveTime,

    /// Rebuild the leaderboards every N seconds instead of nightly (tests and development).
    #[arg(long, env = "FITKART_LEADERBOARD_REFRESH_INTERVAL_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    leaderboard_refresh_interval_secs: Option<u64>,

    /// With --trust-forwarded-for: how many proxies in front of the server append to
    /// X-Forwarded-For. The client address is the entry this many places from the right.
    #[arg(long, env = "FITKART_TRUSTED_PROXY_HOPS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    trusted_proxy_hops: u64,

    /// Serve GET /metrics (without a token) on this second address, e.g. 127.0.0.1:9464.
    /// Bind it to an interface only your monitoring reaches.
    #[arg(long, env = "FITKART_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,

    /// Serve GET /metrics on the public listener to callers presenting this bearer token
    /// (at least 16 bytes). Without it the public listener answers /metrics 404.
    #[arg(long, env = "FITKART_METRICS_TOKEN", hide_env_values = true, value_parser = parse_metrics_token)]
    metrics_token: Option<MetricsToken>,

    /// The JWT secret before a rotation: access tokens it signed are still accepted (new ones
    /// are signed with FITKART_JWT_SECRET). Remove it once the access-token lifetime (15 min)
    /// has passed since every instance runs with the new secret.
    #[arg(long, env = "FITKART_JWT_PREVIOUS_SECRET", hide_env_values = true)]
    jwt_previous_secret: Option<String>,

    /// Seconds between runs of the database upkeep (partitions, retention, pruning); it runs
    /// once per due time across all instances.
    #[arg(long, env = "FITKART_UPKEEP_INTERVAL_SECS", default_value_t = 6 * 60 * 60, value_parser = clap::value_parser!(u64).range(1..))]
    upkeep_interval_secs: u64,

    /// Months of step records kept in step_records (the current month counts; at least 2).
    /// Older monthly partitions are detached and moved to the `archive` schema. Unset: keep all.
    #[arg(long, env = "FITKART_STEP_RETENTION_MONTHS", value_parser = clap::value_parser!(u32).range(2..=1200))]
    step_retention_months: Option<u32>,

    /// Days after which a pushed mutation the server has no stored outcome for is rejected
    /// `mutation_expired`, and stored outcomes are pruned.
    #[arg(long, env = "FITKART_SYNC_REPLAY_WINDOW_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    sync_replay_window_days: u64,

    /// Hours between background ledger verifications (0: never).
    #[arg(
        long,
        env = "FITKART_LEDGER_VERIFY_INTERVAL_HOURS",
        default_value_t = 24
    )]
    ledger_verify_interval_hours: u64,
}

#[derive(Debug, Clone, Args)]
struct CreateAdminArgs {
    /// The administrator's email address.
    #[arg(long)]
    email: String,

    /// The display name.
    #[arg(long, default_value = "Administrator")]
    display_name: String,

    /// If an account with this email exists, make it an administrator and set the password.
    #[arg(long)]
    promote: bool,
}

#[derive(Debug, Clone, Args)]
struct ImportProductsArgs {
    /// The products.json file, or an http(s) URL to download it from.
    #[arg(value_name = "FILE_OR_URL")]
    source: String,

    /// Accept a feed without products (it deactivates every imported product).
    #[arg(long)]
    allow_empty: bool,
}

#[derive(Debug, Clone, Args)]
struct RefreshLeaderboardArgs {
    /// Only this period: weekly, monthly or all_time (default: every period).
    #[arg(long)]
    period: Option<fitkart_sync_server::rewards::leaderboard::Period>,
}

fn parse_metrics_token(value: &str) -> Result<MetricsToken, String> {
    MetricsToken::new(value)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PresetArg {
    /// About 1,000 users and 70,000 step records (CI).
    Small,
    /// About 10,000 users and 3 million step records.
    Medium,
    /// 100,000 users and about 50 million step records (the seed's scale).
    Seed,
}

#[derive(Debug, Clone, Args)]
struct GenerateArgs {
    /// The size to generate; --users and --days override its parts.
    #[arg(long, value_enum, default_value_t = PresetArg::Small)]
    preset: PresetArg,

    /// Users to create.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    users: Option<u64>,

    /// Days of history, ending yesterday.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: Option<u32>,

    /// The seed: the same seed (and --today) gives the same rows.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// The day the history ends before, as YYYY-MM-DD (default: today in UTC).
    #[arg(long)]
    today: Option<chrono::NaiveDate>,
}

fn parse_time_of_day(value: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(value, "%H:%M")
        .map_err(|_| format!("`{value}` is not a time of day as HH:MM (UTC)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => serve(cli.database_url, cli.serve).await,
        Some(Command::Serve(args)) => serve(cli.database_url, args).await,
        Some(Command::Migrate) => {
            db::ensure_database(&cli.database_url).await?;
            let applied = db::migrate(&cli.database_url).await?;
            println!(
                "applied {applied} migration(s); schema is at version {}",
                db::latest_migration_version()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Seed) => {
            let pool = db::pool(&cli.database_url, 1)?;
            let report = seeds::load(&mut pool.get().await?).await?;
            println!(
                "seed loaded: {} achievement(s), {} product(s), {} setting(s) added",
                report.achievements, report.products, report.settings
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::CreateAdmin(args)) => create_admin(&cli.database_url, args).await,
        Some(Command::RefreshLeaderboard(args)) => {
            refresh_leaderboard(&cli.database_url, args).await
        }
        Some(Command::ImportProducts(args)) => import_products(&cli.database_url, args).await,
        Some(Command::Generate(args)) => generate(&cli.database_url, args).await,
        Some(Command::VerifyLedger) => {
            let pool = db::pool(&cli.database_url, 1)?;
            let report = ledger::verify(&pool.get().await?).await?;
            record_verification(&pool, &report).await;
            println!(
                "checked {} wallet(s) and {} ledger entr(ies)",
                report.wallets_checked, report.entries_checked
            );
            if report.is_ok() {
                println!("ledger OK");
                Ok(ExitCode::SUCCESS)
            } else {
                for problem in &report.problems {
                    println!("PROBLEM: {problem}");
                }
                println!("ledger INCONSISTENT: {} problem(s)", report.problems.len());
                Ok(ExitCode::from(1))
            }
        }
    }
}

async fn serve(database_url: String, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (jwt_secret, generated) = JwtSecret::from_option(args.jwt_secret)?;
    if generated {
        tracing::warn!(
            "FITKART_JWT_SECRET is not set: using a random secret (debug build only); \
             tokens will not survive a restart"
        );
    }
    let mut config = ServerConfig::new(database_url, jwt_secret);
    config.listen = args.listen;
    config.read_database_url = args.read_database_url.filter(|url| !url.is_empty());
    config.migrate_on_start = !args.no_migrate;
    config.seed_on_start = !args.no_seed;
    config.db_pool_size = args.db_pool_size;
    config.step_report_groups = args.step_report_groups;
    config.step_report_group_max = args.step_report_group_max;
    config.request_timeout = Duration::from_secs(args.request_timeout_secs.max(1));
    config.import_timeout = Duration::from_secs(args.import_timeout_secs.max(1));
    config.body_limit_bytes = args.body_limit_bytes;
    config.trust_forwarded_for = args.trust_forwarded_for;
    config.import_allowed_hosts = args.import_allowed_hosts.clone();
    config.leaderboard_refresh_at = args.leaderboard_refresh_at;
    config.leaderboard_refresh_interval = args
        .leaderboard_refresh_interval_secs
        .map(Duration::from_secs);
    config.trusted_proxy_hops = usize::try_from(args.trusted_proxy_hops).unwrap_or(1);
    config.metrics_listen = args.metrics_listen;
    config.metrics_token = args.metrics_token;
    config.jwt_previous_secret = match args.jwt_previous_secret.filter(|s| !s.is_empty()) {
        Some(previous) => Some(
            JwtSecret::new(previous.into_bytes())
                .map_err(|e| anyhow::anyhow!("FITKART_JWT_PREVIOUS_SECRET: {e}"))?,
        ),
        None => None,
    };
    config.upkeep_interval = Duration::from_secs(args.upkeep_interval_secs);
    config.step_retention_months = args.step_retention_months;
    config.sync_replay_window = Duration::from_secs(args.sync_replay_window_days * 24 * 60 * 60);
    config.ledger_verify_interval = (args.ledger_verify_interval_hours > 0)
        .then(|| Duration::from_secs(args.ledger_verify_interval_hours.saturating_mul(3600)));
    let server = Server::bind(config).await?;
    tracing::info!(address = %server.local_addr()?, "fitkart-sync-server listening");
    match server.metrics_addr() {
        Some(address) => tracing::info!(%address, "serving GET /metrics"),
        None => tracing::info!(
            "no metrics listener (FITKART_METRICS_LISTEN); /metrics on the public address \
             needs FITKART_METRICS_TOKEN"
        ),
    }
    server.run(server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Records a command-line verification like a scheduled one, so the
/// `fitkart_ledger_verification_*` metrics show it. Best effort: the exit code is the result.
async fn record_verification(pool: &deadpool_postgres::Pool, report: &ledger::LedgerReport) {
    use fitkart_sync_server::jobs;
    let detail = serde_json::json!({
        "ok": report.is_ok(),
        "wallets": report.wallets_checked,
        "entries": report.entries_checked,
        "problems": report.problems.len(),
        "source": "command line",
    });
    let recorded = async {
        let client = pool.get().await?;
        let instance = jobs::instance_name();
        let run = jobs::record_manual_run(&client, jobs::VERIFY_LEDGER, &instance).await?;
        jobs::finish(&client, jobs::VERIFY_LEDGER, run, &Ok(detail)).await
    };
    if let Err(err) = recorded.await {
        tracing::warn!(error = %err, "could not record the verification for the metrics");
    }
}

async fn create_admin(database_url: &str, args: CreateAdminArgs) -> anyhow::Result<ExitCode> {
    let password = match std::env::var("FITKART_ADMIN_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ if std::io::stdin().is_terminal() => {
            let first = rpassword::prompt_password("New admin password: ")?;
            let second = rpassword::prompt_password("Repeat the password: ")?;
            if first != second {
                eprintln!("error: the passwords do not match");
                return Ok(ExitCode::from(2));
            }
            first
        }
        _ => {
            eprintln!(
                "error: set FITKART_ADMIN_PASSWORD or run create-admin in a terminal to be asked \
                 for the password (there is no default password)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let pool = db::pool(database_url, 1)?;
    let mut client = pool.get().await?;
    match bootstrap::create_admin(
        &mut client,
        &args.email,
        &args.display_name,
        &password,
        args.promote,
    )
    .await
    {
        Ok(AdminBootstrap::Created(id)) => {
            println!("created admin {id}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(AdminBootstrap::Promoted(id)) => {
            println!("promoted {id} to admin and set its password");
            Ok(ExitCode::SUCCESS)
        }
        Err(bootstrap::CreateAdminError::Internal(err)) => Err(err.into()),
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn import_products(database_url: &str, args: ImportProductsArgs) -> anyhow::Result<ExitCode> {
    use fitkart_sync_server::shop::shopify::{
        self, Feed, ImportContext, ImportError, ImportOptions,
    };
    let source = args.source.trim();
    let is_url = ["http://", "https://"].iter().any(|scheme| {
        source
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    let loaded = if is_url {
        // The operator runs this command: any host they name may be fetched.
        shopify::fetch_feed(source, &["*".to_owned()])
            .await
            .map(|feed| (feed, shopify::describe_url(source)))
    } else {
        Feed::from_file(std::path::Path::new(source)).map(|feed| (feed, format!("file:{source}")))
    };
    let outcome = match loaded {
        Ok((feed, label)) => {
            let pool = db::pool(database_url, 1)?;
            let mut client = pool.get().await?;
            let options = ImportOptions {
                allow_empty: args.allow_empty,
                dry_run: false,
            };
            let context = ImportContext {
                admin_id: None,
                client: None,
                source: &label,
            };
            shopify::import(&mut client, &feed, options, context).await
        }
        Err(err) => Err(err),
    };
    match outcome {
        Ok(report) => {
            println!(
                "created {}, updated {}, deactivated {}, skipped {}",
                report.created,
                report.updated,
                report.deactivated,
                report.skipped.len()
            );
            for reason in &report.skipped {
                println!("skipped: {reason}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Internal(err)) => Err(err.into()),
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn refresh_leaderboard(
    database_url: &str,
    args: RefreshLeaderboardArgs,
) -> anyhow::Result<ExitCode> {
    use fitkart_sync_server::rewards::leaderboard::{self, RefreshRequester};
    let pool = db::pool(database_url, 1)?;
    let requester = RefreshRequester {
        admin_id: None,
        client: None,
    };
    for (period, entries) in leaderboard::refresh_audited(&pool, args.period, requester).await? {
        println!("{period}: {entries} entr(ies)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn generate(database_url: &str, args: GenerateArgs) -> anyhow::Result<ExitCode> {
    use fitkart_sync_server::generate::{self, Preset};
    let preset = match args.preset {
        PresetArg::Small => Preset::Small,
        PresetArg::Medium => Preset::Medium,
        PresetArg::Seed => Preset::Seed,
    };
    let (users, days) = preset.size();
    let plan = generate::plan(
        args.users.unwrap_or(users),
        args.days.unwrap_or(days),
        args.seed,
        args.today
            .unwrap_or_else(fitkart_sync_server::rewards::leaderboard::today_utc),
    );
    println!(
        "generating {} users over {} days (seed {}, history before {})",
        plan.users, plan.days, plan.seed, plan.today
    );
    let report = generate::generate(database_url, plan, std::io::stderr().is_terminal()).await?;
    let load = report.load_time.as_secs_f64();
    for (table, rows) in &report.tables {
        println!("{table:>20}: {rows:>10} rows");
    }
    println!(
        "{:>20}: {:>10} rows in {load:.1} s ({:.0} rows/s)",
        "all",
        report.rows(),
        report.rows() as f64 / load.max(0.001)
    );
    println!(
        "VACUUM ANALYZE {:.1} s; leaderboards rebuilt in {:.2} s ({})",
        report.vacuum_time.as_secs_f64(),
        report.leaderboard_time.as_secs_f64(),
        report
            .boards
            .iter()
            .map(|(period, users)| format!("{period}: {users} users"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

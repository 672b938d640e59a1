//! The FitKart walkthrough: this program plays a phone against a running sync server, using
//! only fitkart-core's public API. It signs up a fresh user, records a week of steps offline,
//! shows the wallet before and after syncing, the achievements and the coin history, places
//! an order that shows as held at once, and syncs again to see the server confirm it.
//!
//! ```sh
//! scripts/run.sh                                   # starts a server, then runs this against it
//! cargo run -p fitkart-core --example walkthrough  # against a server that already runs
//! cargo run -p fitkart-core --example walkthrough -- --data-dir /tmp/phone
//! ```
//!
//! The server is found at `FITKART_SERVER_URL`, else at the server's own listen address
//! `FITKART_LISTEN`, else at `http://127.0.0.1:8080`. The phone's database and token file go
//! to a fresh temporary directory (removed at the end), or to `--data-dir DIR` (kept).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use fitkart_core::protocol::orders::{OrderLine, Product, ShippingAddress};
use fitkart_core::protocol::steps::StepReport;
use fitkart_core::{Config, FileTokenStore, FitKart, FitKartError, OrderSync, SyncReport};

/// The walkthrough user's password (the account is a throwaway on a development server).
const PASSWORD: &str = "walk-a-lot-2026";

/// How long to wait for the server's `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The phone's day totals for the last seven days, oldest first; the last one is today's.
/// An active week: every day reaches the default goal (10,000), so the week also unlocks
/// the streak, and it earns enough for the cheapest reward in the seed catalogue.
const WEEK: [i64; 7] = [12_400, 15_200, 13_900, 16_900, 12_600, 18_300, 10_900];

/// Which of those days (counted back from today) a watch also reported, and what: a morning
/// walk before 8:00. The day counts its largest source, not the sum of them.
const WATCH_DAYS_AGO: u64 = 3;
const WATCH_STEPS: i64 = 2_600;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nThe walkthrough failed: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let data_dir = parse_args()?;
    let url = server_url();
    // Keeps a temporary directory alive until the end of the run.
    let (_temp, dir) = match data_dir {
        Some(dir) => (None, dir),
        None => {
            let temp = tempfile::tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            let dir = temp.path().to_owned();
            (Some(temp), dir)
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    println!("FitKart walkthrough: this program plays a phone talking to the server at {url}.");
    println!(
        "The phone's database is {} (tokens in tokens.json beside it).",
        dir.join("fitkart.db").display()
    );
    wait_until_ready(&url).await?;

    let mut config = Config::new(dir.join("fitkart.db"), &url);
    config.model = Some("walkthrough".into());
    let tokens = Arc::new(FileTokenStore::new(dir.join("tokens.json")));
    let app = FitKart::open(config, tokens).during("opening the phone's database")?;

    heading("1. Sign up");
    let email = format!(
        "walker-{}@example.com",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let user = app
        .register(&email, PASSWORD, "Walkthrough Walker")
        .await
        .during("signing up")?;
    println!(
        "   New account: {} <{}>, time zone {}, daily goal {} steps.",
        user.display_name,
        user.email,
        user.timezone,
        n(i64::from(user.daily_step_goal))
    );
    println!("   This phone's device id: {}", app.device_id());

    heading("2. First sync: the phone downloads the catalogue, the settings and its wallet");
    let report = app.sync().await.during("syncing")?;
    show_report(&report);
    if let Some(rules) = app.reward_rules().during("reading the reward rules")? {
        println!(
            "   Reward rules: {} coins per 1,000 steps, at most {} coins a day.",
            rules.coins_per_1000_steps,
            n(rules.daily_coin_cap)
        );
    }

    heading("3. A week of walking, recorded offline (nothing is sent yet)");
    let zone: Tz = user.timezone.parse().unwrap_or(Tz::UTC);
    let today = app.today().during("reading today's date")?;
    let now = Utc::now();
    let mut reports = Vec::new();
    for (index, planned) in WEEK.iter().enumerate() {
        let days_ago = (WEEK.len() - 1 - index) as u64;
        let date = today - Days::new(days_ago);
        let (steps, recorded_at, note) = if days_ago == 0 {
            // Today's total so far: never faster than a brisk walk since local midnight, so
            // the server's cadence check accepts it at any hour.
            let minutes = (now - local_time(zone, date, NaiveTime::MIN)).num_minutes();
            let steps = (*planned).min(minutes.max(0) * 150);
            (steps, now, "  (today so far)")
        } else {
            (*planned, local_time(zone, date, at(21, 30)), "")
        };
        if steps == 0 {
            continue;
        }
        reports.push(StepReport {
            date,
            source: "phone".into(),
            steps,
            recorded_at,
        });
        println!("   {}  {:>7} steps  phone{note}", day(date), n(steps));
        if days_ago == WATCH_DAYS_AGO {
            reports.push(StepReport {
                date,
                source: "watch".into(),
                steps: WATCH_STEPS,
                recorded_at: local_time(zone, date, at(7, 40)),
            });
            println!(
                "   {}  {:>7} steps  watch, a morning walk before 8:00 (the day counts its \
                 largest source, not the sum)",
                day(date),
                n(WATCH_STEPS)
            );
        }
    }
    let raised = app
        .record_steps_batch(&reports)
        .during("recording the steps")?;
    println!(
        "   {raised} day totals saved on the phone; {} queued change(s) wait for the server.",
        app.pending_changes().during("reading the queue")?
    );

    heading("4. The wallet before syncing");
    show_wallet(&app)?;
    println!("   (Coins only become spendable once the server has verified the steps.)");

    heading("5. Sync: push the queued steps, pull what the server made of them");
    let report = app.sync().await.during("syncing")?;
    show_report(&report);

    heading("6. The week as the server verified it");
    for view in app
        .step_history(today - Days::new(6), today)
        .during("reading the step history")?
        .iter()
        .rev()
    {
        let sources: Vec<String> = view
            .sources
            .iter()
            .map(|s| format!("{} {} {}", s.source, n(s.steps), s.status))
            .collect();
        println!(
            "   {}  {:>7} steps, {:>7} verified  ({})",
            day(view.date),
            n(view.total_steps),
            n(view.verified_steps),
            sources.join(", ")
        );
    }

    heading("7. The wallet after syncing");
    let available = show_wallet(&app)?;

    heading("8. Achievements");
    for a in app.achievements().during("reading the achievements")? {
        match a.unlocked_at {
            Some(at) => println!(
                "   [x] {:<22} unlocked {}, +{} coins",
                a.name,
                at.format("%Y-%m-%d %H:%M UTC"),
                a.bonus_coins
            ),
            None => println!(
                "   [ ] {:<22} {} / {}  ({})",
                a.name,
                n(a.progress),
                n(a.target),
                a.description
            ),
        }
    }

    heading("9. Coin history, newest first");
    for t in app
        .coin_history(20, None)
        .during("reading the coin history")?
    {
        println!(
            "   {}  {:<18} {:>+6}  balance {:>6}  {}",
            t.created_at.format("%Y-%m-%d %H:%M"),
            t.kind,
            t.available_delta,
            n(t.available_after),
            t.description.as_deref().unwrap_or("")
        );
    }

    heading("10. Place an order, offline: its coins are held at once");
    let products = app.products().during("reading the catalogue")?;
    let affordable = cheapest(&products, |p| p.coin_price <= available);
    let product = match affordable {
        Some(product) => product,
        None => {
            let Some(product) = cheapest(&products, |_| true) else {
                return Err("the server's catalogue has no product in stock".into());
            };
            println!(
                "   Nothing in the catalogue costs {} coins or less, so the phone orders the \
                 cheapest product anyway: watch the server refuse it and the hold disappear.",
                n(available)
            );
            product
        }
    };
    let order = app
        .place_order(
            &[OrderLine {
                product_id: product.id,
                quantity: 1,
            }],
            &ShippingAddress {
                name: "Walkthrough Walker".into(),
                line1: "1 Demo Street".into(),
                line2: None,
                city: "Springfield".into(),
                region: None,
                postal_code: "12345".into(),
                country: "US".into(),
                phone: None,
            },
        )
        .during("placing the order")?;
    println!(
        "   Ordered 1 x {} for {} coins (the phone's order id {}).",
        product.name,
        n(order.total_coins),
        order.client_order_id
    );
    show_orders(&app)?;
    show_wallet(&app)?;

    heading("11. Sync again: the server accepts (or refuses) the order");
    let report = app.sync().await.during("syncing")?;
    show_report(&report);
    show_orders(&app)?;
    for rejection in app.rejections().during("reading the refusals")? {
        println!(
            "   Refused by the server: {} ({}: {})",
            rejection.kind, rejection.code, rejection.message
        );
    }
    show_wallet(&app)?;
    let accepted = app
        .orders()
        .during("reading the orders")?
        .iter()
        .any(|o| o.sync == OrderSync::Synced);
    if accepted {
        println!(
            "   (The server holds an order's coins until it is delivered; then they are spent.)"
        );
    }

    println!(
        "\nDone. Every step above went through fitkart-core: writes were queued on the phone \
         and exchanged by sync(); reads came from the phone's database."
    );
    println!(
        "To look around as this user: curl -s {url}/api/v1/auth/login -H 'content-type: \
         application/json' -d '{{\"email\":\"{email}\",\"password\":\"{PASSWORD}\"}}'"
    );
    Ok(())
}

/// `--data-dir DIR`, or nothing.
fn parse_args() -> Result<Option<PathBuf>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, dir] if flag == "--data-dir" => Ok(Some(PathBuf::from(dir))),
        [flag] if flag == "-h" || flag == "--help" => {
            println!(
                "usage: walkthrough [--data-dir DIR]\n\n\
                 Plays a phone against a running FitKart sync server, found at \
                 FITKART_SERVER_URL,\nelse at FITKART_LISTEN, else at http://127.0.0.1:8080."
            );
            std::process::exit(0);
        }
        _ => Err("usage: walkthrough [--data-dir DIR] (see --help)".into()),
    }
}

/// The server's URL: `FITKART_SERVER_URL`, else the server's own `FITKART_LISTEN`, else the
/// server's default address.
fn server_url() -> String {
    if let Ok(url) = std::env::var("FITKART_SERVER_URL")
        && !url.trim().is_empty()
    {
        return url.trim().trim_end_matches('/').to_owned();
    }
    let listen = std::env::var("FITKART_LISTEN")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    // A server listening on every interface is reached on loopback.
    let listen = listen
        .trim()
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    format!("http://{listen}")
}

/// Waits, at most [`READY_TIMEOUT`], until the server answers `/readyz` with a success.
async fn wait_until_ready(url: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let started = Instant::now();
    let mut said = false;
    loop {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            if said {
                println!(" ready.");
            }
            return Ok(());
        }
        if started.elapsed() >= READY_TIMEOUT {
            if said {
                println!();
            }
            return Err(format!(
                "no server answered {url}/readyz within {} s. Start one with scripts/run.sh, or \
                 point FITKART_SERVER_URL (or FITKART_LISTEN) at yours.",
                READY_TIMEOUT.as_secs()
            ));
        }
        if !said {
            print!("Waiting for the server ({url}/readyz) ...");
            let _ = std::io::stdout().flush();
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Turns a library error into the walkthrough's message, naming what it was doing.
trait During<T> {
    fn during(self, what: &str) -> Result<T, String>;
}

impl<T> During<T> for Result<T, FitKartError> {
    fn during(self, what: &str) -> Result<T, String> {
        self.map_err(|err| match err {
            FitKartError::Offline { .. } => {
                format!("{what}: the server stopped answering ({err})")
            }
            _ => format!("{what}: {err}"),
        })
    }
}

fn heading(title: &str) {
    println!("\n== {title}");
}

fn show_report(report: &SyncReport) {
    println!(
        "   Pushed {} queued change(s): {} applied, {} already applied before, {} refused.",
        report.pushed,
        report.applied,
        report.duplicates,
        report.rejected.len()
    );
    for (kind, code) in &report.rejected {
        println!("   Refused: {kind} ({code}).");
    }
    if report.pulled.rows.is_empty() {
        println!("   Pulled {} page(s): nothing new.", report.pulled.pages);
    } else {
        let rows: Vec<String> = report
            .pulled
            .rows
            .iter()
            .map(|(kind, count)| format!("{count} {kind}"))
            .collect();
        println!(
            "   Pulled {} page(s): {}.",
            report.pulled.pages,
            rows.join(", ")
        );
    }
}

/// Prints the wallet view and returns the spendable coins.
fn show_wallet(app: &FitKart) -> Result<i64, String> {
    let wallet = app.wallet().during("reading the wallet")?;
    println!("   available      {:>7} coins", n(wallet.available_coins));
    println!("   held           {:>7} coins", n(wallet.held_coins));
    if wallet.pending_hold_coins > 0 {
        println!(
            "     of which     {:>7} held by orders the server has not confirmed yet",
            n(wallet.pending_hold_coins)
        );
    }
    println!(
        "   on the way     {:>7} coins (estimate for steps not synced yet)",
        n(wallet.estimated_pending_coins)
    );
    println!("   earned in all  {:>7} coins", n(wallet.lifetime_earned));
    Ok(wallet.available_coins)
}

fn show_orders(app: &FitKart) -> Result<(), String> {
    for order in app.orders().during("reading the orders")? {
        let standing = match order.sync {
            OrderSync::PendingPlacement => "waiting for the next sync; its coins are held".into(),
            OrderSync::PendingCancellation => "a cancellation waits for the next sync".into(),
            OrderSync::Synced if order.status == "pending" => {
                "accepted by the server, status pending (the shop confirms and ships it next)"
                    .into()
            }
            OrderSync::Synced => format!("accepted by the server, status {}", order.status),
        };
        println!(
            "   Order {}: {} coins, {standing}.",
            order.order_code.as_deref().unwrap_or("(no code yet)"),
            n(order.total_coins)
        );
    }
    Ok(())
}

/// The cheapest product in stock that `fits`.
fn cheapest(products: &[Product], fits: impl Fn(&Product) -> bool) -> Option<&Product> {
    products
        .iter()
        .filter(|p| p.is_active && p.stock > 0 && fits(p))
        .min_by_key(|p| p.coin_price)
}

/// A local time of day on `date` in `zone`, as UTC (the earlier one when a clock change
/// repeats it, the next valid one when a clock change skips it).
fn local_time(zone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
}

fn at(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN)
}

fn day(date: NaiveDate) -> String {
    date.format("%a %Y-%m-%d").to_string()
}

/// A whole number with thousands separators: 12,400.
fn n(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0 { format!("-{out}") } else { out }
}

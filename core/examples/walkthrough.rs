//! The FitKart walkthrough: this program acts as a phone against a running sync server.
//! It signs up, records a week of steps offline, syncs, shows the wallet, achievements and
//! coin history, places an order, shows it held, and syncs again.
//!
//! ```sh
//! cargo run -p fitkart-core --example walkthrough            # server at FITKART_LISTEN or 127.0.0.1:8080
//! FITKART_SERVER_URL=http://127.0.0.1:9090 cargo run -p fitkart-core --example walkthrough
//! ```
//!
//! The phone's database and token file go to a fresh temporary directory, or to
//! `--data-dir DIR` (kept, so a second run continues as the same phone).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Utc};
use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_core::protocol::steps::StepReport;
use fitkart_core::{Config, FileTokenStore, FitKart, FitKartError, SyncReport};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nwalkthrough failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The server's URL: FITKART_SERVER_URL, else the server's own FITKART_LISTEN, else the
/// server's default address.
fn server_url() -> String {
    if let Ok(url) = std::env::var("FITKART_SERVER_URL") {
        return url.trim_end_matches('/').to_owned();
    }
    let listen = std::env::var("FITKART_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    // A server listening on every interface is reached on loopback.
    let listen = listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    format!("http://{listen}")
}

async fn wait_until_ready(url: &str) -> Result<(), String> {
    let client = reqwest::Client::new();
    for _ in 0..120 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "no server answered {url}/readyz within 60 s (is it running?)"
    ))
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn show_report(report: &SyncReport) {
    println!(
        "   pushed {} change(s): {} applied, {} already applied, {} refused",
        report.pushed,
        report.applied,
        report.duplicates,
        report.rejected.len()
    );
    for (kind, code) in &report.rejected {
        println!("   refused: {kind} ({code})");
    }
    let rows: Vec<String> = report
        .pulled
        .rows
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    println!(
        "   pulled {} page(s): {}",
        report.pulled.pages,
        if rows.is_empty() {
            "nothing new".to_owned()
        } else {
            rows.join(", ")
        }
    );
}

fn show_wallet(app: &FitKart) -> Result<i64, FitKartError> {
    let wallet = app.wallet()?;
    println!("   available      {:>6} coins", wallet.available_coins);
    println!("   held           {:>6} coins", wallet.held_coins);
    if wallet.pending_hold_coins > 0 {
        println!(
            "     of which    {:>6} held by orders not yet confirmed by the server",
            wallet.pending_hold_coins
        );
    }
    if wallet.estimated_pending_coins > 0 {
        println!(
            "   on the way     {:>6} coins (estimate for steps not synced yet)",
            wallet.estimated_pending_coins
        );
    }
    println!("   earned in all  {:>6} coins", wallet.lifetime_earned);
    Ok(wallet.available_coins)
}

async fn run() -> Result<(), String> {
    let url = server_url();
    let mut args = std::env::args().skip(1);
    let (_temp, dir) = match (args.next().as_deref(), args.next()) {
        (Some("--data-dir"), Some(dir)) => (None, std::path::PathBuf::from(dir)),
        (None, _) => {
            let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = temp.path().to_owned();
            (Some(temp), path)
        }
        _ => return Err("usage: walkthrough [--data-dir DIR]".into()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    println!("FitKart walkthrough: a phone talking to {url}");
    println!("(phone database: {})", dir.join("fitkart.db").display());
    wait_until_ready(&url).await?;

    let mut config = Config::new(dir.join("fitkart.db"), &url);
    config.platform = "other".into();
    config.model = Some("walkthrough".into());
    let tokens = Arc::new(FileTokenStore::new(dir.join("tokens.json")));
    let app = FitKart::open(config, tokens).map_err(|e| e.to_string())?;
    let fail = |e: FitKartError| e.to_string();

    step("1. Sign up");
    let email = format!(
        "walker-{}@example.com",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let user = app
        .register(&email, "walk-a-lot-2026", "Walkthrough Walker")
        .await
        .map_err(fail)?;
    println!("   signed up as {} <{}>", user.display_name, user.email);
    println!("   this phone's id: {}", app.device_id());

    step("2. A week of walking, recorded offline (nothing is sent yet)");
    let today = Utc::now().date_naive();
    let week = [13_200, 15_400, 16_800, 14_100, 17_900, 15_600, 12_300];
    let mut reports = Vec::new();
    for (offset, steps) in week.iter().enumerate() {
        let date = today - Days::new(6 - offset as u64);
        let recorded_at = if date == today {
            Utc::now()
        } else {
            date.and_hms_opt(21, 30, 0).unwrap_or_default().and_utc()
        };
        reports.push(StepReport {
            date,
            source: "phone".into(),
            steps: *steps,
            recorded_at,
        });
        println!("   {date}  {steps:>6} steps (phone)");
    }
    // A watch also counted one day, a little more than the phone: the day counts its largest.
    let watch_day = today - Days::new(3);
    reports.push(StepReport {
        date: watch_day,
        source: "watch".into(),
        steps: 14_600,
        recorded_at: watch_day
            .and_hms_opt(21, 45, 0)
            .unwrap_or_default()
            .and_utc(),
    });
    println!(
        "   {watch_day}  {:>6} steps (watch, same day as the phone's 14,100)",
        14_600
    );
    app.record_steps_batch(&reports).map_err(fail)?;
    println!(
        "   queued: {} change(s) waiting for the server",
        app.pending_changes().map_err(fail)?
    );

    step("3. Sync");
    let report = app.sync().await.map_err(fail)?;
    show_report(&report);

    step("4. Wallet");
    let available = show_wallet(&app).map_err(fail)?;

    step("5. Achievements");
    for a in app.achievements().map_err(fail)? {
        match a.unlocked_at {
            Some(_) => println!("   [x] {:<16} +{} coins", a.name, a.bonus_coins),
            None => println!("   [ ] {:<16} {}/{}", a.name, a.progress, a.target),
        }
    }

    step("6. Coin history (newest first)");
    for t in app.coin_history(12, None).map_err(fail)? {
        println!(
            "   {}  {:<18} {:>+6}  balance {:>6}",
            t.created_at.format("%Y-%m-%d %H:%M"),
            t.kind,
            t.available_delta,
            t.available_after
        );
    }

    step("7. Place an order (offline: held at once, confirmed at the next sync)");
    let products = app.products().map_err(fail)?;
    let Some(product) = products
        .iter()
        .filter(|p| p.coin_price <= available && p.stock > 0)
        .max_by_key(|p| p.coin_price)
    else {
        println!("   nothing in the catalogue is affordable yet: keep walking!");
        return Ok(());
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
        .map_err(fail)?;
    println!(
        "   ordered: {} for {} coins",
        product.name, order.total_coins
    );
    for o in app.orders().map_err(fail)? {
        println!(
            "   order {}: {} ({:?})",
            o.client_order_id, o.status, o.sync
        );
    }
    show_wallet(&app).map_err(fail)?;

    step("8. Sync again");
    let report = app.sync().await.map_err(fail)?;
    show_report(&report);
    for o in app.orders().map_err(fail)? {
        println!(
            "   order {} is {} ({} coins)",
            o.order_code.as_deref().unwrap_or("(not confirmed)"),
            o.status,
            o.total_coins
        );
    }
    show_wallet(&app).map_err(fail)?;

    println!("\nDone: every step above went through the device library's queue and sync.");
    Ok(())
}

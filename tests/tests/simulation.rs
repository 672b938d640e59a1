//! A seeded simulation: several phones (real fitkart-core clients on real SQLite files) of a
//! few users, driven through a random but seed-determined schedule of user actions, admin
//! actions, network faults and crashes against the real server on PostgreSQL. When faults
//! stop and every phone has synced, the invariants of the design must hold.
//!
//! CI runs the fixed seeds 1 to 6 and two fresh random ones. Replay or soak:
//!
//! ```sh
//! FITKART_SIM_SEEDS=42 cargo nextest run -p fitkart-e2e --test simulation        # one seed
//! FITKART_SIM_SEEDS=1-2000 FITKART_SIM_RANDOM=0 cargo nextest run -p fitkart-e2e --test simulation --release
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveDate;
use fitkart_core::protocol::auth::ProfilePatch;
use fitkart_core::protocol::orders::{OrderLine, ShippingAddress};
use fitkart_core::{Fault, OrderSync};
use fitkart_e2e::{Phone, at, base_url, days_ago, grant};
use fitkart_sync_server::testing::TestServer;
use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use uuid::Uuid;

const PASSWORD: &str = "simulated-walker-password";
const ACTIONS: usize = 70;

/// Seeds 1-6, then the random seeds that once broke a run, kept as regressions:
/// 2586888358 refunded a delivered order without the reason the server asks of every refund.
const DEFAULT_SEEDS: &str = "1-6,2586888358";

/// The seeds to run: FITKART_SIM_SEEDS ("1-6", "42" or "3,9,27") plus FITKART_SIM_RANDOM
/// fresh random ones (default 2). The default keeps every seed that once found a bug.
fn seeds() -> Vec<u64> {
    let spec = std::env::var("FITKART_SIM_SEEDS").unwrap_or_else(|_| DEFAULT_SEEDS.into());
    let mut seeds = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to): (u64, u64) =
                    (from.parse().expect("seed"), to.parse().expect("seed"));
                seeds.extend(from..=to);
            }
            None => seeds.push(part.parse().expect("seed")),
        }
    }
    let random: usize = std::env::var("FITKART_SIM_RANDOM")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    seeds.extend((0..random).map(|_| rand::random::<u32>() as u64 + 1_000_000));
    seeds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_schedules_of_phones_faults_and_crashes_keep_every_invariant() {
    let seeds = seeds();
    println!("simulation seeds: {seeds:?}");
    for seed in seeds {
        println!("seed {seed}: running {ACTIONS} actions");
        if let Err(failure) = run(seed).await {
            panic!(
                "seed {seed} broke an invariant: {failure}\nreplay: \
                 FITKART_SIM_SEEDS={seed} FITKART_SIM_RANDOM=0 \
                 cargo nextest run -p fitkart-e2e --test simulation --no-capture"
            );
        }
    }
}

struct SimPhone {
    phone: Phone,
    user: usize,
    source: String,
}

struct World {
    rng: SmallRng,
    server: TestServer,
    admin_token: String,
    http: reqwest::Client,
    emails: Vec<String>,
    user_ids: Vec<Uuid>,
    phones: Vec<SimPhone>,
    /// The highest total each (user, date, source) was recorded with, and how many reports.
    recorded: BTreeMap<(usize, NaiveDate, String), (i64, u32)>,
    /// What happened, by kind (printed after each seed).
    tally: BTreeMap<&'static str, u32>,
}

impl World {
    fn count(&mut self, what: &'static str) {
        *self.tally.entry(what).or_default() += 1;
    }
}

type Check = Result<(), String>;

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Check {
    if condition { Ok(()) } else { Err(what()) }
}

async fn run(seed: u64) -> Check {
    let server = TestServer::start().await.map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    let admin_email = format!("sim-admin-{seed}@example.com");
    {
        let mut client = server.db().client().await.map_err(|e| e.to_string())?;
        fitkart_sync_server::auth::bootstrap::create_admin(
            &mut client,
            &admin_email,
            "Sim Admin",
            PASSWORD,
            false,
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let login: serde_json::Value = http
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": admin_email, "password": PASSWORD}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let admin_token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut world = World {
        rng: SmallRng::seed_from_u64(seed),
        server,
        admin_token,
        http,
        emails: Vec::new(),
        user_ids: Vec::new(),
        phones: Vec::new(),
        recorded: BTreeMap::new(),
        tally: BTreeMap::new(),
    };

    // Three users; the first has two phones.
    for user in 0..3 {
        let email = format!("sim-{seed}-{user}@example.com");
        let skew = chrono::Duration::minutes(world.rng.random_range(-120..=120));
        let phone = Phone::with_skew(&base_url(&world.server), skew);
        let profile = phone
            .app
            .register(&email, PASSWORD, &format!("Walker {user}"))
            .await
            .map_err(|e| format!("register: {e}"))?;
        let coins = world.rng.random_range(2_000..9_000);
        grant(&world.server, profile.id, coins).await;
        world.emails.push(email);
        world.user_ids.push(profile.id);
        world.phones.push(SimPhone {
            phone,
            user,
            source: format!("phone-{user}"),
        });
    }
    add_phone(&mut world, 0).await?;

    for _ in 0..ACTIONS {
        act(&mut world).await?;
    }
    settle(&mut world).await?;
    check_invariants(&world).await?;
    let rejected = {
        let mut n = 0;
        for sim in &world.phones {
            n += sim.phone.app.rejections().map_or(0, |r| r.len());
        }
        n
    };
    println!(
        "seed {seed}: ok; {:?}; {} phones, {rejected} refusals listed",
        world.tally,
        world.phones.len()
    );
    world.server.stop().await.map_err(|e| e.to_string())
}

async fn add_phone(world: &mut World, user: usize) -> Check {
    // A phone whose clock is off by up to two hours either way.
    let skew = chrono::Duration::minutes(world.rng.random_range(-120..=120));
    let phone = Phone::with_skew(&base_url(&world.server), skew);
    phone
        .app
        .login(&world.emails[user], PASSWORD)
        .await
        .map_err(|e| format!("login: {e}"))?;
    let n = world.phones.len();
    world.phones.push(SimPhone {
        phone,
        user,
        source: format!("watch-{user}-{n}"),
    });
    Ok(())
}

fn random_fault(rng: &mut SmallRng) -> Fault {
    match rng.random_range(0..6) {
        0 => Fault::DropRequest,
        1 => Fault::DropResponse,
        2 => Fault::Status(500),
        3 => Fault::Status(503),
        4 => Fault::Timeout,
        _ => Fault::Duplicate,
    }
}

async fn act(world: &mut World) -> Check {
    let which = world.rng.random_range(0..world.phones.len());
    let roll = world.rng.random_range(0..100);
    match roll {
        // Walking: a day total grows on one phone's own source.
        0..=39 => {
            let day = days_ago(world.rng.random_range(1..=6));
            let sim = &world.phones[which];
            let key = (sim.user, day, sim.source.clone());
            let (total, reports) = world.recorded.get(&key).copied().unwrap_or((0, 0));
            let total = total + world.rng.random_range(200..2_500);
            // Reports of one day are stamped 25 minutes apart from 05:00, so the pace stays
            // a walking one (under 100 steps a minute).
            let stamp = at(day, 5, 0) + chrono::Duration::minutes(25 * i64::from(reports + 1));
            sim.phone
                .app
                .record_steps(day, &sim.source, total, stamp)
                .map_err(|e| format!("record_steps: {e}"))?;
            world.recorded.insert(key, (total, reports + 1));
            world.count("steps recorded");
        }
        // Syncing through a few faults (the sync may fail: that is a normal outcome).
        40..=59 => {
            let faults = world.rng.random_range(0..4);
            for _ in 0..faults {
                let path =
                    ["/sync/push", "/sync/pull", "/devices", ""][world.rng.random_range(0..4)];
                let fault = random_fault(&mut world.rng);
                world.phones[which].phone.faults.inject(path, fault);
            }
            world.count("syncs");
            match world.phones[which].phone.app.sync().await {
                Ok(_) => world.count("syncs ok"),
                Err(_) => world.count("syncs failed"),
            }
        }
        // The app is killed in the middle of a sync and started again.
        60..=65 => {
            let after = Duration::from_millis(world.rng.random_range(0..40));
            let sim = &world.phones[which];
            let interrupted = tokio::time::timeout(after, sim.phone.app.sync())
                .await
                .is_err();
            world.count(if interrupted {
                "killed mid-sync"
            } else {
                "killed after a sync"
            });
            let sim = world.phones.remove(which);
            let phone = sim.phone.restart();
            world.phones.insert(
                which,
                SimPhone {
                    phone,
                    user: sim.user,
                    source: sim.source,
                },
            );
        }
        // An order, offline; the server may refuse it.
        66..=73 => {
            let app = &world.phones[which].phone.app;
            let mut products = app.products().map_err(|e| e.to_string())?;
            products.sort_by_key(|p| (p.coin_price, p.id));
            if let Some(product) =
                products.get(world.rng.random_range(0..3.min(products.len().max(1))))
            {
                let quantity = world.rng.random_range(1..=2);
                app.place_order(
                    &[OrderLine {
                        product_id: product.id,
                        quantity,
                    }],
                    &address(),
                )
                .map_err(|e| format!("place_order: {e}"))?;
                world.count("orders placed");
            }
        }
        // Cancelling one of the user's open orders.
        74..=77 => {
            let app = &world.phones[which].phone.app;
            let open: Vec<Uuid> = app
                .orders()
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|o| matches!(o.status.as_str(), "pending" | "confirmed"))
                .filter(|o| o.sync != OrderSync::PendingCancellation)
                .map(|o| o.client_order_id)
                .collect();
            if !open.is_empty() {
                let pick = open[world.rng.random_range(0..open.len())];
                app.cancel_order(pick)
                    .map_err(|e| format!("cancel_order: {e}"))?;
            }
        }
        // A profile change.
        78..=80 => {
            let goal = world.rng.random_range(50..150) * 100;
            world.phones[which]
                .phone
                .app
                .update_profile(&ProfilePatch {
                    daily_step_goal: Some(goal),
                    ..ProfilePatch::default()
                })
                .map_err(|e| format!("update_profile: {e}"))?;
            world.count("profile changes");
        }
        // The admin reviews a flagged day or moves an order along its workflow.
        81..=92 => admin_acts(world).await?,
        // Sign out (only when nothing is pending) and back in.
        93..=96 => {
            let sim = &world.phones[which];
            if sim.phone.app.pending_changes().map_err(|e| e.to_string())? == 0 {
                sim.phone
                    .app
                    .logout(false)
                    .await
                    .map_err(|e| format!("logout: {e}"))?;
                sim.phone
                    .app
                    .login(&world.emails[sim.user], PASSWORD)
                    .await
                    .map_err(|e| format!("login again: {e}"))?;
                world.count("signed out and in");
            }
        }
        // The user starts using another phone.
        _ => {
            if world.phones.len() < 6 {
                let user = world.rng.random_range(0..world.user_ids.len());
                add_phone(world, user).await?;
            }
        }
    }
    Ok(())
}

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Sim Walker".into(),
        line1: "1 Simulation Way".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: "12345".into(),
        country: "US".into(),
        phone: None,
    }
}

async fn admin_acts(world: &mut World) -> Check {
    let db = world
        .server
        .db()
        .client()
        .await
        .map_err(|e| e.to_string())?;
    if world.rng.random_bool(0.5) {
        let flagged: Vec<Uuid> = db
            .query(
                "SELECT id FROM step_validations WHERE status = 'pending_review' ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(id) = flagged.first() {
            let decision = if world.rng.random_bool(0.5) {
                "approve"
            } else {
                "reject"
            };
            let response = world
                .http
                .post(
                    world
                        .server
                        .url(&format!("/api/v1/admin/validations/{id}/{decision}")),
                )
                .bearer_auth(&world.admin_token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            ensure(response.status().is_success(), || {
                format!("admin {decision}: {}", response.status())
            })?;
            world.count("reviews");
        }
        return Ok(());
    }
    let orders: Vec<(Uuid, String)> = db
        .query("SELECT id, status FROM orders ORDER BY created_at, id", &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if orders.is_empty() {
        return Ok(());
    }
    let (id, status) = &orders[world.rng.random_range(0..orders.len())];
    let next = match status.as_str() {
        "pending" => "confirmed",
        "confirmed" => "processing",
        "processing" => "shipped",
        "shipped" => "delivered",
        "delivered" => "refunded",
        _ => return Ok(()),
    };
    let cancel = world.rng.random_bool(0.2) && matches!(status.as_str(), "pending" | "confirmed");
    let body = if cancel {
        serde_json::json!({"status": "cancelled", "reason": "out of stock at the warehouse"})
    } else if next == "shipped" {
        serde_json::json!({"status": next, "tracking_number": "SIM123456"})
    } else if next == "refunded" {
        // The server asks a reason of every refund, as it does of every cancellation.
        serde_json::json!({"status": next, "reason": "parcel returned damaged"})
    } else {
        serde_json::json!({"status": next})
    };
    let response = world
        .http
        .post(
            world
                .server
                .url(&format!("/api/v1/admin/orders/{id}/status")),
        )
        .bearer_auth(&world.admin_token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    world.count("order transitions");
    // A phone's cancellation may have won the race: a 409 is a legal answer.
    ensure(
        response.status().is_success() || response.status() == 409,
        || format!("admin order {next}: {}", response.status()),
    )
}

/// Faults stop; every phone syncs until it has nothing left, then once more so the phones of
/// one user see each other's changes.
async fn settle(world: &mut World) -> Check {
    for round in 0..2 {
        for sim in &world.phones {
            let mut last = None;
            for _ in 0..20 {
                match sim.phone.app.sync().await {
                    Ok(report) if report.complete && sim.phone.faults.pending_faults() == 0 => {
                        last = None;
                        break;
                    }
                    Ok(_) => {}
                    Err(err) => last = Some(err),
                }
            }
            if let Some(err) = last {
                return Err(format!(
                    "phone of user {} never synced (round {round}): {err}",
                    sim.user
                ));
            }
        }
    }
    Ok(())
}

async fn check_invariants(world: &World) -> Check {
    let db = world
        .server
        .db()
        .client()
        .await
        .map_err(|e| e.to_string())?;
    let ledger = fitkart_sync_server::rewards::ledger::verify(&db)
        .await
        .map_err(|e| e.to_string())?;
    ensure(ledger.is_ok(), || {
        format!("verify-ledger: {:?}", ledger.problems)
    })?;

    // No order held twice; no stock below zero.
    let doubled: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT reference_id FROM coin_transactions
             WHERE kind = 'order_hold' GROUP BY reference_id HAVING count(*) > 1) d",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    ensure(doubled == 0, || format!("{doubled} orders held twice"))?;
    let oversold: i64 = db
        .query_one("SELECT count(*) FROM reward_products WHERE stock < 0", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    ensure(oversold == 0, || "a product was oversold".into())?;

    // Every recorded total is on the server, once, as a max-register.
    for ((user, day, source), (total, _)) in &world.recorded {
        let row = db
            .query_opt(
                "SELECT steps, status FROM step_records WHERE user_id = $1 AND day = $2 AND source = $3",
                &[&world.user_ids[*user], day, source],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (steps, status): (i32, String) = row
            .map(|r| (r.get(0), r.get(1)))
            .ok_or_else(|| format!("{day} {source} of user {user} never reached the server"))?;
        ensure(i64::from(steps) == *total || status == "rejected", || {
            format!("{day} {source}: server holds {steps} ({status}), the phones recorded {total}")
        })?;
    }

    for (user, user_id) in world.user_ids.iter().enumerate() {
        // Coins paid equal the rules applied to the verified day totals.
        let paid: i64 = db
            .query_one(
                "SELECT coalesce(sum(available_delta), 0)::bigint FROM coin_transactions
                 WHERE user_id = $1 AND kind = 'step_reward'",
                &[user_id],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let days: HashMap<NaiveDate, i64> = db
            .query(
                "SELECT day, max(verified_steps)::bigint FROM step_records WHERE user_id = $1 GROUP BY day",
                &[user_id],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let owed: i64 = days.values().map(|v| (v * 10 / 1000).min(200)).sum();
        ensure(paid == owed, || {
            format!("user {user}: paid {paid} step coins, the rules owe {owed} for {days:?}")
        })?;

        let wallet = db
            .query_one(
                "SELECT available_coins, frozen_coins FROM wallets WHERE user_id = $1",
                &[user_id],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (available, frozen): (i64, i64) = (wallet.get(0), wallet.get(1));
        let entries: i64 = db
            .query_one(
                "SELECT count(*) FROM coin_transactions WHERE user_id = $1",
                &[user_id],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let orders: BTreeMap<Uuid, String> = db
            .query(
                "SELECT client_order_id, status FROM orders WHERE user_id = $1",
                &[user_id],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let steps: BTreeMap<(NaiveDate, String), (i64, i64, String)> = db
            .query(
                "SELECT day, source, steps, verified_steps, status FROM step_records WHERE user_id = $1",
                &[user_id],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| {
                (
                    (r.get(0), r.get(1)),
                    (i64::from(r.get::<_, i32>(2)), i64::from(r.get::<_, i32>(3)), r.get(4)),
                )
            })
            .collect();

        // Every phone of the user: an empty queue and a cache equal to the server.
        for sim in world.phones.iter().filter(|p| p.user == user) {
            let app = &sim.phone.app;
            let who = format!("phone {} of user {user}", sim.source);
            ensure(
                app.pending_changes().map_err(|e| e.to_string())? == 0,
                || format!("{who}: outbox not empty"),
            )?;
            let view = app.wallet().map_err(|e| e.to_string())?;
            ensure(
                (
                    view.available_coins,
                    view.held_coins,
                    view.pending_hold_coins,
                ) == (available, frozen, 0),
                || format!("{who}: wallet {view:?}, server {available}/{frozen}"),
            )?;
            let history = app.coin_history(100_000, None).map_err(|e| e.to_string())?;
            ensure(history.len() as i64 == entries, || {
                format!(
                    "{who}: {} ledger entries cached, server has {entries}",
                    history.len()
                )
            })?;
            let cached: BTreeMap<Uuid, String> = app
                .orders()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|o| (o.client_order_id, o.status))
                .collect();
            ensure(cached == orders, || {
                format!("{who}: orders {cached:?}, server {orders:?}")
            })?;
            let mut cached_steps = BTreeMap::new();
            for day in app
                .step_history(days_ago(30), days_ago(0))
                .map_err(|e| e.to_string())?
            {
                for s in day.sources {
                    cached_steps.insert(
                        (day.date, s.source),
                        (s.server_steps, s.verified_steps, s.status),
                    );
                }
            }
            ensure(cached_steps == steps, || {
                format!("{who}: steps {cached_steps:?}, server {steps:?}")
            })?;
        }
    }
    Ok(())
}

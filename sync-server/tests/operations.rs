//! Running the server for real: scheduled jobs run once per due time across several
//! instances on one database, the data lifecycle (partition archiving, pruning, the replay
//! window) and JWT secret rotation without signing anyone out.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Datelike as _, Months, NaiveDate, Utc};
use common::{Api, answer};
use fitkart_sync_server::config::{JwtSecret, ServerConfig};
use fitkart_sync_server::maintenance::{self, UpkeepSettings};
use fitkart_sync_server::retention;
use fitkart_sync_server::rewards::leaderboard;
use fitkart_sync_server::server::Server;
use fitkart_sync_server::testing::{TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// One server instance over a database another instance may share.
struct Instance {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<fitkart_sync_server::error::Result<()>>,
}

impl Instance {
    async fn start(db: &TestDb, secret: JwtSecret, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::new(db.url(), secret);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.db_pool_size = 4;
        config.login_limits.registrations_per_address = 10_000;
        adjust(&mut config);
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn two_instances_run_each_due_time_of_every_scheduled_job_once() {
    let db = TestDb::seeded().await.unwrap();
    let every_second = |config: &mut ServerConfig| {
        config.leaderboard_refresh_interval = Some(Duration::from_secs(1));
        config.upkeep_interval = Duration::from_secs(1);
        config.ledger_verify_interval = Some(Duration::from_secs(1));
    };
    let secret = JwtSecret::generate();
    let (a, b) = tokio::join!(
        Instance::start(&db, secret.clone(), every_second),
        Instance::start(&db, secret, every_second)
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    a.stop().await;
    b.stop().await;

    let client = db.client().await.unwrap();
    let twice: Vec<(String, Option<chrono::DateTime<Utc>>, i64)> = client
        .query(
            "SELECT job, due_at, count(*) FROM scheduled_job_runs
             GROUP BY job, due_at HAVING count(*) > 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(twice.is_empty(), "due times run more than once: {twice:?}");
    for job in ["leaderboard_refresh", "upkeep", "verify_ledger"] {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE outcome = 'ok'),
                        count(DISTINCT due_at)
                 FROM scheduled_job_runs WHERE job = $1",
                &[&job],
            )
            .await
            .unwrap();
        let (runs, ok, due_times): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert!(
            runs >= 2,
            "{job} ran {runs} time(s) in 4.5 s of 1 s due times"
        );
        assert_eq!(ok, runs, "{job}: every run succeeds");
        assert_eq!(due_times, runs, "{job}: one run per due time");
    }
}

async fn insert_user(client: &tokio_postgres::Client, email: &str) -> Uuid {
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, 'x', 'Walker')",
            &[&id, &email],
        )
        .await
        .unwrap();
    id
}

/// A step record (and its day total) of `steps` on `day`, its id.
async fn insert_steps(
    client: &tokio_postgres::Client,
    user: Uuid,
    day: NaiveDate,
    steps: i32,
) -> Uuid {
    client
        .execute(
            "INSERT INTO step_days (user_id, day, verified_steps) VALUES ($1, $2, $3)",
            &[&user, &day, &steps],
        )
        .await
        .unwrap();
    client
        .query_one(
            "INSERT INTO step_records (user_id, day, source, steps, verified_steps)
             VALUES ($1, $2, 'healthkit', $3, $3) RETURNING id",
            &[&user, &day, &steps],
        )
        .await
        .unwrap()
        .get(0)
}

async fn insert_validation(
    client: &tokio_postgres::Client,
    user: Uuid,
    record: Uuid,
    day: NaiveDate,
    pending: bool,
) -> Uuid {
    client
        .query_one(
            "INSERT INTO step_validations (user_id, step_record_id, step_day, previous_steps,
                 claimed_steps, anomaly_score, status, reviewed_at)
             VALUES ($1, $2, $3, 0, 1000, 4.0,
                     CASE WHEN $4 THEN 'pending_review' ELSE 'approved' END,
                     CASE WHEN $4 THEN NULL ELSE now() END)
             RETURNING id",
            &[&user, &record, &day, &pending],
        )
        .await
        .unwrap()
        .get(0)
}

fn months_ago(months: u32) -> NaiveDate {
    let first = Utc::now().date_naive().with_day(1).unwrap();
    first.checked_sub_months(Months::new(months)).unwrap() + chrono::Days::new(9)
}

fn partition_of(day: NaiveDate) -> String {
    format!("step_records_{}", day.format("%Y_%m"))
}

async fn exists(client: &tokio_postgres::Client, relation: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn partitions_past_the_retention_are_archived_with_their_reviews_and_boards_keep_their_steps()
{
    let db = TestDb::seeded().await.unwrap();
    let client = db.client().await.unwrap();
    client
        .execute(
            "SELECT ensure_step_record_partitions((current_date - interval '24 months')::date, 24)",
            &[],
        )
        .await
        .unwrap();
    let user = insert_user(&client, "archived@example.com").await;
    let (old, reviewed_late, recent) = (months_ago(20), months_ago(15), months_ago(3));
    let old_record = insert_steps(&client, user, old, 1000).await;
    let late_record = insert_steps(&client, user, reviewed_late, 2000).await;
    insert_steps(&client, user, recent, 4000).await;
    let decided = insert_validation(&client, user, old_record, old, false).await;
    let waiting = insert_validation(&client, user, late_record, reviewed_late, true).await;

    // Off by default: the upkeep archives nothing without a retention.
    let settings = UpkeepSettings {
        login_limits: Default::default(),
        sync_replay_window: Duration::from_secs(30 * 86400),
        step_retention_months: None,
    };
    let detail = maintenance::upkeep(db.pool(), settings).await.unwrap();
    assert_eq!(detail["archive"], Value::Null, "{detail}");
    assert!(exists(&client, &format!("public.{}", partition_of(old))).await);

    // Six months: the month 20 months back goes; 15 months back waits for its review.
    let report = retention::archive_step_partitions(db.pool(), 6)
        .await
        .unwrap();
    assert!(report.archived.contains(&partition_of(old)), "{report:?}");
    assert_eq!(report.waiting_for_review, vec![partition_of(reviewed_late)]);
    assert!(!exists(&client, &format!("public.{}", partition_of(old))).await);
    let archived: i32 = client
        .query_one(
            &format!(
                "SELECT steps FROM archive.{} WHERE user_id = $1",
                partition_of(old)
            ),
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 1000, "the records are kept in the archive");
    let moved: Vec<Uuid> = client
        .query("SELECT id FROM archive.step_validations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        moved,
        vec![decided],
        "the review decision went with its record"
    );
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM step_records WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        live, 2,
        "reads of step_records no longer see the archived month"
    );
    assert!(exists(&client, &format!("public.{}", partition_of(recent))).await);

    // Day totals stay: the all-time board still counts every step.
    leaderboard::refresh(db.pool(), Some(leaderboard::Period::AllTime))
        .await
        .unwrap();
    let steps: i64 = client
        .query_one(
            "SELECT steps FROM leaderboard_cache WHERE period = 'all_time' AND user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(steps, 7000);

    // Once decided, the waiting month goes too; today's records still insert.
    client
        .execute(
            "UPDATE step_validations SET status = 'rejected', reviewed_at = now() WHERE id = $1",
            &[&waiting],
        )
        .await
        .unwrap();
    let report = retention::archive_step_partitions(db.pool(), 6)
        .await
        .unwrap();
    assert_eq!(report.archived, vec![partition_of(reviewed_late)]);
    assert!(report.waiting_for_review.is_empty());
    insert_steps(&client, user, Utc::now().date_naive(), 10).await;

    // A retention shorter than two months is refused.
    assert!(
        retention::archive_step_partitions(db.pool(), 1)
            .await
            .is_err()
    );
}

fn push_body(device: Uuid, id: Uuid, name: &str, created_at: chrono::DateTime<Utc>) -> Value {
    json!({"device_id": device, "mutations": [{
        "id": id, "kind": "update_profile",
        "payload": {"display_name": name}, "created_at": created_at,
    }]})
}

async fn push(api: &Api, token: &str, body: &Value) -> Value {
    let (status, body) = answer(
        api.versioned(Method::POST, "/api/v1/sync/push", token, Some("1"))
            .json(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"][0].clone()
}

#[tokio::test]
async fn a_mutation_replayed_after_the_window_is_rejected_and_never_applied_again() {
    let window = Duration::from_secs(3);
    let server = TestServer::start_with(|c| c.sync_replay_window = window)
        .await
        .unwrap();
    let api = Api::new(&server);
    let user = api.register("replayed@example.com").await;
    let token = user.access_token.as_str();
    let device = Uuid::new_v4();
    let first = push_body(device, Uuid::new_v4(), "First", Utc::now());
    assert_eq!(push(&api, token, &first).await["status"], "applied");
    let second = push_body(device, Uuid::new_v4(), "Second", Utc::now());
    assert_eq!(push(&api, token, &second).await["status"], "applied");
    // Within the window a replay is a duplicate.
    assert_eq!(push(&api, token, &first).await["status"], "duplicate");

    // Past the window the stored outcomes are pruned; the replay is rejected, not re-applied.
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let pruned = retention::prune_sync_mutations(&server.db().client().await.unwrap(), window)
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    let replay = push(&api, token, &first).await;
    assert_eq!(replay["status"], "rejected", "{replay}");
    assert_eq!(replay["outcome"]["code"], "mutation_expired", "{replay}");
    let (_, me) = api.get("/api/v1/me", Some(token)).await;
    assert_eq!(me["display_name"], "Second", "{me}");

    // A new mutation stamped before the window is refused the same way; one inside it applies.
    let stale = push_body(
        device,
        Uuid::new_v4(),
        "Stale",
        Utc::now() - chrono::Duration::seconds(10),
    );
    assert_eq!(
        push(&api, token, &stale).await["outcome"]["code"],
        "mutation_expired"
    );
    let fresh = push_body(device, Uuid::new_v4(), "Fresh", Utc::now());
    assert_eq!(push(&api, token, &fresh).await["status"], "applied");
    let (_, me) = api.get("/api/v1/me", Some(token)).await;
    assert_eq!(me["display_name"], "Fresh", "{me}");
}

#[tokio::test]
async fn a_stored_outcome_stamped_by_a_clock_ahead_is_kept_until_its_stamp_leaves_the_window() {
    let window = Duration::from_secs(2);
    let server = TestServer::start_with(|c| c.sync_replay_window = window)
        .await
        .unwrap();
    let api = Api::new(&server);
    let user = api.register("ahead@example.com").await;
    let token = user.access_token.as_str();
    let ahead = Utc::now() + chrono::Duration::hours(1);
    let body = push_body(Uuid::new_v4(), Uuid::new_v4(), "Ahead", ahead);
    assert_eq!(push(&api, token, &body).await["status"], "applied");
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let pruned = retention::prune_sync_mutations(&server.db().client().await.unwrap(), window)
        .await
        .unwrap();
    assert_eq!(pruned, 0, "the replay would not be past the window yet");
    assert_eq!(push(&api, token, &body).await["status"], "duplicate");
}

#[tokio::test]
async fn expired_refresh_tokens_are_pruned_and_live_ones_keep_working() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let expired = api.register("expired@example.com").await;
    let live = api.register("live@example.com").await;
    let client = server.db().client().await.unwrap();
    client
        .execute(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 minute'
             WHERE user_id = $1",
            &[&expired.user.id],
        )
        .await
        .unwrap();
    let pruned = retention::prune_expired_refresh_tokens(&client)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let (status, _) = api.refresh(&live.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.refresh(&expired.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotating_the_jwt_secret_signs_nobody_out() {
    let db = TestDb::seeded().await.unwrap();
    let (old, new) = (JwtSecret::generate(), JwtSecret::generate());
    let before = Instance::start(&db, old.clone(), |_| {}).await;
    let http = reqwest::Client::new();
    let api = |instance: &Instance| Api::at(instance.url(""), http.clone());
    let me = |instance: &Instance, token: String| {
        let api = api(instance);
        async move { api.get("/api/v1/me", &token).await.0 }
    };
    let old_token = api(&before)
        .register("rotated@example.com")
        .await
        .access_token;
    before.stop().await;

    let rotating = Instance::start(&db, new.clone(), |c| c.jwt_previous_secret = Some(old)).await;
    assert_eq!(
        me(&rotating, old_token.clone()).await,
        StatusCode::OK,
        "a token of the previous secret is accepted during the grace period"
    );
    let new_token = api(&rotating)
        .sign_in("rotated@example.com")
        .await
        .access_token;
    rotating.stop().await;

    // After the grace period only the new secret verifies: new tokens, signed with it, do.
    let after = Instance::start(&db, new, |_| {}).await;
    assert_eq!(me(&after, new_token).await, StatusCode::OK);
    assert_eq!(me(&after, old_token).await, StatusCode::UNAUTHORIZED);
    after.stop().await;
}

/// The value of an unlabelled sample in a Prometheus exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

/// Reads the database-backed gauges once and renders the exposition.
async fn read_gauges(
    metrics: &fitkart_sync_server::metrics::Metrics,
    pool: &deadpool_postgres::Pool,
) -> String {
    metrics
        .read_database_gauges(&pool.get().await.unwrap())
        .await
        .unwrap();
    metrics.render(pool).unwrap()
}

#[tokio::test]
async fn a_verification_from_the_command_line_shows_in_the_ledger_metrics() {
    let db = TestDb::seeded().await.unwrap();
    let metrics = fitkart_sync_server::metrics::Metrics::new();
    let never = read_gauges(&metrics, db.pool()).await;
    assert_eq!(
        sample(&never, "fitkart_ledger_last_verified_timestamp_seconds"),
        Some(0.0)
    );

    assert!(common::verify_ledger_cli(&db).status.success());
    let verified = read_gauges(&metrics, db.pool()).await;
    assert_eq!(
        sample(&verified, "fitkart_ledger_verification_problems"),
        Some(0.0)
    );
    let at = sample(&verified, "fitkart_ledger_last_verified_timestamp_seconds").unwrap();
    assert!((at - Utc::now().timestamp() as f64).abs() < 300.0, "{at}");

    // A wallet whose balance no ledger entry explains.
    let client = db.client().await.unwrap();
    let user = insert_user(&client, "unexplained@example.com").await;
    client
        .execute(
            "INSERT INTO wallets (user_id, available_coins, lifetime_earned) VALUES ($1, 5, 5)",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(common::verify_ledger_cli(&db).status.code(), Some(1));
    let broken = read_gauges(&metrics, db.pool()).await;
    assert_eq!(
        sample(&broken, "fitkart_ledger_verification_problems"),
        Some(1.0)
    );
}

/// Metric names (`fitkart_...`) a text mentions.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("fitkart_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let server = TestServer::start_with(|config| {
        config.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await
    .unwrap();
    let api = Api::new(&server);
    let user = api.register("scraped@example.com").await;
    let body = push_body(Uuid::new_v4(), Uuid::new_v4(), "Scraped", Utc::now());
    push(&api, &user.access_token, &body).await;
    let exposition = reqwest::get(server.metrics_url().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families: std::collections::BTreeSet<&str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut used = std::collections::BTreeSet::new();
    for file in [
        "ops/alerts.yml",
        "ops/alerts.test.yml",
        "ops/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        used.extend(metric_names(&text));
    }
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| {
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !families.contains(family) && !families.contains(name.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\n{exposition}"
    );
    // The push's route label is the one the sync alerts select.
    assert!(
        exposition.contains("route=\"/api/v1/sync/push\""),
        "{exposition}"
    );
    assert!(
        exposition.contains("fitkart_sync_mutations_total{status=\"applied\",code=\"none\"} 1"),
        "{exposition}"
    );
}

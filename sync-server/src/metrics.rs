//! Prometheus metrics, one registry per server (no process-wide globals, so several servers
//! in one test process stay apart): requests by route and status, latency histograms, steps
//! accepted/flagged/rejected, coins awarded, sync pushes and pulls and their mutations'
//! outcomes, database pool usage, where lag-tolerant reads were served (replica or primary),
//! and gauges read from the database every [`DATABASE_GAUGE_PERIOD`]: the review queue, the
//! last ledger verification and the last successful run of each scheduled job (the same
//! value on every instance).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of HTTP request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template (`/api/v1/orders/{id}`), or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template.
    pub route: String,
}

/// Labels of the step outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `accepted`, `unchanged`, `flagged` or `rejected`.
    pub outcome: String,
}

/// Labels of the counter of step-report requests by the transaction they were recorded in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// `group` (a group transaction shared with other users' requests), `own` (a transaction
    /// of its own) or `own_after_group_failed` (its own, after its group failed).
    pub transaction: String,
}

/// Labels of the sync mutation counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MutationLabels {
    /// `applied`, `duplicate` or `rejected`.
    pub status: String,
    /// The rejection code (`none` for applied and duplicate mutations).
    pub code: String,
}

/// Labels of the per-job gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The scheduled job (`leaderboard_refresh`, `upkeep`, `verify_ledger`); not `job`, which
    /// Prometheus sets to the scrape job.
    pub scheduled_job: String,
}

/// How often each instance reads the database-backed gauges.
pub const DATABASE_GAUGE_PERIOD: Duration = Duration::from_secs(15);

/// Where a lag-tolerant read was served, when a read replica is configured.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReadSource {
    /// The replica had caught up far enough.
    Replica,
    /// The replica had not yet applied the user's own latest change (or a pull cursor's
    /// catalogue version): the primary answered.
    PrimaryReplicaBehind,
    /// The replica could not be reached or failed: the primary answered.
    PrimaryReplicaFailed,
}

impl ReadSource {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replica => "replica",
            Self::PrimaryReplicaBehind => "primary_replica_behind",
            Self::PrimaryReplicaFailed => "primary_replica_failed",
        }
    }
}

/// Labels of the read routing counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    /// `replica`, `primary_replica_behind` or `primary_replica_failed`.
    pub served_by: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    /// Step reports by outcome.
    pub steps: Family<OutcomeLabels, Counter>,
    /// Coins paid for steps and achievements.
    pub coins_awarded: Counter<u64, AtomicU64>,
    /// Step-report requests by the transaction they were recorded in
    /// ([`crate::rewards::groups`]).
    pub step_transactions: Family<GroupLabels, Counter>,
    /// Sync pushes, pulls and pushed mutations.
    pub sync: SyncMetrics,
    database: DatabaseMetrics,
    job_last_success: Family<JobLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, area by area.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fitkart");
        let (requests, latency) = register_requests(&mut registry);
        let (steps, coins_awarded) = register_steps_and_coins(&mut registry);
        let step_transactions = Family::<GroupLabels, Counter>::default();
        registry.register(
            "step_report_transactions",
            "Step-report requests by the transaction they were recorded in: group, own, \
             own_after_group_failed",
            step_transactions.clone(),
        );
        for transaction in ["group", "own", "own_after_group_failed"] {
            let _ = step_transactions.get_or_create(&GroupLabels {
                transaction: transaction.to_owned(),
            });
        }
        let sync = register_sync(&mut registry);
        let database = register_database(&mut registry);
        let job_last_success = register_jobs(&mut registry);
        Self {
            registry,
            requests,
            latency,
            steps,
            coins_awarded,
            step_transactions,
            sync,
            database,
            job_last_success,
        }
    }

    /// Counts the mutations of one push by status and rejection code.
    pub fn observe_push(&self, response: &fitkart_protocol::sync::PushResponse) {
        use fitkart_protocol::sync::MutationStatus;
        for result in &response.results {
            let status = match result.status {
                MutationStatus::Applied => "applied",
                MutationStatus::Duplicate => "duplicate",
                MutationStatus::Rejected => "rejected",
            };
            let code = match result.status {
                MutationStatus::Rejected => result.outcome.code.as_deref().unwrap_or("unknown"),
                _ => "none",
            };
            self.sync
                .mutations
                .get_or_create(&MutationLabels {
                    status: status.to_owned(),
                    code: code.to_owned(),
                })
                .inc();
        }
    }

    /// Reads the database-backed gauges once.
    pub async fn read_database_gauges(
        &self,
        client: &impl deadpool_postgres::GenericClient,
    ) -> crate::error::Result<()> {
        let queue = client
            .query_one(
                "SELECT count(*) AS pending,
                        coalesce(extract(epoch FROM now() - min(created_at)), 0)::bigint
                            AS oldest_age
                 FROM step_validations WHERE status = 'pending_review'",
                &[],
            )
            .await?;
        self.database.review_queue_pending.set(queue.get("pending"));
        self.database
            .review_queue_oldest_age
            .set(queue.get("oldest_age"));
        let ledger = client
            .query_opt(
                "SELECT extract(epoch FROM finished_at)::bigint AS finished,
                        coalesce((detail ->> 'problems')::bigint, 0) AS problems
                 FROM scheduled_job_runs
                 WHERE job = 'verify_ledger' AND outcome = 'ok'
                 ORDER BY started_at DESC LIMIT 1",
                &[],
            )
            .await?;
        if let Some(row) = ledger {
            self.database.ledger_last_verified.set(row.get("finished"));
            self.database.ledger_problems.set(row.get("problems"));
        }
        for row in client
            .query(
                "SELECT DISTINCT ON (job) job, extract(epoch FROM finished_at)::bigint AS finished
                 FROM scheduled_job_runs WHERE outcome = 'ok'
                 ORDER BY job, started_at DESC",
                &[],
            )
            .await?
        {
            self.job_last_success
                .get_or_create(&JobLabels {
                    scheduled_job: row.get("job"),
                })
                .set(row.get("finished"));
        }
        Ok(())
    }

    /// Counts one finished request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts step outcomes.
    pub fn observe_step(&self, outcome: &str) {
        self.steps
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts `requests` step-report requests recorded in `transaction` (a label of
    /// [`GroupLabels`]).
    pub fn observe_step_transactions(&self, transaction: &str, requests: usize) {
        self.step_transactions
            .get_or_create(&GroupLabels {
                transaction: transaction.to_owned(),
            })
            .inc_by(requests as u64);
    }

    /// Counts one lag-tolerant read by where it was served.
    pub fn observe_read(&self, source: ReadSource) {
        self.database
            .reads
            .get_or_create(&ReadLabels {
                served_by: source.as_str().to_owned(),
            })
            .inc();
    }

    /// Counts the outcomes and coins of one step recording.
    pub fn observe_record(&self, response: &fitkart_protocol::steps::RecordStepsResponse) {
        use fitkart_protocol::steps::RecordOutcome;
        for result in &response.results {
            self.observe_step(match result.status {
                RecordOutcome::Accepted => "accepted",
                RecordOutcome::Unchanged => "unchanged",
                RecordOutcome::Flagged => "flagged",
                RecordOutcome::Rejected => "rejected",
            });
        }
        self.coins_awarded
            .inc_by(u64::try_from(response.coins_awarded).unwrap_or(0));
    }

    /// The text exposition, with the pool gauges taken now.
    pub fn render(&self, pool: &deadpool_postgres::Pool) -> Result<String, std::fmt::Error> {
        let status = pool.status();
        self.database.pool_size.set(status.size as i64);
        self.database.pool_available.set(status.available as i64);
        self.database.pool_waiting.set(status.waiting as i64);
        self.database.pool_max_size.set(status.max_size as i64);
        self.database.pool_in_use.set(
            (status.size as i64)
                .saturating_sub(status.available as i64)
                .max(0),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

// Label values known in advance are exported from the start (as 0), so a rate or an alert
// over them exists before the first event: a job that never succeeds shows as last
// succeeding at 0 and its staleness alert fires. Each area below creates its own.

/// HTTP requests by route and status, and their latency.
fn register_requests(
    registry: &mut Registry,
) -> (
    Family<RequestLabels, Counter>,
    Family<RouteLabels, Histogram>,
) {
    let requests = Family::<RequestLabels, Counter>::default();
    let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.001, 2.0, 15))
    });
    registry.register(
        "http_requests",
        "HTTP requests by route and status",
        requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP request latency by route",
        latency.clone(),
    );
    (requests, latency)
}

/// Step reports by outcome (every outcome exported from the start) and coins awarded.
fn register_steps_and_coins(
    registry: &mut Registry,
) -> (Family<OutcomeLabels, Counter>, Counter<u64, AtomicU64>) {
    let steps = Family::<OutcomeLabels, Counter>::default();
    let coins_awarded = Counter::<u64, AtomicU64>::default();
    registry.register("step_reports", "Step reports by outcome", steps.clone());
    registry.register(
        "coins_awarded",
        "Coins paid for steps and achievements",
        coins_awarded.clone(),
    );
    for outcome in ["accepted", "unchanged", "flagged", "rejected"] {
        let _ = steps.get_or_create(&OutcomeLabels {
            outcome: outcome.to_owned(),
        });
    }
    (steps, coins_awarded)
}

/// The sync metrics.
pub struct SyncMetrics {
    /// Sync pushes handled.
    pub pushes: Counter,
    /// Sync pulls handled.
    pub pulls: Counter,
    /// Pushed mutations by status and rejection code.
    pub mutations: Family<MutationLabels, Counter>,
}

/// Sync pushes and pulls, and pushed mutations by outcome (applied and duplicate exported
/// from the start).
fn register_sync(registry: &mut Registry) -> SyncMetrics {
    let (pushes, pulls) = (Counter::default(), Counter::default());
    registry.register("sync_pushes", "Sync pushes handled", pushes.clone());
    registry.register("sync_pulls", "Sync pulls handled", pulls.clone());
    let mutations = Family::<MutationLabels, Counter>::default();
    registry.register(
        "sync_mutations",
        "Pushed mutations by status (applied, duplicate, rejected) and rejection code",
        mutations.clone(),
    );
    for status in ["applied", "duplicate"] {
        let _ = mutations.get_or_create(&MutationLabels {
            status: status.to_owned(),
            code: "none".to_owned(),
        });
    }
    SyncMetrics {
        pushes,
        pulls,
        mutations,
    }
}

/// The database metrics.
struct DatabaseMetrics {
    reads: Family<ReadLabels, Counter>,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    pool_max_size: Gauge,
    pool_in_use: Gauge,
    review_queue_pending: Gauge,
    review_queue_oldest_age: Gauge,
    ledger_problems: Gauge,
    ledger_last_verified: Gauge,
    database_gauges_failed: Counter,
}

/// Where lag-tolerant reads were served, the connection pool, and the gauges read from the
/// database (review queue, last ledger verification) with their failed reads.
fn register_database(registry: &mut Registry) -> DatabaseMetrics {
    let reads = Family::<ReadLabels, Counter>::default();
    registry.register(
        "replica_reads",
        "Lag-tolerant reads (history, catalogue, leaderboards, pulls) by where they were \
         served, when a read replica is configured",
        reads.clone(),
    );
    let (pool_size, pool_available, pool_waiting) =
        (Gauge::default(), Gauge::default(), Gauge::default());
    registry.register(
        "db_pool_size",
        "Open database connections",
        pool_size.clone(),
    );
    registry.register(
        "db_pool_available",
        "Idle database connections",
        pool_available.clone(),
    );
    registry.register(
        "db_pool_waiting",
        "Requests waiting for a connection",
        pool_waiting.clone(),
    );
    let (pool_max_size, pool_in_use) = (Gauge::default(), Gauge::default());
    registry.register(
        "db_pool_max_size",
        "Largest number of database connections the pool may open",
        pool_max_size.clone(),
    );
    registry.register(
        "db_pool_in_use",
        "Database connections lent to requests and jobs",
        pool_in_use.clone(),
    );
    let (review_queue_pending, review_queue_oldest_age) = (Gauge::default(), Gauge::default());
    registry.register(
        "review_queue_pending",
        "Step increases waiting for an admin's review (read from the database)",
        review_queue_pending.clone(),
    );
    registry.register(
        "review_queue_oldest_age_seconds",
        "Age of the oldest step increase waiting for review, 0 when none",
        review_queue_oldest_age.clone(),
    );
    let (ledger_problems, ledger_last_verified) = (Gauge::default(), Gauge::default());
    registry.register(
        "ledger_verification_problems",
        "Problems the last completed ledger verification found (0: consistent)",
        ledger_problems.clone(),
    );
    registry.register(
        "ledger_last_verified_timestamp_seconds",
        "Unix time the last ledger verification completed, 0 when never",
        ledger_last_verified.clone(),
    );
    let database_gauges_failed = Counter::default();
    registry.register(
        "database_gauge_errors",
        "Failed reads of the database-backed gauges",
        database_gauges_failed.clone(),
    );
    DatabaseMetrics {
        reads,
        pool_size,
        pool_available,
        pool_waiting,
        pool_max_size,
        pool_in_use,
        review_queue_pending,
        review_queue_oldest_age,
        ledger_problems,
        ledger_last_verified,
        database_gauges_failed,
    }
}

/// When each scheduled job last succeeded (the refresh and upkeep jobs exported from the
/// start).
fn register_jobs(registry: &mut Registry) -> Family<JobLabels, Gauge> {
    let job_last_success = Family::<JobLabels, Gauge>::default();
    registry.register(
        "scheduled_job_last_success_timestamp_seconds",
        "Unix time each scheduled job last finished without error (any instance)",
        job_last_success.clone(),
    );
    for job in [crate::jobs::LEADERBOARD_REFRESH, crate::jobs::UPKEEP] {
        let _ = job_last_success.get_or_create(&JobLabels {
            scheduled_job: job.to_owned(),
        });
    }
    job_last_success
}

/// Refreshes the database-backed gauges every [`DATABASE_GAUGE_PERIOD`] until the task is
/// aborted. A failed read is counted (`fitkart_database_gauge_errors`) and logged.
pub async fn run_database_gauges(pool: deadpool_postgres::Pool, metrics: std::sync::Arc<Metrics>) {
    let mut ticker = tokio::time::interval(DATABASE_GAUGE_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let read = match pool.get().await {
            Ok(client) => metrics.read_database_gauges(&client).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = read {
            metrics.database.database_gauges_failed.inc();
            tracing::warn!(error = %err, "could not read the database-backed metrics");
        }
    }
}

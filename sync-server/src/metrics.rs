//! Prometheus metrics, one registry per server (no process-wide globals, so several servers
//! in one test process stay apart): requests by route and status, latency histograms, steps
//! accepted/flagged/rejected, coins awarded, sync pushes and pulls, database pool usage, and
//! where lag-tolerant reads were served (replica or primary).

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
    /// Sync pushes handled.
    pub sync_pushes: Counter,
    /// Sync pulls handled.
    pub sync_pulls: Counter,
    reads: Family<ReadLabels, Counter>,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fitkart");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let steps = Family::<OutcomeLabels, Counter>::default();
        let coins_awarded = Counter::<u64, AtomicU64>::default();
        let sync_pushes = Counter::default();
        let sync_pulls = Counter::default();
        let reads = Family::<ReadLabels, Counter>::default();
        let (pool_size, pool_available, pool_waiting) =
            (Gauge::default(), Gauge::default(), Gauge::default());
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
        registry.register("step_reports", "Step reports by outcome", steps.clone());
        registry.register(
            "coins_awarded",
            "Coins paid for steps and achievements",
            coins_awarded.clone(),
        );
        registry.register("sync_pushes", "Sync pushes handled", sync_pushes.clone());
        registry.register("sync_pulls", "Sync pulls handled", sync_pulls.clone());
        registry.register(
            "replica_reads",
            "Lag-tolerant reads (history, catalogue, leaderboards, pulls) by where they were \
             served, when a read replica is configured",
            reads.clone(),
        );
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
        Self {
            registry,
            requests,
            latency,
            steps,
            coins_awarded,
            sync_pushes,
            sync_pulls,
            reads,
            pool_size,
            pool_available,
            pool_waiting,
        }
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

    /// Counts one lag-tolerant read by where it was served.
    pub fn observe_read(&self, source: ReadSource) {
        self.reads
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
        self.pool_size.set(status.size as i64);
        self.pool_available.set(status.available as i64);
        self.pool_waiting.set(status.waiting as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

//! Group commit of step reports: the small batches of different users that arrive together
//! are recorded in one transaction, each judged exactly as alone (its own account check,
//! change version, judgement and settlement), so PostgreSQL begins, commits and flushes its
//! WAL once for the group instead of once per request ([ADR 0015](../../../docs/adr/0015-group-commit-of-step-reports.md)),
//! and runs one statement per kind of row for the whole group
//! ([`steps::record_group`], [ADR 0016](../../../docs/adr/0016-set-based-statements-for-a-group.md)).
//!
//! Batching is natural, never timed: a request waits only while a group is already in
//! flight. [`ReportGroups`] runs up to `groups` group transactions at once; each takes what
//! is queued when it starts, up to `max_group` requests. A request alone runs alone, so at
//! low load nothing waits; under load the queue forms groups by itself.
//!
//! What keeps it as safe as one transaction per request:
//! - *Lock order.* A group locks its users' change-version rows first, in one statement (the
//!   upsert that takes their versions), in the order of their ids. The other rows a report
//!   locks belong to its user, so two groups, or a group and a transaction that takes one
//!   user's change-version lock first, cannot wait on each other in a cycle. A writer that takes no such lock (the full leaderboard
//!   rebuild repairing month totals) can deadlock with a group; PostgreSQL then fails one of
//!   them, and a failed group is recorded again as below.
//! - *Failure isolation.* Should any request of a group fail (its account check, a refused
//!   batch, a deadlock with a bulk job, a lost connection), the group's transaction is
//!   dropped, so nothing of it is written, and every request of the group is recorded again
//!   in a transaction of its own, where only the failing one fails.
//! - *One request per user and group.* A second request of a user already in the group
//!   waits for the group to commit, then runs alone; two requests of one user never judge
//!   the same stored state.
//! - *Exactly once.* A group whose commit fails is recorded again alone. Should the commit
//!   have happened all the same (a connection lost after PostgreSQL committed), recording a
//!   report again changes nothing and pays nothing: a day pays `coins_for_day(its largest
//!   verified total)` less what it paid ([`crate::rewards::settlement`]).

use std::sync::Arc;

use deadpool_postgres::Pool;
use fitkart_protocol::steps::{RecordStepsResponse, StepReport};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::auth::accounts::Standing;
use crate::error::DomainError;
use crate::metrics::Metrics;
use crate::rewards::steps::{self, GroupBatch, GroupFailed};

/// The default of [`crate::config::ServerConfig::step_report_groups`]: group transactions
/// in flight at once.
pub const DEFAULT_GROUPS: usize = 2;

/// The default of [`crate::config::ServerConfig::step_report_group_max`]: requests in one
/// group transaction at most.
pub const DEFAULT_MAX_GROUP: usize = 16;

/// Requests of at most this many reports are grouped; larger batches (a backfill, a sync)
/// are recorded alone, so that a group stays short and its locks are held briefly.
pub const MAX_GROUPED_REPORTS: usize = 8;

/// Requests waiting for a group at most; beyond it a request is recorded alone.
const QUEUE_CAPACITY: usize = 4096;

/// The caller's account check, on the [`Standing`] read in the batch's transaction. It may
/// run twice: in the group, and again alone if the group fails.
type Check<E> = Box<dyn Fn(Option<&Standing>) -> Result<(), E> + Send + Sync>;

/// One request waiting for a group.
struct Job<E> {
    user_id: Uuid,
    reports: Vec<StepReport>,
    check: Check<E>,
    reply: oneshot::Sender<Result<RecordStepsResponse, E>>,
}

/// Records step reports, grouping those of different users that arrive together into shared
/// transactions. Cloning shares the queue.
pub struct ReportGroups<E> {
    queue: Option<mpsc::Sender<Job<E>>>,
    metrics: Arc<Metrics>,
}

impl<E> Clone for ReportGroups<E> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<E> ReportGroups<E>
where
    E: From<DomainError> + Send + 'static,
{
    /// Starts `groups` group workers on `pool` (none when `groups` is 0 or `max_group` 0 or
    /// 1: every request is then recorded alone), counting requests in `metrics`
    /// ([`Metrics::observe_step_transactions`]). Needs a Tokio runtime; the workers end when
    /// the last clone is dropped.
    pub fn start(pool: Pool, metrics: Arc<Metrics>, groups: usize, max_group: usize) -> Self {
        if groups == 0 || max_group <= 1 {
            return Self {
                queue: None,
                metrics,
            };
        }
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..groups {
            tokio::spawn(work(
                pool.clone(),
                metrics.clone(),
                receiver.clone(),
                max_group,
            ));
        }
        Self {
            queue: Some(sender),
            metrics,
        }
    }

    /// Records `reports` for `user_id` if the account passes `check`, as
    /// [`steps::record_steps`] does, in a group transaction when other users' requests are
    /// waiting too.
    pub async fn record(
        &self,
        pool: &Pool,
        user_id: Uuid,
        reports: Vec<StepReport>,
        check: impl Fn(Option<&Standing>) -> Result<(), E> + Send + Sync + 'static,
    ) -> Result<RecordStepsResponse, E> {
        let queue = match &self.queue {
            Some(queue) if reports.len() <= MAX_GROUPED_REPORTS => queue,
            _ => {
                self.metrics.observe_step_transactions("own", 1);
                return steps::record_steps(pool, user_id, &reports, check).await;
            }
        };
        steps::check_batch_size(&reports)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            user_id,
            reports,
            check: Box::new(check),
            reply,
        };
        match queue.try_send(job) {
            Ok(()) => answer.await.map_err(|_| DomainError::internal())?,
            // A full queue (or workers gone): alone, rather than wait.
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                self.metrics.observe_step_transactions("own", 1);
                alone(pool, &job).await
            }
        }
    }
}

/// A group worker: takes what is queued (waiting for the first request), up to `max_group`,
/// and records it.
async fn work<E>(
    pool: Pool,
    metrics: Arc<Metrics>,
    queue: Arc<Mutex<mpsc::Receiver<Job<E>>>>,
    max_group: usize,
) where
    E: From<DomainError> + Send + 'static,
{
    loop {
        let jobs = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < max_group {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        // In a task of its own, so that a panic loses one group's answers (their requests
        // answer 500), not the worker.
        let (pool, metrics) = (pool.clone(), metrics.clone());
        let group = tokio::spawn(async move { record_group(&pool, &metrics, jobs).await });
        if let Err(err) = group.await {
            tracing::error!(error = %err, "a group of step reports failed");
        }
    }
}

/// Records `jobs`: the first request of each user together, then any further ones alone, in
/// the order they came.
async fn record_group<E>(pool: &Pool, metrics: &Metrics, jobs: Vec<Job<E>>)
where
    E: From<DomainError> + Send + 'static,
{
    let mut group: Vec<Job<E>> = Vec::with_capacity(jobs.len());
    let mut later: Vec<Job<E>> = Vec::new();
    for job in jobs {
        if group.iter().any(|j| j.user_id == job.user_id) {
            later.push(job);
        } else {
            group.push(job);
        }
    }
    group.sort_by_key(|job| job.user_id);
    if let [_] = group.as_slice() {
        // A group of one is recorded alone, with the statements of a report alone.
        later.insert(0, group.remove(0));
    } else {
        match together(pool, &group).await {
            Ok(responses) => {
                metrics.observe_step_transactions("group", group.len());
                for (job, response) in group.into_iter().zip(responses) {
                    // The requester may have gone (a timeout); what was recorded stays.
                    let _ = job.reply.send(Ok(response));
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, requests = group.len(),
                    "a group of step reports is recorded again, each alone");
                metrics.observe_step_transactions("own_after_group_failed", group.len());
                let answers =
                    futures_util::future::join_all(group.iter().map(|job| alone(pool, job))).await;
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
        }
    }
    metrics.observe_step_transactions("own", later.len());
    for job in later {
        let answer = alone(pool, &job).await;
        let _ = job.reply.send(answer);
    }
}

/// Records one request in a transaction of its own.
async fn alone<E>(pool: &Pool, job: &Job<E>) -> Result<RecordStepsResponse, E>
where
    E: From<DomainError>,
{
    steps::record_steps(pool, job.user_id, &job.reports, &job.check).await
}

/// Records a group of requests of distinct users (sorted by user) in one transaction
/// ([`steps::record_group`]), and commits it if every request succeeded.
async fn together<E>(pool: &Pool, group: &[Job<E>]) -> Result<Vec<RecordStepsResponse>, GroupFailed>
where
    E: From<DomainError>,
{
    let mut conn = pool.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let batches: Vec<GroupBatch<'_, Check<E>>> = group
        .iter()
        .map(|job| (job.user_id, job.reports.as_slice(), &job.check))
        .collect();
    let responses = steps::record_group(&tx, &batches).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(responses)
}

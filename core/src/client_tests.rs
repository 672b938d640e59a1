//! Tests of the client's driving logic against a scripted transport: session refresh,
//! single-flight sync, deadlines, status and listeners. The real server is exercised by the
//! end-to-end tests in `tests/`.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::AtomicUsize;

use fitkart_protocol::auth::Role;
use fitkart_protocol::sync::{Changes, MutationResult, MutationStatus, StoredOutcome};

use super::*;
use crate::session::MemoryTokenStore;
use crate::transport::{BoxFuture, HttpResponse, TransportError};

const USER: &str = "00000000-0000-7000-8000-000000000001";

type Handler = dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync;

/// Answers each request with a handler; optionally holds pushes until released.
struct Scripted {
    handler: Box<Handler>,
    requests: StdMutex<Vec<HttpRequest>>,
    gate: Option<Arc<tokio::sync::Notify>>,
}

impl Scripted {
    fn new(handler: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static) -> Self {
        Self {
            handler: Box::new(handler),
            requests: StdMutex::new(Vec::new()),
            gate: None,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }
}

impl Transport for Scripted {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            self.requests.lock().unwrap().push(request.clone());
            if let Some(gate) = &self.gate
                && request.path.contains("/sync/push")
            {
                gate.notified().await;
            }
            Ok((self.handler)(&request))
        })
    }
}

/// A clock that only moves when slept on.
struct ManualClock {
    now: StdMutex<DateTime<Utc>>,
    slept: AtomicUsize,
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        *self.now.lock().unwrap() += chrono::Duration::from_std(duration).unwrap();
        self.slept.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

fn json(status: u16, value: serde_json::Value) -> HttpResponse {
    HttpResponse {
        status,
        retry_after: None,
        body: serde_json::to_vec(&value).unwrap(),
    }
}

fn error(status: u16, code: &str) -> HttpResponse {
    json(
        status,
        serde_json::json!({"error": {"code": code, "message": code}}),
    )
}

fn token_response(access: &str) -> serde_json::Value {
    serde_json::to_value(TokenResponse {
        user: UserProfile {
            id: USER.parse().unwrap(),
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            role: Role::User,
            timezone: "UTC".into(),
            daily_step_goal: 10_000,
            created_at: "2025-01-01T00:00:00Z".parse().unwrap(),
        },
        access_token: access.into(),
        refresh_token: format!("refresh-for-{access}"),
        expires_in: 900,
        token_type: "Bearer".into(),
    })
    .unwrap()
}

/// A server that accepts everything: pushes are applied, pulls are empty.
fn happy(request: &HttpRequest) -> HttpResponse {
    let path = request.path.as_str();
    if path.ends_with("/auth/login") || path.ends_with("/auth/refresh") {
        json(200, token_response("access-1"))
    } else if path.ends_with("/sync/push") {
        let body: PushRequestBody =
            serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
        let results: Vec<MutationResult> = body
            .mutations
            .iter()
            .map(|m| MutationResult {
                id: m.id,
                status: MutationStatus::Applied,
                outcome: StoredOutcome {
                    status: MutationStatus::Applied,
                    code: None,
                    message: None,
                    result: None,
                },
            })
            .collect();
        json(200, serde_json::json!({ "results": results }))
    } else if path.contains("/sync/pull") {
        json(
            200,
            serde_json::to_value(PullResponse {
                changes: Changes::default(),
                next_cursor: "c".into(),
                has_more: false,
            })
            .unwrap(),
        )
    } else if path.ends_with("/achievements") {
        json(200, serde_json::json!({ "achievements": [] }))
    } else if path.contains("/leaderboard") {
        json(
            200,
            serde_json::json!({"period": "weekly", "period_start": "2025-02-24",
                               "computed_at": null, "entries": [], "me": null}),
        )
    } else {
        json(200, serde_json::json!({}))
    }
}

#[derive(serde::Deserialize)]
struct PushRequestBody {
    mutations: Vec<fitkart_protocol::sync::Mutation>,
}

struct Fixture {
    _dir: tempfile::TempDir,
    client: FitKart,
    transport: Arc<Scripted>,
    clock: Arc<ManualClock>,
    tokens: Arc<MemoryTokenStore>,
}

async fn signed_in(transport: Scripted) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(transport);
    let clock = Arc::new(ManualClock {
        now: StdMutex::new("2025-03-01T12:00:00Z".parse().unwrap()),
        slept: AtomicUsize::new(0),
    });
    let tokens = Arc::new(MemoryTokenStore::new());
    let config = Config::new(dir.path().join("fitkart.db"), "http://127.0.0.1:9");
    let client =
        FitKart::open_with(config, tokens.clone(), transport.clone(), clock.clone()).unwrap();
    client
        .login("ann@example.com", "correct horse")
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        client,
        transport,
        clock,
        tokens,
    }
}

fn walk(client: &FitKart, steps: i64) {
    client
        .record_steps(
            "2025-03-01".parse().unwrap(),
            "healthkit",
            steps,
            "2025-03-01T11:00:00Z".parse().unwrap(),
        )
        .unwrap();
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_call_repeated() {
    let fixture = signed_in(Scripted::new(|request| {
        let auth = request
            .headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.clone());
        if request.path.ends_with("/auth/refresh") {
            return json(200, token_response("access-2"));
        }
        if auth.as_deref() == Some("Bearer access-1") {
            return error(401, "token_expired");
        }
        happy(request)
    }))
    .await;
    walk(&fixture.client, 3000);

    let report = fixture.client.sync().await.unwrap();

    assert!(report.complete);
    assert_eq!(report.applied, 1);
    let refreshes = fixture
        .transport
        .paths()
        .iter()
        .filter(|p| p.ends_with("/auth/refresh"))
        .count();
    assert_eq!(refreshes, 1);
    assert_eq!(
        fixture.tokens.load().unwrap().unwrap().access_token,
        "access-2"
    );
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session_and_surfaces_unauthorized() {
    let fixture = signed_in(Scripted::new(|request| {
        if request.path.ends_with("/auth/login") {
            return json(200, token_response("access-1"));
        }
        if request.path.ends_with("/auth/refresh") {
            return error(401, "refresh_token_reused");
        }
        error(401, "token_expired")
    }))
    .await;
    walk(&fixture.client, 3000);

    let err = fixture.client.sync().await.unwrap_err();

    assert_eq!(
        err,
        FitKartError::Unauthorized {
            code: "refresh_token_reused".into()
        }
    );
    assert_eq!(fixture.tokens.load().unwrap(), None);
    assert_eq!(fixture.client.current_user().unwrap(), None);
    assert_eq!(
        fixture.client.pending_changes().unwrap(),
        1,
        "queued work survives the end of a session"
    );
}

#[tokio::test]
async fn a_disabled_account_ends_the_session_without_a_refresh_and_keeps_the_queue() {
    let fixture = signed_in(Scripted::new(|request| {
        if request.path.ends_with("/auth/login") {
            return json(200, token_response("access-1"));
        }
        error(403, "account_disabled")
    }))
    .await;
    walk(&fixture.client, 3000);

    let err = fixture.client.sync().await.unwrap_err();

    assert_eq!(
        err,
        FitKartError::Unauthorized {
            code: "account_disabled".into()
        }
    );
    assert!(
        !fixture
            .transport
            .paths()
            .iter()
            .any(|p| p.ends_with("/auth/refresh")),
        "a disabled account has no session to refresh"
    );
    assert_eq!(fixture.tokens.load().unwrap(), None);
    assert_eq!(fixture.client.pending_changes().unwrap(), 1);
}

#[tokio::test]
async fn upgrade_required_stops_the_sync_and_changes_nothing_the_app_sees() {
    let fixture = signed_in(Scripted::new(|request| {
        if request.path.ends_with("/auth/login") {
            json(200, token_response("access-1"))
        } else {
            error(426, "protocol_version_unsupported")
        }
    }))
    .await;
    walk(&fixture.client, 3000);
    let wallet = fixture.client.wallet().unwrap();

    let err = fixture.client.sync().await.unwrap_err();

    assert_eq!(err, FitKartError::UpgradeRequired);
    assert_eq!(
        fixture.client.status(),
        SyncStatus::Error {
            code: "protocol_version_unsupported".into()
        }
    );
    assert_eq!(fixture.client.pending_changes().unwrap(), 1);
    assert_eq!(fixture.client.wallet().unwrap(), wallet);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_reported_offline() {
    let fixture = signed_in(Scripted::new(|request| {
        if request.path.ends_with("/auth/login") {
            json(200, token_response("access-1"))
        } else {
            let mut answer = error(503, "service_unavailable");
            answer.retry_after = Some(Duration::from_secs(2));
            answer
        }
    }))
    .await;
    walk(&fixture.client, 3000);

    let err = fixture.client.sync().await.unwrap_err();

    assert!(
        matches!(err, FitKartError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(fixture.client.status(), SyncStatus::Offline);
    let retries = RetryPolicy::default().max_retries as usize;
    // A user's first sync registers the device alongside the push: each exchange is tried
    // once and retried up to the policy's limit, each retry after a wait.
    let attempts = |suffix: &str| {
        fixture
            .transport
            .paths()
            .iter()
            .filter(|p| p.ends_with(suffix))
            .count()
    };
    assert_eq!(attempts("/sync/push"), retries + 1);
    assert_eq!(attempts("/devices"), retries + 1);
    assert_eq!(fixture.clock.slept.load(Ordering::SeqCst), 2 * retries);
    // Each wait honoured Retry-After (2 s) at least.
    let waited = fixture.clock.now() - "2025-03-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
    assert!(
        waited >= chrono::Duration::seconds(2 * retries as i64),
        "{waited}"
    );
    assert_eq!(fixture.client.pending_changes().unwrap(), 1);
}

#[tokio::test]
async fn sync_once_gives_up_at_its_deadline_instead_of_waiting_past_it() {
    let fixture = signed_in(Scripted::new(|request| {
        if request.path.ends_with("/auth/login") {
            json(200, token_response("access-1"))
        } else {
            let mut answer = error(503, "service_unavailable");
            answer.retry_after = Some(Duration::from_secs(30));
            answer
        }
    }))
    .await;
    walk(&fixture.client, 3000);

    let err = fixture.client.sync_once(Duration::from_secs(5)).await;

    assert!(err.is_err());
    assert_eq!(fixture.clock.slept.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_second_sync_joins_the_running_one() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut transport = Scripted::new(happy);
    transport.gate = Some(gate.clone());
    let fixture = signed_in(transport).await;
    walk(&fixture.client, 3000);

    let first = tokio::spawn({
        let client = fixture.client.clone();
        async move { client.sync().await }
    });
    while !fixture
        .transport
        .paths()
        .iter()
        .any(|p| p.ends_with("/sync/push"))
    {
        tokio::task::yield_now().await;
    }
    let second = tokio::spawn({
        let client = fixture.client.clone();
        async move { client.sync().await }
    });
    tokio::task::yield_now().await;
    gate.notify_one();

    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();

    assert_eq!(first, second);
    let pushes = fixture
        .transport
        .paths()
        .iter()
        .filter(|p| p.ends_with("/sync/push"))
        .count();
    assert_eq!(pushes, 1);
}

#[derive(Default)]
struct Recorder {
    parts: StdMutex<Vec<Part>>,
    statuses: StdMutex<Vec<SyncStatus>>,
}

impl Listener for Recorder {
    fn on_change(&self, parts: &[Part]) {
        self.parts.lock().unwrap().extend_from_slice(parts);
    }

    fn on_status(&self, status: &SyncStatus) {
        self.statuses.lock().unwrap().push(status.clone());
    }
}

#[tokio::test]
async fn listeners_hear_what_changed_and_the_sync_status() {
    let fixture = signed_in(Scripted::new(happy)).await;
    let recorder = Arc::new(Recorder::default());
    let id = fixture.client.add_listener(recorder.clone());

    walk(&fixture.client, 3000);
    assert_eq!(*recorder.parts.lock().unwrap(), [Part::Steps, Part::Wallet]);
    walk(&fixture.client, 10);
    assert_eq!(
        recorder.parts.lock().unwrap().len(),
        2,
        "a lower total changes nothing"
    );

    fixture.client.sync().await.unwrap();
    let statuses = recorder.statuses.lock().unwrap().clone();
    assert!(statuses.iter().any(|s| matches!(
        s,
        SyncStatus::Syncing {
            phase: SyncPhase::Pushing,
            ..
        }
    )));
    assert_eq!(statuses.last(), Some(&SyncStatus::Idle));
    assert!(fixture.client.has_synced().unwrap());

    assert!(fixture.client.remove_listener(id));
    walk(&fixture.client, 5000);
    assert!(!recorder.parts.lock().unwrap().contains(&Part::Orders));
}

#[tokio::test]
async fn logout_with_pending_changes_refuses_unless_told_to_discard() {
    let fixture = signed_in(Scripted::new(happy)).await;
    walk(&fixture.client, 3000);

    assert_eq!(
        fixture.client.logout(false).await,
        Err(FitKartError::PendingChanges { count: 1 })
    );
    assert!(fixture.client.current_user().unwrap().is_some());

    fixture.client.logout(true).await.unwrap();
    assert_eq!(fixture.client.current_user().unwrap(), None);
    assert!(!fixture.client.has_synced().unwrap());
    assert!(matches!(
        fixture.client.wallet(),
        Err(FitKartError::Unauthorized { .. })
    ));
}

/// A pull of three pages whose third is refused once: `p0` (no cursor) → `p1` → `p2`.
fn three_pages(refuse_third: Arc<std::sync::atomic::AtomicBool>) -> Scripted {
    Scripted::new(move |request| {
        let path = request.path.as_str();
        if !path.contains("/sync/pull") {
            return happy(request);
        }
        let (next, more) = if path.ends_with("cursor=p2") {
            if refuse_third.swap(false, Ordering::SeqCst) {
                return error(400, "bad_request");
            }
            ("p3", false)
        } else if path.ends_with("cursor=p1") {
            ("p2", true)
        } else {
            ("p1", true)
        };
        json(
            200,
            serde_json::to_value(PullResponse {
                changes: Changes::default(),
                next_cursor: next.into(),
                has_more: more,
            })
            .unwrap(),
        )
    })
}

#[tokio::test]
async fn a_pull_stopped_by_a_refused_page_keeps_the_pages_before_it_and_resumes_after_them() {
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fixture = signed_in(three_pages(refuse.clone())).await;
    let client = &fixture.client;

    let err = client.sync().await.unwrap_err();
    assert!(
        matches!(&err, FitKartError::Rejected { code, .. } if code == "bad_request"),
        "{err:?}"
    );
    let cursor = client.store().read(engine::pull_cursor).unwrap();
    assert_eq!(cursor.as_deref(), Some("p2"), "the last page written");
    assert!(!client.has_synced().unwrap());
    assert_eq!(
        client.leaderboard(LeaderboardPeriod::Weekly).unwrap(),
        None,
        "the refresh is written only after the last page"
    );

    let before = fixture.transport.paths().len();
    let report = client.sync().await.unwrap();
    assert!(report.complete);
    assert_eq!(report.pulled.pages, 1, "only the page not yet written");
    let pulls: Vec<String> = fixture.transport.paths()[before..]
        .iter()
        .filter(|p| p.contains("/sync/pull"))
        .cloned()
        .collect();
    assert_eq!(pulls.len(), 1);
    assert!(pulls[0].ends_with("cursor=p2"), "{pulls:?}");
    assert!(client.has_synced().unwrap());
    assert!(
        client
            .leaderboard(LeaderboardPeriod::Weekly)
            .unwrap()
            .is_some()
    );
    assert_eq!(
        client.store().read(engine::pull_cursor).unwrap().as_deref(),
        Some("p3")
    );
}

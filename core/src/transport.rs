//! The network seam: the engine's requests leave and its answers arrive only through
//! [`Transport`]. [`HttpTransport`] (reqwest, rustls) is the default; [`FaultyTransport`]
//! wraps any transport to drop, delay, duplicate or fail exchanges in tests and simulations.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A boxed future, as the seams return them (object-safe traits).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// HTTP methods the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
}

/// One request to the server. `path` starts with `/` and includes the query string; the
/// transport puts its base URL in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// Path and query, e.g. `/api/v1/sync/pull?limit=500`.
    pub path: String,
    /// Extra headers (name, value). Bodies are always JSON.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<Vec<u8>>,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Retry-After` header, in seconds, when present.
    pub retry_after: Option<Duration>,
    /// The (decompressed) body.
    pub body: Vec<u8>,
}

/// Why an exchange produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct TransportError {
    /// What kind of failure.
    pub kind: TransportErrorKind,
    /// Details for logs (no personal data: URLs carry no credentials).
    pub message: String,
}

/// Kinds of transport failure. All are retried by the sync engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// No connection could be made.
    Connect,
    /// The exchange took longer than the timeout.
    Timeout,
    /// The connection broke while the request or answer was in flight: the server may or
    /// may not have acted on it.
    Interrupted,
}

impl TransportError {
    /// A failure of the given kind.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Sends one request and returns the server's answer. Implementations must not retry:
/// retrying is the engine's decision.
pub trait Transport: Send + Sync {
    /// Performs the exchange.
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

/// The default transport: reqwest over rustls, with connect and whole-request timeouts,
/// gzip-compressed answers accepted.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base_url: String,
}

impl HttpTransport {
    /// A transport to `base_url` (e.g. `https://sync.fitkart.example`), giving each request
    /// `timeout` to complete.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidInput`] when the URL is not http(s) or the client cannot be
    /// built.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, crate::Error> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(crate::Error::invalid(
                "server_url",
                "the server URL must start with http:// or https://",
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .gzip(true)
            .build()
            .map_err(|err| crate::Error::invalid("server_url", err.to_string()))?;
        Ok(Self { client, base_url })
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let url = format!("{}{}", self.base_url, request.path);
            let mut builder = match request.method {
                Method::Get => self.client.get(&url),
                Method::Post => self.client.post(&url),
                Method::Patch => self.client.patch(&url),
            };
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            if let Some(body) = request.body {
                builder = builder
                    .header("content-type", "application/json")
                    .body(body);
            }
            let response = builder.send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response.bytes().await.map_err(classify)?.to_vec();
            Ok(HttpResponse {
                status,
                retry_after,
                body,
            })
        })
    }
}

/// Maps a reqwest failure to a kind, without the URL (reqwest's message includes it).
fn classify(err: reqwest::Error) -> TransportError {
    let kind = if err.is_timeout() {
        TransportErrorKind::Timeout
    } else if err.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Interrupted
    };
    let err = err.without_url();
    TransportError::new(kind, err.to_string())
}

/// A fault to inject into one exchange (see [`FaultyTransport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail before sending: the server never sees the request.
    DropRequest,
    /// Send the request and let the server act on it, then report the answer lost.
    DropResponse,
    /// Answer with this status (and an error envelope) without sending.
    Status(u16),
    /// Send the request twice; return the second answer.
    Duplicate,
    /// Report a timeout without sending.
    Timeout,
}

/// Wraps a transport and applies queued faults to the next exchanges, one fault each, in
/// order; when the queue is empty exchanges pass through. Only requests whose path contains
/// the fault's filter (empty: any) are affected.
pub struct FaultyTransport {
    inner: Arc<dyn Transport>,
    faults: Mutex<VecDeque<(String, Fault)>>,
    sent: Mutex<Vec<String>>,
}

impl FaultyTransport {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Transport>) -> Self {
        Self {
            inner,
            faults: Mutex::new(VecDeque::new()),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Queues a fault for the next request whose path contains `path_filter`.
    pub fn inject(&self, path_filter: &str, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((path_filter.to_owned(), fault));
    }

    /// How many faults are still waiting.
    pub fn pending_faults(&self) -> usize {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The paths of every request that reached the inner transport, in order.
    pub fn sent_paths(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn take_fault(&self, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let index = faults
            .iter()
            .position(|(filter, _)| path.contains(filter.as_str()))?;
        faults.remove(index).map(|(_, fault)| fault)
    }

    async fn pass(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.path.clone());
        self.inner.send(request).await
    }
}

impl Transport for FaultyTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            match self.take_fault(&request.path) {
                None => self.pass(request).await,
                Some(Fault::DropRequest) => Err(TransportError::new(
                    TransportErrorKind::Connect,
                    "injected: request dropped",
                )),
                Some(Fault::Timeout) => Err(TransportError::new(
                    TransportErrorKind::Timeout,
                    "injected: timeout",
                )),
                Some(Fault::DropResponse) => {
                    let _ = self.pass(request).await;
                    Err(TransportError::new(
                        TransportErrorKind::Interrupted,
                        "injected: response lost",
                    ))
                }
                Some(Fault::Duplicate) => {
                    let _ = self.pass(request.clone()).await;
                    self.pass(request).await
                }
                Some(Fault::Status(status)) => Ok(HttpResponse {
                    status,
                    retry_after: None,
                    body: format!(
                        r#"{{"error":{{"code":"injected_{status}","message":"injected fault"}}}}"#
                    )
                    .into_bytes(),
                }),
            }
        })
    }
}

//! The admin listener: the approvals API, the approval page, health and readiness probes and
//! Prometheus metrics (the audit API router is mounted beside it by the server).
//!
//! [`router`] builds everything from an [`AdminState`] and is tested without a socket.

mod api;
pub mod audit_api;
mod auth;
mod error;
mod metrics;
mod page;

#[cfg(test)]
mod tests;

pub use auth::{hash_token, Authenticator, TokenStore};
pub use error::ApiError;
pub use metrics::{Metrics, UpstreamErrorClass};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::approval::{LinkSecret, Registry};
use crate::policy::PolicyStore;

/// `[admin]` section: the HTTP listener for the approvals API, page, audit API and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `host:port`; empty disables the admin listener.
    pub listen: String,
    /// Base URL people use to reach the admin listener (links in notices and cards).
    pub public_url: String,
    /// Name → SHA-256 (hex) of a bearer token, for people who use the admin API but whose
    /// token is not in the policy (approvers' tokens normally live in the policy as
    /// `[approvers.NAME] token_sha256`). A name here can approve only if the policy lists it
    /// as an approver of the request. `airlock approvals token NAME` makes a token.
    pub tokens: BTreeMap<String, String>,
    /// Key for HMAC-signed approval links in cards. Empty: a random key per process (links
    /// then stop working at restart). Prefer setting it via `AIRLOCK_ADMIN__LINK_SECRET`.
    pub link_secret: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:6480".into(),
            public_url: "http://127.0.0.1:6480".into(),
            tokens: BTreeMap::new(),
            link_secret: String::new(),
        }
    }
}

impl AdminConfig {
    /// Checks beyond types, for `config check`: token hashes are 64 hex digits, a configured
    /// link secret is long enough to resist guessing.
    pub fn validate(&self) -> Result<(), String> {
        TokenStore::from_config(&self.tokens).map_err(|e| e.to_string())?;
        if !self.link_secret.is_empty() && self.link_secret.len() < 32 {
            return Err("[admin] link_secret must be at least 32 characters".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("[admin.tokens] {name}: {message}")]
    Token { name: String, message: String },
}

/// Flipped by the gateway once it can serve (upstream reachable, audit open); `/readyz`
/// answers 503 until then and again while shutting down.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Everything the admin handlers need. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    tokens: Authenticator,
    link_secret: LinkSecret,
    readiness: Readiness,
}

impl AdminState {
    /// `link_secret` must be the same key the notifiers sign links with
    /// (`LinkSecret::from_config(&config.link_secret)`, made once at start). `policy` is the
    /// gateway's policy store: its approvers' `token_sha256` are accepted as bearer tokens,
    /// on top of `[admin.tokens]`.
    pub fn new(
        config: &AdminConfig,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        link_secret: LinkSecret,
        policy: Option<Arc<PolicyStore>>,
    ) -> Result<Self, AdminError> {
        Ok(AdminState {
            inner: Arc::new(Inner {
                registry,
                metrics,
                tokens: Authenticator::new(TokenStore::from_config(&config.tokens)?, policy),
                link_secret,
                readiness: Readiness::default(),
            }),
        })
    }

    /// The handle the gateway uses to flip `/readyz`.
    pub fn readiness(&self) -> Readiness {
        self.inner.readiness.clone()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn tokens(&self) -> &Authenticator {
        &self.inner.tokens
    }

    /// The token check for the audit API router (any known token may read the audit).
    pub fn token_check(&self) -> audit_api::TokenCheck {
        let auth = self.inner.tokens.clone();
        Arc::new(move |token: &str| auth.identify(token).is_some())
    }

    pub(crate) fn link_secret(&self) -> &LinkSecret {
        &self.inner.link_secret
    }
}

/// The admin router: `/api/approvals…`, `/approvals…` (page), `/healthz`, `/readyz`,
/// `/metrics`. Merge the audit API router into it before serving.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(api::routes())
        .merge(page::routes())
        .with_state(state)
}

/// Connections the admin listener serves at once; more wait in the kernel's backlog. The
/// listener may face the internet (the Teams messaging endpoint), and an unbounded number of
/// open connections would use up the file descriptors the PostgreSQL listener needs too.
pub const MAX_CONNECTIONS: usize = 512;

/// How long a client has to send a request's headers, counted from when the connection is
/// ready for it (so an idle keep-alive connection is closed after this long too).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish.
///
/// At most [`MAX_CONNECTIONS`] connections at once, and each must send its request headers
/// within [`HEADER_READ_TIMEOUT`]: without both, clients that open connections and send half
/// a header (or nothing) hold them forever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_bounded(
        listener,
        app,
        shutdown,
        MAX_CONNECTIONS,
        HEADER_READ_TIMEOUT,
    )
    .await
}

/// [`serve`] with its limits as parameters (tests use small ones).
pub(crate) async fn serve_bounded(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    max_connections: usize,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let app = app.layer(axum::middleware::map_response(no_store));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP/1 only: detecting HTTP/2 reads the first bytes with no timer running, so a client
    // that sends nothing would be held forever. Browsers, the CLI and Teams all speak HTTP/1.1.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or similar: pause rather than spin.
                    tracing::warn!(error = %e, "admin listener could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Every admin answer may carry SQL, parameters or client addresses (some are fetched with a
/// signed link and no Authorization header, which a shared cache would key only by URL):
/// nothing is stored by caches unless a handler says otherwise, and nothing is sniffed.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    if !headers.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
    }
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<AdminState>,
) -> impl IntoResponse {
    if state.readiness().is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<AdminState>,
) -> impl IntoResponse {
    let pending = state.registry().pending_count().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(pending),
    )
}

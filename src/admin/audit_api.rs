//! The audit API of the admin listener: what `airlock audit` uses while a gateway runs (sled
//! lets only the gateway's process open the store).
//!
//! | route                          | answer                                                   |
//! |--------------------------------|----------------------------------------------------------|
//! | `GET /api/audit/records?…`     | JSON lines: statements (`view=statements`, the default) matching the inspector's filters, or raw records (`view=records`, with `tail=N`, `since`, `until`, `follow=true`) |
//! | `GET /api/audit/records/{id}`  | one statement's whole story (`ShowView`), 404 if unknown |
//! | `GET /api/audit/verify`        | the chain verification report (200 whether intact or not) |
//!
//! Every route needs `Authorization: Bearer <token>`; the admin listener decides what a valid
//! token is by passing a [`TokenCheck`]. Store reads are blocking (sled), so they run on the
//! blocking pool and stream lines through a small channel: a slow reader holds back the scan
//! instead of filling memory.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::{mpsc, watch};

use crate::audit::{format_time, AuditError, AuditStore, Record};
use crate::inspect::filter::{Filter, FilterSpec};
use crate::inspect::query;

/// Decides whether a bearer token may read the audit. Provided by the admin listener.
pub type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What the audit routes need.
#[derive(Clone)]
pub struct AuditApiState {
    pub store: Arc<dyn AuditStore>,
    pub check_token: TokenCheck,
    /// The writer's "last appended seq" signal (`AuditHandle::subscribe`), so `follow`
    /// streams wake on new records; without it they poll.
    pub live: Option<watch::Receiver<u64>>,
    /// The running writer, so a request first lets queued records reach the store and sees
    /// everything written before it.
    pub writer: Option<crate::audit::AuditHandle>,
}

impl AuditApiState {
    pub fn new(store: Arc<dyn AuditStore>, check_token: TokenCheck) -> AuditApiState {
        AuditApiState {
            store,
            check_token,
            live: None,
            writer: None,
        }
    }

    pub fn with_live(mut self, live: watch::Receiver<u64>) -> AuditApiState {
        self.live = Some(live);
        self
    }

    /// Reads through the running writer: live updates, and queued records settled first.
    pub fn with_writer(mut self, writer: crate::audit::AuditHandle) -> AuditApiState {
        self.live = Some(writer.subscribe());
        self.writer = Some(writer);
        self
    }

    async fn settle(&self) {
        if let Some(w) = &self.writer {
            w.settle().await;
        }
    }
}

/// The audit routes, with their state applied; merge them into the admin router.
pub fn audit_routes(state: AuditApiState) -> Router {
    Router::new()
        .route("/api/audit/records", get(records))
        .route("/api/audit/records/{id}", get(show))
        .route("/api/audit/verify", get(verify))
        .with_state(state)
}

/// Errors of the audit API, answered as `{"error": "…"}`.
#[derive(Debug, thiserror::Error)]
pub enum AuditApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("audit store: {0}")]
    Store(String),
}

impl From<AuditError> for AuditApiError {
    fn from(e: AuditError) -> Self {
        AuditApiError::Store(e.to_string())
    }
}

impl IntoResponse for AuditApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            AuditApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            AuditApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuditApiError::NotFound(_) => StatusCode::NOT_FOUND,
            AuditApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut resp = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

fn authorize(state: &AuditApiState, headers: &HeaderMap) -> Result<(), AuditApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuditApiError::Unauthorized)?;
    if (state.check_token)(token) {
        Ok(())
    } else {
        Err(AuditApiError::Unauthorized)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuditApiError> + Send + 'static,
) -> Result<T, AuditApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuditApiError::Store(format!("reader task failed: {e}")))?
}

async fn show(
    State(state): State<AuditApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AuditApiError> {
    authorize(&state, &headers)?;
    state.settle().await;
    let store = state.store.clone();
    let found = blocking(move || {
        crate::audit::view::show(store.as_ref(), &id)?
            .ok_or_else(|| AuditApiError::NotFound(format!("no record with id {id}")))
    })
    .await?;
    Ok(Json(found).into_response())
}

async fn verify(
    State(state): State<AuditApiState>,
    headers: HeaderMap,
) -> Result<Response, AuditApiError> {
    authorize(&state, &headers)?;
    state.settle().await;
    let store = state.store.clone();
    let report = blocking(move || Ok(crate::audit::verify(store.as_ref())?)).await?;
    Ok(Json(report).into_response())
}

/// What `/api/audit/records` was asked for.
// One per request, never stored in bulk: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum Request {
    Statements {
        spec: FilterSpec,
        linked: bool,
        follow: bool,
    },
    Records {
        tail: Option<u64>,
        since: Option<i64>,
        until: Option<i64>,
        follow: bool,
    },
}

fn parse_request(pairs: Vec<(String, String)>, now_us: i64) -> Result<Request, AuditApiError> {
    let bad = AuditApiError::BadRequest;
    let flag = |k: &str, v: &str| match v {
        "" | "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(bad(format!("{k}={v}: expected true or false"))),
    };
    let mut spec = FilterSpec::default();
    let (mut view, mut linked, mut follow, mut tail) = (None, true, false, None);
    for (k, v) in &pairs {
        match k.as_str() {
            "view" => view = Some(v.clone()),
            "linked" => linked = flag(k, v)?,
            "follow" => follow = flag(k, v)?,
            "tail" => {
                tail = Some(
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("tail={v}: expected a number")))?,
                )
            }
            _ => {
                if !spec.set_param(k, v).map_err(|e| bad(e.to_string()))? {
                    return Err(bad(format!("unknown parameter `{k}`")));
                }
            }
        }
    }
    match view.as_deref().unwrap_or("statements") {
        "statements" => {
            if tail.is_some() {
                return Err(bad("tail applies to view=records".into()));
            }
            Ok(Request::Statements {
                spec,
                linked,
                follow,
            })
        }
        "records" => {
            let when = |t: &Option<String>| -> Result<Option<i64>, AuditApiError> {
                t.as_deref()
                    .map(|t| crate::inspect::timespec::parse_when(t, now_us).map_err(bad))
                    .transpose()
            };
            let (since, until) = (when(&spec.since)?, when(&spec.until)?);
            let only_times = FilterSpec {
                since: spec.since.clone(),
                until: spec.until.clone(),
                ..FilterSpec::default()
            };
            if spec != only_times {
                return Err(bad(
                    "view=records takes only tail, since, until and follow".into()
                ));
            }
            Ok(Request::Records {
                tail,
                since,
                until,
                follow,
            })
        }
        other => Err(bad(format!("view={other}: expected statements or records"))),
    }
}

async fn records(
    State(state): State<AuditApiState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, AuditApiError> {
    authorize(&state, &headers)?;
    state.settle().await;
    let now = now_micros();
    let request = parse_request(pairs, now)?;
    // Compile up front so a bad filter is a 400, not an error line mid-stream.
    let filter = match &request {
        Request::Statements { spec, .. } => {
            Some(Filter::compile(spec, now).map_err(|e| AuditApiError::BadRequest(e.to_string()))?)
        }
        Request::Records { .. } => None,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(16);
    let store = state.store.clone();
    let live = state.live.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = LineSink::new(tx, rt.clone());
        let result = produce(
            store.as_ref(),
            &request,
            filter.as_ref(),
            live,
            &rt,
            &mut out,
        );
        if let Err(e) = result {
            // Headers are gone already: say it in the stream, the client reports it.
            out.line(&serde_json::json!({ "error": e.to_string() }));
        }
        out.flush();
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

/// Buffers JSON lines into chunks and hands them to the response body.
struct LineSink {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    rt: tokio::runtime::Handle,
    buf: Vec<u8>,
    /// The client went away: stop producing.
    closed: bool,
}

const CHUNK: usize = 32 * 1024;

impl LineSink {
    fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>, rt: tokio::runtime::Handle) -> LineSink {
        LineSink {
            tx,
            rt,
            buf: Vec::with_capacity(CHUNK),
            closed: false,
        }
    }

    fn line<T: serde::Serialize>(&mut self, value: &T) {
        if serde_json::to_writer(&mut self.buf, value).is_ok() {
            self.buf.push(b'\n');
        }
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() || self.closed {
            return;
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.closed = self.rt.block_on(self.tx.send(Ok(chunk))).is_err();
    }
}

/// Runs on the blocking pool: scans, writes lines, and in follow mode waits for new records.
fn produce(
    store: &dyn AuditStore,
    request: &Request,
    filter: Option<&Filter>,
    mut live: Option<watch::Receiver<u64>>,
    rt: &tokio::runtime::Handle,
    out: &mut LineSink,
) -> Result<(), AuditError> {
    let (follow, mut next) = match request {
        Request::Statements { follow, .. } => (*follow, None),
        Request::Records {
            tail,
            since,
            follow,
            ..
        } => (
            *follow,
            Some(match (tail, since) {
                (Some(n), _) => query::tail_start(store, *n)?,
                (None, Some(t)) => store.seq_for_time(*t)?,
                (None, None) => 0,
            }),
        ),
    };
    let mut first_pass = true;
    loop {
        let mut last_seen = None;
        match request {
            Request::Statements { linked, .. } => {
                let filter = filter.expect("compiled for statements");
                let mut scan = match next {
                    Some(from) => query::statements_from(store, filter, *linked, from),
                    None => query::statements(store, filter, *linked)?,
                };
                for v in scan.by_ref() {
                    out.line(&v?);
                    if out.closed {
                        return Ok(());
                    }
                }
                last_seen = scan.last_seq();
            }
            Request::Records { since, until, .. } => {
                let since = if first_pass {
                    since.map(format_time)
                } else {
                    None
                };
                let until = until.map(format_time);
                for r in query::records(store, next.unwrap_or(0)) {
                    let r: Record = r?;
                    last_seen = Some(r.seq);
                    if since.as_deref().is_some_and(|s| r.time.as_str() < s) {
                        continue;
                    }
                    if until.as_deref().is_some_and(|u| r.time.as_str() > u) {
                        return Ok(());
                    }
                    out.line(&r);
                    if out.closed {
                        return Ok(());
                    }
                }
            }
        }
        out.flush();
        if !follow || out.closed {
            return Ok(());
        }
        first_pass = false;
        if let Some(seq) = last_seen {
            next = Some(seq + 1);
        } else if next.is_none() {
            next = Some(store.last()?.map_or(0, |r| r.seq + 1));
        }
        // Wait for something new, checking now and then that the client is still there.
        loop {
            if out.tx.is_closed() {
                return Ok(());
            }
            let woke = match live.as_mut() {
                Some(rx) => {
                    match rt.block_on(tokio::time::timeout(Duration::from_secs(1), rx.changed())) {
                        Ok(Ok(())) => true,
                        // The writer stopped: nothing new will be signalled; poll instead.
                        Ok(Err(_)) => {
                            live = None;
                            false
                        }
                        Err(_) => false,
                    }
                }
                None => {
                    std::thread::sleep(Duration::from_millis(250));
                    true
                }
            };
            if woke {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;

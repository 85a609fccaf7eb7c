//! One client connection, from the first byte to the last: startup, authentication at the
//! gateway, the upstream session, and the two relay directions.
//!
//! ```text
//! client ─► front (units, decisions) ─► upstream
//! client ◄─ back (raw frames, outcomes) ◄─ upstream
//! ```

mod back;
pub mod cancel;
pub mod confirm;
#[cfg(test)]
mod cursor_model;
mod describe;
mod front;
pub mod gate;
pub mod handshake;
pub mod hold;
pub mod inspect;
mod kept;
mod schema_watch;
mod withhold;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Mutex};
use tracing::{debug, info, warn};

use crate::protocol::messages::{self, PgError, TxStatus};
use crate::protocol::sqlstate;
use crate::protocol::startup::{negotiate, Hello};
use crate::protocol::stream::Stream;
use crate::server::Gateway;
use back::Shared;
use front::{Front, FrontEnd};
use gate::Gate;

/// Serves one accepted connection until it ends. Never panics on client input; errors are
/// answered with a PostgreSQL error where the protocol allows one.
pub async fn serve(gw: Arc<Gateway>, socket: TcpStream, peer: SocketAddr) {
    let _ = socket.set_nodelay(true);
    let startup_timeout = Duration::from_secs(gw.config.server.startup_timeout_secs.max(1));
    let hello =
        match tokio::time::timeout(startup_timeout, negotiate(socket, gw.tls.as_ref())).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "startup failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "startup timed out");
                return;
            }
        };
    match hello {
        Hello::Cancel { pid, secret } => cancel(&gw, pid, secret).await,
        Hello::Startup {
            stream,
            params,
            minor_version,
            rest,
        } => {
            let session = Session {
                gw,
                peer,
                id: ulid::Ulid::new().to_string(),
            };
            session.run(stream, params, minor_version, rest).await
        }
    }
}

/// Drops `database`'s catalog snapshot and reads the current one in the background, over a
/// connection of its own: open sessions move to it at their next statement, new ones start
/// with it. Until it is in, results are still checked against the old one (fail closed).
fn refresh_catalog(gw: &Arc<Gateway>, database: &str, params: &[(String, String)]) {
    if !gw.inspector.begin_reread(database) {
        // One is under way. If it read the schema before this change, a result shaped by the
        // change is refused again (`AL002`) and asks anew once it is done: never a leak.
        return;
    }
    gw.inspector.invalidate_catalog(database);
    /// Ends the claim however the task ends (a runtime shutting down drops it unfinished).
    struct Claim(Arc<Gateway>, String);
    impl Drop for Claim {
        fn drop(&mut self) {
            self.0.inspector.reread_done(&self.1);
        }
    }
    let claim = Claim(gw.clone(), database.to_owned());
    let (gw, database, params) = (gw.clone(), database.to_owned(), params.to_vec());
    tokio::spawn(async move {
        let loaded = match gw.upstream.connect(&database, &params).await {
            Ok(mut conn) => {
                let loaded = gw.inspector.classifier_for(&database, &mut conn).await;
                conn.terminate().await;
                loaded.map(drop)
            }
            Err(e) => Err(e.to_string()),
        };
        drop(claim);
        match loaded {
            Ok(()) => info!(database = %database, "catalog snapshot re-read after a schema change"),
            Err(e) => {
                warn!(database = %database, error = %e, "cannot re-read the catalog; the next session will try")
            }
        }
    });
}

/// Connections for a session's live catalog checks: the upstream pool's idle ones for the
/// same database and startup parameters when there are any (a check then costs one query),
/// given back afterwards; else new ones.
struct LiveCatalogConns {
    gw: Arc<Gateway>,
    key: crate::upstream::pool::PoolKey,
}

impl inspect::LiveCatalog for LiveCatalogConns {
    fn open(&self) -> inspect::Opening<'_> {
        Box::pin(async move {
            if let Some(c) = self.gw.pool.as_ref().and_then(|p| p.take(&self.key)) {
                return Ok(c);
            }
            self.gw
                .upstream
                .connect(&self.key.database, &self.key.params)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn release(&self, conn: crate::upstream::UpstreamConn, reusable: bool) {
        match (&self.gw.pool, reusable) {
            (Some(pool), true) => {
                let (pool, key) = (pool.clone(), self.key.clone());
                tokio::spawn(async move { pool.give_back(key, conn).await });
            }
            _ => {
                tokio::spawn(conn.terminate());
            }
        }
    }
}

async fn cancel(gw: &Gateway, pid: i32, secret: i32) {
    let Some(handle) = gw.cancels.get((pid, secret)) else {
        debug!("cancel request for an unknown key");
        return;
    };
    if handle.is_holding() {
        // The held statement has not gone upstream: the cancel withdraws it, here and now
        // (an approval racing the session's wakeup must not run it). Read before the session
        // is woken, which ends its wait.
        let earlier_running = handle.is_awaiting_earlier();
        handle.cancel_hold();
        if let Some(withdraw) = handle.take_withdraw() {
            withdraw(gate::Withdrawal::Cancelled).await;
        }
        if !earlier_running {
            return;
        }
        // Statements the client sent before the held one still run: cancel them too, as
        // PostgreSQL cancels whatever runs.
    }
    let target = handle.upstream.lock().clone();
    if let Some(t) = target {
        if let Err(e) = gw.upstream.cancel(&t).await {
            warn!(error = %e, "forwarding a cancel request failed");
        }
    }
}

struct Session {
    gw: Arc<Gateway>,
    peer: SocketAddr,
    id: String,
}

impl Session {
    async fn run(
        self,
        mut stream: Stream,
        params: Vec<(String, String)>,
        minor_version: u16,
        mut rest: BytesMut,
    ) {
        let gw = self.gw.clone();
        if gw.config.tls.require && !stream.is_tls() {
            let e = PgError::fatal(
                sqlstate::INVALID_AUTHORIZATION,
                "airlock requires an encrypted connection (sslmode=require)",
            );
            let _ = stream.write_all(&e.to_bytes()).await;
            return;
        }
        let startup = match handshake::check_params(&params, &gw.inspector.allowed_settings()) {
            Ok(s) => s,
            Err(e) => {
                let _ = stream.write_all(&e.to_bytes()).await;
                return;
            }
        };
        let mut greeting = BytesMut::new();
        if minor_version > 0 || !startup.unsupported_options.is_empty() {
            messages::negotiate_protocol_version(&mut greeting, &startup.unsupported_options);
            if stream.write_all(&greeting).await.is_err() {
                return;
            }
            greeting.clear();
        }
        let cert_hash = match &stream {
            Stream::ServerTls(_) => gw.tls.as_ref().map(|t| t.cert_hash.clone()),
            _ => None,
        };
        // Authentication has the startup's time limit too: a client that stops answering
        // mid-exchange would otherwise hold a connection slot for good.
        let startup_timeout = Duration::from_secs(gw.config.server.startup_timeout_secs.max(1));
        let authenticated = tokio::time::timeout(
            startup_timeout,
            handshake::authenticate(
                &mut stream,
                &mut rest,
                &gw.config.auth,
                &startup.user,
                &gw.scram_mock_key,
                cert_hash,
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(PgError::fatal(
                sqlstate::QUERY_CANCELED,
                "canceling authentication due to timeout",
            ))
        });
        if let Err(e) = authenticated {
            info!(peer = %self.peer, user = %startup.user, code = e.code, "authentication failed");
            let _ = stream.write_all(&e.to_bytes()).await;
            return;
        }

        let database = gw
            .upstream
            .database_for(startup.database.as_deref())
            .to_string();
        let pool_key = crate::upstream::pool::PoolKey {
            database: database.clone(),
            params: startup.upstream_params.clone(),
        };
        let pooled = gw.pool.as_ref().and_then(|p| p.take(&pool_key));
        let reused = pooled.is_some();
        let connected = match pooled {
            Some(c) => Ok(c),
            None => {
                gw.upstream
                    .connect(&database, &startup.upstream_params)
                    .await
            }
        };
        let mut upstream = match connected {
            Ok(u) => u,
            Err(e) => {
                warn!(session = %self.id, error = %e, "upstream connection failed");
                let err = match &e {
                    // Errors about the client's own request (unknown database, bad setting
                    // value) are theirs to see, with PostgreSQL's code.
                    crate::upstream::UpstreamError::Rejected { code, message, .. }
                        if client_facing(code).is_some() =>
                    {
                        PgError::fatal(
                            client_facing(code).unwrap_or(sqlstate::CONNECTION_FAILURE),
                            message.clone(),
                        )
                    }
                    _ => PgError::fatal(
                        sqlstate::CONNECTION_FAILURE,
                        format!(
                            "airlock could not connect to upstream {}",
                            gw.upstream.describe()
                        ),
                    ),
                };
                let _ = stream.write_all(&err.to_bytes()).await;
                return;
            }
        };

        let classifier = match gw.inspector.classifier_for(&database, &mut upstream).await {
            Ok(c) => c,
            Err(e) => {
                warn!(session = %self.id, error = %e, "cannot read the upstream catalog");
                let err = PgError::fatal(
                    sqlstate::INTERNAL_ERROR,
                    "airlock could not read the upstream catalog, so it cannot inspect statements",
                );
                let _ = stream.write_all(&err.to_bytes()).await;
                return;
            }
        };
        schema_watch::ensure(&gw, &database, &startup.upstream_params);
        let info = crate::audit::SessionInfo {
            session_id: self.id.clone(),
            client_addr: self.peer.to_string(),
            user: startup.user.clone(),
            application_name: startup.application_name.clone(),
            database: database.clone(),
        };
        let guard = back::ShapeGuard {
            catalog: classifier.catalog().clone(),
            on_stale: {
                let (gw, database) = (gw.clone(), database.clone());
                let params = startup.upstream_params.clone();
                Box::new(move || refresh_catalog(&gw, &database, &params))
            },
        };
        let live = Arc::new(LiveCatalogConns {
            gw: gw.clone(),
            key: pool_key.clone(),
        });
        let book = confirm::Confirmations::default();
        let gate = Gate::new(
            inspect::SessionInspector::new(gw.inspector.clone(), classifier, info, live),
            gw.holds.clone(),
            book.clone(),
        );
        let (key, cancel_handle) = gw.cancels.register();
        *cancel_handle.upstream.lock() = Some(gw.upstream.cancel_target(&upstream));
        messages::auth_ok(&mut greeting);
        for (k, v) in &upstream.params {
            messages::parameter_status(&mut greeting, k, v);
        }
        messages::backend_key_data(&mut greeting, key.0, key.1);
        messages::ready_for_query(&mut greeting, TxStatus::Idle);
        if stream.write_all(&greeting).await.is_err() {
            gw.cancels.remove(key);
            return;
        }
        info!(
            session = %self.id,
            peer = %self.peer,
            user = %startup.user,
            database = %database,
            application_name = %startup.application_name,
            tls = stream.is_tls(),
            reused_upstream = reused,
            "session started"
        );

        let (client_rd, client_wr) = tokio::io::split(stream);
        let (up_rd, up_wr) = tokio::io::split(upstream.stream);
        let shared = Arc::new(Shared {
            ready_count: watch::channel(0).0,
            tx_status: AtomicU8::new(b'I'),
            client_wr: Mutex::new(client_wr),
            book,
            copy: Default::default(),
        });
        let (pending_tx, pending_rx) = mpsc::unbounded_channel();
        let audit = gw.inspector.audit.clone();
        let (gw_sink, db, params) = (
            gw.clone(),
            database.clone(),
            startup.upstream_params.clone(),
        );
        let sink: back::OutcomeSink = Box::new(move |p, o| {
            if p.changes_schema && o.error.is_none() {
                refresh_catalog(&gw_sink, &db, &params);
            }
            let Some(decision_id) = p.decision_id else {
                return;
            };
            let entry = crate::audit::OutcomeEntry {
                decision_id,
                result: crate::audit::RunResult {
                    tags: o.tags,
                    error: o.error,
                    rows: o.rows,
                    duration_us: p.started.elapsed().as_micros() as u64,
                },
            };
            if let Err(e) = audit.outcome(&entry) {
                warn!(error = %e, "could not audit a statement outcome");
            }
        });
        let upstream_status = upstream.params;
        let (up_pid, up_secret, up_home) = (upstream.pid, upstream.secret, upstream.home);
        let stop_back = tokio_util::sync::CancellationToken::new();
        let mut back_task = AbortOnDrop(tokio::spawn(back::run(
            up_rd,
            shared.clone(),
            pending_rx,
            sink,
            upstream.rest,
            stop_back.clone(),
            Some(guard),
        )));
        let mut front = Front::new(
            (client_rd, up_wr),
            shared.clone(),
            pending_tx,
            gate,
            cancel_handle.clone(),
            gw.config.server.max_message_bytes,
            rest,
        );
        let force_close = gw.force_close.clone();
        // A finished task's handle must not be polled again (tokio panics).
        let mut back_finished = false;
        let ended = tokio::select! {
            end = front.run() => Some(end),
            _ = &mut back_task.0 => {
                // The upstream ended the session (its error, if any, went to the client).
                back_finished = true;
                None
            }
            _ = force_close.cancelled() => {
                let e = PgError::fatal(sqlstate::ADMIN_SHUTDOWN, "terminating connection: airlock is shutting down");
                let mut w = shared.client_wr.lock().await;
                let _ = w.write_all(&e.to_bytes()).await;
                None
            }
        };
        let clean = matches!(ended, Some(FrontEnd::ClientDone))
            && shared.tx_status() == b'I'
            && *shared.ready_count.borrow() == front.expected_ready
            && !front.unsynced;
        match &ended {
            Some(FrontEnd::Violation(e)) => {
                info!(session = %self.id, code = e.code, message = %e.message, "session ended by protocol violation")
            }
            Some(FrontEnd::Io(e)) => debug!(session = %self.id, error = %e, "client i/o error"),
            _ => {}
        }
        let Front { mut up_wr, .. } = front;
        match (&gw.pool, clean) {
            (Some(pool), true) => {
                stop_back.cancel();
                if let Ok(Ok(back::BackEnd::Stopped(up_rd, rest))) = (&mut back_task.0).await {
                    let conn = crate::upstream::UpstreamConn {
                        stream: up_rd.unsplit(up_wr),
                        params: upstream_status,
                        pid: up_pid,
                        secret: up_secret,
                        rest,
                        home: up_home,
                    };
                    let pool = pool.clone();
                    tokio::spawn(async move { pool.give_back(pool_key, conn).await });
                }
            }
            _ if back_finished => {}
            _ => {
                let _ = up_wr.write_all(&[b'X', 0, 0, 0, 4]).await;
                let _ = up_wr.shutdown().await;
                // Give upstream a moment to see the Terminate, then drop everything.
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut back_task.0).await;
            }
        }
        gw.cancels.remove(key);
        info!(session = %self.id, "session ended");
    }
}

/// The back direction's task, aborted when the session ends in any way. It owns the upstream
/// read half and shares the client's write half: were it left running after the session
/// future ended (a panic unwinding it, a shutdown dropping it), the upstream connection and
/// the client's socket would stay open for as long as the server keeps the connection.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Upstream startup errors caused by what the client asked for, passed on with their code.
fn client_facing(code: &str) -> Option<&'static str> {
    match code {
        "3D000" => Some("3D000"), // database does not exist
        "22023" => Some("22023"), // invalid parameter value
        "42704" => Some("42704"), // unrecognized configuration parameter
        _ => None,
    }
}

//! The accept loop and what every session shares: config, upstream, TLS, cancel keys.
//! Shutdown is passed in as tokens: `closing` stops accepting, and once running sessions have
//! had `shutdown_grace_secs` to finish, `force_close` ends the rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::protocol::messages::PgError;
use crate::protocol::sqlstate;
use crate::protocol::startup::ServerTls;
use crate::session::cancel::CancelMap;
use crate::session::inspect::Inspector;
use crate::upstream::{Upstream, UpstreamError};
use crate::workers::SessionWorkers;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("audit: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("approvals: {0}")]
    Approval(String),
    #[error("notify: {0}")]
    Notify(String),
    #[error(transparent)]
    Workers(#[from] crate::workers::WorkersError),
}

/// Everything sessions share. Built once from the config and passed down explicitly.
pub struct Gateway {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub tls: Option<Arc<ServerTls>>,
    pub cancels: CancelMap,
    /// Classifier, policy and audit: what every decision goes through.
    pub inspector: Arc<Inspector>,
    /// Held statements waiting for people.
    pub registry: Arc<crate::approval::Registry>,
    /// State of the admin HTTP listener (None when `[admin] listen` is empty).
    pub admin: Option<crate::admin::AdminState>,
    /// What sessions need to hold statements.
    pub holds: Option<crate::session::hold::HoldContext>,
    /// The Teams bot messaging endpoint, served on the admin listener when `[notify.bot]` is set.
    pub bot: Option<crate::notify::BotState>,
    pub metrics: Arc<crate::admin::Metrics>,
    /// The audit writer, awaited at shutdown so the last records are flushed.
    audit_writer: parking_lot::Mutex<Option<crate::audit::AuditWriter>>,
    /// Idle upstream connections for reuse (None when `upstream.pool = false`).
    pub pool: Option<Arc<crate::upstream::pool::Pool>>,
    /// Set at the end of the shutdown grace period: sessions still running are closed.
    pub force_close: CancellationToken,
    /// Random per process: the SCRAM salts shown for unknown users derive from it.
    pub scram_mock_key: [u8; 32],
}

/// The approval-link key: `[admin] link_secret` inline, or the one `[notify] link_secret_env` /
/// `link_secret_file` names (read here, at start, so a rotated file takes effect at restart),
/// or a random key for this process when neither is set. [`Config::validate`] has refused both.
fn link_key(config: &Config) -> Result<crate::approval::LinkSecret, ServerError> {
    let from_notify = config
        .notify
        .link_secret(&|k| std::env::var(k).ok())
        .map_err(|e| ServerError::Notify(e.to_string()))?;
    Ok(match from_notify {
        Some(key) => crate::approval::LinkSecret::from_config(key.expose()),
        None => crate::approval::LinkSecret::from_config(&config.admin.link_secret),
    })
}

impl Gateway {
    /// Loads the policy, opens the audit store and prepares the upstream. Must run inside a
    /// tokio runtime (the audit writer starts here).
    pub async fn open(config: Arc<Config>) -> Result<Gateway, ServerError> {
        let upstream = Upstream::from_config(&config.upstream)?;
        let policy = Arc::new(crate::policy::PolicyStore::new(
            crate::policy::Policy::load(&config.policy.path)?,
        ));
        let (audit, audit_writer) = crate::audit::Audit::open(&config.audit).await?;
        let metrics = Arc::new(crate::admin::Metrics::new());
        // One key for the links cards carry and the admin listener that checks them.
        let links = link_key(&config)?;
        let approval_audit: Arc<dyn crate::approval::ApprovalAudit> = Arc::new(audit.clone());
        let delivery_report = Arc::new(crate::approval::teams::AuditDeliveryReport::new(
            approval_audit.clone(),
        ));
        let notifiers =
            crate::notify::Notifiers::from_config(&config.notify, delivery_report.clone(), &|k| {
                std::env::var(k).ok()
            })
            .map_err(|e| ServerError::Notify(e.to_string()))?;
        let mut announcers: Vec<Arc<dyn crate::approval::Notifier>> = Vec::new();
        if !notifiers.is_empty() {
            announcers.push(Arc::new(crate::approval::teams::TeamsNotifier::new(
                notifiers.clone(),
                policy.clone(),
                config.admin.public_url.clone(),
                links.clone(),
                std::time::Duration::from_secs(config.notify.link_ttl_secs),
            )));
        }
        let registry = crate::approval::Registry::open(
            config
                .approval
                .clone()
                .with_state_dir_beside(&config.audit.path),
            approval_audit.clone(),
            announcers,
            metrics.clone(),
        )
        .await
        .map_err(|e| ServerError::Approval(e.to_string()))?;
        delivery_report.bind(&registry);
        let bot = match (&config.notify.bot, notifiers.bot()) {
            (Some(cfg), Some(notifier)) => Some(
                crate::notify::BotState::from_config(
                    cfg,
                    &config.notify.retry,
                    notifier.clone(),
                    Arc::new(crate::approval::teams::RegistryVerdicts::new(
                        registry.clone(),
                        approval_audit.clone(),
                    )),
                    Arc::new(crate::approval::teams::PolicyApprovers(policy.clone())),
                )
                .map_err(|e| ServerError::Notify(e.to_string()))?,
            ),
            _ => None,
        };
        let admin = if config.admin.listen.is_empty() {
            None
        } else {
            let state = crate::admin::AdminState::new(
                &config.admin,
                registry.clone(),
                metrics.clone(),
                links,
                Some(policy.clone()),
            )
            .map_err(|e| ServerError::Approval(e.to_string()))?;
            Some(state)
        };
        let holds = Some(crate::session::hold::HoldContext {
            registry: registry.clone(),
            public_url: config.admin.public_url.clone(),
        });
        // The start is in the chain: its record links to the head the previous run left, so a
        // store put back to an older copy, or cut short, shows in the trail of starts.
        audit
            .gateway_event(crate::audit::GatewayEvent {
                event: "started".into(),
                detail: format!(
                    "airlock {}; policy {}",
                    env!("CARGO_PKG_VERSION"),
                    config.policy.path.display()
                ),
            })
            .await?;
        let inspector = Arc::new(Inspector::new(policy, audit, Some(metrics.clone())));
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some(Arc::new(crate::tls::server_tls(cert, key)?)),
            _ => None,
        };
        let pool = config.upstream.pool.then(|| {
            Arc::new(crate::upstream::pool::Pool::new(
                config.upstream.pool_max_idle,
                Duration::from_secs(config.upstream.pool_idle_timeout_secs),
                config.upstream.reset_query.clone(),
            ))
        });
        Ok(Gateway {
            config,
            inspector,
            registry,
            admin,
            holds,
            bot,
            metrics,
            audit_writer: parking_lot::Mutex::new(Some(audit_writer)),
            pool,
            upstream,
            tls,
            cancels: CancelMap::default(),
            force_close: CancellationToken::new(),
            scram_mock_key: rand::random(),
        })
    }

    /// Flushes and stops the audit writer (after the last session).
    pub async fn close_audit(&self) {
        let stopping = crate::audit::GatewayEvent {
            event: "stopping".into(),
            detail: String::new(),
        };
        if let Err(e) = self.inspector.audit.gateway_event(stopping).await {
            warn!(error = %e, "could not audit the gateway's stop");
        }
        self.inspector.audit.shutdown().await;
        let writer = self.audit_writer.lock().take();
        if let Some(w) = writer {
            if let Err(e) = w.wait().await {
                warn!(error = %e, "audit writer stopped with an error");
            }
        }
    }

    /// Re-reads the policy (SIGHUP). An invalid policy keeps the old one and logs why.
    pub async fn reload_policy(&self) {
        let event = match self.inspector.reload_policy(&self.config.policy.path) {
            Ok(()) => {
                info!(path = %self.config.policy.path.display(), "policy reloaded");
                crate::audit::GatewayEvent {
                    event: "policy_reloaded".into(),
                    detail: self.config.policy.path.display().to_string(),
                }
            }
            Err(e) => {
                warn!(error = %e, "policy reload failed; keeping the previous policy");
                crate::audit::GatewayEvent {
                    event: "policy_rejected".into(),
                    detail: e.to_string(),
                }
            }
        };
        self.inspector.invalidate_catalogs();
        if let Err(e) = self.inspector.audit.gateway_event(event).await {
            warn!(error = %e, "could not audit a policy reload");
        }
    }
}

/// A bound listener, so callers (tests, the demo) can learn the port before serving.
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    gateway: Arc<Gateway>,
    workers: SessionWorkers,
}

impl Server {
    pub async fn bind(gateway: Arc<Gateway>) -> Result<Server, ServerError> {
        let addr = gateway.config.server.listen.clone();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        let admin = match &gateway.admin {
            Some(_) => {
                let addr = gateway.config.admin.listen.clone();
                Some(
                    TcpListener::bind(&addr)
                        .await
                        .map_err(|source| ServerError::Listen { addr, source })?,
                )
            }
            None => None,
        };
        let workers = SessionWorkers::start(gateway.config.server.session_threads)?;
        Ok(Server {
            listener,
            admin,
            gateway,
            workers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Where the admin API and approval pages listen, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Accepts until `closing` fires, then waits up to the grace period for sessions.
    pub async fn run(self, closing: CancellationToken) {
        let gw = self.gateway;
        let limit = Arc::new(Semaphore::new(gw.config.server.max_connections));
        let tracker = TaskTracker::new();
        let admin_stop = CancellationToken::new();
        if let (Some(listener), Some(state)) = (self.admin, gw.admin.clone()) {
            let audit = &gw.inspector.audit;
            let audit_api = crate::admin::audit_api::audit_routes(
                crate::admin::audit_api::AuditApiState::new(audit.store(), state.token_check())
                    .with_writer(audit.clone()),
            );
            state.readiness().set_ready(true);
            let mut app = crate::admin::router(state).merge(audit_api);
            if let Some(bot) = gw.bot.clone() {
                app = app.merge(crate::notify::bot_routes(bot));
            }
            let stop = admin_stop.clone();
            info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin API listening");
            tokio::spawn(async move {
                if let Err(e) = crate::admin::serve(listener, app, stop.cancelled_owned()).await {
                    warn!(error = %e, "admin listener failed");
                }
            });
        }
        tokio::spawn(
            gw.registry
                .clone()
                .run_sweeper(admin_stop.clone().cancelled_owned()),
        );
        info!(addr = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), upstream = %gw.upstream.describe(), "airlock listening");
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = closing.cancelled() => break,
            };
            let (mut socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracker.spawn(async move {
                    let e = PgError::fatal(
                        sqlstate::TOO_MANY_CONNECTIONS,
                        "sorry, too many clients already",
                    );
                    let _ = socket.write_all(&e.to_bytes()).await;
                });
                continue;
            };
            // Registered again on the session's own thread, so its readiness events are
            // delivered there rather than by this runtime's reactor.
            let socket = match socket.into_std() {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot hand an accepted connection to a session thread");
                    continue;
                }
            };
            let gw = gw.clone();
            tracker.spawn_on(
                async move {
                    match tokio::net::TcpStream::from_std(socket) {
                        Ok(socket) => crate::session::serve(gw, socket, peer).await,
                        Err(e) => warn!(error = %e, "cannot register a connection"),
                    }
                    drop(permit);
                },
                self.workers.next(),
            );
        }
        tracker.close();
        let grace = Duration::from_secs(gw.config.server.shutdown_grace_secs);
        info!(
            sessions = tracker.len(),
            grace_secs = grace.as_secs(),
            "no longer accepting; waiting for sessions"
        );
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                sessions = tracker.len(),
                "grace period over; closing remaining sessions"
            );
            gw.force_close.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        }
        if let Some(state) = &gw.admin {
            state.readiness().set_ready(false);
        }
        // Sessions still running after the forced close end with their threads.
        drop(self.workers);
        gw.registry.shutdown().await;
        admin_stop.cancel();
        gw.close_audit().await;
        info!("airlock stopped");
    }
}

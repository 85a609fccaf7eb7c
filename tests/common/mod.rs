//! Test harness: one real PostgreSQL per test binary, a database per test, and the gateway
//! in-process on port 0 with its own runtime. Failures say how to get what is missing.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use airlock::config::{AuthMethod, Config};
use airlock::demo::cluster::{ClusterOptions, TempCluster};
use airlock::server::{Gateway, Server};
use tokio_util::sync::CancellationToken;

pub const AGENT: &str = "agent";
pub const AGENT_PASSWORD: &str = "agent-pw";

static CLUSTER: OnceLock<TempCluster> = OnceLock::new();
static DB_SEQ: AtomicUsize = AtomicUsize::new(0);

/// The cluster of this test binary, started on first use with `log_statement = 'all'` so tests
/// can see exactly what ran upstream.
pub fn cluster() -> &'static TempCluster {
    CLUSTER.get_or_init(|| {
        let c = TempCluster::start(ClusterOptions {
            superuser_password: "postgres-pw".into(),
            extra_conf: vec![
                "log_statement = 'all'".into(),
                "log_line_prefix = '%m|%d|%a|'".into(),
            ],
        })
        .unwrap_or_else(|e| {
            panic!("cannot start the test PostgreSQL: {e}\n(run scripts/test.sh, which installs postgresql-15, or `apt-get install -y postgresql-15`)")
        });
        reap_on_exit(&c);
        c
    })
}

/// Statics are never dropped: a watcher process stops the cluster when this test binary
/// exits, however it exits.
fn reap_on_exit(c: &TempCluster) {
    let pid = std::process::id();
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {runas}{bindir}/pg_ctl stop -m immediate -D {data} >/dev/null 2>&1; rm -rf {dir}",
        runas = if nix::unistd::geteuid().is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        },
        bindir = c.bindir().display(),
        data = c.data_dir().display(),
        dir = c.path().display(),
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A fresh database for one test.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(label: &str) -> TestDb {
        let n = DB_SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("t_{}_{}_{}", label, std::process::id(), n);
        cluster()
            .create_database(&name)
            .expect("create test database");
        TestDb { name }
    }

    /// Runs SQL directly as the superuser (setup and checks), failing on error.
    pub fn exec(&self, sql: &str) -> String {
        cluster().psql(&self.name, sql).expect("direct psql")
    }

    /// Direct connection URL (superuser over TCP).
    pub fn direct_url(&self) -> String {
        cluster().url(&self.name)
    }
}

/// A running gateway with its own runtime thread.
pub struct Gw {
    pub addr: SocketAddr,
    /// The admin listener, when the test enabled `[admin] listen`.
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    pub audit_dir: tempfile::TempDir,
    closing: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gw {
    /// A gateway in front of the test cluster with SCRAM for the agent and `tweak` applied.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Gw {
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".into();
        cfg.upstream.url = cluster().url("postgres");
        cfg.auth.method = AuthMethod::ScramSha256;
        cfg.auth.users.insert(
            AGENT.into(),
            airlock::protocol::scram::Verifier::for_password(AGENT_PASSWORD),
        );
        cfg.server.shutdown_grace_secs = 0;
        let audit_dir = tempfile::tempdir().expect("audit dir");
        cfg.audit.path = audit_dir.path().join("audit");
        cfg.policy.path = fixture("relay-policy.toml");
        cfg.admin.listen = String::new();
        // Tests that want the schema watch (and its connections) turn it on.
        cfg.upstream.catalog_poll_ms = 0;
        tweak(&mut cfg);
        cfg.validate().expect("valid test config");
        // The gateway gets its own runtime on its own thread, so tests may be sync or async.
        let closing = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let closing = closing.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let gateway = Arc::new(Gateway::open(Arc::new(cfg)).await.expect("gateway"));
                    let server = Server::bind(gateway.clone()).await.expect("bind");
                    tx.send((server.local_addr(), server.admin_addr(), gateway))
                        .expect("report address");
                    server.run(closing).await;
                });
            })
        };
        let (addr, admin_addr, gateway) = rx.recv().expect("gateway started");
        Gw {
            addr,
            admin_addr,
            gateway,
            audit_dir,
            closing,
            thread: Some(thread),
        }
    }

    /// URL for the agent through the gateway.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{AGENT}:{AGENT_PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable",
            self.addr.port()
        )
    }

    /// Stops accepting (like SIGTERM) without waiting.
    pub fn begin_shutdown(&self) {
        self.closing.cancel();
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Runs `f` to completion on a runtime of its own, on a thread of its own, so that sync and
/// async tests alike can wait on the gateway's async parts.
fn on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

impl Gw {
    /// Re-reads the policy as SIGHUP does, and waits until its audit record is written.
    pub fn reload_policy(&self) {
        let gateway = self.gateway.clone();
        on_own_runtime(async move { gateway.reload_policy().await });
    }

    /// Every audit record so far (after a flush), decoded.
    pub fn audit_records(&self) -> Vec<airlock::audit::Record> {
        let audit = self.gateway.inspector.audit.clone();
        on_own_runtime(async move { audit.flush().await }).expect("audit flush");
        let store = self.gateway.inspector.audit.store();
        store
            .scan(0)
            .map(|r| {
                let r = r.expect("audit read");
                airlock::audit::Record::decode(r.seq, &r.bytes).expect("decode record")
            })
            .collect()
    }

    /// The last decision entry on exactly `sql`; panics when there is none.
    pub fn last_decision(&self, sql: &str) -> airlock::audit::DecisionEntry {
        self.decisions()
            .into_iter()
            .rfind(|(_, d)| d.sql == sql)
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("{sql} audited"))
    }

    /// Decision entries, in order.
    pub fn decisions(&self) -> Vec<(airlock::audit::Record, airlock::audit::DecisionEntry)> {
        self.audit_records()
            .into_iter()
            .filter_map(|r| match &r.entry {
                airlock::audit::Entry::Decision(d) => Some((r.clone(), d.clone())),
                _ => None,
            })
            .collect()
    }
}

impl Gw {
    /// Plays an approver who denies every held request as soon as it appears, so tests of
    /// held statements see the refusal instead of waiting out the hold. Stops with the Gw.
    pub fn auto_deny(&self, approver: &str) {
        self.auto_decide(approver, |_| false);
    }

    /// `approver` decides every request as it arrives: approves those whose SQL `approve`
    /// accepts, denies the rest.
    pub fn auto_decide(&self, approver: &str, approve: fn(&str) -> bool) {
        let registry = self.gateway.registry.clone();
        let stop = self.closing.clone();
        let approver = approver.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                while !stop.is_cancelled() {
                    for view in registry.list(airlock::approval::ListFilter::Pending).await {
                        let (id, channel) = (&view.id, airlock::approval::Channel::Api);
                        let yes = approve(&view.sql);
                        let why = Some(format!(
                            "{} by the test approver",
                            if yes { "approved" } else { "denied" }
                        ));
                        let _ = match yes {
                            true => registry.approve(id, &approver, channel, why).await,
                            false => registry.deny(id, &approver, channel, why).await,
                        };
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            });
        });
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.closing.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs one statement as the agent through `gw` with psql; (stdout, stderr).
pub fn agent_sql(gw: &Gw, db: &TestDb, sql: &str) -> (String, String) {
    let out = psql(&gw.url(&db.name), &["-At", "-c", sql], None);
    (stdout(&out), stderr(&out))
}

/// As [`agent_sql`] with `VERBOSITY=verbose`, so errors show their SQLSTATE.
pub fn verbose_sql(gw: &Gw, db: &TestDb, sql: &str) -> std::process::Output {
    psql(
        &gw.url(&db.name),
        &["-At", "-v", "VERBOSITY=verbose", "-c", sql],
        None,
    )
}

/// A file under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A policy shipped in policies/.
pub fn shipped_policy(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(name)
}

/// Path of a client tool, or a panic that says how to install it.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let bindir = cluster().bindir().join(name);
    if bindir.exists() {
        return bindir;
    }
    match which(name) {
        Some(p) => p,
        None => panic!(
            "`{name}` is not installed: apt-get install -y {package} (scripts/test.sh does this)"
        ),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs psql against `url` with `args`, returning the output (never panics on SQL errors).
pub fn psql(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(tool("psql", "postgresql-client-15"))
        .arg("-X")
        .arg(url)
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write psql stdin");
    }
    drop(input);
    child.wait_with_output().expect("psql output")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Python interpreter with the client drivers, or a panic saying how to get them.
pub fn python_with(module: &str) -> PathBuf {
    let py = which("python3").expect("python3 is not installed (apt-get install -y python3)");
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python module `{module}` is missing: pip install 'psycopg[binary]' asyncpg (scripts/test.sh does this)"
    );
    py
}

/// Starts psql running one statement as a child (to be held, decided, then awaited).
pub fn spawn_psql(url: &str, sql: &str) -> std::process::Child {
    Command::new(tool("psql", "postgresql-client-15"))
        .args(["-X", url, "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql")
}

/// Waits (bounded) for a pending request whose client waits and whose SQL contains `needle`.
/// Fails at once, with psql's output, if the client gave up instead of being held.
pub async fn pending(
    gw: &Gw,
    needle: &str,
    client: &mut std::process::Child,
) -> airlock::approval::RequestView {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let all = gw
            .gateway
            .registry
            .list(airlock::approval::ListFilter::All)
            .await;
        if let Some(v) = all
            .iter()
            .find(|v| v.sql.contains(needle) && v.client_waiting)
        {
            return v.clone();
        }
        if let Ok(Some(status)) = client.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = client.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("psql exited ({status}) before `{needle}` was held: {err}");
        }
        if std::time::Instant::now() > deadline {
            let seen: Vec<_> = all
                .iter()
                .map(|v| (&v.sql, v.state, v.client_waiting))
                .collect();
            panic!("no pending request for {needle}: {seen:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! `airlock demo`: a throwaway PostgreSQL with a small shop schema, the gateway in front of it
//! with the demo policy, and what to type next. Ctrl-C stops and removes everything.

pub mod cluster;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{AuthMethod, Config};
use crate::server::{Gateway, Server, ServerError};
use cluster::{ClusterError, ClusterOptions, TempCluster};

/// The demo schema: customers carry PII (email, ssn, phone); orders and products do not.
pub const DEMO_SCHEMA: &str = include_str!("schema.sql");

/// The demo policy (policies/demo.toml), built in so the binary runs from anywhere.
pub const DEMO_POLICY: &str = include_str!("../../policies/demo.toml");

/// The demo's approvers (from demo.toml) and their admin API tokens.
pub const DEMO_APPROVERS: [(&str, &str); 2] =
    [("alice", "alice-demo-token"), ("bob", "bob-demo-token")];

/// The agent account the demo creates, and its password.
pub const DEMO_AGENT: (&str, &str) = ("agent", "agent-password");

/// The PostgreSQL role the gateway logs in as. It owns the demo database and its tables, so
/// approved DDL works, but it is not a superuser and cannot create roles: whatever gets past
/// the gateway cannot rewrite the system catalogs or grant itself more, the setup the README
/// recommends for real deployments.
pub const DEMO_UPSTREAM_ROLE: &str = "airlock_gateway";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("demo config: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Options of `airlock demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: String,
    pub admin_listen: String,
}

/// A running demo: the cluster, and the gateway's config.
pub struct Demo {
    pub cluster: TempCluster,
    pub config: Config,
}

impl Demo {
    /// Starts PostgreSQL, loads the schema and prepares the gateway config.
    pub fn prepare(opts: &DemoOptions) -> Result<Demo, DemoError> {
        let cluster = TempCluster::start(ClusterOptions::default())?;
        cluster.create_database("demo")?;
        let upstream_password = random_password();
        cluster.psql(
            "demo",
            &format!(
                "CREATE ROLE {DEMO_UPSTREAM_ROLE} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB \
                 PASSWORD '{upstream_password}'; \
                 ALTER DATABASE demo OWNER TO {DEMO_UPSTREAM_ROLE};"
            ),
        )?;
        // The schema is created by the gateway's role, so the role owns what it may alter.
        cluster.psql(
            "demo",
            &format!("SET ROLE {DEMO_UPSTREAM_ROLE};\n{DEMO_SCHEMA}"),
        )?;
        let mut config = Config::default();
        config.server.listen = opts.listen.clone();
        config.upstream.url = format!(
            "postgres://{DEMO_UPSTREAM_ROLE}:{upstream_password}@127.0.0.1:{}/demo?sslmode=disable",
            cluster.port
        );
        config.auth.method = AuthMethod::ScramSha256;
        config.auth.users.insert(
            DEMO_AGENT.0.to_string(),
            crate::protocol::scram::Verifier::for_password(DEMO_AGENT.1),
        );
        config.audit.path = cluster.path().join("audit");
        let policy = cluster.path().join("demo-policy.toml");
        std::fs::write(&policy, DEMO_POLICY)?;
        config.policy.path = policy;
        config.admin.listen = opts.admin_listen.clone();
        for (name, token) in DEMO_APPROVERS {
            config
                .admin
                .tokens
                .insert(name.to_string(), crate::admin::hash_token(token));
        }
        config.admin.public_url = format!("http://{}", opts.admin_listen);
        config.validate().map_err(DemoError::Config)?;
        Ok(Demo { cluster, config })
    }

    /// What to print once the gateway listens on `port`.
    pub fn banner(&self, addr: std::net::SocketAddr) -> String {
        format!(
            r#"
airlock demo is running.

  PostgreSQL (throwaway): 127.0.0.1:{pg_port}, data in {dir}
  airlock gateway:        {addr}   (agent "{user}", password "{pw}")
  upstream role:          {role} (owns the demo schema; not a superuser)

Connect as the agent:

  psql "postgres://{user}:{pw}@{addr}/demo"

Then try:
  SELECT name, city FROM customers LIMIT 5;      -- allowed: no PII
  SELECT * FROM orders LIMIT 5;                   -- allowed
  SELECT email FROM customers LIMIT 3;            -- PII export: held for approval
  ALTER TABLE orders ADD COLUMN note text;        -- DDL: held for approval
  DROP TABLE orders;                              -- denied: agents may not drop objects

Reports see PII masked. The policy reads the application name the client connects with:

  psql "postgres://{user}:{pw}@{addr}/demo?application_name=reporting"

  SELECT name, email, phone FROM customers LIMIT 3;   -- masked: c***@example.com, ***0001
  SELECT ssn FROM customers LIMIT 3;                  -- held: SSNs need two approvers

Held statements wait on your connection; approve them at {admin}/approvals
(sign in with token "alice-demo-token" or "bob-demo-token"), or with:
  airlock approvals ls --admin {admin} --token alice-demo-token
  airlock approvals approve ID --reason "looks fine" --admin {admin} --token alice-demo-token
  \copy products TO STDOUT                        -- allowed: no PII

Press Ctrl-C to stop; everything is removed.
"#,
            pg_port = self.cluster.port,
            dir = self.cluster.path().display(),
            addr = addr,
            user = DEMO_AGENT.0,
            pw = DEMO_AGENT.1,
            role = DEMO_UPSTREAM_ROLE,
            admin = self.config.admin.public_url,
        )
    }
}

/// A fresh password for the gateway's upstream role: 24 random bytes as hex (nothing to quote
/// in SQL or in a URL).
fn random_password() -> String {
    let mut raw = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the demo until `stop` fires. `on_ready` gets the banner (the CLI prints it).
pub async fn run(
    opts: DemoOptions,
    stop: CancellationToken,
    on_ready: impl FnOnce(String),
) -> Result<(), DemoError> {
    let demo = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || Demo::prepare(&opts)
    })
    .await
    .map_err(|e| DemoError::Config(e.to_string()))??;
    let gateway = Arc::new(Gateway::open(Arc::new(demo.config.clone())).await?);
    let server = Server::bind(gateway).await?;
    on_ready(demo.banner(server.local_addr()));
    server.run(stop).await;
    drop(demo);
    Ok(())
}

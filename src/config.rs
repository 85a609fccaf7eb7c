//! Gateway configuration: one TOML file, strict (unknown keys are errors with file and line),
//! every setting overridable by an environment variable `AIRLOCK_<SECTION>__<KEY>`
//! (for example `AIRLOCK_SERVER__LISTEN=0.0.0.0:6432`, `AIRLOCK_AUDIT__DURABILITY=strict`).
//!
//! The config is loaded once and passed down explicitly; nothing reads it from a global.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::admin::AdminConfig;
use crate::approval::ApprovalConfig;
use crate::audit::AuditConfig;
use crate::notify::NotifyConfig;
use crate::policy::PolicyConfig;

/// Prefix of environment overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "AIRLOCK_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment override {var}: {message}")]
    Env { var: String, message: String },
}

/// The whole gateway configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub upstream: UpstreamConfig,
    pub policy: PolicyConfig,
    pub audit: AuditConfig,
    pub admin: AdminConfig,
    pub approval: ApprovalConfig,
    pub notify: NotifyConfig,
    pub log: LogConfig,
}

/// `[server]`: the client-facing listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port` to accept PostgreSQL clients on (port 0 picks a free port).
    pub listen: String,
    /// Connections beyond this are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// Largest frontend message accepted, in bytes; larger ones end the session (08P01).
    pub max_message_bytes: usize,
    /// On SIGTERM, how long running sessions may take to finish before they are closed.
    pub shutdown_grace_secs: u64,
    /// How long a client may take to finish startup and authentication.
    pub startup_timeout_secs: u64,
    /// Threads that serve client sessions, each session on one of them for its whole life;
    /// 0 = one per CPU.
    pub session_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:6432".into(),
            max_connections: 2000,
            max_message_bytes: 64 * 1024 * 1024,
            shutdown_grace_secs: 30,
            startup_timeout_secs: 30,
            session_threads: 0,
        }
    }
}

/// `[tls]`: TLS towards clients. Without a certificate, SSLRequest is answered 'N'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Refuse clients that do not negotiate TLS (SQLSTATE 28000).
    pub require: bool,
}

/// How clients authenticate to the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (and SCRAM-SHA-256-PLUS over TLS) against the verifiers in `[auth.users]`.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Anyone may connect as any listed user (or any user when the list is empty).
    /// For local development only; the gateway logs a warning at start.
    Trust,
}

/// `[auth]`: agent identities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub method: AuthMethod,
    /// user name → PostgreSQL-style SCRAM verifier (`airlock passwd NAME` prints one).
    pub users: BTreeMap<String, String>,
}

/// `[upstream]`: the real PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `postgres://user@host:port/db?sslmode=…`. The database is the default when the client
    /// names none; a password here is accepted but discouraged.
    pub url: String,
    /// Environment variable holding the upstream password.
    pub password_env: Option<String>,
    /// File holding the upstream password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// Pass the client's database name upstream (true) or always use the URL's database.
    pub pass_database: bool,
    /// Keep a finished session's upstream connection for the next session of the same
    /// database and startup parameters (agents often open a connection per call).
    pub pool: bool,
    /// Idle connections kept per database/parameter set.
    pub pool_max_idle: usize,
    /// Idle connections older than this are closed instead of reused.
    pub pool_idle_timeout_secs: u64,
    /// Run on a connection before it is reused, to drop session state.
    pub reset_query: String,
    /// How often, in milliseconds, each database's schema is compared with the catalog
    /// snapshot (one cheap query on a connection of its own); a difference makes the gateway
    /// read the catalog again. Catches changes made on the server outside the gateway that
    /// nothing else reveals, such as a view redefined in place. 0 turns it off.
    pub catalog_poll_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            password_env: None,
            password_file: None,
            connect_timeout_secs: 5,
            pass_database: true,
            pool: true,
            pool_max_idle: 32,
            pool_idle_timeout_secs: 60,
            reset_query: "DISCARD ALL".into(),
            catalog_poll_ms: 5000,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive (`info`, `airlock=debug`); `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads `path`, applies the environment overrides from `env`, and validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, env)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        // First pass on the text itself, so errors carry line and column.
        toml::from_str::<Config>(text).map_err(|e| invalid(describe_toml_error(text, &e)))?;
        let mut value: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut overridden = false;
        for (var, raw) in env {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !key.contains("__") {
                continue; // AIRLOCK_UPSTREAM_PASSWORD and friends are not overrides.
            }
            let path_parts: Vec<String> = key.split("__").map(|p| p.to_lowercase()).collect();
            set_path(&mut value, &path_parts, parse_env_value(&raw)).map_err(|message| {
                ConfigError::Env {
                    var: var.clone(),
                    message,
                }
            })?;
            overridden = true;
        }
        let config: Config = if overridden {
            toml::Value::Table(value)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Env {
                    var: "AIRLOCK_*".into(),
                    message: e.message().to_string(),
                })?
        } else {
            toml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Checks that go beyond types: listen addresses parse, TLS files come in pairs, …
    pub fn validate(&self) -> Result<(), String> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err("[tls] needs both `cert` and `key`".into());
        }
        if self.tls.require && self.tls.cert.is_none() {
            return Err("[tls] require = true needs `cert` and `key`".into());
        }
        if self.server.max_message_bytes < 1024 {
            return Err("[server] max_message_bytes must be at least 1024".into());
        }
        if self.audit.cache_mb == 0 {
            return Err("[audit] cache_mb must be at least 1".into());
        }
        self.notify
            .validate()
            .map_err(|e| format!("[notify] {e}"))?;
        if !self.admin.link_secret.is_empty()
            && (self.notify.link_secret_env.is_some() || self.notify.link_secret_file.is_some())
        {
            return Err(
                "the approval-link key is set twice, as [admin] link_secret and as \
                 [notify] link_secret_env/link_secret_file: keep one"
                    .into(),
            );
        }
        crate::upstream::UpstreamTarget::parse(&self.upstream.url)
            .map_err(|e| format!("[upstream] url: {e}"))?;
        if self.auth.method == AuthMethod::ScramSha256 {
            for (user, verifier) in &self.auth.users {
                crate::protocol::scram::Verifier::parse(verifier)
                    .map_err(|e| format!("[auth.users] {user}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// toml's errors already name line and column; keep them but drop the repeated source excerpt
/// noise for one-line messages.
fn describe_toml_error(_text: &str, e: &toml::de::Error) -> String {
    e.to_string().trim_end().to_string()
}

/// Environment values are TOML when they parse as a TOML value (numbers, booleans, arrays),
/// otherwise plain strings.
fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn set_path(table: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = parts.split_last().ok_or("empty key")?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            Path::new("airlock.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:6432");
        assert_eq!(c.auth.method, AuthMethod::ScramSha256);
    }

    #[test]
    fn unknown_key_is_rejected_with_line() {
        let err = parse("[server]\nlisten = \"x:1\"\nlistn = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn env_overrides_nested_keys_with_types() {
        let c = parse(
            "[server]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("AIRLOCK_SERVER__LISTEN", "0.0.0.0:7000"),
                ("AIRLOCK_SERVER__MAX_CONNECTIONS", "5"),
                ("AIRLOCK_AUDIT__DURABILITY", "strict"),
                ("AIRLOCK_UPSTREAM_PASSWORD", "not-an-override"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:7000");
        assert_eq!(c.server.max_connections, 5);
        assert_eq!(c.audit.durability, crate::audit::Durability::Strict);
    }

    #[test]
    fn unknown_env_override_is_rejected() {
        let err = parse("", &[("AIRLOCK_SERVER__NOPE", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn auth_method_uses_postgres_spelling() {
        let c = parse("[auth]\nmethod = \"scram-sha-256\"\n", &[]).unwrap();
        assert_eq!(c.auth.method, AuthMethod::ScramSha256);
        assert_eq!(
            parse("[auth]\nmethod = \"trust\"\n", &[])
                .unwrap()
                .auth
                .method,
            AuthMethod::Trust
        );
    }

    #[test]
    fn audit_cache_is_bounded_by_default_and_never_zero() {
        assert_eq!(parse("", &[]).unwrap().audit.cache_mb, 64);
        let c = parse("[audit]\ncache_mb = 16\n", &[]).unwrap();
        assert_eq!(c.audit.cache_mb, 16);
        let err = parse("[audit]\ncache_mb = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[audit] cache_mb must be at least 1"), "{err}");
    }

    #[test]
    fn the_link_key_is_configured_in_one_place() {
        let key = "k".repeat(40);
        let err = parse(
            &format!("[admin]\nlink_secret = \"{key}\"\n[notify]\nlink_secret_env = \"K\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("set twice"), "{err}");
        assert!(parse(&format!("[admin]\nlink_secret = \"{key}\"\n"), &[]).is_ok());
        assert!(parse("[notify]\nlink_secret_env = \"K\"\n", &[]).is_ok());
    }

    #[test]
    fn tls_require_without_cert_is_invalid() {
        assert!(parse("[tls]\nrequire = true\n", &[]).is_err());
    }
}

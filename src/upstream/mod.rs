//! The upstream PostgreSQL: where it is, how to connect and authenticate with the gateway's
//! own service credentials (the agent never learns them), and how to cancel a query there.

mod auth;
pub mod pool;
mod query;
mod target;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::UpstreamConfig;
use crate::protocol::frame::{split_frame, FrameError};
use crate::protocol::messages::{error_code_and_message, parse_startup_params};
use crate::protocol::stream::Stream;

pub use target::{SslMode, UpstreamTarget};

/// Largest backend message accepted during startup (auth, parameter status).
const MAX_STARTUP_MESSAGE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid upstream URL: {0}")]
    Url(String),
    #[error("cannot read the upstream password: {0}")]
    Password(String),
    #[error("could not connect to upstream {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to upstream {0}")]
    Timeout(String),
    #[error("upstream {addr} does not support TLS and sslmode requires it")]
    TlsRefused { addr: String },
    #[error("TLS to upstream {addr} failed: {message}")]
    Tls { addr: String, message: String },
    #[error("upstream {addr} refused the gateway: {code} {message}")]
    Rejected {
        addr: String,
        code: String,
        message: String,
    },
    #[error("upstream {addr} asked for a password but none is configured (set upstream.password_env or upstream.password_file)")]
    NoPassword { addr: String },
    #[error("upstream {addr} requested unsupported authentication ({0})", .method)]
    UnsupportedAuth { addr: String, method: String },
    #[error("protocol error from upstream {addr}: {message}")]
    Protocol { addr: String, message: String },
    #[error("i/o with upstream: {0}")]
    Io(#[from] std::io::Error),
}

impl From<FrameError> for UpstreamError {
    fn from(e: FrameError) -> Self {
        UpstreamError::Protocol {
            addr: String::new(),
            message: e.to_string(),
        }
    }
}

/// A resolved, ready-to-dial upstream: target, password and TLS settings.
pub struct Upstream {
    target: UpstreamTarget,
    password: Option<String>,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    connect_timeout: Duration,
    pass_database: bool,
}

/// An authenticated upstream session, ready for queries.
pub struct UpstreamConn {
    pub stream: Stream,
    /// ParameterStatus values reported during startup, in order.
    pub params: Vec<(String, String)>,
    pub pid: i32,
    pub secret: i32,
    /// Bytes read past the first ReadyForQuery (normally empty).
    pub rest: BytesMut,
    /// The thread whose runtime delivers this socket's events (see [`Stream::rehome`]).
    pub home: std::thread::ThreadId,
}

/// What is needed to cancel a query on an upstream session.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub host: String,
    pub port: u16,
    pub pid: i32,
    pub secret: i32,
}

impl Upstream {
    pub fn from_config(cfg: &UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let target = UpstreamTarget::parse(&cfg.url)?;
        let password = resolve_password(cfg, &target)?;
        let tls = tls::client_config(&target)?;
        Ok(Upstream {
            target,
            password,
            tls,
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            pass_database: cfg.pass_database,
        })
    }

    /// `host:port`, never with credentials: safe for errors, logs and the audit.
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    pub fn target(&self) -> &UpstreamTarget {
        &self.target
    }

    /// The database to open for a client that asked for `requested`.
    pub fn database_for<'a>(&'a self, requested: Option<&'a str>) -> &'a str {
        match requested {
            Some(db) if self.pass_database && !db.is_empty() => db,
            _ => &self.target.database,
        }
    }

    /// Opens and authenticates a session. `params` are the client's startup parameters the
    /// gateway lets through (application_name, DateStyle, …); user and database come from here.
    pub async fn connect(
        &self,
        database: &str,
        params: &[(String, String)],
    ) -> Result<UpstreamConn, UpstreamError> {
        let addr = self.describe();
        let fut = self.connect_inner(database, params);
        tokio::time::timeout(self.connect_timeout, fut)
            .await
            .map_err(|_| UpstreamError::Timeout(addr))?
    }

    async fn connect_inner(
        &self,
        database: &str,
        params: &[(String, String)],
    ) -> Result<UpstreamConn, UpstreamError> {
        let addr = self.describe();
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|source| UpstreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        tcp.set_nodelay(true)?;
        let mut stream = tls::maybe_upgrade(tcp, &self.target, self.tls.as_ref()).await?;

        let mut startup = BytesMut::new();
        startup.extend_from_slice(&[0, 0, 0, 0]);
        startup.extend_from_slice(&196608i32.to_be_bytes());
        let mut put = |k: &str, v: &str| {
            startup.extend_from_slice(k.as_bytes());
            startup.extend_from_slice(&[0]);
            startup.extend_from_slice(v.as_bytes());
            startup.extend_from_slice(&[0]);
        };
        put("user", &self.target.user);
        put("database", database);
        for (k, v) in params {
            put(k, v);
        }
        startup.extend_from_slice(&[0]);
        let len = startup.len() as i32;
        startup[..4].copy_from_slice(&len.to_be_bytes());
        stream.write_all(&startup).await?;

        let mut buf = BytesMut::with_capacity(4096);
        auth::authenticate(
            &mut stream,
            &mut buf,
            &self.target.user,
            self.password.as_deref(),
            &addr,
        )
        .await?;

        let mut out = UpstreamConn {
            stream,
            params: Vec::new(),
            pid: 0,
            secret: 0,
            rest: BytesMut::new(),
            home: std::thread::current().id(),
        };
        loop {
            let frame = match split_frame(&mut buf, MAX_STARTUP_MESSAGE)? {
                Some(f) => f,
                None => {
                    if out.stream.read_buf(&mut buf).await? == 0 {
                        return Err(UpstreamError::Protocol {
                            addr,
                            message: "connection closed during startup".into(),
                        });
                    }
                    continue;
                }
            };
            match frame.tag() {
                b'S' => {
                    let mut body = frame.body().to_vec();
                    body.push(0);
                    if let Some(mut kv) = parse_startup_params(&body) {
                        out.params.append(&mut kv);
                    }
                }
                b'K' => {
                    let b = frame.body();
                    if b.len() >= 8 {
                        out.pid = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        out.secret = i32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                    }
                }
                b'Z' => {
                    out.rest = buf;
                    return Ok(out);
                }
                b'E' => {
                    let (code, message) = error_code_and_message(&frame);
                    return Err(UpstreamError::Rejected {
                        addr,
                        code,
                        message,
                    });
                }
                // NoticeResponse, NegotiateProtocolVersion: nothing to do before ready.
                _ => {}
            }
        }
    }

    /// Sends a CancelRequest for an upstream session.
    pub async fn cancel(&self, target: &CancelTarget) -> Result<(), UpstreamError> {
        let addr = format!("{}:{}", target.host, target.port);
        let mut tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| UpstreamError::Connect { addr, source })?;
        let mut msg = Vec::with_capacity(16);
        msg.extend_from_slice(&16i32.to_be_bytes());
        msg.extend_from_slice(&80877102i32.to_be_bytes());
        msg.extend_from_slice(&target.pid.to_be_bytes());
        msg.extend_from_slice(&target.secret.to_be_bytes());
        tcp.write_all(&msg).await?;
        // The server closes the connection once it has read the request.
        let mut sink = [0u8; 1];
        let _ = tcp.read(&mut sink).await;
        Ok(())
    }

    pub fn cancel_target(&self, conn: &UpstreamConn) -> CancelTarget {
        CancelTarget {
            host: self.target.host.clone(),
            port: self.target.port,
            pid: conn.pid,
            secret: conn.secret,
        }
    }
}

fn resolve_password(
    cfg: &UpstreamConfig,
    target: &UpstreamTarget,
) -> Result<Option<String>, UpstreamError> {
    if let Some(var) = &cfg.password_env {
        return std::env::var(var).map(Some).map_err(|_| {
            UpstreamError::Password(format!("environment variable {var} is not set"))
        });
    }
    if let Some(path) = &cfg.password_file {
        return std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| UpstreamError::Password(format!("{}: {e}", path.display())));
    }
    Ok(target.password.clone())
}

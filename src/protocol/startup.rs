//! The startup phase of a client connection: SSL/GSS negotiation, CancelRequest, and the
//! StartupMessage. Authentication is the session's business; this only gets it a stream and
//! the parameters.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::frame::{split_startup, FrameError};
use super::messages::{parse_startup_params, PgError};
use super::sqlstate;
use super::stream::Stream;

const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;
/// Startup packets are small; PostgreSQL caps them at 10000 bytes too.
pub const MAX_STARTUP_PACKET: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection closed during startup")]
    Closed,
    #[error("i/o during startup: {0}")]
    Io(#[from] std::io::Error),
    #[error("received unencrypted data after SSL request")]
    PlaintextAfterSslRequest,
    #[error("unsupported frontend protocol {0}.{1}")]
    Protocol(u16, u16),
    #[error("duplicate SSL request")]
    DuplicateSslRequest,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("malformed startup packet")]
    Malformed,
}

/// TLS material for the client side of the gateway.
#[derive(Clone)]
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    /// `tls-server-end-point` hash of our certificate, for SCRAM-SHA-256-PLUS.
    pub cert_hash: Vec<u8>,
}

/// What the first packets of a connection asked for.
pub enum Hello {
    /// A session: the (possibly TLS) stream and the startup parameters, in order.
    Startup {
        stream: Stream,
        params: Vec<(String, String)>,
        minor_version: u16,
        /// Bytes the client already sent after the StartupMessage (pipelined auth).
        rest: BytesMut,
    },
    /// A CancelRequest for the session with this key.
    Cancel { pid: i32, secret: i32 },
}

/// Runs the startup phase on a fresh socket. Errors are answered with a FATAL where the
/// client can still read one, then the connection is dropped.
pub async fn negotiate(
    socket: TcpStream,
    tls: Option<&Arc<ServerTls>>,
) -> Result<Hello, StartupError> {
    let mut stream = Some(Stream::Plain(socket));
    let result = negotiate_inner(&mut stream, tls).await;
    if let (Err(e), Some(s)) = (&result, stream.as_mut()) {
        if !matches!(e, StartupError::Closed | StartupError::Io(_)) {
            let err = PgError::fatal(sqlstate::PROTOCOL_VIOLATION, e.to_string());
            let _ = s.write_all(&err.to_bytes()).await;
        }
    }
    result
}

async fn negotiate_inner(
    slot: &mut Option<Stream>,
    tls: Option<&Arc<ServerTls>>,
) -> Result<Hello, StartupError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let stream = slot.as_mut().ok_or(StartupError::Closed)?;
        let (code, body) = read_packet(stream, &mut buf).await?;
        match code {
            SSL_REQUEST => {
                if stream.is_tls() {
                    return Err(StartupError::DuplicateSslRequest);
                }
                match tls {
                    Some(tls) => {
                        // Anything already buffered behind the request would be read as if
                        // it had come over TLS: a man in the middle could inject it
                        // (CVE-2021-23214).
                        if !buf.is_empty() {
                            return Err(StartupError::PlaintextAfterSslRequest);
                        }
                        stream.write_all(b"S").await?;
                        let Some(Stream::Plain(tcp)) = slot.take() else {
                            return Err(StartupError::Closed);
                        };
                        let accepted = tls.acceptor.accept(tcp).await.map_err(StartupError::Tls)?;
                        *slot = Some(Stream::ServerTls(Box::new(accepted)));
                    }
                    None => stream.write_all(b"N").await?,
                }
            }
            GSSENC_REQUEST => stream.write_all(b"N").await?,
            CANCEL_REQUEST => {
                if body.len() != 8 {
                    return Err(StartupError::Malformed);
                }
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                return Ok(Hello::Cancel { pid, secret });
            }
            version => {
                let major = (version >> 16) as u16;
                let minor = (version & 0xffff) as u16;
                if major != 3 {
                    return Err(StartupError::Protocol(major, minor));
                }
                let params = parse_startup_params(&body).ok_or(StartupError::Malformed)?;
                let stream = slot.take().ok_or(StartupError::Closed)?;
                return Ok(Hello::Startup {
                    stream,
                    params,
                    minor_version: minor,
                    rest: buf,
                });
            }
        }
    }
}

async fn read_packet(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<(i32, Bytes), StartupError> {
    loop {
        if let Some(p) = split_startup(buf, MAX_STARTUP_PACKET)? {
            return Ok(p);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(StartupError::Closed);
        }
    }
}

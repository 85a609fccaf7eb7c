//! Authenticating the gateway to upstream as whatever the server asks for: SCRAM-SHA-256
//! (with channel binding over TLS when offered), md5, cleartext, or trust.

use bytes::{BufMut, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::UpstreamError;
use crate::protocol::frame::{read_cstr, split_frame, Frame};
use crate::protocol::messages::error_code_and_message;
use crate::protocol::scram::{cert_end_point_hash, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use crate::protocol::stream::Stream;

const MAX_AUTH_MESSAGE: usize = 1 << 16;

/// Runs the authentication exchange up to AuthenticationOk.
pub(super) async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    password: Option<&str>,
    addr: &str,
) -> Result<(), UpstreamError> {
    let mut scram: Option<ScramSha256> = None;
    loop {
        let frame = next(stream, buf, addr).await?;
        match frame.tag() {
            b'R' => {}
            b'E' => {
                let (code, message) = error_code_and_message(&frame);
                return Err(UpstreamError::Rejected {
                    addr: addr.into(),
                    code,
                    message,
                });
            }
            b'v' | b'N' => continue,
            other => {
                return Err(protocol(
                    addr,
                    format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    ),
                ))
            }
        }
        let body = frame.body();
        if body.len() < 4 {
            return Err(protocol(addr, "short authentication message".into()));
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let data = &body[4..];
        let need_password =
            || password.ok_or_else(|| UpstreamError::NoPassword { addr: addr.into() });
        match code {
            0 => return Ok(()),
            3 => send_password(stream, need_password()?.as_bytes()).await?,
            5 => {
                let salt: [u8; 4] = data
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| protocol(addr, "short md5 salt".into()))?;
                let hash = md5_hash(user.as_bytes(), need_password()?.as_bytes(), salt);
                send_password(stream, hash.as_bytes()).await?;
            }
            10 => {
                let mut mechanisms = Vec::new();
                let mut rest = data;
                while let Some((m, r)) = read_cstr(rest) {
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m.to_string());
                    rest = r;
                }
                let pw = need_password()?;
                let cert = peer_cert_hash(stream);
                let (mechanism, binding) = match cert {
                    Some(hash) if mechanisms.iter().any(|m| m == SCRAM_SHA_256_PLUS) => (
                        SCRAM_SHA_256_PLUS,
                        ChannelBinding::tls_server_end_point(hash),
                    ),
                    Some(_) => (SCRAM_SHA_256, ChannelBinding::unrequested()),
                    None => (SCRAM_SHA_256, ChannelBinding::unsupported()),
                };
                if !mechanisms.iter().any(|m| m == mechanism) {
                    return Err(UpstreamError::UnsupportedAuth {
                        addr: addr.into(),
                        method: mechanisms.join(", "),
                    });
                }
                let s = ScramSha256::new(pw.as_bytes(), binding);
                let mut msg = BytesMut::new();
                msg.put_u8(b'p');
                let len = 4 + mechanism.len() + 1 + 4 + s.message().len();
                msg.put_i32(len as i32);
                msg.put_slice(mechanism.as_bytes());
                msg.put_u8(0);
                msg.put_i32(s.message().len() as i32);
                msg.put_slice(s.message());
                stream.write_all(&msg).await?;
                scram = Some(s);
            }
            11 => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| protocol(addr, "SASL continue without start".into()))?;
                s.update(data)
                    .map_err(|e| protocol(addr, format!("SCRAM: {e}")))?;
                let mut msg = BytesMut::new();
                msg.put_u8(b'p');
                msg.put_i32(4 + s.message().len() as i32);
                msg.put_slice(s.message());
                stream.write_all(&msg).await?;
            }
            12 => {
                let mut s = scram
                    .take()
                    .ok_or_else(|| protocol(addr, "SASL final without start".into()))?;
                s.finish(data)
                    .map_err(|e| protocol(addr, format!("SCRAM server signature: {e}")))?;
            }
            other => {
                return Err(UpstreamError::UnsupportedAuth {
                    addr: addr.into(),
                    method: format!("authentication code {other}"),
                })
            }
        }
    }
}

async fn send_password(stream: &mut Stream, pw: &[u8]) -> Result<(), UpstreamError> {
    let mut msg = BytesMut::new();
    msg.put_u8(b'p');
    msg.put_i32(4 + pw.len() as i32 + 1);
    msg.put_slice(pw);
    msg.put_u8(0);
    stream.write_all(&msg).await?;
    Ok(())
}

async fn next(stream: &mut Stream, buf: &mut BytesMut, addr: &str) -> Result<Frame, UpstreamError> {
    loop {
        if let Some(f) = split_frame(buf, MAX_AUTH_MESSAGE)? {
            return Ok(f);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(protocol(
                addr,
                "connection closed during authentication".into(),
            ));
        }
    }
}

fn peer_cert_hash(stream: &Stream) -> Option<Vec<u8>> {
    match stream {
        Stream::ClientTls(tls) => tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| cert_end_point_hash(c.as_ref())),
        _ => None,
    }
}

fn protocol(addr: &str, message: String) -> UpstreamError {
    UpstreamError::Protocol {
        addr: addr.into(),
        message,
    }
}

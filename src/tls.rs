//! TLS towards clients: loading the certificate and key, and the channel-binding hash.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::protocol::scram::cert_end_point_hash;
use crate::protocol::startup::ServerTls;
use crate::server::ServerError;

pub fn server_tls(cert: &Path, key: &Path) -> Result<ServerTls, ServerError> {
    let err = |m: String| ServerError::Tls(m);
    let cert_pem = std::fs::read(cert).map_err(|e| err(format!("{}: {e}", cert.display())))?;
    let key_pem = std::fs::read(key).map_err(|e| err(format!("{}: {e}", key.display())))?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("{}: {e}", cert.display())))?;
    let leaf = chain
        .first()
        .ok_or_else(|| err(format!("{}: no certificate found", cert.display())))?;
    let cert_hash = cert_end_point_hash(leaf.as_ref());
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| err(format!("{}: {e}", key.display())))?
        .ok_or_else(|| err(format!("{}: no private key found", key.display())))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| err(e.to_string()))?;
    Ok(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_hash,
    })
}

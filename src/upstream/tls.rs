//! TLS to upstream, following libpq's sslmode semantics: `require` encrypts without checking
//! the certificate, `verify-ca` checks the chain, `verify-full` also checks the host name.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use super::target::{SslMode, UpstreamTarget};
use super::UpstreamError;
use crate::protocol::stream::Stream;

pub(super) fn client_config(
    target: &UpstreamTarget,
) -> Result<Option<Arc<ClientConfig>>, UpstreamError> {
    let tls_err = |message: String| UpstreamError::Tls {
        addr: target.describe(),
        message,
    };
    if target.sslmode == SslMode::Disable {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    match &target.sslrootcert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| tls_err(format!("sslrootcert {}: {e}", path.display())))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| tls_err(format!("sslrootcert: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err(format!("sslrootcert: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let roots = Arc::new(roots);
    let builder = ClientConfig::builder();
    let config = match target.sslmode {
        SslMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
        mode => {
            let inner = WebPkiServerVerifier::builder(roots)
                .build()
                .map_err(|e| tls_err(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                    inner,
                    check_chain: mode == SslMode::VerifyCa,
                }))
                .with_no_client_auth()
        }
    };
    Ok(Some(Arc::new(config)))
}

/// SSLRequest, then a TLS handshake when the server agrees.
pub(super) async fn maybe_upgrade(
    mut tcp: TcpStream,
    target: &UpstreamTarget,
    config: Option<&Arc<ClientConfig>>,
) -> Result<Stream, UpstreamError> {
    let Some(config) = config else {
        return Ok(Stream::Plain(tcp));
    };
    if target.sslmode == SslMode::Allow {
        // libpq tries plaintext first with `allow`; the gateway keeps it simple and safe
        // by treating it like `prefer`.
    }
    let mut req = Vec::with_capacity(8);
    req.extend_from_slice(&8i32.to_be_bytes());
    req.extend_from_slice(&80877103i32.to_be_bytes());
    tcp.write_all(&req).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {}
        b'N' if matches!(target.sslmode, SslMode::Prefer | SslMode::Allow) => {
            return Ok(Stream::Plain(tcp))
        }
        b'N' => {
            return Err(UpstreamError::TlsRefused {
                addr: target.describe(),
            })
        }
        other => {
            return Err(UpstreamError::Protocol {
                addr: target.describe(),
                message: format!("unexpected answer {other:#x} to SSLRequest"),
            })
        }
    }
    let name = ServerName::try_from(target.host.clone()).map_err(|e| UpstreamError::Tls {
        addr: target.describe(),
        message: e.to_string(),
    })?;
    let tls = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| UpstreamError::Tls {
            addr: target.describe(),
            message: e.to_string(),
        })?;
    Ok(Stream::ClientTls(Box::new(tls)))
}

/// `require` (no checks) and `verify-ca` (chain only) verifiers; signatures are always checked.
#[derive(Debug)]
struct LibpqVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

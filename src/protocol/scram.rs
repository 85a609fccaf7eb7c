//! SCRAM-SHA-256 (RFC 5802 / 7677) and SCRAM-SHA-256-PLUS (`tls-server-end-point`) on the
//! server side, against PostgreSQL-style verifiers so an operator can reuse what
//! `pg_authid.rolpassword` holds or what `airlock passwd` prints.
//!
//! The gateway terminates SCRAM itself: passing it through to upstream would break under TLS
//! channel binding, and the agent must never learn the upstream credentials anyway.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
const CHANNEL_BINDING_TYPE: &str = "tls-server-end-point";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")]
    BadVerifier,
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unsupported SASL mechanism {0:?}")]
    Mechanism(String),
    #[error("channel binding mismatch")]
    ChannelBinding,
    #[error("password authentication failed")]
    BadProof,
}

/// A stored verifier: what the gateway keeps instead of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl Verifier {
    pub fn parse(s: &str) -> Result<Verifier, ScramError> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ScramError::BadVerifier)?;
        let (params, keys) = rest.split_once('$').ok_or(ScramError::BadVerifier)?;
        let (iter, salt) = params.split_once(':').ok_or(ScramError::BadVerifier)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramError::BadVerifier)?;
        let key = |k: &str| -> Result<[u8; 32], ScramError> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(ScramError::BadVerifier)
        };
        Ok(Verifier {
            iterations: iter.parse().map_err(|_| ScramError::BadVerifier)?,
            salt: B64.decode(salt).map_err(|_| ScramError::BadVerifier)?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// A verifier for a password, in PostgreSQL's format (what `airlock passwd` prints).
    pub fn for_password(password: &str) -> String {
        postgres_protocol::password::scram_sha_256(password.as_bytes())
    }

    /// A verifier no proof can match, used for unknown users so that the exchange looks the
    /// same whether or not the user exists: the iteration count a real verifier has
    /// ([`Verifier::for_password`]), and a salt that is the same at every attempt for the same
    /// name (a random one each time would tell an unknown name from a known one in two tries),
    /// derived from `mock_key`, a secret of the running gateway.
    fn decoy(user: &str, mock_key: &[u8]) -> Verifier {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(mock_key)
            .expect("HMAC takes keys of any length");
        mac.update(b"airlock-scram-mock-salt\0");
        mac.update(user.as_bytes());
        let salt = mac.finalize().into_bytes()[..16].to_vec();
        let mut keys = [0u8; 64];
        rand::thread_rng().fill_bytes(&mut keys);
        Verifier {
            iterations: 4096,
            salt,
            stored_key: keys[..32].try_into().unwrap_or([0; 32]),
            server_key: keys[32..].try_into().unwrap_or([0; 32]),
        }
    }
}

/// One server-side SCRAM exchange.
pub struct ScramServer {
    verifier: Verifier,
    /// Hash of the gateway's TLS certificate when the session is encrypted.
    cert_hash: Option<Vec<u8>>,
    state: State,
}

enum State {
    Initial,
    SentFirst {
        client_first_bare: String,
        server_first: String,
        nonce: String,
        gs2_header: String,
    },
    Done,
}

impl ScramServer {
    /// `verifier` is None for an unknown user: the exchange proceeds with a decoy derived from
    /// `user` and `mock_key` (see [`Verifier::decoy`]) and fails at the proof.
    pub fn new(
        verifier: Option<Verifier>,
        user: &str,
        mock_key: &[u8],
        cert_hash: Option<Vec<u8>>,
    ) -> ScramServer {
        ScramServer {
            verifier: verifier.unwrap_or_else(|| Verifier::decoy(user, mock_key)),
            cert_hash,
            state: State::Initial,
        }
    }

    /// Mechanisms to advertise: PLUS first when channel binding is possible.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        match self.cert_hash {
            Some(_) => vec![SCRAM_SHA_256_PLUS, SCRAM_SHA_256],
            None => vec![SCRAM_SHA_256],
        }
    }

    /// Handles SASLInitialResponse; returns server-first-message.
    pub fn client_first(&mut self, mechanism: &str, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        let plus = match mechanism {
            SCRAM_SHA_256 => false,
            SCRAM_SHA_256_PLUS if self.cert_hash.is_some() => true,
            other => return Err(ScramError::Mechanism(other.to_string())),
        };
        let msg = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("utf-8"))?;
        let (flag, rest) = msg
            .split_once(',')
            .ok_or(ScramError::Malformed("gs2 header"))?;
        let (_authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("gs2 header"))?;
        match (flag, plus) {
            ("n", false) => {}
            // The client could bind but thinks we can't: with TLS on, that is a downgrade.
            ("y", false) if self.cert_hash.is_none() => {}
            (f, true) if f == format!("p={CHANNEL_BINDING_TYPE}") => {}
            _ => return Err(ScramError::ChannelBinding),
        }
        let gs2_header = msg[..msg.len() - bare.len()].to_string();
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("nonce"))?;
        if client_nonce.is_empty() || bare.starts_with("m=") {
            return Err(ScramError::Malformed("nonce"));
        }
        let mut server_nonce = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = State::SentFirst {
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            gs2_header,
        };
        Ok(server_first.into_bytes())
    }

    /// Handles the final SASLResponse; returns server-final-message on success.
    pub fn client_final(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        let State::SentFirst {
            client_first_bare,
            server_first,
            nonce,
            gs2_header,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramError::Malformed("unexpected message"));
        };
        let msg = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("utf-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("proof"))?;
        let mut binding = None;
        let mut got_nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                binding = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                got_nonce = Some(r);
            }
        }
        let binding = B64
            .decode(binding.ok_or(ScramError::Malformed("channel binding"))?)
            .map_err(|_| ScramError::Malformed("channel binding"))?;
        let mut expected = gs2_header.clone().into_bytes();
        if gs2_header.starts_with("p=") {
            expected.extend_from_slice(self.cert_hash.as_deref().unwrap_or_default());
        }
        if binding != expected {
            return Err(ScramError::ChannelBinding);
        }
        if got_nonce != Some(nonce.as_str()) {
            return Err(ScramError::Malformed("nonce"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("proof"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if !constant_time_eq(&stored, &self.verifier.stored_key) {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `tls-server-end-point` channel binding data: SHA-256 of the certificate's DER (RFC 5929
/// says to use the certificate's signature hash, upgraded to SHA-256 for MD5/SHA-1, which is
/// what PostgreSQL does for the usual SHA-256-signed certificates).
pub fn cert_end_point_hash(cert_der: &[u8]) -> Vec<u8> {
    Sha256::digest(cert_der).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(
        password: &str,
        verifier: &str,
        server_cert: Option<Vec<u8>>,
        client_binding: ChannelBinding,
        mechanism: &str,
    ) -> Result<(), ScramError> {
        let mut server = ScramServer::new(Some(Verifier::parse(verifier)?), "u", b"k", server_cert);
        let mut client = ScramSha256::new(password.as_bytes(), client_binding);
        let first = server.client_first(mechanism, client.message())?;
        client.update(&first).map_err(|_| ScramError::BadProof)?;
        let last = server.client_final(client.message())?;
        client.finish(&last).map_err(|_| ScramError::BadProof)
    }

    #[test]
    fn accepts_right_password_and_refuses_wrong_one() {
        let v = Verifier::for_password("s3cret");
        assert_eq!(
            run(
                "s3cret",
                &v,
                None,
                ChannelBinding::unsupported(),
                SCRAM_SHA_256
            ),
            Ok(())
        );
        assert_eq!(
            run(
                "nope",
                &v,
                None,
                ChannelBinding::unsupported(),
                SCRAM_SHA_256
            ),
            Err(ScramError::BadProof)
        );
    }

    #[test]
    fn plus_binds_to_the_certificate() {
        let v = Verifier::for_password("pw");
        let hash = cert_end_point_hash(b"certificate");
        assert_eq!(
            run(
                "pw",
                &v,
                Some(hash.clone()),
                ChannelBinding::tls_server_end_point(hash.clone()),
                SCRAM_SHA_256_PLUS
            ),
            Ok(())
        );
        let other = cert_end_point_hash(b"mitm certificate");
        assert_eq!(
            run(
                "pw",
                &v,
                Some(hash),
                ChannelBinding::tls_server_end_point(other),
                SCRAM_SHA_256_PLUS
            ),
            Err(ScramError::ChannelBinding)
        );
    }

    #[test]
    fn downgrade_from_plus_is_refused() {
        let v = Verifier::for_password("pw");
        let hash = cert_end_point_hash(b"c");
        // "y": client supports binding but believes the server does not.
        assert_eq!(
            run(
                "pw",
                &v,
                Some(hash),
                ChannelBinding::unrequested(),
                SCRAM_SHA_256
            ),
            Err(ScramError::ChannelBinding)
        );
    }

    #[test]
    fn unknown_user_fails_like_a_wrong_password() {
        let mut server = ScramServer::new(None, "nobody", b"k", None);
        let mut client = ScramSha256::new(b"x", ChannelBinding::unsupported());
        let first = server
            .client_first(SCRAM_SHA_256, client.message())
            .unwrap();
        client.update(&first).unwrap();
        assert_eq!(
            server.client_final(client.message()),
            Err(ScramError::BadProof)
        );
    }

    /// What the server's first message says of an unknown user's salt and iteration count
    /// must not tell it from a known user's: the same at every attempt, per name.
    #[test]
    fn an_unknown_users_salt_is_the_same_at_every_attempt() {
        let salt_of = |user: &str, key: &[u8]| {
            let mut server = ScramServer::new(None, user, key, None);
            let client = ScramSha256::new(b"x", ChannelBinding::unsupported());
            let first = server
                .client_first(SCRAM_SHA_256, client.message())
                .unwrap();
            let first = String::from_utf8(first).unwrap();
            let fields: Vec<&str> = first.split(',').collect();
            assert_eq!(fields[2], "i=4096", "{first}");
            fields[1].to_string()
        };
        assert_eq!(salt_of("nobody", b"k1"), salt_of("nobody", b"k1"));
        assert_ne!(salt_of("nobody", b"k1"), salt_of("somebody", b"k1"));
        assert_ne!(salt_of("nobody", b"k1"), salt_of("nobody", b"k2"));
        // A known user's verifier uses the same iteration count.
        let known = Verifier::parse(&Verifier::for_password("pw")).unwrap();
        assert_eq!(known.iterations, 4096);
    }

    #[test]
    fn verifier_parsing() {
        assert!(Verifier::parse(&Verifier::for_password("a")).is_ok());
        assert_eq!(Verifier::parse("md5abc"), Err(ScramError::BadVerifier));
        assert_eq!(
            Verifier::parse("SCRAM-SHA-256$x:AAAA$AAAA:AAAA"),
            Err(ScramError::BadVerifier)
        );
    }
}

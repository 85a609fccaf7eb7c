//! SCRAM-SHA-256 at the gateway (stub).

#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")]
    BadVerifier,
}

/// A PostgreSQL-style SCRAM verifier.
#[derive(Debug, Clone)]
pub struct Verifier;

impl Verifier {
    pub fn parse(_s: &str) -> Result<Verifier, ScramError> {
        Ok(Verifier)
    }
}

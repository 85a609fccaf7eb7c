//! The upstream PostgreSQL: connect, authenticate with the gateway's credentials, relay.

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid upstream URL: {0}")]
    Url(String),
}

/// Where the upstream is (stub).
#[derive(Debug, Clone)]
pub struct UpstreamTarget;

impl UpstreamTarget {
    pub fn parse(_url: &str) -> Result<UpstreamTarget, UpstreamError> {
        Ok(UpstreamTarget)
    }
}

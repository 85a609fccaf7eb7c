//! See the crate docs for where this sits in the flow.

pub mod audit_api;

use serde::{Deserialize, Serialize};

/// `[admin]` section: the HTTP listener for the approvals API, page, audit API and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `host:port`; empty disables the admin listener.
    pub listen: String,
    /// Base URL people use to reach the admin listener (links in notices and cards).
    pub public_url: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:6480".into(),
            public_url: "http://127.0.0.1:6480".into(),
        }
    }
}

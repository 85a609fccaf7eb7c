//! See the crate docs for where this sits in the flow.

use serde::{Deserialize, Serialize};

/// `[approval]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// How long a held statement waits for a verdict unless its rule says otherwise.
    pub hold_timeout_secs: u64,
    /// How long a grant left by a late approval stays usable.
    pub grant_ttl_secs: u64,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            hold_timeout_secs: 300,
            grant_ttl_secs: 900,
        }
    }
}

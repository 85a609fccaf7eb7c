//! Policy: TOML files → precompiled rules → a [`Decision`] for each query string.

mod decision;

pub use decision::*;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[policy]` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// A policy file or a directory of `*.toml` policy files (merged in name order).
    pub path: PathBuf,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            path: PathBuf::from("policies/default.toml"),
        }
    }
}

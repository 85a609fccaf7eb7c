//! Policy: TOML files → precompiled rules → a [`Decision`] for each query string.
//!
//! ```text
//! policies/*.toml ──load──► Policy (immutable; PolicyStore swaps it on reload)
//!                               │
//! Classified (sql) ──evaluate───┴──► Decision { allow | mask (+ rewritten SQL) | hold | deny,
//!                                               rule id + file:line, reason, approvers… }
//! ```
//!
//! The file format is documented in `docs/policy.md`; `policies/default.toml` is the shipped
//! policy. Evaluation is a scan over a handful of compiled rules (globs compiled at load), so
//! it costs little next to parsing; only a `mask` decision parses the SQL again.

mod compile;
mod decision;
mod evaluate;
mod file;
pub mod mask;
mod model;
mod pattern;
mod store;

pub mod cli;

#[cfg(test)]
mod tests;

pub use decision::*;
pub use model::{
    Agent, Approver, Group, MaskMethod, ParamRedaction, Policy, RuleInfo, REDACTED_PARAM,
};
pub use store::PolicyStore;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Why a policy could not be loaded. Every variant names the file, and the line when there
/// is one, so `airlock policy check` output can be followed in an editor.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `location` is `file:line` (or just `file` when no line applies).
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

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

//! The write-ahead, hash-chained audit store (sled behind a trait, one writer task).

mod record;

pub use record::*;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// When a decision record must be on disk relative to forwarding the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Flushed (group commit) before the statement is forwarded.
    Strict,
    /// Appended before forwarding, flushed every `flush_interval_ms`.
    #[default]
    Batched,
}

/// `[audit]` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory of the sled store.
    pub path: PathBuf,
    pub durability: Durability,
    /// Flush period in `batched` mode.
    pub flush_interval_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("airlock-audit"),
            durability: Durability::Batched,
            flush_interval_ms: 10,
        }
    }
}

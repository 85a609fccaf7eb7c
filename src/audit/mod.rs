//! The write-ahead, hash-chained audit store (sled behind a trait, one writer task).
//!
//! ```text
//! sessions ──AuditHandle──► queue (seq, time, id fixed under one lock: queue order = chain order)
//!   (clone per session)        │ batched: the caller goes on at once
//!                              ▼ strict: the caller waits for the group's flush
//!                    writer thread, every 10 ms or when someone waits: take the queue → seal
//!                    (prev_hash → hash) → store.append(one group; a crash keeps a prefix) → flush when needed
//!                    or every flush_interval_ms
//! ```
//!
//! * [`record`]: what callers hand over (decision, outcome, approval, session and gateway events).
//! * [`chain`]: the stored record, its canonical encoding and hash.
//! * [`store`]: the storage trait; [`sled_store`]: the sled 0.34 implementation.
//! * [`writer`]: the single writer with group commit, and the [`AuditHandle`] sessions use.
//! * [`verify()`]: walks the chain and reports the first broken or missing link.
//! * [`view`]: a statement's whole story (decision + approvals + outcome) for readers.

pub mod chain;
mod clock;
mod record;
pub mod redact;
pub mod sled_store;
pub mod store;
#[cfg(test)]
pub(crate) mod tests;
mod verify;
pub mod view;
mod writer;

pub use chain::{Entry, Record, RecordHeader, RecordKind};
pub use clock::{format_time, parse_time};
pub use record::*;
pub use sled_store::SledStore;
pub use store::{AuditStore, Head, RawRecord, SealedRecord};
pub use verify::{verify, Break, BreakKind, VerifyReport};
pub use view::{ApprovalStep, ChainPlace, ErrorView, OutcomeView, ShowView, StatementView};
pub use writer::{AuditHandle, AuditWriter};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// When a decision record must be on disk relative to forwarding the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Flushed (group commit) before the statement is forwarded.
    Strict,
    /// Queued in chain order before forwarding, appended within a millisecond, flushed every
    /// `flush_interval_ms`.
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
    /// Memory sled may keep for cached pages of the store, in MiB (sled's own estimate; the
    /// process holds about 1.5-2x that). Without a bound, sled keeps up to 1 GiB: a busy
    /// gateway's memory grew with every record written (~25 MB/s at 17k statements/s).
    pub cache_mb: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("airlock-audit"),
            durability: Durability::Batched,
            flush_interval_ms: 10,
            cache_mb: 64,
        }
    }
}

/// Everything that can go wrong in the audit. Callers on the statement path must treat any
/// error as "not audited" and not forward the statement (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store at {path} is in use by another process (a running gateway?)")]
    Locked { path: PathBuf },
    #[error("no audit store at {path}")]
    Missing { path: PathBuf },
    #[error("audit store: {0}")]
    Store(String),
    #[error("audit store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit record encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("audit record {seq} is unreadable: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("the audit writer has stopped")]
    Closed,
}

impl From<sled::Error> for AuditError {
    fn from(e: sled::Error) -> Self {
        AuditError::Store(e.to_string())
    }
}

/// Entry point: opens the configured store and starts its writer.
pub struct Audit;

impl Audit {
    /// Opens (or creates) the sled store at `cfg.path`, continues its hash chain, and starts the
    /// writer on its own thread, so disk waits never block the gateway's runtime.
    ///
    /// Returns the handle sessions clone and the writer, which the caller awaits
    /// ([`AuditWriter::wait`]) after [`AuditHandle::shutdown`] to know everything is flushed.
    /// Must be called inside a tokio runtime.
    pub async fn open(cfg: &AuditConfig) -> Result<(AuditHandle, AuditWriter), AuditError> {
        let path = cfg.path.clone();
        let cache_bytes = cfg.cache_mb.saturating_mul(1 << 20);
        let store =
            tokio::task::spawn_blocking(move || SledStore::open_with_cache(&path, cache_bytes))
                .await
                .map_err(|e| AuditError::Store(format!("opening the store panicked: {e}")))??;
        Self::open_with_store(Arc::new(store), cfg).await
    }

    /// Like [`Audit::open`] over any [`AuditStore`] (another backend, or a test double).
    /// Only `durability` and `flush_interval_ms` of `cfg` are used.
    pub async fn open_with_store(
        store: Arc<dyn AuditStore>,
        cfg: &AuditConfig,
    ) -> Result<(AuditHandle, AuditWriter), AuditError> {
        writer::start(store, cfg.durability, cfg.flush_interval_ms).await
    }
}

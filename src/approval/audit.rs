//! How the registry writes its trail into the audit. The registry only knows the
//! [`ApprovalAudit`] trait; the gateway passes its [`AuditHandle`], which implements it.
//!
//! Entries are the audit's own [`ApprovalEntry`]. Refusals are all `refused`, with the reason
//! code first in the rationale (`self_approval: attempted approve: …`), so the inspector can
//! group them and a reader sees why.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::audit::{format_time, AuditHandle};
pub use crate::audit::{ApprovalAction, ApprovalEntry};

#[derive(Debug, thiserror::Error)]
#[error("audit append failed: {0}")]
pub struct ApprovalAuditError(pub String);

/// The audit sink. `append` resolves once the entry is durable (flushed): the registry
/// awaits it before releasing a waiting client, so a verdict is never acted on unrecorded.
pub trait ApprovalAudit: Send + Sync {
    fn append(&self, entry: ApprovalEntry) -> BoxFuture<'_, Result<(), ApprovalAuditError>>;
}

/// The gateway's audit writer: approval steps are always flushed before `approval` returns.
impl ApprovalAudit for AuditHandle {
    fn append(&self, entry: ApprovalEntry) -> BoxFuture<'_, Result<(), ApprovalAuditError>> {
        Box::pin(async move {
            self.approval(entry)
                .await
                .map_err(|e| ApprovalAuditError(e.to_string()))
        })
    }
}

/// The audit's time format for an approval step.
pub(crate) fn audit_time(t: SystemTime) -> String {
    let micros = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros().min(i64::MAX as u128) as i64)
        .unwrap_or(0);
    format_time(micros)
}

/// An in-memory sink for tests and for running without an audit store in development.
/// Can be switched to fail, to test fail-closed paths.
#[derive(Debug, Default, Clone)]
pub struct MemoryAudit {
    inner: Arc<Mutex<MemoryAuditInner>>,
}

#[derive(Debug, Default)]
struct MemoryAuditInner {
    entries: Vec<ApprovalEntry>,
    failing: bool,
}

impl MemoryAudit {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entries(&self) -> Vec<ApprovalEntry> {
        self.inner.lock().entries.clone()
    }

    /// Actions recorded for one request, in order.
    pub fn actions_for(&self, request_id: &str) -> Vec<ApprovalAction> {
        self.inner
            .lock()
            .entries
            .iter()
            .filter(|e| e.request_id == request_id)
            .map(|e| e.action)
            .collect()
    }

    /// Reason codes of the refused attempts on one request, in order.
    pub fn refusals_for(&self, request_id: &str) -> Vec<String> {
        self.inner
            .lock()
            .entries
            .iter()
            .filter(|e| e.request_id == request_id && e.action == ApprovalAction::Refused)
            .map(|e| {
                let r = e.rationale.as_deref().unwrap_or_default();
                r.split(':').next().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// While set, every append fails.
    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().failing = failing;
    }
}

impl ApprovalAudit for MemoryAudit {
    fn append(&self, entry: ApprovalEntry) -> BoxFuture<'_, Result<(), ApprovalAuditError>> {
        let mut inner = self.inner.lock();
        let result = if inner.failing {
            Err(ApprovalAuditError("memory audit set to fail".into()))
        } else {
            inner.entries.push(entry);
            Ok(())
        };
        Box::pin(async move { result })
    }
}

//! How the registry writes its trail into the audit. The registry only knows this trait; the
//! gateway wires it to the audit store's writer.

use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::types::Channel;

/// What happened to a request. Every verdict, every refused attempt and every state change
/// without a verdict (withdraw, expiry, restart) is one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalAction {
    /// The statement was held and announced.
    Held,
    /// A new session re-ran the same batch and now waits on this still-open request.
    Reattached,
    /// An approval that did not yet reach quorum.
    Approved,
    /// The approval that reached quorum: the request is approved.
    ApprovedFinal,
    Denied,
    RefusedSelfApproval,
    RefusedNotApprover,
    RefusedAlreadyDecided,
    RefusedAlreadyVoted,
    RefusedRationaleRequired,
    RefusedExpired,
    Withdrawn,
    /// The hold timeout released the waiting client; the request stays approvable.
    HoldExpired,
    /// The approvable window closed without a verdict.
    Expired,
    /// Pending when the gateway stopped or crashed.
    Abandoned,
    /// A late approval left a grant for the same batch.
    GrantIssued,
    /// The grant was used by a re-run of the same batch.
    GrantUsed,
    GrantExpired,
    /// Unused grant discarded at restart or shutdown (grants are not persisted).
    GrantDropped,
}

impl ApprovalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalAction::Held => "held",
            ApprovalAction::Reattached => "reattached",
            ApprovalAction::Approved => "approved",
            ApprovalAction::ApprovedFinal => "approved-final",
            ApprovalAction::Denied => "denied",
            ApprovalAction::RefusedSelfApproval => "refused-self-approval",
            ApprovalAction::RefusedNotApprover => "refused-not-approver",
            ApprovalAction::RefusedAlreadyDecided => "refused-already-decided",
            ApprovalAction::RefusedAlreadyVoted => "refused-already-voted",
            ApprovalAction::RefusedRationaleRequired => "refused-rationale-required",
            ApprovalAction::RefusedExpired => "refused-expired",
            ApprovalAction::Withdrawn => "withdrawn",
            ApprovalAction::HoldExpired => "hold-expired",
            ApprovalAction::Expired => "expired",
            ApprovalAction::Abandoned => "abandoned",
            ApprovalAction::GrantIssued => "grant-issued",
            ApprovalAction::GrantUsed => "grant-used",
            ApprovalAction::GrantExpired => "grant-expired",
            ApprovalAction::GrantDropped => "grant-dropped",
        }
    }
}

/// One line of a request's trail. Shaped like the audit's approval record so the mapping is
/// field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    pub request_id: String,
    /// The decision record of the held statement (or, for `reattached`/`grant-used`, of the
    /// re-run that waits on or uses the request).
    pub decision_id: String,
    /// Who acted: an approver, the requester, or `airlock` for the gateway itself.
    pub actor: String,
    pub channel: Channel,
    pub action: ApprovalAction,
    /// The approver's rationale, or the gateway's explanation for its own actions.
    pub rationale: Option<String>,
    pub at: SystemTime,
}

#[derive(Debug, thiserror::Error)]
#[error("audit append failed: {0}")]
pub struct ApprovalAuditError(pub String);

/// The audit sink. `append` resolves once the entry is durable (flushed): the registry
/// awaits it before releasing a waiting client, so a verdict is never acted on unrecorded.
pub trait ApprovalAudit: Send + Sync {
    fn append(&self, entry: ApprovalEntry) -> BoxFuture<'_, Result<(), ApprovalAuditError>>;
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

//! Held statements and the humans who decide them.
//!
//! ```text
//! session ── take_grant(binding)? ──► run it (late approval left a single-use grant)
//!    │ no grant
//!    ▼
//! Registry::submit(HoldRequest) ──► audit "held" ──► notifiers (Teams…) ──► NOTICE to the client
//!    │                                   ▲
//!    ▼                                   │ approve / deny (API, page, CLI, Teams bot)
//! Waiter::wait ◄── outcome ◄── verdict (audited, flushed) ── quorum of distinct approvers
//!    │ Approved → run the buffered batch │ Denied → 42501 │ Expired → error, request stays
//!    │                                   approvable; a late approval leaves a grant
//!    └ cancel / disconnect → Waiter::withdraw
//! ```
//!
//! Separation of duties is enforced here, whatever the channel: the requester (and its
//! aliases) can never approve, only listed approvers count, quorum counts distinct people,
//! deny needs a rationale, and the first final verdict wins.

mod audit;
pub mod cli;
mod entry;
mod journal;
mod lifecycle;
mod link;
mod notice;
mod notifier;
mod registry;
pub mod teams;
mod types;
mod waiter;

#[cfg(test)]
mod tests;

pub use audit::{ApprovalAction, ApprovalAudit, ApprovalAuditError, ApprovalEntry, MemoryAudit};
pub use link::{page_url, sign_link, signed_url, verify_link, LinkError, LinkSecret};
pub use notice::{approved_notice, denied_error, expired_error, held_notice, NoticeText};
pub use notifier::Notifier;
pub use registry::{ListFilter, Registry};
pub use types::{
    Binding, BindingBuilder, Channel, Delivery, FactsSummary, Grant, GrantView, HoldRequest,
    Outcome, RequestId, RequestState, RequestView, Verdict, VerdictResult, WithdrawReason,
    WithdrawResult,
};
pub use waiter::{Waiter, WithdrawHandle};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What happens to unused grants when the gateway restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantsOnRestart {
    /// Unused grants are recorded as dropped; the agent's re-run is held again as a new
    /// request. The only mode for now: keeping grants would mean persisting them.
    #[default]
    Drop,
}

/// `[approval]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// How long a held statement waits for a verdict unless its rule says otherwise.
    pub hold_timeout_secs: u64,
    /// How long a grant left by a late approval stays usable; also how long a request stays
    /// approvable after its hold timed out.
    pub grant_ttl_secs: u64,
    /// Require a rationale for approvals too (deny always requires one).
    pub approve_rationale_required: bool,
    /// Unused grants at restart (only `drop` for now).
    pub grants_on_restart: GrantsOnRestart,
    /// Directory of the small journal of open requests, so a crash still leaves them
    /// recorded as abandoned at the next start. Unset: `<[audit] path>.approvals`, beside the
    /// audit store (the gateway fills it in; see [`ApprovalConfig::with_state_dir_beside`]).
    /// Unset at the registry, or empty, disables it (a graceful shutdown still records them).
    pub state_dir: Option<PathBuf>,
    /// Closed requests kept in memory for listings.
    pub history_limit: usize,
}

impl ApprovalConfig {
    /// Fills in the default journal directory: beside the audit store, whose path is already
    /// one per gateway (sled locks it), so two gateways never share a journal by default.
    pub fn with_state_dir_beside(mut self, audit_path: &std::path::Path) -> Self {
        if self.state_dir.is_none() {
            let mut dir = audit_path.as_os_str().to_owned();
            dir.push(".approvals");
            self.state_dir = Some(PathBuf::from(dir));
        }
        self
    }
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            hold_timeout_secs: 300,
            grant_ttl_secs: 900,
            approve_rationale_required: false,
            grants_on_restart: GrantsOnRestart::Drop,
            state_dir: None,
            history_limit: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The audit could not record the event; fail closed (nothing held runs).
    #[error(transparent)]
    Audit(#[from] ApprovalAuditError),
    #[error("approval journal {path}: {message}")]
    Journal { path: PathBuf, message: String },
    /// A session bug: the binding was computed for another requester or database.
    #[error("hold request binding does not match its session's user and database")]
    BindingMismatch,
}

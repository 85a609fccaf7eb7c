//! One request inside the registry: its lifecycle state and how it is shown.

use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::audit::{audit_time, ApprovalAction, ApprovalEntry};
use super::types::{
    ceil_secs, rfc3339, Channel, GrantView, HoldRequest, Outcome, RequestId, RequestState,
    RequestView, Verdict,
};

/// The actor name the gateway uses for its own actions in the audit.
pub(crate) const GATEWAY_ACTOR: &str = "airlock";

/// A clock reading taken once per operation, so every deadline in one operation is judged
/// against the same instant, and wall-clock times can be derived from monotonic deadlines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn read() -> Self {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Wall-clock time of a monotonic instant.
    pub fn wall_of(&self, t: Instant) -> SystemTime {
        if t >= self.mono {
            self.wall + (t - self.mono)
        } else {
            self.wall - (self.mono - t)
        }
    }

    pub fn remaining(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.mono)
    }
}

/// The session currently waiting on a request.
pub(crate) struct Attachment {
    pub tx: oneshot::Sender<Outcome>,
    /// Distinguishes successive waiters of one request (a re-run can reattach), so a stale
    /// waiter can never withdraw or expire a newer one.
    pub seq: u64,
    pub since: Instant,
    pub decision_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantState {
    Unused,
    Used,
    Expired,
    Dropped,
}

impl GrantState {
    fn as_str(self) -> &'static str {
        match self {
            GrantState::Unused => "unused",
            GrantState::Used => "used",
            GrantState::Expired => "expired",
            GrantState::Dropped => "dropped",
        }
    }
}

pub(crate) struct GrantSlot {
    pub expires: Instant,
    pub state: GrantState,
}

pub(crate) struct Entry {
    pub id: RequestId,
    pub req: HoldRequest,
    pub quorum: u32,
    pub created: Instant,
    pub hold_deadline: Instant,
    pub approvable_until: Instant,
    pub waiter: Option<Attachment>,
    pub next_seq: u64,
    pub approvals: Vec<Verdict>,
    pub denial: Option<Verdict>,
    pub state: RequestState,
    pub closed_reason: Option<String>,
    pub grant: Option<GrantSlot>,
}

impl Entry {
    /// True once nothing more can happen to it: it may leave the history.
    pub fn is_done(&self) -> bool {
        self.state.is_final()
            && !matches!(
                self.grant,
                Some(GrantSlot {
                    state: GrantState::Unused,
                    ..
                })
            )
    }

    pub fn has_unused_grant(&self) -> bool {
        matches!(
            self.grant,
            Some(GrantSlot {
                state: GrantState::Unused,
                ..
            })
        )
    }

    /// Identity comparison for separation of duties. Case-insensitive on purpose: refusing
    /// `Alice` approving `alice`'s request errs on the safe side.
    pub fn is_requester(&self, identity: &str) -> bool {
        let id = identity.to_lowercase();
        self.req.session.user.to_lowercase() == id
            || self
                .req
                .requester_aliases
                .iter()
                .any(|a| a.to_lowercase() == id)
    }

    pub fn is_approver(&self, identity: &str) -> bool {
        self.req.decision.approvers.iter().any(|a| a == identity)
    }

    /// An audit entry for this request.
    pub fn audit(
        &self,
        action: ApprovalAction,
        actor: &str,
        channel: Channel,
        rationale: Option<String>,
        at: SystemTime,
    ) -> ApprovalEntry {
        ApprovalEntry {
            request_id: self.id.to_string(),
            decision_id: self.req.decision_id.clone(),
            actor: actor.to_owned(),
            channel: channel.as_str().to_owned(),
            action,
            rationale,
            at: audit_time(at),
        }
    }

    /// Releases the waiting session (if any) with `outcome`. Returns how long it waited, or
    /// `None` when nobody received the outcome (no waiter, or the session dropped it).
    pub fn release(&mut self, outcome: Outcome, now: Instant) -> Option<Duration> {
        let att = self.waiter.take()?;
        att.tx.send(outcome).ok()?;
        Some(now.saturating_duration_since(att.since))
    }

    pub fn view(&self, now: &Now) -> RequestView {
        let pending = self.state == RequestState::Pending;
        RequestView {
            id: self.id.clone(),
            decision_id: self.req.decision_id.clone(),
            state: self.state,
            client_waiting: self.waiter.is_some(),
            requester: self.req.session.user.clone(),
            session_id: self.req.session.session_id.clone(),
            application_name: self.req.session.application_name.clone(),
            database: self.req.session.database.clone(),
            client_addr: self.req.session.client_addr.clone(),
            sql: self.req.sql.clone(),
            params: self.req.params.clone(),
            param_types: self.req.param_types.clone(),
            facts: self.req.facts.clone(),
            rule_id: self.req.decision.rule_id.clone(),
            rule_source: self.req.decision.rule_source.clone(),
            reason: self.req.decision.reason.clone(),
            quorum: self.quorum,
            approvers: self.req.decision.approvers.clone(),
            approvals: self.approvals.clone(),
            denial: self.denial.clone(),
            closed_reason: self.closed_reason.clone(),
            created_at: rfc3339(now.wall_of(self.created)),
            hold_expires_at: rfc3339(now.wall_of(self.hold_deadline)),
            approvable_until: rfc3339(now.wall_of(self.approvable_until)),
            hold_remaining_secs: if self.waiter.is_some() {
                ceil_secs(now.remaining(self.hold_deadline))
            } else {
                0
            },
            approvable_remaining_secs: if pending {
                ceil_secs(now.remaining(self.approvable_until))
            } else {
                0
            },
            grant: self.grant.as_ref().map(|g| GrantView {
                state: g.state.as_str().to_owned(),
                expires_at: rfc3339(now.wall_of(g.expires)),
            }),
        }
    }
}

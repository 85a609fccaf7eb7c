//! The contract between the bot endpoint and the approval registry.

use async_trait::async_trait;

use crate::notify::card::CardOutcome;

/// Channel name recorded with verdicts that come from the Teams bot.
pub const CHANNEL_TEAMS_BOT: &str = "teams-bot";

/// A click on Approve or Deny by a known approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictAttempt {
    pub request_id: String,
    /// Approver name as the policy knows it (from [`ApproverDirectory`]).
    pub approver: String,
    pub approve: bool,
    /// Trimmed; `None` when empty.
    pub rationale: Option<String>,
    /// Always [`CHANNEL_TEAMS_BOT`] from this module.
    pub channel: &'static str,
    /// Entra object id of the person who clicked, for the audit.
    pub aad_object_id: String,
}

/// A click that was refused before reaching the registry's rules, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAttempt {
    pub request_id: String,
    pub aad_object_id: String,
    /// Display name Teams sent; informative only, never trusted.
    pub display_name: Option<String>,
    pub approve: bool,
    pub channel: &'static str,
    pub reason: RefusalReason,
}

/// Why the bot endpoint refused a click on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The Entra object id maps to no approver of the policy.
    NotAnApprover,
    /// The rationale is longer than the card allows.
    RationaleTooLong,
    /// An approval of a request whose card cannot show its statement and parameters whole.
    NotShownWhole,
}

/// What the registry made of a verdict attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictResult {
    /// Recorded, and it settled the request (a denial, or the approval that met the quorum).
    Decided(CardOutcome),
    /// Approval recorded; the rule needs `remaining` more distinct approvers.
    Recorded { remaining: u32 },
    /// This approver already approved; the quorum counts distinct people.
    AlreadyVoted,
    /// Someone (or the clock, or the client) settled it first.
    AlreadyDecided(CardOutcome),
    /// The approver is the requester.
    SelfApproval,
    /// The approver is not allowed to decide this request (not in the rule's approvers).
    NotAnApprover,
    /// A rationale is required for this verdict (always for deny; for approve per config).
    RationaleRequired,
    /// The request expired before the click.
    Expired,
    /// No such request.
    UnknownRequest,
    /// The registry could not record the verdict (e.g. the audit is unavailable); nothing was
    /// decided.
    Unavailable(String),
}

/// Implemented by the approval registry: applies a verdict with the same rules as every other
/// channel (separation of duties, quorum, rationale, first final verdict wins) and audits it.
#[async_trait]
pub trait VerdictSink: Send + Sync + 'static {
    async fn verdict(&self, attempt: VerdictAttempt) -> VerdictResult;
    /// Records a refused click in the audit.
    async fn refused(&self, attempt: RefusedAttempt);
}

/// Maps an Entra object id (`from.aadObjectId`) to a policy approver name. Display names and
/// Teams user ids are never used: only the object id is stable and tenant-bound.
pub trait ApproverDirectory: Send + Sync + 'static {
    fn approver_for_aad(&self, aad_object_id: &str) -> Option<String>;
}

impl<F> ApproverDirectory for F
where
    F: Fn(&str) -> Option<String> + Send + Sync + 'static,
{
    fn approver_for_aad(&self, aad_object_id: &str) -> Option<String> {
        self(aad_object_id)
    }
}

//! What the session hands to the audit. The writer adds id, time, sequence and hash chain.

use std::ops::Deref;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::policy::Decision;
use crate::sql::Facts;

/// Where a session comes from and who it is: shared by every record of that session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub client_addr: String,
    pub user: String,
    pub application_name: String,
    pub database: String,
}

/// Simple or extended query protocol, or a fastpath FunctionCall (refused, and audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Simple,
    Extended,
    Fastpath,
}

/// Written (and, in strict mode, flushed) before anything is forwarded upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEntry {
    pub session: SessionInfo,
    pub protocol: Protocol,
    /// Original SQL with secrets redacted.
    pub sql: String,
    /// What actually runs when a mask rewrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten_sql: Option<String>,
    /// Bound parameters as text (None = NULL), already redacted where policy says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Option<String>>,
    pub fingerprint: String,
    pub facts: Vec<Facts>,
    pub decision: Decision,
    /// What the statement did, when the outcome arrived while this record still waited for the
    /// writer (the usual case in `batched` mode): one record per statement instead of two.
    /// Otherwise the outcome is a record of its own that links here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunResult>,
}

/// The borrowed form of [`DecisionEntry`], serialized identically: the session writes a
/// decision record from what it already holds, without copying it first.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DecisionRecord<'a> {
    pub session: Part<'a, SessionInfo>,
    pub protocol: Protocol,
    pub sql: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten_sql: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub params: &'a [Option<String>],
    pub fingerprint: &'a str,
    pub facts: Part<'a, [Facts]>,
    pub decision: Part<'a, Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a RunResult>,
}

impl DecisionEntry {
    pub fn as_record(&self) -> DecisionRecord<'_> {
        DecisionRecord {
            session: Part::new(&self.session),
            protocol: self.protocol,
            sql: &self.sql,
            rewritten_sql: self.rewritten_sql.as_deref(),
            params: &self.params,
            fingerprint: &self.fingerprint,
            facts: Part::new(&self.facts),
            decision: Part::new(&self.decision),
            outcome: self.outcome.as_ref(),
        }
    }
}

/// A part of a decision record, serialized either from the value or from JSON made earlier
/// from that same value ([`Serialized`]). A session writes the same session info, facts and
/// decision for every run of a repeated statement; escaping them again each time was about a
/// quarter of the work a session did per statement.
#[derive(Debug)]
pub struct Part<'a, T: ?Sized> {
    value: &'a T,
    json: Option<&'a RawValue>,
}

impl<T: ?Sized> Clone for Part<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Part<'_, T> {}

impl<'a, T: ?Sized> Part<'a, T> {
    /// Serialized from `value` when the record is written.
    pub fn new(value: &'a T) -> Self {
        Part { value, json: None }
    }
}

impl<'a, T> Part<'a, Vec<T>> {
    /// The same part as a slice (a vector and its slice serialize alike).
    pub fn as_slice(self) -> Part<'a, [T]> {
        Part {
            value: self.value.as_slice(),
            json: self.json,
        }
    }
}

impl<T: ?Sized> Deref for Part<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
    }
}

impl<T: ?Sized + Serialize> Serialize for Part<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.json {
            Some(json) => json.serialize(s),
            None => self.value.serialize(s),
        }
    }
}

/// A value held together with its JSON, made from it once: the pair cannot disagree, since
/// neither can change afterwards.
#[derive(Debug)]
pub struct Serialized<P> {
    held: P,
    /// None when the value did not serialize: its parts are then serialized from the value,
    /// which reports why when the record is written.
    json: Option<Box<RawValue>>,
}

impl<P> Serialized<P>
where
    P: Deref,
    P::Target: Serialize,
{
    pub fn new(held: P) -> Self {
        let json = serde_json::value::to_raw_value(&*held).ok();
        Serialized { held, json }
    }

    /// The value as held (an `Arc`, a `Box`…).
    pub fn held(&self) -> &P {
        &self.held
    }

    /// The value, for a record, with its JSON.
    pub fn part(&self) -> Part<'_, P::Target> {
        Part {
            value: &*self.held,
            json: self.json.as_deref(),
        }
    }
}

/// What a decided statement did: folded into its decision record, or the body of an
/// outcome record of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Command tags in order (`SELECT 3`, `INSERT 0 1`), when it ran.
    pub tags: Vec<String>,
    /// SQLSTATE and message of the first error, when it failed.
    pub error: Option<(String, String)>,
    pub rows: u64,
    pub duration_us: u64,
}

/// The result of a statement (or batch) that was decided earlier, as a record of its own: when
/// its decision had already left for the store (always in `strict` mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEntry {
    /// Id of the decision record this completes.
    pub decision_id: String,
    /// Its fields sit beside `decision_id` in the record, as they always have.
    #[serde(flatten)]
    pub result: RunResult,
}

/// What happened in an approval trail. Appended by the approval registry; every verdict is
/// flushed before the waiting client is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalAction {
    /// A hold was registered and is waiting for verdicts.
    Requested,
    /// A notifier (Teams, webhook…) delivered the request.
    Notified,
    /// A notifier failed to deliver the request.
    NotifyFailed,
    Approve,
    Deny,
    /// The requester (or an operator) withdrew the request.
    Withdraw,
    /// No quorum before the hold timeout.
    Expire,
    /// A verdict was refused (self-approval, not an approver, already decided…).
    Refused,
    /// The waiting session went away before a verdict.
    Abandoned,
    /// A re-run of the same batch attached a new waiting session to the open request.
    Reattach,
    /// A late approval (its client had stopped waiting) left a single-use grant.
    GrantIssued,
    /// A re-run of the exact batch ran under the grant.
    GrantUsed,
    /// The grant expired unused.
    GrantExpired,
    /// The grant was discarded unused (gateway restart or shutdown).
    GrantDropped,
    /// An action written by a newer gateway that this build does not know.
    #[serde(other)]
    Other,
}

impl ApprovalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalAction::Requested => "requested",
            ApprovalAction::Notified => "notified",
            ApprovalAction::NotifyFailed => "notify_failed",
            ApprovalAction::Approve => "approve",
            ApprovalAction::Deny => "deny",
            ApprovalAction::Withdraw => "withdraw",
            ApprovalAction::Expire => "expire",
            ApprovalAction::Refused => "refused",
            ApprovalAction::Abandoned => "abandoned",
            ApprovalAction::Reattach => "reattach",
            ApprovalAction::GrantIssued => "grant_issued",
            ApprovalAction::GrantUsed => "grant_used",
            ApprovalAction::GrantExpired => "grant_expired",
            ApprovalAction::GrantDropped => "grant_dropped",
            ApprovalAction::Other => "other",
        }
    }

    /// A human verdict (as opposed to bookkeeping such as notifications).
    pub fn is_verdict(self) -> bool {
        matches!(self, ApprovalAction::Approve | ApprovalAction::Deny)
    }
}

/// One step of the approval trail of a held statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    /// The approval request (what the approver sees in the card and the notice).
    pub request_id: String,
    /// Id of the decision record that was held.
    pub decision_id: String,
    /// Who acted: an approver's identity, the requester, or `airlock` for expiry and notifiers.
    pub actor: String,
    /// Where it came from: `teams`, `web`, `cli`, `api`, `gateway`…
    pub channel: String,
    pub action: ApprovalAction,
    /// Why, in the actor's words (or the reason a verdict was refused).
    pub rationale: Option<String>,
    /// When the actor acted (RFC 3339), which can precede the record's own time.
    pub at: String,
}

/// Lifecycle of a client session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEventKind {
    Connected,
    Authenticated,
    AuthFailed,
    Disconnected,
    #[serde(other)]
    Other,
}

/// A session started, authenticated, failed to, or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub session: SessionInfo,
    pub event: SessionEventKind,
    /// Free text (the reason of an authentication failure, statements run…), no secrets.
    pub detail: String,
}

/// Something the gateway itself did: started, stopped, reloaded its policy…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEvent {
    /// `started`, `stopping`, `policy_reloaded`, `policy_rejected`, …
    pub event: String,
    pub detail: String,
}

//! The vocabulary of the approval registry: what a session submits, what an approver sends,
//! and what everybody (API, page, CLI, notifiers) gets to see of a request.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::SessionInfo;
use crate::policy::Decision;
use crate::sql::{Facts, Kind};

/// Identifier of a held request: a ULID, so ids sort by creation time and are hard to guess.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id, strictly greater than the previous one from the same generator (plain
    /// ULIDs made in the same millisecond would sort randomly).
    pub(crate) fn generate(generator: &mut ulid::Generator) -> Self {
        let ulid = generator.generate().unwrap_or_else(|_| ulid::Ulid::new());
        RequestId(ulid.to_string())
    }

    /// Wraps an id received from outside (URL, CLI). Unknown ids simply are not found.
    pub fn new(id: impl Into<String>) -> Self {
        RequestId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an approval is bound to: the exact batch (SQL text and bound parameters, hashed),
/// the database and the requester. Two bindings are equal only when all of that is equal,
/// so a grant can never run anything but what was approved.
///
/// The SQL and parameters are hashed rather than kept: the binding must be computed from the
/// *unredacted* text (two different passwords must not compare equal), and a digest keeps those
/// secrets out of the registry's memory.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    database: String,
    requester: String,
    digest: [u8; 32],
}

impl Binding {
    /// Starts a binding for `requester` on `database`; feed it the batch with
    /// [`BindingBuilder::sql`] and [`BindingBuilder::param`] in order.
    pub fn builder(database: &str, requester: &str) -> BindingBuilder {
        let mut hasher = Sha256::new();
        hasher.update(b"airlock-binding-v2");
        BindingBuilder {
            database: database.to_owned(),
            requester: requester.to_owned(),
            hasher,
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn requester(&self) -> &str {
        &self.requester
    }

    /// Hex digest of the batch (for logs and tests; it reveals nothing of the text).
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("database", &self.database)
            .field("requester", &self.requester)
            .field("digest", &&self.digest_hex()[..16])
            .finish()
    }
}

/// Accumulates the parts of a batch into a [`Binding`]. Every part is tagged and
/// length-prefixed, so `sql("ab").sql("c")` and `sql("a").sql("bc")` differ, and a NULL
/// parameter differs from an empty one.
pub struct BindingBuilder {
    database: String,
    requester: String,
    hasher: Sha256,
}

impl BindingBuilder {
    /// One statement text (simple query string, or the text of a Parse message).
    pub fn sql(mut self, text: &str) -> Self {
        self.part(b'S', Some(text.as_bytes()));
        self
    }

    /// One bound parameter exactly as sent (text or binary bytes); `None` is SQL NULL.
    pub fn param(mut self, value: Option<&[u8]>) -> Self {
        self.part(b'P', value);
        self
    }

    /// Any other part that changes what runs (a parameter format code, a portal's result
    /// formats…): the session decides what belongs in the batch identity.
    pub fn extra(mut self, tag: u8, bytes: &[u8]) -> Self {
        self.part(b'X', Some(&[tag]));
        self.part(b'x', Some(bytes));
        self
    }

    fn part(&mut self, tag: u8, bytes: Option<&[u8]>) {
        self.hasher.update([tag]);
        match bytes {
            None => self.hasher.update((-1i64).to_be_bytes()),
            Some(b) => {
                self.hasher.update((b.len() as i64).to_be_bytes());
                self.hasher.update(b);
            }
        }
    }

    pub fn build(self) -> Binding {
        Binding {
            database: self.database,
            requester: self.requester,
            digest: self.hasher.finalize().into(),
        }
    }
}

/// The facts an approver needs, condensed from the classifier's [`Facts`] of every statement
/// of the batch and the policy's decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsSummary {
    /// Statement kinds in the batch, deduplicated, in order of first appearance.
    pub kinds: Vec<Kind>,
    /// Human labels (`DROP TABLE`, `DO block`), one per statement.
    pub labels: Vec<String>,
    /// Tables read or written (`schema.name`), deduplicated.
    pub tables: Vec<String>,
    /// PII columns involved (`schema.table.column`).
    pub pii_columns: Vec<String>,
}

impl FactsSummary {
    pub fn from_facts(facts: &[Facts], decision: &Decision) -> Self {
        let mut summary = FactsSummary::default();
        for f in facts {
            if !summary.kinds.contains(&f.kind) {
                summary.kinds.push(f.kind);
            }
            summary.labels.push(f.label.clone());
            for t in f.tables_read.iter().chain(&f.tables_written) {
                let name = t.to_string();
                if !summary.tables.contains(&name) {
                    summary.tables.push(name);
                }
            }
        }
        summary.pii_columns = decision.pii_columns.clone();
        summary
    }
}

/// Everything the session hands over when its policy decision is `hold`.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// Audit id of the decision record the session wrote before holding.
    pub decision_id: String,
    /// Who asks, from where: `session.user` is the requester.
    pub session: SessionInfo,
    /// Other names the requester is known by (policy principals mapped to this database
    /// user). None of them may approve the request either.
    pub requester_aliases: Vec<String>,
    /// The batch's SQL with secrets redacted: what approvers see.
    pub sql: String,
    /// Bound parameters as display text (None = NULL), redacted where the policy says so.
    pub params: Vec<Option<String>>,
    /// The type the client declared for each parameter (aligned with `params`; None where
    /// it left the type to the server). The type picks the function overload or the cast a
    /// value goes through, so approvers see it next to the value.
    pub param_types: Vec<Option<String>>,
    /// The exact batch identity; `binding.requester()`/`database()` must match `session`.
    pub binding: Binding,
    pub facts: FactsSummary,
    /// The policy decision (rule id, reason, quorum, approvers, hold timeout).
    pub decision: Decision,
}

/// Where a verdict (or other action) came from. Informational: identity always comes from a
/// verified credential, never from the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The HTTP API called directly.
    Api,
    /// The approval web page.
    Web,
    /// `airlock approvals …`.
    Cli,
    /// A Microsoft Teams card (bot invoke).
    Teams,
    /// The requester's own connection (cancel, disconnect).
    Client,
    /// The gateway itself (expiry, restart).
    Gateway,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Web => "web",
            Channel::Cli => "cli",
            Channel::Teams => "teams",
            Channel::Client => "client",
            Channel::Gateway => "gateway",
        }
    }

    /// Channels an approver may claim in an API call (`web`, `cli`, `api`).
    pub fn parse_api(s: &str) -> Option<Channel> {
        match s {
            "api" => Some(Channel::Api),
            "web" => Some(Channel::Web),
            "cli" => Some(Channel::Cli),
            _ => None,
        }
    }
}

/// One person's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub approver: String,
    pub channel: Channel,
    pub rationale: Option<String>,
    /// RFC 3339, UTC.
    pub at: String,
}

/// What the waiting session learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Quorum reached: run the buffered batch exactly as it is.
    Approved { by: Vec<Verdict> },
    /// Denied by one approver (one deny is final): answer SQLSTATE 42501 with these.
    Denied { by: String, rationale: String },
    /// The hold timeout passed. The request stays approvable for a while; a late approval
    /// leaves a grant for the same batch.
    Expired,
    /// The request was withdrawn (the session normally knows, because it withdrew it).
    Withdrawn,
    /// The gateway is shutting down; the request is recorded as abandoned.
    Abandoned,
    /// The verdict could not be recorded in the audit, so nothing may run.
    Aborted { reason: String },
}

impl Outcome {
    pub fn is_approved(&self) -> bool {
        matches!(self, Outcome::Approved { .. })
    }

    /// Short label used in metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Approved { .. } => "approved",
            Outcome::Denied { .. } => "denied",
            Outcome::Expired => "expired",
            Outcome::Withdrawn => "withdrawn",
            Outcome::Abandoned => "abandoned",
            Outcome::Aborted { .. } => "aborted",
        }
    }
}

/// Why a session withdraws its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WithdrawReason {
    /// The client sent a CancelRequest.
    Cancel,
    /// The client connection closed.
    Disconnect,
    /// The requester withdrew it explicitly.
    Requester,
}

impl WithdrawReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawReason::Cancel => "cancel",
            WithdrawReason::Disconnect => "disconnect",
            WithdrawReason::Requester => "requester",
        }
    }
}

/// Result of [`Registry::withdraw`](super::Registry::withdraw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithdrawResult {
    Withdrawn,
    /// The request was already closed (a verdict won the race, or it expired).
    AlreadyClosed(RequestState),
    NotFound,
}

/// Lifecycle state of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for verdicts (with or without its client still attached).
    Pending,
    Approved,
    Denied,
    Withdrawn,
    /// Nobody decided before the request's approvable window closed.
    Expired,
    /// The gateway stopped (or crashed) while it was pending.
    Abandoned,
    /// A final verdict could not be written to the audit; nothing ran.
    Aborted,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Withdrawn => "withdrawn",
            RequestState::Expired => "expired",
            RequestState::Abandoned => "abandoned",
            RequestState::Aborted => "aborted",
        }
    }

    pub fn is_final(self) -> bool {
        self != RequestState::Pending
    }
}

/// What happened to the client when a final verdict landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The waiting session was released with the outcome.
    ClientReleased,
    /// The client had given up: an approval left a single-use grant for the same batch.
    GrantIssued { expires_at: SystemTime },
    /// The client had given up and the verdict was a denial: nothing to deliver.
    Nobody,
}

/// Answer to an approve or deny attempt. Refusals are recorded in the audit too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictResult {
    /// Vote counted; `remaining` more distinct approvals are needed.
    Recorded {
        remaining: u32,
    },
    /// This verdict decided the request.
    Final {
        state: RequestState,
        delivery: Delivery,
    },
    /// The request is already closed (approved, denied, withdrawn, abandoned, aborted).
    AlreadyDecided(RequestState),
    /// This approver already approved; quorum counts distinct people.
    AlreadyVoted,
    /// The requester (or one of its aliases) tried to decide its own request.
    SelfApprovalRefused,
    /// The identity is not among the request's approvers.
    NotAnApprover,
    NotFound,
    /// Nobody decided within the approvable window.
    Expired,
    /// Deny (and, when configured, approve) needs a rationale.
    RationaleRequired,
}

impl VerdictResult {
    /// Stable short code (API error codes, audit, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            VerdictResult::Recorded { .. } => "recorded",
            VerdictResult::Final { .. } => "final",
            VerdictResult::AlreadyDecided(_) => "already_decided",
            VerdictResult::AlreadyVoted => "already_voted",
            VerdictResult::SelfApprovalRefused => "self_approval",
            VerdictResult::NotAnApprover => "not_an_approver",
            VerdictResult::NotFound => "not_found",
            VerdictResult::Expired => "expired",
            VerdictResult::RationaleRequired => "rationale_required",
        }
    }
}

/// A single-use permission left by a late approval, handed to the session by
/// [`Registry::take_grant`](super::Registry::take_grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub request_id: RequestId,
    /// Decision record of the original, held statement.
    pub decision_id: String,
    pub approved_by: Vec<Verdict>,
    pub expires_at: SystemTime,
}

/// Grant state as shown in a [`RequestView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// `unused`, `used`, `expired` or `dropped`.
    pub state: String,
    pub expires_at: String,
}

/// A snapshot of a request for the API, the page, the CLI and the notifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: RequestId,
    pub decision_id: String,
    pub state: RequestState,
    /// Whether a session is still waiting on its connection.
    pub client_waiting: bool,
    pub requester: String,
    pub session_id: String,
    pub application_name: String,
    pub database: String,
    pub client_addr: String,
    /// Redacted SQL text.
    pub sql: String,
    pub params: Vec<Option<String>>,
    /// Declared parameter types, aligned with `params` (see [`HoldRequest::param_types`]).
    #[serde(default)]
    pub param_types: Vec<Option<String>>,
    pub facts: FactsSummary,
    pub rule_id: String,
    pub rule_source: String,
    pub reason: String,
    pub quorum: u32,
    pub approvers: Vec<String>,
    pub approvals: Vec<Verdict>,
    pub denial: Option<Verdict>,
    /// Why it closed, when it closed without a verdict (`cancel`, `disconnect`, `restart`…).
    pub closed_reason: Option<String>,
    pub created_at: String,
    /// When the waiting client is (or was) released with "expired".
    pub hold_expires_at: String,
    /// Until when approvers can still decide.
    pub approvable_until: String,
    /// Seconds left until `hold_expires_at` (0 when past).
    pub hold_remaining_secs: u64,
    /// Seconds left until `approvable_until` (0 when past or closed).
    pub approvable_remaining_secs: u64,
    pub grant: Option<GrantView>,
}

/// RFC 3339 (UTC, second precision) for views and verdicts.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| t.into());
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Whole seconds, rounded up, so a countdown never shows 0 while time is left.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

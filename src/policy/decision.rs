//! The contract between the policy and the session: what to do with a query string.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happens to a statement. Ordered by strictness: the strictest action of a
/// multi-statement string applies to all of it (deny > hold > mask > allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Mask,
    Hold,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Mask => "mask",
            Action::Hold => "hold",
            Action::Deny => "deny",
        }
    }
}

/// Who is asking, as the session knows it after authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    pub user: String,
    pub application_name: String,
    pub database: String,
}

/// The policy's answer for one query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// Stable id of the deciding rule (`default.read`, `pii-export`, …).
    pub rule_id: String,
    /// Where that rule is written: `policies/default.toml:42`, or `built-in`.
    pub rule_source: String,
    /// One line for the agent and the approver: why this action.
    pub reason: String,
    /// For `mask`: the SQL that actually runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<String>,
    /// For `hold`: how long the session waits for a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_timeout: Option<Duration>,
    /// For `hold`: distinct approvals needed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quorum: u32,
    /// For `hold`: who may approve (principal names, groups expanded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// PII columns involved (`schema.table.column`), for the notice and the card.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pii_columns: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Decision {
    /// A fail-closed decision used when the gateway itself cannot decide (no policy, bug…).
    pub fn fail_closed(reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Deny,
            rule_id: "built-in.fail-closed".into(),
            rule_source: "built-in".into(),
            reason: reason.into(),
            rewritten: None,
            hold_timeout: None,
            quorum: 0,
            approvers: Vec::new(),
            pii_columns: Vec::new(),
        }
    }
}

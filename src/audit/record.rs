//! What the session hands to the audit. The writer adds id, time, sequence and hash chain.

use serde::{Deserialize, Serialize};

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

/// Simple or extended query protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Simple,
    Extended,
}

/// Written (and, in strict mode, flushed) before anything is forwarded upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEntry {
    pub session: SessionInfo,
    pub protocol: Protocol,
    /// Original SQL with secrets redacted.
    pub sql: String,
    /// What actually runs when a mask rewrote it.
    pub rewritten_sql: Option<String>,
    /// Bound parameters as text (None = NULL), already redacted where policy says so.
    pub params: Vec<Option<String>>,
    pub fingerprint: String,
    pub facts: Vec<Facts>,
    pub decision: Decision,
}

/// The result of a statement (or batch) that was decided earlier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEntry {
    /// Id of the decision record this completes.
    pub decision_id: String,
    /// Command tags in order (`SELECT 3`, `INSERT 0 1`), when it ran.
    pub tags: Vec<String>,
    /// SQLSTATE and message of the first error, when it failed.
    pub error: Option<(String, String)>,
    pub rows: u64,
    pub duration_us: u64,
}

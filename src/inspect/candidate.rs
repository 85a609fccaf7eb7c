//! A decision record read just far enough to filter it.
//!
//! A scan rejects almost every record, so it first decodes only what the filters look at —
//! borrowing strings from the stored bytes instead of allocating them — and decodes the whole
//! entry only for records that pass. This roughly halves the cost of a grep over a large store.

use std::borrow::Cow;

use serde::Deserialize;

use crate::policy::Action;
use crate::sql::Kind;

/// The filterable part of a `DecisionEntry` (unknown fields are skipped).
#[derive(Debug, Deserialize)]
pub struct Candidate<'a> {
    #[serde(borrow)]
    pub session: CandidateSession<'a>,
    #[serde(borrow)]
    pub sql: Cow<'a, str>,
    #[serde(borrow, default)]
    pub rewritten_sql: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub facts: Vec<CandidateFacts<'a>>,
    #[serde(borrow)]
    pub decision: CandidateDecision<'a>,
}

#[derive(Debug, Deserialize)]
pub struct CandidateSession<'a> {
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    #[serde(borrow)]
    pub user: Cow<'a, str>,
    #[serde(borrow)]
    pub application_name: Cow<'a, str>,
    #[serde(borrow)]
    pub database: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
pub struct CandidateFacts<'a> {
    pub kind: Kind,
    #[serde(borrow, default)]
    pub tables_read: Vec<CandidateTable<'a>>,
    #[serde(borrow, default)]
    pub tables_written: Vec<CandidateTable<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct CandidateTable<'a> {
    #[serde(borrow)]
    pub schema: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
pub struct CandidateDecision<'a> {
    pub action: Action,
    #[serde(borrow)]
    pub rule_id: Cow<'a, str>,
}

impl<'a> Candidate<'a> {
    pub fn decode(entry_json: &'a str) -> Result<Candidate<'a>, serde_json::Error> {
        serde_json::from_str(entry_json)
    }

    /// Every table read or written.
    pub fn tables(&self) -> impl Iterator<Item = &CandidateTable<'a>> {
        self.facts
            .iter()
            .flat_map(|f| f.tables_read.iter().chain(&f.tables_written))
    }
}

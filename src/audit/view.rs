//! A statement's whole story — its decision record joined with its approval trail and outcome —
//! in the flat shape readers want. Its JSON field names are stable: the inspector's `-o json`,
//! `export --format jsonl` and the admin audit API all emit it.

use serde::{Deserialize, Serialize};

use super::chain::{Entry, Record, RecordHeader};
use super::record::{ApprovalAction, DecisionEntry, Protocol, RunResult};
use super::store::AuditStore;
use super::AuditError;
use crate::policy::Action;
use crate::sql::{Facts, Kind};

/// One statement (or query string) as decided, approved and run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementView {
    /// Id of the decision record (what the NOTICE and the card show).
    pub id: String,
    pub seq: u64,
    pub time: String,
    pub session_id: String,
    pub client_addr: String,
    pub user: String,
    pub application_name: String,
    pub database: String,
    pub protocol: Protocol,
    pub sql: String,
    pub rewritten_sql: Option<String>,
    pub params: Vec<Option<String>>,
    pub fingerprint: String,
    /// Distinct statement kinds, in statement order.
    pub kinds: Vec<Kind>,
    /// Tables read or written (`schema.name`), distinct, in order.
    pub tables: Vec<String>,
    pub decision: Action,
    pub rule_id: String,
    pub rule_source: String,
    pub reason: String,
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub pii_columns: Vec<String>,
    pub facts: Vec<Facts>,
    /// Every step of the approval trail, in order.
    pub approvals: Vec<ApprovalStep>,
    /// How it ended, once it has.
    pub outcome: Option<OutcomeView>,
    pub prev_hash: String,
    pub hash: String,
}

/// One approval-trail record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStep {
    pub id: String,
    pub seq: u64,
    pub time: String,
    pub request_id: String,
    pub actor: String,
    pub channel: String,
    pub action: ApprovalAction,
    pub rationale: Option<String>,
    pub at: String,
}

/// What the statement did. `id`, `seq` and `time` are those of the record that carries it: an
/// outcome record of its own, or the decision record itself when the outcome was folded into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeView {
    pub id: String,
    pub seq: u64,
    pub time: String,
    pub tags: Vec<String>,
    pub error: Option<ErrorView>,
    pub rows: u64,
    pub duration_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    pub sqlstate: String,
    pub message: String,
}

impl OutcomeView {
    fn new(id: String, seq: u64, time: String, o: RunResult) -> OutcomeView {
        OutcomeView {
            id,
            seq,
            time,
            tags: o.tags,
            error: o
                .error
                .map(|(sqlstate, message)| ErrorView { sqlstate, message }),
            rows: o.rows,
            duration_us: o.duration_us,
        }
    }
}

impl StatementView {
    /// The view of a decision record alone (no trail, no outcome yet).
    pub fn from_decision(h: &RecordHeader<'_>, d: DecisionEntry) -> StatementView {
        let mut kinds: Vec<Kind> = Vec::new();
        let mut tables: Vec<String> = Vec::new();
        for f in &d.facts {
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind);
            }
            for t in f.tables_read.iter().chain(&f.tables_written) {
                let name = t.to_string();
                if !tables.contains(&name) {
                    tables.push(name);
                }
            }
        }
        let s = d.session;
        let outcome = d
            .outcome
            .map(|o| OutcomeView::new(h.id.to_owned(), h.seq, h.time.to_owned(), o));
        StatementView {
            id: h.id.to_owned(),
            seq: h.seq,
            time: h.time.to_owned(),
            session_id: s.session_id,
            client_addr: s.client_addr,
            user: s.user,
            application_name: s.application_name,
            database: s.database,
            protocol: d.protocol,
            sql: d.sql,
            rewritten_sql: d.rewritten_sql,
            params: d.params,
            fingerprint: d.fingerprint,
            kinds,
            tables,
            decision: d.decision.action,
            rule_id: d.decision.rule_id,
            rule_source: d.decision.rule_source,
            reason: d.decision.reason,
            approvers: d.decision.approvers,
            quorum: d.decision.quorum,
            pii_columns: d.decision.pii_columns,
            facts: d.facts,
            approvals: Vec::new(),
            outcome,
            prev_hash: h.prev_hash.to_owned(),
            hash: hex::encode(h.hash),
        }
    }

    /// Adds an outcome or approval record that belongs to this statement.
    pub fn attach(&mut self, r: Record) {
        match r.entry {
            // The first outcome in chain order stands (a decision normally has one).
            Entry::Outcome(o) if self.outcome.is_none() => {
                self.outcome = Some(OutcomeView::new(r.id, r.seq, r.time, o.result))
            }
            Entry::Approval(a) => self.approvals.push(ApprovalStep {
                id: r.id,
                seq: r.seq,
                time: r.time,
                request_id: a.request_id,
                actor: a.actor,
                channel: a.channel,
                action: a.action,
                rationale: a.rationale,
                at: a.at,
            }),
            _ => {}
        }
    }

    /// Reads and attaches this statement's outcome and approval trail. The link index is not
    /// part of the hash chain, so a record it lists is attached only if its own (hashed)
    /// `decision_id` names this statement: an edited index cannot lend one statement another's
    /// approval.
    pub fn load_linked(&mut self, store: &dyn AuditStore) -> Result<(), AuditError> {
        for seq in store.linked(self.seq)? {
            if let Some(raw) = store.get(seq)? {
                let r = Record::decode(raw.seq, &raw.bytes)?;
                if r.entry.decision_id() == Some(self.id.as_str()) {
                    self.attach(r);
                }
            }
        }
        Ok(())
    }
}

/// Where a record sits in the chain, for `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPlace {
    pub seq: u64,
    pub prev_id: Option<String>,
    pub next_id: Option<String>,
    /// The previous record's hash is this record's `prev_hash`.
    pub prev_link_ok: bool,
    /// The next record's `prev_hash` is this record's hash (true when it is the last).
    pub next_link_ok: bool,
}

/// Everything `show ID` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShowView {
    /// The record the id names.
    pub record: Record,
    /// The statement it belongs to (itself when it is a decision).
    pub statement: Option<StatementView>,
    pub chain: ChainPlace,
}

/// Looks a record up by id and gathers its statement's story (an outcome or approval id leads
/// to its decision).
pub fn show(store: &dyn AuditStore, id: &str) -> Result<Option<ShowView>, AuditError> {
    let Some(seq) = store.seq_of_id(id)? else {
        return Ok(None);
    };
    let Some(raw) = store.get(seq)? else {
        return Ok(None);
    };
    let header = RecordHeader::decode(raw.seq, &raw.bytes, false)?;
    let record = header.to_record()?;
    let decision_seq = match record.entry.decision_id() {
        Some(did) => store.seq_of_id(did)?,
        None if matches!(record.entry, Entry::Decision(_)) => Some(seq),
        None => None,
    };
    let statement = match decision_seq.map(|s| store.get(s)).transpose()?.flatten() {
        Some(draw) => {
            let dh = RecordHeader::decode(draw.seq, &draw.bytes, false)?;
            match dh.entry()? {
                Entry::Decision(d) => {
                    let mut v = StatementView::from_decision(&dh, d);
                    v.load_linked(store)?;
                    Some(v)
                }
                _ => None,
            }
        }
        None => None,
    };
    let neighbour = |s: u64| -> Result<Option<(String, String, [u8; 32])>, AuditError> {
        Ok(match store.get(s)? {
            Some(r) => {
                let h = RecordHeader::decode(r.seq, &r.bytes, false)?;
                Some((h.id.to_owned(), h.prev_hash.to_owned(), h.hash))
            }
            None => None,
        })
    };
    let prev = seq.checked_sub(1).map(neighbour).transpose()?.flatten();
    let next = neighbour(seq + 1)?;
    let chain = ChainPlace {
        seq,
        prev_link_ok: match &prev {
            Some((_, _, h)) => hex::encode(h) == record.prev_hash,
            None => seq == 1 && record.prev_hash == hex::encode(super::chain::GENESIS_HASH),
        },
        next_link_ok: match &next {
            Some((_, p, _)) => *p == record.hash,
            None => true,
        },
        prev_id: prev.map(|p| p.0),
        next_id: next.map(|n| n.0),
    };
    Ok(Some(ShowView {
        record,
        statement,
        chain,
    }))
}

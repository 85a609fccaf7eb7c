//! Running a query against a store: the engine behind both the inspector's direct mode and the
//! admin audit API.
//!
//! A statement scan starts at the time index's answer for `--since` (so it does not read what
//! is older), reads record headers only until it meets a decision in the window, decodes that,
//! applies the cheap filters, and only then reads the linked outcome and approval trail. Record
//! times never decrease along the chain, so it stops at the first record past `--until`.

use crate::audit::store::RecordIter;
use crate::audit::{
    parse_time, AuditError, AuditStore, Record, RecordHeader, RecordKind, StatementView,
};

use super::filter::Filter;

/// Statements selected by a filter, in chain order.
pub struct StatementScan<'a> {
    store: &'a dyn AuditStore,
    records: RecordIter<'a>,
    filter: &'a Filter,
    with_linked: bool,
    done: bool,
    last_seq: Option<u64>,
}

/// Scans statements; `with_linked` attaches the outcome and approval trail to each result
/// (printers want it; counting does not, unless the filter itself needs it).
pub fn statements<'a>(
    store: &'a dyn AuditStore,
    filter: &'a Filter,
    with_linked: bool,
) -> Result<StatementScan<'a>, AuditError> {
    let from = match filter.since().and_then(parse_time) {
        Some(t) => store.seq_for_time(t)?,
        None => 0,
    };
    Ok(statements_from(store, filter, with_linked, from))
}

/// Like [`statements`], from a given sequence number (follow mode continues where it was).
pub fn statements_from<'a>(
    store: &'a dyn AuditStore,
    filter: &'a Filter,
    with_linked: bool,
    from: u64,
) -> StatementScan<'a> {
    StatementScan {
        store,
        records: store.scan(from),
        filter,
        with_linked,
        done: false,
        last_seq: None,
    }
}

impl StatementScan<'_> {
    /// Sequence number of the last record read (matching or not).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    fn next_match(&mut self) -> Result<Option<StatementView>, AuditError> {
        for raw in self.records.by_ref() {
            let raw = raw?;
            self.last_seq = Some(raw.seq);
            let header = RecordHeader::decode(raw.seq, &raw.bytes, false)?;
            if self.filter.until().is_some_and(|u| header.time > u) {
                return Ok(None);
            }
            if header.kind != RecordKind::Decision || !self.filter.in_window(header.time) {
                continue;
            }
            let crate::audit::Entry::Decision(d) = header.entry()? else {
                continue;
            };
            let mut view = StatementView::from_decision(&header, d);
            if !self.filter.matches_decision(&view) {
                continue;
            }
            if self.with_linked || self.filter.needs_linked() {
                view.load_linked(self.store)?;
                if !self.filter.matches_linked(&view) {
                    continue;
                }
            }
            return Ok(Some(view));
        }
        Ok(None)
    }
}

impl Iterator for StatementScan<'_> {
    type Item = Result<StatementView, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_match() {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Every record from `from` on, decoded.
pub fn records(
    store: &dyn AuditStore,
    from: u64,
) -> impl Iterator<Item = Result<Record, AuditError>> + '_ {
    store
        .scan(from)
        .map(|raw| raw.and_then(|r| Record::decode(r.seq, &r.bytes)))
}

/// The sequence number `tail -n` starts at.
pub fn tail_start(store: &dyn AuditStore, n: u64) -> Result<u64, AuditError> {
    Ok(match store.last()? {
        Some(last) => (last.seq + 1).saturating_sub(n).max(1),
        None => 1,
    })
}

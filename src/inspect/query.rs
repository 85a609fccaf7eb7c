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

use super::candidate::Candidate;
use super::filter::Filter;

/// A record body decoded just enough to filter a decision (see [`Candidate`]).
#[derive(serde::Deserialize)]
struct CandidateRecord<'a> {
    time: &'a str,
    kind: RecordKind,
    #[serde(borrow)]
    entry: Candidate<'a>,
}

/// Time and kind of a record from the fixed layout the writer gives every body
/// (`{"v":1,"seq":…,"id":"…","time":"…","kind":"…",…`), without parsing it. `None` when the
/// bytes do not look like that; the caller then parses them properly.
fn peek(body: &[u8]) -> Option<(&str, RecordKind)> {
    const TIME: &[u8] = br#","time":""#;
    const KIND: &[u8] = br#"","kind":""#;
    const TIME_LEN: usize = "2024-05-01T12:00:00.000000Z".len();
    let head = body.get(..body.len().min(160))?;
    let t = head.windows(TIME.len()).position(|w| w == TIME)? + TIME.len();
    let time = std::str::from_utf8(head.get(t..t + TIME_LEN)?).ok()?;
    let rest = head.get(t + TIME_LEN..)?.strip_prefix(KIND)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let kind = RecordKind::parse(std::str::from_utf8(&rest[..end]).ok()?)?;
    Some((time, kind))
}

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
            let corrupt = |e: serde_json::Error| AuditError::Corrupt {
                seq: raw.seq,
                reason: e.to_string(),
            };
            // Most records are rejected here, from the bytes, before any full decode.
            let body = raw.bytes.get(32..).unwrap_or_default();
            let (time, kind) = match peek(body) {
                Some(tk) => tk,
                None => {
                    let h = RecordHeader::decode(raw.seq, &raw.bytes, false)?;
                    (h.time, h.kind)
                }
            };
            if self.filter.until().is_some_and(|u| time > u) {
                return Ok(None);
            }
            if kind != RecordKind::Decision || !self.filter.in_window(time) {
                continue;
            }
            let candidate: CandidateRecord<'_> = serde_json::from_slice(body).map_err(corrupt)?;
            if candidate.kind != RecordKind::Decision
                || !self
                    .filter
                    .matches_decision(candidate.time, &candidate.entry)
            {
                continue;
            }
            let header = RecordHeader::decode(raw.seq, &raw.bytes, false)?;
            let crate::audit::Entry::Decision(d) = header.entry()? else {
                continue;
            };
            let mut view = StatementView::from_decision(&header, d);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{record_id, GENESIS_HASH};

    #[test]
    fn peek_reads_the_writer_layout_and_gives_up_on_anything_else() {
        let id = record_id(1_714_564_800_000_000, 3);
        let sealed = crate::audit::chain::seal(
            3,
            id,
            1_714_564_800_000_000,
            RecordKind::Outcome,
            &GENESIS_HASH,
            r#"{"decision_id":"x","tags":[],"error":null,"rows":0,"duration_us":0}"#,
            None,
        );
        let (time, kind) = peek(&sealed.bytes[32..]).unwrap();
        assert_eq!(time, "2024-05-01T12:00:00.000000Z");
        assert_eq!(kind, RecordKind::Outcome);
        assert!(peek(br#"{"v":1,"time":"short","kind":"decision"}"#).is_none());
        assert!(peek(br#"{"kind":"decision","time":"2024-05-01T12:00:00.000000Z"}"#).is_none());
        assert!(peek(b"").is_none());
    }
}

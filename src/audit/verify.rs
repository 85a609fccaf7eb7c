//! Walking the hash chain.

use serde::{Deserialize, Serialize};

use super::chain::{Record, RecordHeader, GENESIS_HASH};
use super::store::AuditStore;
use super::AuditError;

/// What kind of break `verify` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The record's bytes are not a record at all.
    Unreadable,
    /// The record's body does not hash to its stored hash: its content was changed.
    HashMismatch,
    /// The record's `seq` field differs from its position in the store.
    SeqMismatch,
    /// Sequence numbers jump: records are missing (deleted) here.
    Missing,
    /// The record's `prev_hash` is not the previous record's hash: one of the two was changed
    /// (and re-hashed), or a record was replaced.
    PrevHashMismatch,
    /// The store's head (written with every batch) does not match the last record: records
    /// were cut from the end, or the head was altered.
    HeadMismatch,
}

/// The first broken or missing link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Break {
    pub kind: BreakKind,
    /// Sequence number of the record at fault (for `missing`, the first missing one).
    pub seq: u64,
    /// Its id, when it can be known (for `missing`: from records that refer to it).
    pub id: Option<String>,
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Records checked (up to the break, when there is one).
    pub records: u64,
    /// Last good record: seq, id and hash — publish it elsewhere to anchor the chain.
    pub last_seq: Option<u64>,
    pub last_id: Option<String>,
    pub last_hash: Option<String>,
    /// `None` when the chain is intact.
    pub broken: Option<Break>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// The id a deleted record had, when it can still be known: a deleted decision is named by the
/// outcome or approval records that refer to it.
fn name_missing(store: &dyn AuditStore, seq: u64) -> Result<Option<String>, AuditError> {
    for linked in store.linked(seq)? {
        let Some(raw) = store.get(linked)? else {
            continue;
        };
        if let Ok(record) = Record::decode(raw.seq, &raw.bytes) {
            if let Some(id) = record.entry.decision_id() {
                return Ok(Some(id.to_owned()));
            }
        }
    }
    Ok(None)
}

/// Walks the whole chain from the first record and stops at the first break.
pub fn verify(store: &dyn AuditStore) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport {
        records: 0,
        last_seq: None,
        last_id: None,
        last_hash: None,
        broken: None,
    };
    let mut expected = 1u64;
    let mut prev_hash = GENESIS_HASH;
    let mut prev_id: Option<String> = None;
    for raw in store.scan(0) {
        let raw = raw?;
        let header = match RecordHeader::decode(raw.seq, &raw.bytes, true) {
            Ok(h) => h,
            Err(e) => {
                report.broken = Some(Break {
                    kind: BreakKind::Unreadable,
                    seq: raw.seq,
                    id: None,
                    detail: e.to_string(),
                });
                return Ok(report);
            }
        };
        let id = header.id.to_owned();
        let fail = |kind, seq, id: Option<String>, detail: String| Break {
            kind,
            seq,
            id,
            detail,
        };
        if raw.seq != expected {
            let missing_id = name_missing(store, expected)?;
            report.broken = Some(fail(
                BreakKind::Missing,
                expected,
                missing_id,
                format!(
                    "records {expected}..={} are missing between {} and {id}",
                    raw.seq.saturating_sub(1),
                    prev_id.as_deref().unwrap_or("the start of the chain"),
                ),
            ));
            return Ok(report);
        }
        if !header.hash_ok {
            report.broken = Some(fail(
                BreakKind::HashMismatch,
                raw.seq,
                Some(id),
                "the record's content does not match its hash: it was altered".into(),
            ));
            return Ok(report);
        }
        if header.seq != raw.seq {
            report.broken = Some(fail(
                BreakKind::SeqMismatch,
                raw.seq,
                Some(id),
                format!("stored at {} but says it is {}", raw.seq, header.seq),
            ));
            return Ok(report);
        }
        if header.prev_hash != hex::encode(prev_hash) {
            report.broken = Some(fail(
                BreakKind::PrevHashMismatch,
                raw.seq,
                Some(id),
                format!(
                    "prev_hash does not match the hash of {}: one of the two was altered",
                    prev_id.as_deref().unwrap_or("the start of the chain"),
                ),
            ));
            return Ok(report);
        }
        prev_hash = header.hash;
        prev_id = Some(id);
        expected = raw.seq + 1;
        report.records += 1;
    }
    report.last_seq = expected.checked_sub(1).filter(|s| *s > 0);
    report.last_id = prev_id;
    report.last_hash = report.last_seq.map(|_| hex::encode(prev_hash));
    if let Some(head) = store.head()? {
        let last_seq = expected - 1;
        if head.seq > last_seq {
            report.broken = Some(Break {
                kind: BreakKind::Missing,
                seq: last_seq + 1,
                id: name_missing(store, last_seq + 1)?,
                detail: format!(
                    "records {}..={} were cut from the end of the chain",
                    last_seq + 1,
                    head.seq
                ),
            });
        } else if head.seq != last_seq || head.hash != prev_hash {
            report.broken = Some(Break {
                kind: BreakKind::HeadMismatch,
                seq: last_seq,
                id: report.last_id.clone(),
                detail: format!(
                    "the store's head (seq {}) does not match the last record",
                    head.seq
                ),
            });
        }
    } else if report.records > 0 {
        // Every append writes the head with its records: a store with records and no head
        // had it removed, which is what hides a tail cut.
        report.broken = Some(Break {
            kind: BreakKind::HeadMismatch,
            seq: expected - 1,
            id: report.last_id.clone(),
            detail: "the store has records but no head: it was removed, so a cut at the end \
                     of the chain could not be seen"
                .into(),
        });
    }
    Ok(report)
}

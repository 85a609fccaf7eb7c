//! Completing a group commit that a crash cut short.
//!
//! A group is written record blocks first, then its index entries, then the head (see the
//! parent module), and sled recovers a prefix of what was written. So after a crash the
//! store may end with records that have no index entries and that the head does not cover
//! yet. Left alone, `verify` would report a head that does not match the last record (which
//! is also what a deletion looks like), and `show` would miss the outcomes of those
//! statements. Opening the store finishes the job — but only for records that continue the
//! head's chain, hash for hash, and no more of them than one group holds: anything else is
//! not a torn group, and stays for `airlock audit verify` to report.

use super::{Indexed, SledStore};
use crate::audit::chain::{Entry, RecordHeader, GENESIS_HASH};
use crate::audit::store::{AuditStore, Head};
use crate::audit::writer::MAX_BATCH;
use crate::audit::{parse_time, AuditError};

/// What the index needs of a stored record, owned.
struct Tail {
    seq: u64,
    time_us: i64,
    id: String,
    link: Option<String>,
}

impl SledStore {
    /// Indexes the records a crash left after the head and moves the head over them.
    /// Returns how many records it completed.
    pub(super) fn complete_torn_group(&self, last_seq: u64) -> Result<usize, AuditError> {
        let (mut seq, mut hash) = self.head()?.map_or((0, GENESIS_HASH), |h| (h.seq, h.hash));
        if last_seq <= seq {
            return Ok(0);
        }
        if last_seq - seq > MAX_BATCH as u64 {
            tracing::warn!(
                head_seq = seq,
                last_seq,
                "more audit records follow the head than one group commit holds; left as they are"
            );
            return Ok(0);
        }
        let mut tail = Vec::new();
        for raw in self.scan(seq + 1) {
            let next = raw.ok().and_then(|raw| {
                let header = RecordHeader::decode(raw.seq, &raw.bytes, true).ok()?;
                let continues = header.hash_ok
                    && raw.seq == seq + 1
                    && header.seq == raw.seq
                    && header.prev_hash == hex::encode(hash);
                // The writer links outcomes and approval steps to their decision.
                let link = match header.entry().ok()? {
                    Entry::Outcome(e) => Some(e.decision_id),
                    Entry::Approval(e) => Some(e.decision_id),
                    _ => None,
                };
                continues.then_some(())?;
                Some((
                    header.hash,
                    Tail {
                        seq: header.seq,
                        time_us: parse_time(header.time)?,
                        id: header.id.to_owned(),
                        link,
                    },
                ))
            });
            let Some((next_hash, record)) = next else {
                tracing::warn!(
                    head_seq = seq,
                    "audit records after the head do not continue its chain; left for `airlock audit verify` to report"
                );
                return Ok(0);
            };
            seq = record.seq;
            hash = next_hash;
            tail.push(record);
        }
        self.index(
            tail.iter().map(|t| Indexed {
                seq: t.seq,
                time_us: t.time_us,
                id: &t.id,
                link: t.link.as_deref(),
            }),
            Head { seq, hash },
        )?;
        self.tree.flush()?;
        tracing::info!(
            records = tail.len(),
            last_seq = seq,
            "completed the audit indexes of a group commit cut short by a crash"
        );
        Ok(tail.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{block_key, push_entry, SledStore};
    use crate::audit::chain::{record_id, seal, RecordKind, GENESIS_HASH};
    use crate::audit::store::{AuditStore, SealedRecord};
    use crate::audit::{verify, BreakKind};

    /// Seals records onto a chain: a decision-like gateway event, or an outcome of `link`.
    struct Chain {
        next: u64,
        prev: [u8; 32],
    }

    impl Chain {
        fn new() -> Chain {
            Chain {
                next: 1,
                prev: GENESIS_HASH,
            }
        }

        fn record(&mut self, time_us: i64, link: Option<&str>) -> SealedRecord {
            let (kind, entry) = match link {
                Some(d) => (
                    RecordKind::Outcome,
                    format!(
                        r#"{{"decision_id":"{d}","tags":["SELECT 1"],"error":null,"rows":1,"duration_us":5}}"#
                    ),
                ),
                None => (
                    RecordKind::Gateway,
                    r#"{"event":"x","detail":""}"#.to_owned(),
                ),
            };
            let seq = self.next;
            let r = seal(
                seq,
                record_id(time_us, seq),
                time_us,
                kind,
                &self.prev,
                &entry,
                link.map(String::from),
            );
            self.next += 1;
            self.prev = r.hash;
            r
        }
    }

    /// What a crash after a group's record blocks, and before its indexes and head, leaves.
    fn write_blocks_only(store: &SledStore, records: &[SealedRecord]) {
        let mut block = Vec::new();
        for r in records {
            push_entry(&mut block, r.seq, &r.bytes);
        }
        store.tree.insert(block_key(records[0].seq), block).unwrap();
        store.tree.flush().unwrap();
    }

    #[test]
    fn a_group_cut_short_by_a_crash_is_completed_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::new();
        let d1 = chain.record(1_000_000, None);
        let d1_id = d1.id.clone();
        let o1 = chain.record(1_100_000, Some(&d1_id));
        // The torn group: an outcome of a decision from the complete group, a decision of its
        // own in a new second, and that decision's outcome.
        let o1_late = chain.record(2_000_000, Some(&d1_id));
        let d2 = chain.record(3_000_000, None);
        let d2_id = d2.id.clone();
        let o2 = chain.record(3_100_000, Some(&d2_id));
        let torn = [o1_late, d2, o2];
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(&[d1, o1]).unwrap();
            write_blocks_only(&store, &torn);
            // What `verify` would say without the completion.
            let before = verify(&store).unwrap();
            assert_eq!(before.broken.map(|b| b.kind), Some(BreakKind::HeadMismatch));
            assert_eq!(store.linked(4).unwrap(), Vec::<u64>::new());
        }
        let store = SledStore::open(dir.path()).unwrap();
        let report = verify(&store).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.records, 5);
        let head = store.head().unwrap().unwrap();
        assert_eq!((head.seq, head.hash), (5, torn[2].hash));
        assert_eq!(store.linked(1).unwrap(), vec![2, 3]);
        assert_eq!(store.linked(4).unwrap(), vec![5]);
        assert_eq!(store.seq_for_time(3_050_000).unwrap(), 4);
        // The next group continues where the completed one ends.
        let next = chain.record(4_000_000, Some(&d2_id));
        store.append(&[next]).unwrap();
        assert_eq!(store.linked(4).unwrap(), vec![5, 6]);
        assert!(verify(&store).unwrap().ok());
    }

    #[test]
    fn records_after_the_head_that_do_not_continue_its_chain_are_left_for_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::new();
        let d1 = chain.record(1_000_000, None);
        let head_hash = d1.hash;
        // Sealed onto some other chain: not the continuation of the stored head.
        let mut other = Chain::new();
        other.next = 2;
        let stray = other.record(2_000_000, None);
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(&[d1]).unwrap();
            write_blocks_only(&store, &[stray]);
        }
        let store = SledStore::open(dir.path()).unwrap();
        let head = store.head().unwrap().unwrap();
        assert_eq!(
            (head.seq, head.hash),
            (1, head_hash),
            "the head must not move"
        );
        let report = verify(&store).unwrap();
        assert_eq!(
            report.broken.map(|b| b.kind),
            Some(BreakKind::PrevHashMismatch)
        );
    }

    #[test]
    fn a_first_group_cut_short_is_completed_from_the_start_of_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::new();
        let d1 = chain.record(1_000_000, None);
        let d1_id = d1.id.clone();
        let o1 = chain.record(1_100_000, Some(&d1_id));
        {
            let store = SledStore::open(dir.path()).unwrap();
            write_blocks_only(&store, &[d1, o1]);
            assert!(store.head().unwrap().is_none());
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.head().unwrap().unwrap().seq, 2);
        assert_eq!(store.linked(1).unwrap(), vec![2]);
        assert!(verify(&store).unwrap().ok());
    }
}

//! The storage behind the audit: append-only, ordered by sequence number.
//!
//! The writer is the only caller of [`AuditStore::append`] and [`AuditStore::flush`]; readers
//! (the inspector, the admin API) use the rest concurrently. A backend other than sled only has
//! to implement this trait; the session never sees it.

use super::AuditError;

/// A record ready to store, built by the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedRecord {
    pub seq: u64,
    pub id: String,
    /// Microseconds since the epoch; never less than the previous record's.
    pub time_us: i64,
    pub hash: [u8; 32],
    /// `hash ‖ canonical body`, stored verbatim.
    pub bytes: Vec<u8>,
    /// For outcomes and approval steps: the id of their decision record, so readers can
    /// gather a statement's whole story without scanning.
    pub link: Option<String>,
}

/// A record as read back: its sequence number (the key) and stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// The chain head as the store recorded it with the last appended batch. `verify` compares it
/// with the last record, which reveals records deleted from the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// Records in ascending sequence order.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<RawRecord, AuditError>> + Send + 'a>;

pub trait AuditStore: Send + Sync {
    /// Appends a group of records. A crash may keep a prefix of the group, never a record
    /// without the ones before it, so a torn group can never break the chain (a store
    /// completes such a group's indexes when it opens). On an error nothing of the group may
    /// be readable: the writer gives its sequence numbers to the next group. Not durable until
    /// [`AuditStore::flush`].
    fn append(&self, batch: &[SealedRecord]) -> Result<(), AuditError>;

    /// Makes everything appended so far durable.
    fn flush(&self) -> Result<(), AuditError>;

    /// The record with the highest sequence number.
    fn last(&self) -> Result<Option<RawRecord>, AuditError>;

    /// The head written with the last batch (see [`Head`]).
    fn head(&self) -> Result<Option<Head>, AuditError>;

    /// The record with this sequence number.
    fn get(&self, seq: u64) -> Result<Option<RawRecord>, AuditError>;

    /// Sequence number of the record with this id (`None` when no record has it).
    fn seq_of_id(&self, id: &str) -> Result<Option<u64>, AuditError>;

    /// A sequence number from which a forward scan meets every record at or after `time_us`
    /// (and few before it), found through the time index rather than a scan.
    fn seq_for_time(&self, time_us: i64) -> Result<u64, AuditError>;

    /// Records with `seq >= from`, in order.
    fn scan(&self, from: u64) -> RecordIter<'_>;

    /// Sequence numbers of the records linked to the decision at `decision_seq`
    /// (its outcome and approval steps), in order.
    fn linked(&self, decision_seq: u64) -> Result<Vec<u64>, AuditError>;
}

//! [`AuditStore`] on sled 0.34.7.
//!
//! Everything lives in one tree. Keys are prefixed by a byte:
//!
//! | key                         | value            | purpose                              |
//! |-----------------------------|------------------|--------------------------------------|
//! | `b` first seq(8, BE)        | block of records | the records, in chain order          |
//! | `t` unix second(8, BE)      | first seq in it  | `--since` without a full scan        |
//! | `l` decision seq >> 7       | pairs            | outcome and approvals of a decision  |
//! | `m` `head`                  | seq ‖ hash       | reveals records cut from the end     |
//!
//! A block holds consecutive records of one group commit, each as `seq(8, BE) ‖ len(4, BE) ‖
//! hash ‖ body`, up to [`BLOCK_BYTES`]. One sled insert per block instead of one per record:
//! sled's cost is per insert (it copies and periodically rewrites whole leaves), and with a
//! key per record it was most of the gateway's CPU under load. A record is found by the last
//! block key at or before its sequence number.
//!
//! Links from a decision to its outcome and approval steps are kept in buckets: one value per
//! 128 consecutive sequence numbers of decisions, holding `decision seq(8, BE) ‖ seq(8, BE)`
//! pairs in append order. A group commit rewrites the one or two buckets its outcomes point
//! into (the store keeps the newest in memory) instead of inserting a key per outcome, which
//! tripled sled's inserts per statement.
//!
//! Ids need no index: a record id carries its sequence number (see
//! [`crate::audit::chain::record_id`]), which halves the inserts per record.
//! The time index is sparse (one key per second that has records), which keeps the append
//! cost low; record times never go backwards, so the first record of a second bounds a scan.
//!
//! A group commit is plain inserts in a fixed order — its record blocks in chain order, then
//! its time-index and link entries, then the head — not a `sled::Batch`. sled seals its log
//! buffer before and after every batch, and each seal hands the buffer to sled's I/O pool,
//! which wakes all seven of its threads; with a flush per group in `strict` mode that was
//! three seals and 21 thread wake-ups per group, about a fifth of the gateway's CPU. sled
//! recovers a prefix of its log, so after a crash the store still holds a prefix of the chain
//! (never a record without those before it), and the head is never ahead of the records. What
//! a crash can leave is the end of one group without its index entries and head; opening the
//! store completes it (`recover`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::chain::{seq_in_id, RecordHeader};
use super::store::{AuditStore, Head, RawRecord, RecordIter, SealedRecord};
use super::AuditError;

mod recent;
mod recover;

use recent::RecentIds;

const TREE: &str = "airlock.audit.v3";
/// Earlier layouts, which this build does not read: one key per record, then one link key
/// per outcome.
const OLD_TREES: [(&str, &str); 2] = [
    ("airlock.audit.v1", "one key per record"),
    ("airlock.audit.v2", "one link key per outcome"),
];
const BLOCK: u8 = b'b';
/// A block is closed once it holds this many bytes (a larger single record gets a block of
/// its own). sled rewrites a whole leaf (up to 17 values) every few inserts and writes any
/// page over 128 KB as a separate blob file; 4 KB blocks keep leaves well under that, where
/// 32 KB blocks turned every leaf rewrite into a new blob file (tens of GB for a 1M-record
/// run).
pub const BLOCK_BYTES: usize = 4 * 1024;
const TIME: u8 = b't';
const LINK: u8 = b'l';
/// Decisions per link bucket: 2^7 sequence numbers.
const LINK_BUCKET_BITS: u32 = 7;
const HEAD_KEY: &[u8] = b"mhead";

/// sled's page cache when nothing else is configured. sled's own default is 1 GiB, which a
/// gateway reaches: every appended record stays cached until the bound.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// How long [`SledStore::open`] waits for a lock held by a store that is shutting down.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The sled-backed audit store. One process at a time: sled locks the directory.
pub struct SledStore {
    tree: sled::Tree,
    // Kept so the database (and its lock) lives as long as the store.
    _db: sled::Db,
    path: PathBuf,
    /// Last second written to the time index.
    last_indexed_sec: Mutex<Option<u64>>,
    appended_seq: AtomicU64,
    durable_seq: AtomicU64,
    flushes: AtomicU64,
    /// Ids of recently appended records that others can link to, so an outcome arriving a
    /// batch after its decision costs no read of the tree.
    recent: Mutex<RecentIds>,
    /// The newest link bucket as stored (number and value), so the next group extends it
    /// without reading it back.
    last_links: Mutex<Option<(u64, Vec<u8>)>>,
}

/// What the indexes need of a record (see [`SledStore::index`]).
struct Indexed<'a> {
    seq: u64,
    time_us: i64,
    id: &'a str,
    /// The decision an outcome or approval step belongs to.
    link: Option<&'a str>,
}

fn block_key(seq: u64) -> [u8; 9] {
    let mut k = [BLOCK; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn time_key(sec: u64) -> [u8; 9] {
    let mut k = [TIME; 9];
    k[1..].copy_from_slice(&sec.to_be_bytes());
    k
}

fn link_bucket(decision_seq: u64) -> u64 {
    decision_seq >> LINK_BUCKET_BITS
}

fn link_key(bucket: u64) -> [u8; 9] {
    let mut k = [LINK; 9];
    k[1..].copy_from_slice(&bucket.to_be_bytes());
    k
}

/// The `(decision seq, seq)` pairs of a link bucket; `None` when its length is not a whole
/// number of pairs.
fn link_pairs(bucket: &[u8]) -> Option<impl Iterator<Item = (u64, u64)> + '_> {
    (bucket.len() % 16 == 0).then(|| {
        bucket.chunks_exact(16).map(|p| {
            (
                be_u64(p).expect("16-byte pair"),
                be_u64(&p[8..]).expect("16-byte pair"),
            )
        })
    })
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Appends one record to a block being built.
fn push_entry(block: &mut Vec<u8>, seq: u64, bytes: &[u8]) {
    block.extend_from_slice(&seq.to_be_bytes());
    block.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    block.extend_from_slice(bytes);
}

/// The records of a block, in order.
fn entries(block: &[u8]) -> impl Iterator<Item = Result<(u64, &[u8]), AuditError>> + '_ {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let seq = be_u64(rest)?;
            let len = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
            let bytes = rest.get(12..12 + len)?;
            Some((seq, bytes, 12 + len))
        })();
        match parsed {
            Some((seq, bytes, used)) => {
                rest = &rest[used..];
                Some(Ok((seq, bytes)))
            }
            None => {
                rest = &[];
                Some(Err(AuditError::Corrupt {
                    seq: 0,
                    reason: "truncated record block".into(),
                }))
            }
        }
    })
}

/// The records of a block at or after `from`, owned.
fn records_from(block: &[u8], from: u64) -> Vec<Result<RawRecord, AuditError>> {
    entries(block)
        .filter(|e| !matches!(e, Ok((seq, _)) if *seq < from))
        .map(|e| {
            e.map(|(seq, bytes)| RawRecord {
                seq,
                bytes: bytes.to_vec(),
            })
        })
        .collect()
}

fn second_of(time_us: i64) -> u64 {
    time_us.div_euclid(1_000_000).max(0) as u64
}

impl SledStore {
    /// Opens the store at `path`, creating it when missing (the gateway).
    ///
    /// A store closed a moment ago in this same process can stay locked for a few milliseconds
    /// while sled's I/O threads finish their last writes (they hold the file), so a lock is
    /// retried for up to [`LOCK_WAIT`] before it is reported as [`AuditError::Locked`].
    pub fn open(path: &Path) -> Result<SledStore, AuditError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a bound on sled's page cache (`[audit] cache_mb`).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<SledStore, AuditError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            let opened = sled::Config::new()
                .path(path)
                .mode(sled::Mode::HighThroughput)
                .cache_capacity(cache_bytes)
                .open()
                .map_err(|e| open_error(path, e));
            match opened {
                Err(AuditError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        let names = db.tree_names();
        for (old, layout) in OLD_TREES {
            if names.iter().any(|n| &n[..] == old.as_bytes()) && !db.open_tree(old)?.is_empty() {
                return Err(AuditError::Store(format!(
                    "{} holds an audit written by an older airlock ({layout}); \
                     keep it for reading with that version and point [audit] path at a new directory",
                    path.display()
                )));
            }
        }
        let tree = db.open_tree(TREE)?;
        let last_indexed_sec = tree
            .scan_prefix([TIME])
            .next_back()
            .transpose()?
            .and_then(|(k, _)| be_u64(&k[1..]));
        let last_seq = match tree.scan_prefix([BLOCK]).next_back().transpose()? {
            Some((_, block)) => entries(&block)
                .last()
                .transpose()?
                .map_or(0, |(seq, _)| seq),
            None => 0,
        };
        let store = SledStore {
            tree,
            _db: db,
            path: path.to_owned(),
            last_indexed_sec: Mutex::new(last_indexed_sec),
            appended_seq: AtomicU64::new(last_seq),
            durable_seq: AtomicU64::new(last_seq),
            flushes: AtomicU64::new(0),
            recent: Mutex::new(RecentIds::new()),
            last_links: Mutex::new(None),
        };
        store.complete_torn_group(last_seq)?;
        Ok(store)
    }

    /// Opens an existing store only (the inspector must not create one by mistake).
    pub fn open_existing(path: &Path) -> Result<SledStore, AuditError> {
        if !path.join("db").is_file() {
            return Err(AuditError::Missing {
                path: path.to_owned(),
            });
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times [`AuditStore::flush`] completed (the group-commit tests count these).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Highest sequence number known to be durable (appended before a completed flush).
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::SeqCst)
    }

    /// Overwrites a stored record's bytes, bypassing the chain. Only for tamper tests and
    /// forensic drills: it breaks the chain on purpose.
    #[doc(hidden)]
    pub fn tamper_replace(&self, seq: u64, bytes: &[u8]) -> Result<(), AuditError> {
        self.rewrite_block(seq, Some(bytes))
    }

    /// Deletes a stored record, bypassing the chain. Only for tamper tests.
    #[doc(hidden)]
    pub fn tamper_remove(&self, seq: u64) -> Result<(), AuditError> {
        self.rewrite_block(seq, None)
    }

    /// Lists record `seq` under the decision at `decision_seq` in the link index, which is
    /// outside the chain. Only for tamper tests.
    #[doc(hidden)]
    pub fn tamper_add_link(&self, decision_seq: u64, seq: u64) -> Result<(), AuditError> {
        let key = link_key(link_bucket(decision_seq));
        let mut value = self.tree.get(key)?.map(|v| v.to_vec()).unwrap_or_default();
        value.extend_from_slice(&decision_seq.to_be_bytes());
        value.extend_from_slice(&seq.to_be_bytes());
        self.tree.insert(key, value)?;
        *self.last_links.lock() = None;
        Ok(())
    }

    /// Deletes the stored head, bypassing the chain. Only for tamper tests.
    #[doc(hidden)]
    pub fn tamper_remove_head(&self) -> Result<(), AuditError> {
        self.tree.remove(HEAD_KEY)?;
        Ok(())
    }

    /// Rebuilds the block holding `seq` with that record replaced (or left out).
    fn rewrite_block(&self, seq: u64, replacement: Option<&[u8]>) -> Result<(), AuditError> {
        let Some((key, block)) = self.block_for(seq)? else {
            return Err(AuditError::Store(format!("no record {seq}")));
        };
        let mut rebuilt = Vec::with_capacity(block.len());
        for e in entries(&block) {
            let (s, bytes) = e?;
            match (s == seq, replacement) {
                (false, _) => push_entry(&mut rebuilt, s, bytes),
                (true, Some(new)) => push_entry(&mut rebuilt, s, new),
                (true, None) => {}
            }
        }
        if rebuilt.is_empty() {
            self.tree.remove(key)?;
        } else {
            self.tree.insert(key, rebuilt)?;
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Writes the time-index and link entries of records already stored, then the head that
    /// says the group is complete. `append` calls it for every group; opening a store calls it
    /// for the records a crash left without them (see `recover`).
    fn index<'a>(
        &self,
        records: impl Iterator<Item = Indexed<'a>>,
        head: Head,
    ) -> Result<(), AuditError> {
        let mut in_group: HashMap<&str, u64> = HashMap::new();
        let mut indexed = self.last_indexed_sec.lock();
        let mut new_indexed = *indexed;
        let mut links: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        let mut linkable: Vec<(&str, u64)> = Vec::new();
        for r in records {
            let sec = second_of(r.time_us);
            if new_indexed.is_none_or(|s| sec > s) {
                self.tree.insert(time_key(sec), &r.seq.to_be_bytes()[..])?;
                new_indexed = Some(sec);
            }
            match r.link {
                Some(decision_id) => {
                    let remembered = self.recent.lock().seq_of(decision_id);
                    let decision_seq = match in_group.get(decision_id).or(remembered.as_ref()) {
                        Some(s) => Some(*s),
                        None => self.seq_of_id(decision_id)?,
                    };
                    match decision_seq {
                        Some(d) => links.entry(link_bucket(d)).or_default().push((d, r.seq)),
                        None => tracing::warn!(
                            seq = r.seq,
                            decision_id = %decision_id,
                            "audit record refers to an unknown decision"
                        ),
                    }
                }
                None => linkable.push((r.id, r.seq)),
            }
            in_group.insert(r.id, r.seq);
        }
        *indexed = new_indexed;
        let mut last_links = self.last_links.lock();
        for (bucket, pairs) in links {
            let mut value = match last_links.take() {
                Some((b, v)) if b == bucket => v,
                _ => self
                    .tree
                    .get(link_key(bucket))?
                    .map(|v| v.to_vec())
                    .unwrap_or_default(),
            };
            for (d, seq) in pairs {
                value.extend_from_slice(&d.to_be_bytes());
                value.extend_from_slice(&seq.to_be_bytes());
            }
            self.tree.insert(link_key(bucket), &value[..])?;
            // Buckets come in ascending order: the last one written is the newest, which the
            // next group most likely extends.
            *last_links = Some((bucket, value));
        }
        let mut h = [0u8; 40];
        h[..8].copy_from_slice(&head.seq.to_be_bytes());
        h[8..].copy_from_slice(&head.hash);
        self.tree.insert(HEAD_KEY, &h[..])?;
        let mut recent = self.recent.lock();
        for (id, seq) in linkable {
            recent.remember(id, seq);
        }
        Ok(())
    }

    /// The block whose records start at or before `seq` (the one that would hold it).
    fn block_for(&self, seq: u64) -> Result<Option<(sled::IVec, sled::IVec)>, AuditError> {
        Ok(self
            .tree
            .range(block_key(0)..=block_key(seq))
            .next_back()
            .transpose()?)
    }
}

/// sled reports a held lock as a generic I/O error; recognise it so the inspector can fall
/// back to the admin API.
fn open_error(path: &Path, e: sled::Error) -> AuditError {
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            AuditError::Locked {
                path: path.to_owned(),
            }
        }
        sled::Error::Io(io) => AuditError::Io(io),
        other => AuditError::Store(format!("{}: {other}", path.display())),
    }
}

impl AuditStore for SledStore {
    fn append(&self, records: &[SealedRecord]) -> Result<(), AuditError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        // Records first, in chain order; their index entries and the head after them (see the
        // module doc for why this order, and not a `sled::Batch`).
        let mut written: Vec<[u8; 9]> = Vec::new();
        let stored = (|| {
            let mut block: Vec<u8> = Vec::new();
            let mut block_first = 0;
            for r in records {
                if block.is_empty() {
                    block_first = r.seq;
                }
                push_entry(&mut block, r.seq, &r.bytes);
                if block.len() >= BLOCK_BYTES {
                    written.push(block_key(block_first));
                    self.tree
                        .insert(block_key(block_first), std::mem::take(&mut block))?;
                }
            }
            if !block.is_empty() {
                written.push(block_key(block_first));
                self.tree.insert(block_key(block_first), block)?;
            }
            self.index(
                records.iter().map(|r| Indexed {
                    seq: r.seq,
                    time_us: r.time_us,
                    id: &r.id,
                    link: r.link.as_deref(),
                }),
                Head {
                    seq: last.seq,
                    hash: last.hash,
                },
            )
        })();
        if let Err(e) = stored {
            // The writer reuses these sequence numbers for the next group: a block left
            // behind would shadow its records. (sled's I/O errors are sticky, so this only
            // matters for an error that is not.)
            for key in written {
                let _ = self.tree.remove(key);
            }
            return Err(e);
        }
        self.appended_seq.fetch_max(last.seq, Ordering::SeqCst);
        Ok(())
    }

    fn flush(&self) -> Result<(), AuditError> {
        let appended = self.appended_seq.load(Ordering::SeqCst);
        self.tree.flush()?;
        self.durable_seq.fetch_max(appended, Ordering::SeqCst);
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn last(&self) -> Result<Option<RawRecord>, AuditError> {
        let Some((_, block)) = self.tree.scan_prefix([BLOCK]).next_back().transpose()? else {
            return Ok(None);
        };
        Ok(entries(&block)
            .last()
            .transpose()?
            .map(|(seq, bytes)| RawRecord {
                seq,
                bytes: bytes.to_vec(),
            }))
    }

    fn head(&self) -> Result<Option<Head>, AuditError> {
        Ok(self.tree.get(HEAD_KEY)?.and_then(|v| {
            Some(Head {
                seq: be_u64(&v)?,
                hash: v.get(8..40)?.try_into().ok()?,
            })
        }))
    }

    fn get(&self, seq: u64) -> Result<Option<RawRecord>, AuditError> {
        let Some((_, block)) = self.block_for(seq)? else {
            return Ok(None);
        };
        for e in entries(&block) {
            let (s, bytes) = e?;
            if s == seq {
                return Ok(Some(RawRecord {
                    seq,
                    bytes: bytes.to_vec(),
                }));
            }
        }
        Ok(None)
    }

    fn seq_of_id(&self, id: &str) -> Result<Option<u64>, AuditError> {
        let Some(seq) = seq_in_id(id) else {
            return Ok(None);
        };
        let Some(raw) = self.get(seq)? else {
            return Ok(None);
        };
        // The id names a position; only a record that really carries this id is a match.
        let header = RecordHeader::decode(seq, &raw.bytes, false)?;
        Ok((header.id == id).then_some(seq))
    }

    fn seq_for_time(&self, time_us: i64) -> Result<u64, AuditError> {
        let found = self
            .tree
            .range(time_key(0)..=time_key(second_of(time_us)))
            .next_back()
            .transpose()?;
        Ok(found.and_then(|(_, v)| be_u64(&v)).unwrap_or(0))
    }

    fn scan(&self, from: u64) -> RecordIter<'_> {
        // Start at the block holding `from` (or the first one after it).
        let start = match self.block_for(from) {
            Ok(Some((key, _))) => key.to_vec(),
            Ok(None) => block_key(0).to_vec(),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let iter = self
            .tree
            .range(start..vec![BLOCK + 1])
            .flat_map(move |item| match item {
                Ok((_, block)) => records_from(&block, from),
                Err(e) => vec![Err(e.into())],
            });
        Box::new(iter)
    }

    fn linked(&self, decision_seq: u64) -> Result<Vec<u64>, AuditError> {
        let Some(bucket) = self.tree.get(link_key(link_bucket(decision_seq)))? else {
            return Ok(Vec::new());
        };
        let pairs = link_pairs(&bucket).ok_or_else(|| AuditError::Corrupt {
            seq: decision_seq,
            reason: "malformed link bucket".into(),
        })?;
        Ok(pairs
            .filter(|(d, _)| *d == decision_seq)
            .map(|(_, seq)| seq)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{seal, RecordKind, GENESIS_HASH};

    fn rec(seq: u64, time_us: i64, link: Option<&str>) -> SealedRecord {
        seal(
            seq,
            crate::audit::chain::record_id(time_us, seq),
            time_us,
            if link.is_some() {
                RecordKind::Outcome
            } else {
                RecordKind::Gateway
            },
            &GENESIS_HASH,
            r#"{"event":"x","detail":""}"#,
            link.map(String::from),
        )
    }

    #[test]
    fn append_get_scan_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.last().unwrap().is_none());
        let r1 = rec(1, 1_000_000, None);
        let id1 = r1.id.clone();
        store.append(&[r1, rec(2, 1_500_000, None)]).unwrap();
        let r4 = rec(4, 3_000_000, None);
        let id4 = r4.id.clone();
        store
            .append(&[
                rec(3, 2_000_000, Some(&id1)),
                r4,
                rec(5, 3_100_000, Some(&id4)),
            ])
            .unwrap();
        assert_eq!(store.last().unwrap().unwrap().seq, 5);
        assert_eq!(store.head().unwrap().unwrap().seq, 5);
        assert_eq!(store.seq_of_id(&id4).unwrap(), Some(4));
        assert_eq!(store.seq_of_id(&id1).unwrap(), Some(1));
        assert_eq!(store.seq_of_id("nope").unwrap(), None);
        // A well-formed id pointing at a record that has another id is not that record.
        let forged = crate::audit::chain::record_id(1_000_000, 2);
        assert_eq!(store.seq_of_id(&forged).unwrap(), None);
        assert_eq!(store.get(2).unwrap().unwrap().seq, 2);
        let seqs: Vec<u64> = store.scan(2).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        // Links: record 3 → decision 1 (earlier batch), 5 → 4 (same batch).
        assert_eq!(store.linked(1).unwrap(), vec![3]);
        assert_eq!(store.linked(4).unwrap(), vec![5]);
        assert!(store.linked(2).unwrap().is_empty());
        // Time index: first record of the second at or before the asked time.
        assert_eq!(store.seq_for_time(0).unwrap(), 0);
        assert_eq!(store.seq_for_time(1_700_000).unwrap(), 1);
        assert_eq!(store.seq_for_time(2_000_000).unwrap(), 3);
        assert_eq!(store.seq_for_time(3_050_000).unwrap(), 4);
        assert_eq!(store.seq_for_time(99_000_000).unwrap(), 4);
    }

    #[test]
    fn a_store_ten_times_its_cache_reads_back_whole() {
        // 1 MiB of cache for ~10 MB of records: sled must evict and reload pages, and every
        // record must come back byte for byte.
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_with_cache(dir.path(), 1 << 20).unwrap();
        let padding = "x".repeat(1000);
        let big = |seq: u64| {
            let entry = format!(r#"{{"event":"e{seq}","detail":"{padding}"}}"#);
            seal(
                seq,
                crate::audit::chain::record_id(1_000_000 + seq as i64, seq),
                1_000_000 + seq as i64,
                RecordKind::Gateway,
                &GENESIS_HASH,
                &entry,
                None,
            )
        };
        let n = 10_000u64;
        let mut first = None;
        for group in (1..=n).collect::<Vec<_>>().chunks(250) {
            let recs: Vec<SealedRecord> = group.iter().map(|&seq| big(seq)).collect();
            first.get_or_insert_with(|| recs[0].bytes.clone());
            store.append(&recs).unwrap();
        }
        assert_eq!(store.get(1).unwrap().unwrap().bytes, first.unwrap());
        assert_eq!(store.get(n / 2).unwrap().unwrap().seq, n / 2);
        let seqs: Vec<u64> = store.scan(1).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    }

    #[test]
    fn reopen_keeps_indexes_and_counts_flushes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(&[rec(1, 5_000_000, None)]).unwrap();
            assert_eq!(store.durable_seq(), 0);
            store.flush().unwrap();
            assert_eq!(store.flush_count(), 1);
            assert_eq!(store.durable_seq(), 1);
        }
        let store = SledStore::open_existing(dir.path()).unwrap();
        assert_eq!(store.last().unwrap().unwrap().seq, 1);
        // Same second as the indexed one: no new time key, still found from seq 1.
        store.append(&[rec(2, 5_500_000, None)]).unwrap();
        assert_eq!(store.seq_for_time(5_600_000).unwrap(), 1);
    }

    #[test]
    fn groups_larger_than_a_block_are_split_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let n = 400u64;
        let recs: Vec<SealedRecord> = (1..=n).map(|i| rec(i, 1_000_000, None)).collect();
        let total: usize = recs.iter().map(|r| r.bytes.len()).sum();
        assert!(total > 2 * BLOCK_BYTES, "the test must span several blocks");
        store.append(&recs).unwrap();
        store.append(&[rec(n + 1, 2_000_000, None)]).unwrap();
        assert!(store.tree.scan_prefix([BLOCK]).count() >= 3);
        for r in &recs {
            assert_eq!(store.get(r.seq).unwrap().unwrap().bytes, r.bytes);
        }
        assert!(store.get(n + 2).unwrap().is_none());
        assert_eq!(store.last().unwrap().unwrap().seq, n + 1);
        let seqs: Vec<u64> = store.scan(150).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, (150..=n + 1).collect::<Vec<_>>());
        // Tampering inside a block touches only that record.
        store.tamper_remove(151).unwrap();
        store.tamper_replace(152, b"forged").unwrap();
        assert!(store.get(151).unwrap().is_none());
        assert_eq!(store.get(152).unwrap().unwrap().bytes, b"forged");
        assert_eq!(store.get(153).unwrap().unwrap().bytes, recs[152].bytes);
        let seqs: Vec<u64> = store.scan(150).take(3).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, vec![150, 152, 153]);
    }

    #[test]
    fn a_store_in_an_older_layout_is_refused_not_read_as_empty() {
        for (old, layout) in OLD_TREES {
            let dir = tempfile::tempdir().unwrap();
            {
                let db = sled::open(dir.path()).unwrap();
                db.open_tree(old).unwrap().insert(b"r1", b"x").unwrap();
                db.flush().unwrap();
            }
            match SledStore::open(dir.path()) {
                Err(AuditError::Store(msg)) => {
                    assert!(
                        msg.contains("older airlock") && msg.contains(layout),
                        "{msg}"
                    )
                }
                other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn links_span_groups_buckets_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        // Decisions 1..=300 (three link buckets); each outcome follows in a later group,
        // and decision 5 also gets an approval step much later.
        let decisions: Vec<SealedRecord> =
            (1..=300).map(|s| rec(s, 1_000 * s as i64, None)).collect();
        let ids: Vec<String> = decisions.iter().map(|r| r.id.clone()).collect();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(&decisions).unwrap();
            for chunk in (0..300u64).collect::<Vec<_>>().chunks(37) {
                let outcomes: Vec<SealedRecord> = chunk
                    .iter()
                    .map(|i| rec(301 + i, 400_000 + *i as i64, Some(&ids[*i as usize])))
                    .collect();
                store.append(&outcomes).unwrap();
            }
            store.append(&[rec(601, 900_000, Some(&ids[4]))]).unwrap();
            for d in [1u64, 5, 127, 128, 129, 255, 256, 300] {
                let mut want = vec![300 + d];
                if d == 5 {
                    want.push(601);
                }
                assert_eq!(store.linked(d).unwrap(), want, "decision {d}");
            }
            store.flush().unwrap();
        }
        // After a restart the newest bucket is read back, not assumed empty.
        let store = SledStore::open(dir.path()).unwrap();
        store.append(&[rec(602, 950_000, Some(&ids[299]))]).unwrap();
        assert_eq!(store.linked(300).unwrap(), vec![600, 602]);
        assert_eq!(store.linked(5).unwrap(), vec![305, 601]);
        assert!(store.linked(601).unwrap().is_empty());
    }

    #[test]
    fn second_open_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        match SledStore::open(dir.path()) {
            Err(AuditError::Locked { .. }) => {}
            other => panic!("expected Locked, got {:?}", other.err()),
        }
    }

    #[test]
    fn open_existing_refuses_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SledStore::open_existing(&dir.path().join("nothing")),
            Err(AuditError::Missing { .. })
        ));
    }
}

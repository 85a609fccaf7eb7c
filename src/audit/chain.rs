//! The stored record and its hash chain.
//!
//! A record is stored as `hash (32 bytes) ‖ body`, where `body` is the canonical encoding:
//!
//! ```text
//! {"v":1,"seq":42,"id":"01HX…","time":"2024-05-01T12:00:00.123456Z","kind":"decision",
//!  "prev_hash":"<64 hex>","entry":{…the entry as serde_json writes it…}}
//! ```
//!
//! and `hash = sha256(body)`. The body bytes are kept exactly as written, so verifying never
//! depends on re-serialising (a later field added to an entry type cannot break old hashes).
//! Because `prev_hash` is inside the body, changing any byte of a record breaks its own hash,
//! and recomputing that hash breaks the next record's `prev_hash`.

use serde::de::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::record::{ApprovalEntry, DecisionEntry, GatewayEvent, OutcomeEntry, SessionEvent};
use super::store::SealedRecord;
use super::AuditError;

/// `prev_hash` of the first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Version of the body layout (`"v"`).
pub const FORMAT_VERSION: u8 = 1;
const HASH_LEN: usize = 32;

/// A record id: a ULID (time-ordered, 26 characters) whose 80-bit random part starts with the
/// record's sequence number, followed by 16 random bits. Ids therefore sort exactly like the
/// chain, even within one millisecond and across restarts, and an id leads straight to its
/// record without an index (the store checks the record there really has that id).
pub fn record_id(time_us: i64, seq: u64) -> String {
    let ms = (time_us.max(0) / 1_000) as u64;
    let low: u16 = rand::random();
    ulid::Ulid::from_parts(ms, (u128::from(seq) << 16) | u128::from(low)).to_string()
}

/// The sequence number a record id carries (see [`record_id`]); `None` if it is not one.
pub fn seq_in_id(id: &str) -> Option<u64> {
    let ulid = ulid::Ulid::from_string(id).ok()?;
    u64::try_from(ulid.random() >> 16).ok()
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A statement was decided (written before it is forwarded).
    Decision,
    /// A decided statement finished (command tags or error).
    Outcome,
    /// A step of an approval trail (request, notification, verdict, expiry…).
    Approval,
    /// A client session connected, authenticated or ended.
    Session,
    /// The gateway started, stopped, reloaded its policy…
    Gateway,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Decision => "decision",
            RecordKind::Outcome => "outcome",
            RecordKind::Approval => "approval",
            RecordKind::Session => "session",
            RecordKind::Gateway => "gateway",
        }
    }

    pub fn parse(text: &str) -> Option<RecordKind> {
        Some(match text {
            "decision" => RecordKind::Decision,
            "outcome" => RecordKind::Outcome,
            "approval" | "verdict" => RecordKind::Approval,
            "session" => RecordKind::Session,
            "gateway" => RecordKind::Gateway,
            _ => return None,
        })
    }
}

/// The payload of a record.
// Decoded one record at a time, never held in bulk: boxing the large variant would only
// make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Decision(DecisionEntry),
    Outcome(OutcomeEntry),
    Approval(ApprovalEntry),
    Session(SessionEvent),
    Gateway(GatewayEvent),
}

impl Entry {
    pub fn kind(&self) -> RecordKind {
        match self {
            Entry::Decision(_) => RecordKind::Decision,
            Entry::Outcome(_) => RecordKind::Outcome,
            Entry::Approval(_) => RecordKind::Approval,
            Entry::Session(_) => RecordKind::Session,
            Entry::Gateway(_) => RecordKind::Gateway,
        }
    }

    /// The decision record this one belongs to (outcomes and approval steps).
    pub fn decision_id(&self) -> Option<&str> {
        match self {
            Entry::Outcome(o) => Some(&o.decision_id),
            Entry::Approval(a) => Some(&a.decision_id),
            _ => None,
        }
    }

    /// Decodes an entry of the given kind from its JSON.
    pub fn from_json(kind: RecordKind, json: &str) -> Result<Entry, serde_json::Error> {
        Ok(match kind {
            RecordKind::Decision => Entry::Decision(serde_json::from_str(json)?),
            RecordKind::Outcome => Entry::Outcome(serde_json::from_str(json)?),
            RecordKind::Approval => Entry::Approval(serde_json::from_str(json)?),
            RecordKind::Session => Entry::Session(serde_json::from_str(json)?),
            RecordKind::Gateway => Entry::Gateway(serde_json::from_str(json)?),
        })
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Decision(e) => e.serialize(s),
            Entry::Outcome(e) => e.serialize(s),
            Entry::Approval(e) => e.serialize(s),
            Entry::Session(e) => e.serialize(s),
            Entry::Gateway(e) => e.serialize(s),
        }
    }
}

/// Builds the stored form of a record: canonical body, its hash, and the bytes to store.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal(
    seq: u64,
    id: String,
    time_us: i64,
    kind: RecordKind,
    prev_hash: &[u8; 32],
    entry_json: &str,
    link: Option<String>,
) -> SealedRecord {
    use std::fmt::Write as _;
    let mut body = String::with_capacity(entry_json.len() + 200);
    // Writing to a String cannot fail.
    let _ = write!(
        body,
        r#"{{"v":{FORMAT_VERSION},"seq":{seq},"id":"{id}","time":"{}","kind":"{}","prev_hash":"{}","entry":"#,
        super::clock::format_time(time_us),
        kind.as_str(),
        hex::encode(prev_hash),
    );
    body.push_str(entry_json);
    body.push('}');
    let hash: [u8; 32] = Sha256::digest(body.as_bytes()).into();
    let mut bytes = Vec::with_capacity(HASH_LEN + body.len());
    bytes.extend_from_slice(&hash);
    bytes.extend_from_slice(body.as_bytes());
    SealedRecord {
        seq,
        id,
        time_us,
        hash,
        bytes,
        link,
    }
}

/// Splits stored bytes into the stored hash and the body.
fn split(bytes: &[u8]) -> Option<(&[u8; 32], &[u8])> {
    if bytes.len() <= HASH_LEN {
        return None;
    }
    let (h, body) = bytes.split_at(HASH_LEN);
    Some((h.try_into().ok()?, body))
}

/// A record's header, borrowed from the stored bytes: enough to filter on time, kind and chain
/// position without decoding the entry.
#[derive(Debug, Deserialize)]
pub struct RecordHeader<'a> {
    pub v: u8,
    pub seq: u64,
    pub id: &'a str,
    pub time: &'a str,
    pub kind: RecordKind,
    pub prev_hash: &'a str,
    #[serde(borrow)]
    pub entry: &'a RawValue,
    /// The stored hash (kept beside the body, not inside it).
    #[serde(skip)]
    pub hash: [u8; 32],
    /// Whether the stored hash is the sha256 of the body.
    #[serde(skip)]
    pub hash_ok: bool,
}

impl<'a> RecordHeader<'a> {
    /// Decodes the header of a stored record. `check_hash` also recomputes the body hash
    /// (what `verify` does); readers that only display records may skip it.
    pub fn decode(
        seq_key: u64,
        bytes: &'a [u8],
        check_hash: bool,
    ) -> Result<RecordHeader<'a>, AuditError> {
        let corrupt = |reason: String| AuditError::Corrupt {
            seq: seq_key,
            reason,
        };
        let (hash, body) = split(bytes).ok_or_else(|| corrupt("too short".into()))?;
        let mut header: RecordHeader<'a> =
            serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
        header.hash = *hash;
        header.hash_ok = !check_hash || Sha256::digest(body).as_slice() == hash.as_slice();
        Ok(header)
    }

    /// Decodes the entry as the type its kind says.
    pub fn entry(&self) -> Result<Entry, AuditError> {
        Entry::from_json(self.kind, self.entry.get()).map_err(|e| AuditError::Corrupt {
            seq: self.seq,
            reason: format!("{} entry: {e}", self.kind.as_str()),
        })
    }

    /// Decodes everything into an owned [`Record`].
    pub fn to_record(&self) -> Result<Record, AuditError> {
        Ok(Record {
            seq: self.seq,
            id: self.id.to_owned(),
            time: self.time.to_owned(),
            kind: self.kind,
            prev_hash: self.prev_hash.to_owned(),
            hash: hex::encode(self.hash),
            entry: self.entry()?,
        })
    }
}

/// One audit record, decoded. Its JSON form (`-o json` of `tail`, raw export) has the stable
/// fields `id, seq, time, kind, prev_hash, hash, entry`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub seq: u64,
    pub time: String,
    pub kind: RecordKind,
    pub prev_hash: String,
    pub hash: String,
    pub entry: Entry,
}

impl Record {
    /// Decodes stored bytes (the hash is not checked: that is `verify`'s job).
    pub fn decode(seq_key: u64, bytes: &[u8]) -> Result<Record, AuditError> {
        RecordHeader::decode(seq_key, bytes, false)?.to_record()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            id: String,
            seq: u64,
            time: String,
            kind: RecordKind,
            prev_hash: String,
            hash: String,
            entry: Box<RawValue>,
        }
        let w = Wire::deserialize(d)?;
        let entry = Entry::from_json(w.kind, w.entry.get()).map_err(D::Error::custom)?;
        Ok(Record {
            id: w.id,
            seq: w.seq,
            time: w.time,
            kind: w.kind,
            prev_hash: w.prev_hash,
            hash: w.hash,
            entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::GatewayEvent;

    fn gateway(event: &str) -> String {
        serde_json::to_string(&GatewayEvent {
            event: event.into(),
            detail: "d \"quoted\"".into(),
        })
        .unwrap()
    }

    #[test]
    fn sealed_record_decodes_and_hash_checks() {
        let s = seal(
            7,
            "01ID".into(),
            1_714_564_800_000_001,
            RecordKind::Gateway,
            &GENESIS_HASH,
            &gateway("started"),
            None,
        );
        let h = RecordHeader::decode(7, &s.bytes, true).unwrap();
        assert!(h.hash_ok);
        assert_eq!(h.seq, 7);
        assert_eq!(h.id, "01ID");
        assert_eq!(h.time, "2024-05-01T12:00:00.000001Z");
        assert_eq!(h.prev_hash, hex::encode(GENESIS_HASH));
        let r = h.to_record().unwrap();
        assert_eq!(r.hash, hex::encode(s.hash));
        match r.entry {
            Entry::Gateway(g) => assert_eq!(g.detail, "d \"quoted\""),
            other => panic!("wrong entry {other:?}"),
        }
    }

    #[test]
    fn any_changed_byte_breaks_the_hash() {
        let s = seal(
            1,
            "01ID".into(),
            1,
            RecordKind::Gateway,
            &GENESIS_HASH,
            &gateway("started"),
            None,
        );
        let mut bytes = s.bytes.clone();
        let pos = bytes.len() - 10;
        bytes[pos] = b'X';
        let h = RecordHeader::decode(1, &bytes, true).unwrap();
        assert!(!h.hash_ok);
    }

    #[test]
    fn record_json_round_trips() {
        let s = seal(
            3,
            "01ID".into(),
            5,
            RecordKind::Gateway,
            &[1; 32],
            &gateway("stopping"),
            None,
        );
        let r = Record::decode(3, &s.bytes).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "gateway");
        assert_eq!(v["entry"]["event"], "stopping");
    }

    #[test]
    fn ids_carry_their_seq_and_sort_like_it() {
        let a = record_id(1_714_564_800_000_000, 41);
        let b = record_id(1_714_564_800_000_000, 42);
        let c = record_id(1_714_564_800_001_000, 7);
        assert_eq!(a.len(), 26);
        assert_eq!(seq_in_id(&a), Some(41));
        assert_eq!(seq_in_id(&b), Some(42));
        assert!(a < b && b < c, "same ms sorts by seq, later ms sorts later");
        assert_eq!(seq_in_id("not-an-id"), None);
        assert_eq!(seq_in_id(""), None);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(matches!(
            RecordHeader::decode(9, b"short", true),
            Err(AuditError::Corrupt { seq: 9, .. })
        ));
        let mut bytes = vec![0u8; 32];
        bytes.extend_from_slice(b"{not json");
        assert!(RecordHeader::decode(9, &bytes, true).is_err());
    }
}

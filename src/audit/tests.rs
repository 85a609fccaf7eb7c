//! Writer, chain and verify tests over a real sled store in a temporary directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::chain::{seal, RecordKind};
use super::store::{RecordIter, SealedRecord};
use super::*;
use crate::policy::Decision;
use crate::sql::{Facts, Kind, TableRef};

pub(crate) fn decision_entry(user: &str, sql: &str) -> DecisionEntry {
    let mut facts = Facts::unknown("SELECT");
    facts.kind = Kind::Read;
    facts.tables_read.push(TableRef {
        schema: "public".into(),
        name: "orders".into(),
    });
    let mut decision = Decision::fail_closed("test");
    decision.action = crate::policy::Action::Allow;
    decision.rule_id = "default.read".into();
    DecisionEntry {
        session: SessionInfo {
            session_id: "s1".into(),
            client_addr: "127.0.0.1:5000".into(),
            user: user.into(),
            application_name: "psql".into(),
            database: "shop".into(),
        },
        protocol: Protocol::Simple,
        sql: sql.into(),
        rewritten_sql: None,
        params: vec![],
        fingerprint: sql.into(),
        facts: vec![facts],
        decision,
        outcome: None,
    }
}

/// Appends records with chosen times (the writer stamps "now"), keeping a valid chain.
pub(crate) struct ChainBuilder {
    pub store: Arc<SledStore>,
    seq: u64,
    prev: [u8; 32],
}

impl ChainBuilder {
    pub fn new(store: Arc<SledStore>) -> ChainBuilder {
        ChainBuilder {
            store,
            seq: 0,
            prev: chain::GENESIS_HASH,
        }
    }

    pub fn push(&mut self, time_us: i64, entry: Entry) -> String {
        self.seq += 1;
        let id = chain::record_id(time_us, self.seq);
        let link = entry.decision_id().map(String::from);
        let rec = seal(
            self.seq,
            id.clone(),
            time_us,
            entry.kind(),
            &self.prev,
            &serde_json::to_string(&entry).unwrap(),
            link,
        );
        self.prev = rec.hash;
        self.store.append(&[rec]).unwrap();
        id
    }
}

fn cfg(durability: Durability, flush_interval_ms: u64) -> AuditConfig {
    AuditConfig {
        path: "unused".into(),
        durability,
        flush_interval_ms,
        ..AuditConfig::default()
    }
}

async fn open(
    dir: &std::path::Path,
    durability: Durability,
    flush_ms: u64,
) -> (Arc<SledStore>, AuditHandle, AuditWriter) {
    let store = Arc::new(SledStore::open(dir).unwrap());
    let (h, w) = Audit::open_with_store(store.clone(), &cfg(durability, flush_ms))
        .await
        .unwrap();
    (store, h, w)
}

async fn write_some(h: &AuditHandle, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = h
            .decision(decision_entry("alice", &format!("SELECT {i}")))
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

fn record(store: &SledStore, seq: u64) -> Record {
    let raw = store.get(seq).unwrap().unwrap();
    Record::decode(raw.seq, &raw.bytes).unwrap()
}

#[tokio::test]
async fn chain_verifies_and_reopen_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    let ids = write_some(&h, 3).await;
    // Appended first, so the outcome is a record of its own (record 4).
    h.settle().await;
    h.outcome(&OutcomeEntry {
        decision_id: ids[0].clone(),
        result: RunResult {
            tags: vec!["SELECT 1".into()],
            error: None,
            rows: 1,
            duration_us: 10,
        },
    })
    .unwrap();
    h.shutdown().await;
    w.wait().await.unwrap();
    assert!(matches!(
        h.decision(decision_entry("a", "x")).await,
        Err(AuditError::Closed)
    ));
    let last_hash = record(&store, 4).hash;
    drop(h);
    drop(store);

    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    let more = write_some(&h, 2).await;
    h.shutdown().await;
    w.wait().await.unwrap();
    let fifth = record(&store, 5);
    assert_eq!(fifth.id, more[0]);
    assert_eq!(fifth.prev_hash, last_hash, "reopen must continue the chain");
    let report = verify(store.as_ref()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 6);
    assert_eq!(report.last_seq, Some(6));
    assert_eq!(report.last_id.as_deref(), Some(more[1].as_str()));
}

#[tokio::test]
async fn ids_and_times_sort_like_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                h.decision(decision_entry("bob", &format!("SELECT {t}, {i}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    h.shutdown().await;
    w.wait().await.unwrap();
    let records: Vec<Record> = store
        .scan(0)
        .map(|r| {
            let r = r.unwrap();
            Record::decode(r.seq, &r.bytes).unwrap()
        })
        .collect();
    assert_eq!(records.len(), 800);
    for pair in records.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert!(pair[0].id < pair[1].id, "{} !< {}", pair[0].id, pair[1].id);
        assert!(pair[0].time <= pair[1].time);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}

#[tokio::test]
async fn strict_mode_answers_only_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Strict, 10).await;
    assert_eq!(store.flush_count(), 0);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let h = h.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = h
                .decision(decision_entry(
                    "carol",
                    &format!("DELETE FROM t WHERE id = {i}"),
                ))
                .await
                .unwrap();
            let seq = store.seq_of_id(&id).unwrap().unwrap();
            // The answer came back: the record must already be durable.
            assert!(
                store.durable_seq() >= seq,
                "answered before flush: seq {seq}, durable {}",
                store.durable_seq()
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let flushes = store.flush_count();
    assert!(flushes >= 1);
    assert!(flushes <= 32, "at most one flush per group, got {flushes}");
    h.shutdown().await;
    w.wait().await.unwrap();
}

#[tokio::test]
async fn batched_mode_does_not_wait_but_verdicts_do() {
    let dir = tempfile::tempdir().unwrap();
    // A flush period far beyond the test: only explicit durability can flush.
    let (store, h, w) = open(dir.path(), Durability::Batched, 3_600_000).await;
    // The interval's first tick fires at once; let it pass with nothing dirty.
    let id = h
        .decision(decision_entry("dave", "SELECT 1"))
        .await
        .unwrap();
    // Queued in chain order at once; appended within a tick, or now when settled.
    h.settle().await;
    let seq = store.seq_of_id(&id).unwrap().unwrap();
    assert_eq!(
        store.flush_count(),
        0,
        "batched decision waited for a flush"
    );
    assert!(store.durable_seq() < seq);

    h.approval(ApprovalEntry {
        request_id: "r1".into(),
        decision_id: id.clone(),
        actor: "erin".into(),
        channel: "teams".into(),
        action: ApprovalAction::Approve,
        rationale: Some("ok".into()),
        at: "2024-05-01T12:00:00Z".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        store.flush_count(),
        1,
        "a verdict must be flushed before it returns"
    );
    assert!(store.durable_seq() > seq);

    let id2 = h
        .decision(decision_entry("dave", "SELECT 2"))
        .await
        .unwrap();
    h.settle().await;
    let seq2 = store.seq_of_id(&id2).unwrap().unwrap();
    assert!(store.durable_seq() < seq2);
    h.shutdown().await;
    assert!(store.durable_seq() >= seq2, "shutdown flushes");
    w.wait().await.unwrap();
}

#[test]
fn borrowed_decision_record_serializes_like_the_entry() {
    let plain = decision_entry("ann", "SELECT 'x'");
    let mut full = plain.clone();
    full.params = vec![Some("1".into()), None];
    full.rewritten_sql = Some("SELECT '***'".into());
    for e in [plain, full] {
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, serde_json::to_string(&e.as_record()).unwrap());
        // Left-out fields read back as their defaults.
        let back: DecisionEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}

#[test]
fn parts_written_from_json_made_earlier_serialize_like_the_values() {
    let mut e = decision_entry("ann", "SELECT 'x'");
    e.params = vec![Some("1".into()), None];
    e.facts.push(e.facts[0].clone());
    let session = Serialized::new(Box::new(e.session.clone()));
    let facts = Serialized::new(Arc::new(e.facts.clone()));
    let decision = Serialized::new(Box::new(e.decision.clone()));
    let record = DecisionRecord {
        session: session.part(),
        facts: facts.part().as_slice(),
        decision: decision.part(),
        ..e.as_record()
    };
    assert_eq!(
        serde_json::to_string(&record).unwrap(),
        serde_json::to_string(&e).unwrap()
    );
    // The values stay reachable for the decisions made from them.
    assert_eq!(record.decision.rule_id, e.decision.rule_id);
    assert_eq!(record.facts.len(), 2);
}

#[test]
fn decision_records_leave_out_what_is_empty() {
    let e = decision_entry("ann", "SELECT 1");
    let json = serde_json::to_string(&e).unwrap();
    for absent in [
        "rewritten_sql",
        "\"params\"",
        "tables_written",
        "\"flags\"",
        "quorum",
    ] {
        assert!(!json.contains(absent), "{absent} in {json}");
    }
    // A record written before fields were left out still reads.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["rewritten_sql"] = serde_json::Value::Null;
    v["params"] = serde_json::json!([]);
    v["decision"]["quorum"] = serde_json::json!(0);
    v["decision"]["approvers"] = serde_json::json!([]);
    let old: DecisionEntry = serde_json::from_value(v).unwrap();
    assert_eq!(old, e);
}

#[tokio::test]
async fn batched_mode_flushes_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    let id = h
        .decision(decision_entry("dave", "SELECT 1"))
        .await
        .unwrap();
    // Queued in chain order at once; appended within a tick, or now when settled.
    h.settle().await;
    let seq = store.seq_of_id(&id).unwrap().unwrap();
    // Wait on the writer's own progress signal rather than a fixed sleep.
    let mut tries = 0;
    while store.durable_seq() < seq {
        tries += 1;
        assert!(tries < 1000, "timer never flushed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    h.shutdown().await;
    w.wait().await.unwrap();
}

#[tokio::test]
async fn secrets_are_redacted_before_storage() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    let mut e = decision_entry("root", "ALTER ROLE app PASSWORD 'hunter2'");
    e.rewritten_sql = Some("CREATE ROLE x PASSWORD 'hunter3'".into());
    e.decision.rewritten = e.rewritten_sql.clone();
    h.decision(e).await.unwrap();
    h.shutdown().await;
    w.wait().await.unwrap();
    let raw = store.get(1).unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw.bytes);
    assert!(
        !text.contains("hunter2") && !text.contains("hunter3"),
        "{text}"
    );
    assert!(text.contains("PASSWORD '********'"));
}

fn tampered_store(n: usize) -> (tempfile::TempDir, Arc<SledStore>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, ids) = rt.block_on(async {
        let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
        let ids = write_some(&h, n).await;
        h.shutdown().await;
        w.wait().await.unwrap();
        (store, ids)
    });
    assert!(verify(store.as_ref()).unwrap().ok());
    (dir, store, ids)
}

#[test]
fn altered_record_fails_verify_at_that_record() {
    let (_dir, store, ids) = tampered_store(5);
    let raw = store.get(3).unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw.bytes[32..]).replace("SELECT 2", "SELECT 9");
    let mut bytes = raw.bytes[..32].to_vec();
    bytes.extend_from_slice(text.as_bytes());
    store.tamper_replace(3, &bytes).unwrap();
    let report = verify(store.as_ref()).unwrap();
    let b = report.broken.expect("verify must fail");
    assert_eq!(b.kind, BreakKind::HashMismatch);
    assert_eq!(b.seq, 3);
    assert_eq!(b.id.as_deref(), Some(ids[2].as_str()));
    assert_eq!(report.records, 2);
}

#[test]
fn altered_and_rehashed_record_fails_at_the_next_link() {
    let (_dir, store, ids) = tampered_store(5);
    let original = record(&store, 3);
    // A careful forger recomputes the hash of the altered record…
    let mut entry = match original.entry {
        Entry::Decision(d) => d,
        other => panic!("{other:?}"),
    };
    entry.sql = "SELECT 'innocent'".into();
    let prev: [u8; 32] = hex::decode(&original.prev_hash)
        .unwrap()
        .try_into()
        .unwrap();
    let forged = seal(
        3,
        original.id.clone(),
        parse_time(&original.time).unwrap(),
        RecordKind::Decision,
        &prev,
        &serde_json::to_string(&entry).unwrap(),
        None,
    );
    store.tamper_replace(3, &forged.bytes).unwrap();
    // …which the next record's prev_hash still gives away.
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!(b.kind, BreakKind::PrevHashMismatch);
    assert_eq!(b.seq, 4);
    assert_eq!(b.id.as_deref(), Some(ids[3].as_str()));
    assert!(b.detail.contains(&ids[2]), "{}", b.detail);
}

#[test]
fn deleted_record_fails_verify_at_the_gap() {
    let (_dir, store, ids) = tampered_store(5);
    store.tamper_remove(3).unwrap();
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!(b.kind, BreakKind::Missing);
    assert_eq!(b.seq, 3);
    // Nothing refers to a decision without outcome: named by its neighbours.
    assert_eq!(b.id, None);
    assert!(
        b.detail.contains(&ids[1]) && b.detail.contains(&ids[3]),
        "{}",
        b.detail
    );
}

#[tokio::test]
async fn a_deleted_decision_is_named_by_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    write_some(&h, 2).await;
    let id = h
        .decision(decision_entry("mallory", "DROP TABLE audit_me"))
        .await
        .unwrap();
    h.settle().await;
    h.outcome(&OutcomeEntry {
        decision_id: id.clone(),
        result: RunResult {
            tags: vec!["DROP TABLE".into()],
            error: None,
            rows: 0,
            duration_us: 1,
        },
    })
    .unwrap();
    h.shutdown().await;
    w.wait().await.unwrap();
    store.tamper_remove(3).unwrap();
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!((b.kind, b.seq), (BreakKind::Missing, 3));
    assert_eq!(b.id.as_deref(), Some(id.as_str()));
}

#[test]
fn records_cut_from_the_end_are_reported() {
    let (_dir, store, ids) = tampered_store(5);
    store.tamper_remove(5).unwrap();
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!(b.kind, BreakKind::Missing);
    assert_eq!(b.seq, 5);
    assert!(b.detail.contains("cut from the end"), "{}", b.detail);
    assert!(store.seq_of_id(&ids[4]).unwrap().is_none());
}

/// A tail cut hides best with the head removed as well: a store with records and no head is
/// reported, whether or not the tail was cut too.
#[test]
fn a_removed_head_is_reported() {
    let (_dir, store, _ids) = tampered_store(5);
    assert!(verify(store.as_ref()).unwrap().broken.is_none());
    store.tamper_remove_head().unwrap();
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!((b.kind, b.seq), (BreakKind::HeadMismatch, 5));
    store.tamper_remove(5).unwrap();
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!((b.kind, b.seq), (BreakKind::HeadMismatch, 4));
    assert!(b.detail.contains("no head"), "{}", b.detail);
}

#[test]
fn deleting_the_first_record_is_reported() {
    let (_dir, store, _ids) = tampered_store(3);
    store.tamper_remove(1).unwrap();
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!((b.kind, b.seq), (BreakKind::Missing, 1));
}

#[test]
fn reopening_after_a_cut_does_not_reuse_the_missing_seq() {
    let (dir, store, _ids) = tampered_store(4);
    store.tamper_remove(4).unwrap();
    drop(store);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, id) = rt.block_on(async {
        let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
        let id = h.decision(decision_entry("x", "SELECT 1")).await.unwrap();
        h.shutdown().await;
        w.wait().await.unwrap();
        (store, id)
    });
    assert_eq!(store.seq_of_id(&id).unwrap(), Some(5));
    let b = verify(store.as_ref()).unwrap().broken.expect("must fail");
    assert_eq!((b.kind, b.seq), (BreakKind::Missing, 4));
}

/// A store whose appends fail on demand, to check the writer keeps the chain contiguous.
struct Flaky {
    inner: SledStore,
    fail: AtomicBool,
}

impl AuditStore for Flaky {
    fn append(&self, batch: &[SealedRecord]) -> Result<(), AuditError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(AuditError::Store("disk full".into()));
        }
        self.inner.append(batch)
    }
    fn flush(&self) -> Result<(), AuditError> {
        self.inner.flush()
    }
    fn last(&self) -> Result<Option<RawRecord>, AuditError> {
        self.inner.last()
    }
    fn head(&self) -> Result<Option<Head>, AuditError> {
        self.inner.head()
    }
    fn get(&self, seq: u64) -> Result<Option<RawRecord>, AuditError> {
        self.inner.get(seq)
    }
    fn seq_of_id(&self, id: &str) -> Result<Option<u64>, AuditError> {
        self.inner.seq_of_id(id)
    }
    fn seq_for_time(&self, t: i64) -> Result<u64, AuditError> {
        self.inner.seq_for_time(t)
    }
    fn scan(&self, from: u64) -> RecordIter<'_> {
        self.inner.scan(from)
    }
    fn linked(&self, seq: u64) -> Result<Vec<u64>, AuditError> {
        self.inner.linked(seq)
    }
}

#[tokio::test]
async fn a_failed_append_is_reported_and_leaves_no_hole() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky {
        inner: SledStore::open(dir.path()).unwrap(),
        fail: AtomicBool::new(false),
    });
    let (h, w) = Audit::open_with_store(flaky.clone(), &cfg(Durability::Strict, 10))
        .await
        .unwrap();
    h.decision(decision_entry("a", "SELECT 1")).await.unwrap();
    flaky.fail.store(true, Ordering::SeqCst);
    let err = h.decision(decision_entry("a", "SELECT 2")).await;
    assert!(
        matches!(err, Err(AuditError::Store(_))),
        "the caller must not forward: {err:?}"
    );
    flaky.fail.store(false, Ordering::SeqCst);
    let id = h.decision(decision_entry("a", "SELECT 3")).await.unwrap();
    assert_eq!(flaky.seq_of_id(&id).unwrap(), Some(2));
    h.shutdown().await;
    w.wait().await.unwrap();
    assert!(verify(flaky.as_ref()).unwrap().ok());
}

#[tokio::test]
async fn show_gathers_outcome_and_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let (store, h, w) = open(dir.path(), Durability::Batched, 5).await;
    write_some(&h, 1).await;
    let id = h
        .decision(decision_entry("eve", "DROP TABLE t"))
        .await
        .unwrap();
    for (actor, action) in [
        ("airlock", ApprovalAction::Requested),
        ("frank", ApprovalAction::Approve),
    ] {
        h.approval(ApprovalEntry {
            request_id: "r9".into(),
            decision_id: id.clone(),
            actor: actor.into(),
            channel: "web".into(),
            action,
            rationale: None,
            at: "2024-05-01T12:00:00Z".into(),
        })
        .await
        .unwrap();
    }
    h.outcome(&OutcomeEntry {
        decision_id: id.clone(),
        result: RunResult {
            tags: vec![],
            error: Some(("42P01".into(), "table \"t\" does not exist".into())),
            rows: 0,
            duration_us: 7,
        },
    })
    .unwrap();
    h.shutdown().await;
    w.wait().await.unwrap();

    let by_decision = view::show(store.as_ref(), &id).unwrap().unwrap();
    let st = by_decision.statement.clone().unwrap();
    assert_eq!(st.id, id);
    assert_eq!(st.approvals.len(), 2);
    assert_eq!(st.approvals[1].actor, "frank");
    assert_eq!(
        st.outcome
            .as_ref()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .sqlstate,
        "42P01"
    );
    assert!(by_decision.chain.prev_link_ok && by_decision.chain.next_link_ok);
    assert_eq!(by_decision.chain.seq, 2);
    // The outcome's own id leads to the same statement.
    let outcome_id = st.outcome.unwrap().id;
    let by_outcome = view::show(store.as_ref(), &outcome_id).unwrap().unwrap();
    assert_eq!(by_outcome.record.kind, RecordKind::Outcome);
    assert_eq!(by_outcome.statement.unwrap().id, id);
    assert!(view::show(store.as_ref(), "nope").unwrap().is_none());
}

fn ran(decision_id: &str, tag: &str) -> OutcomeEntry {
    OutcomeEntry {
        decision_id: decision_id.into(),
        result: RunResult {
            tags: vec![tag.into()],
            error: Some(("57014".into(), "canceling statement".into())),
            rows: 3,
            duration_us: 42,
        },
    }
}

#[tokio::test]
async fn an_outcome_folds_into_its_queued_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    // The writer takes the queue only at shutdown: every outcome finds its decision queued.
    let (h, w) = super::writer::start_with(
        store.clone(),
        Durability::Batched,
        5,
        std::time::Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let first = h
        .decision(decision_entry("alice", "SELECT 1"))
        .await
        .unwrap();
    let second = h
        .decision(decision_entry("alice", "SELECT 2"))
        .await
        .unwrap();
    // Out of order, as concurrent sessions finish: each lands in its own decision.
    h.outcome(&ran(&second, "SELECT 2")).unwrap();
    h.outcome(&ran(&first, "SELECT 1")).unwrap();
    // A second outcome for the same decision cannot overwrite the first: it is a record.
    h.outcome(&ran(&first, "SELECT 9")).unwrap();
    h.shutdown().await;
    w.wait().await.unwrap();

    assert_eq!(store.last().unwrap().unwrap().seq, 3);
    for (seq, id, tag) in [(1, &first, "SELECT 1"), (2, &second, "SELECT 2")] {
        let r = record(&store, seq);
        assert_eq!(&r.id, id);
        let Entry::Decision(d) = r.entry else {
            panic!("record {seq} is not a decision");
        };
        let o = d.outcome.expect("outcome folded in");
        assert_eq!(
            (o.tags, o.rows, o.duration_us),
            (vec![tag.to_owned()], 3, 42)
        );
        assert_eq!(o.error.unwrap().0, "57014");
        let v = view::show(store.as_ref(), id).unwrap().unwrap();
        let st = v.statement.unwrap();
        let ov = st.outcome.expect("the view reads the folded outcome");
        assert_eq!((ov.id.as_str(), ov.seq), (id.as_str(), seq));
        assert_eq!(ov.error.unwrap().sqlstate, "57014");
    }
    assert_eq!(record(&store, 3).kind, RecordKind::Outcome);
    assert!(verify(store.as_ref()).unwrap().broken.is_none());
}

#[tokio::test]
async fn an_outcome_after_its_decision_left_the_queue_is_a_record() {
    for durability in [Durability::Batched, Durability::Strict] {
        let dir = tempfile::tempdir().unwrap();
        let (store, h, w) = open(dir.path(), durability, 5).await;
        let id = h.decision(decision_entry("bob", "SELECT 1")).await.unwrap();
        if durability == Durability::Batched {
            h.settle().await;
        }
        h.outcome(&ran(&id, "SELECT 1")).unwrap();
        h.shutdown().await;
        w.wait().await.unwrap();
        let Entry::Decision(d) = record(&store, 1).entry else {
            panic!("record 1 is not a decision");
        };
        assert!(d.outcome.is_none(), "{durability:?}");
        let r = record(&store, 2);
        assert_eq!(r.kind, RecordKind::Outcome, "{durability:?}");
        let st = view::show(store.as_ref(), &id)
            .unwrap()
            .unwrap()
            .statement
            .unwrap();
        assert_eq!(st.outcome.unwrap().id, r.id, "{durability:?}");
    }
}

#[test]
fn outcome_records_keep_their_flat_shape() {
    // Stores written before `RunResult` existed hold these fields beside `decision_id`.
    let stored =
        r#"{"decision_id":"d1","tags":["SELECT 3"],"error":null,"rows":3,"duration_us":9}"#;
    let e: OutcomeEntry = serde_json::from_str(stored).unwrap();
    assert_eq!(e.result.tags, vec!["SELECT 3"]);
    assert_eq!((e.result.rows, e.result.duration_us), (3, 9));
    assert_eq!(serde_json::to_string(&e).unwrap(), stored);
}

//! The single audit writer and the handle sessions use to reach it.
//!
//! Sessions never wait for the writer in `batched` mode. Enqueuing a record assigns its
//! sequence number, time and id under one short lock, so queue order is chain order and the
//! caller knows the record's id at once; the statement is forwarded right after. The writer, an
//! OS thread of its own (sled appends and fsyncs block), wakes every [`APPEND_EVERY`] while
//! records are queued, or at once when someone waits, takes the whole queue, seals it (hash
//! chain) and appends it to the store as one group (after a crash the store holds a prefix of
//! the chain). Waking it per record cost two context switches per statement, which at tens of
//! thousands of statements a second was most of the gateway's CPU.
//!
//! Group commit: callers that need durability (strict mode, approval verdicts, gateway events,
//! explicit flushes) make the writer append and flush at once, and everything queued meanwhile
//! rides along; while it flushes, the next group queues up. In batched mode the writer also
//! flushes every `flush_interval_ms` while there are unflushed records.
//!
//! A failed append rewinds the chain to the first record of the failed group and fails every
//! record queued after it, so the stored chain never has a hole. Until an append succeeds
//! again, decisions wait for their own append result even in batched mode: a store that is
//! failing makes the gateway refuse statements instead of running them unaudited.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{oneshot, watch, Notify};

use super::chain::{record_id, seq_in_id, RecordKind};
use super::clock::now_micros;
use super::record::{
    ApprovalEntry, DecisionEntry, DecisionRecord, GatewayEvent, OutcomeEntry, Part, SessionEvent,
};
use super::redact::redact_passwords;
use super::store::AuditStore;
use super::{AuditError, Durability};
use crate::policy::Decision;
use thread::{Chain, Writer};

mod thread;

/// Most records sealed into one append.
pub const MAX_BATCH: usize = 4096;
/// Queued records beyond which sessions wait for the writer (backpressure) rather than grow
/// memory without bound.
const QUEUE: usize = 16 * 1024;
/// How long a queued record waits, at most, before the writer appends it (when nobody is
/// waiting for it). Readers in this process call [`AuditHandle::settle`] to skip the wait.
///
/// Every append is one sled batch, and sled rolls its log buffer on both sides of a batch:
/// each roll allocates a fresh 512 KiB buffer and wakes sled's whole I/O thread pool. At 5 ms
/// that cost ~0.3 context switches per statement more than 10 ms with one client (measured);
/// 10 ms, the default flush interval, widens what a crash can lose by 5 ms.
pub const APPEND_EVERY: Duration = Duration::from_millis(10);
/// A queue this long wakes the writer before the timer does.
const WAKE_AT: usize = 1024;

type Reply = oneshot::Sender<Result<String, AuditError>>;

/// A record waiting for the writer. Its place in the chain is already fixed.
struct Queued {
    seq: u64,
    id: String,
    time_us: i64,
    kind: RecordKind,
    entry_json: String,
    link: Option<String>,
    /// Answer only once flushed.
    durable: bool,
    /// Someone waits for the append (or the flush, when `durable`).
    reply: Option<Reply>,
    /// A decision that already carries its outcome.
    folded: bool,
}

/// Everything behind the lock: the chain's next position and what waits for the writer.
struct Queue {
    next_seq: u64,
    last_time_us: i64,
    items: Vec<Queued>,
    /// Someone waits: append (and maybe flush) now rather than at the next tick.
    urgent: bool,
    /// Waiters for "everything so far", each with the last sequence number assigned when it
    /// asked: it is answered once the group holding that record is appended (and flushed),
    /// however busy the queue stays behind it.
    flushes: Vec<(u64, oneshot::Sender<Result<(), AuditError>>)>,
    settles: Vec<(u64, oneshot::Sender<()>)>,
    shutdown: Option<oneshot::Sender<()>>,
    /// No more records are accepted (shutdown asked, or every handle dropped).
    closed: bool,
    /// Every handle is gone: the writer drains, flushes and stops.
    orphaned: bool,
}

impl Queue {
    /// Record time: now, but never before the previous record, so time order is chain order
    /// (the time index and `--until` rely on it).
    fn tick(&mut self) -> i64 {
        let t = now_micros().max(self.last_time_us);
        self.last_time_us = t;
        t
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// The writer sleeps on it.
    wake: Condvar,
    /// Sessions waiting for room in a full queue.
    room: Notify,
    /// The last append failed (see the module doc).
    degraded: AtomicBool,
}

/// Marks the queue orphaned when the last handle goes, so the writer can finish.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock();
        q.closed = true;
        q.orphaned = true;
        drop(q);
        self.0.wake.notify_one();
    }
}

/// What the sessions, the approval registry and the gateway hold. Cheap to clone.
#[derive(Clone)]
pub struct AuditHandle {
    owner: Arc<Owner>,
    durability: Durability,
    store: Arc<dyn AuditStore>,
    appended: watch::Receiver<u64>,
}

/// The running writer. Await [`AuditWriter::wait`] after [`AuditHandle::shutdown`] (or after
/// dropping every handle) to know the last records are flushed.
pub struct AuditWriter {
    done: oneshot::Receiver<Result<(), AuditError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditWriter {
    /// Resolves when the writer has flushed and stopped; its error if it stopped on one.
    pub async fn wait(mut self) -> Result<(), AuditError> {
        let result = (&mut self.done).await.unwrap_or(Err(AuditError::Closed));
        if let Some(thread) = self.thread.take() {
            // The thread has sent its result; joining only reaps it.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

/// How a caller waits for its record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not at all: the record is queued in chain order.
    No,
    /// Until it is appended to the store.
    Appended,
    /// Until it is flushed to disk.
    Durable,
}

impl AuditHandle {
    /// Writes the decision record of a statement and returns its id: call it, and forward the
    /// statement only on `Ok`. In batched mode the record is queued in chain order and the id
    /// returned at once; in strict mode this returns once the record is on disk.
    pub async fn decision(&self, e: DecisionEntry) -> Result<String, AuditError> {
        self.decision_of(&e.as_record()).await
    }

    /// [`AuditHandle::decision`] from borrowed parts (the session's hot path).
    pub async fn decision_of(&self, e: &DecisionRecord<'_>) -> Result<String, AuditError> {
        // Secrets are redacted by the classifier already; this is the last line of defence.
        let sql = redact_passwords(e.sql);
        let fingerprint = redact_passwords(e.fingerprint);
        let rewritten_sql = e.rewritten_sql.map(redact_passwords);
        let redacted_decision;
        let decision = match e.decision.rewritten.as_deref().map(redact_passwords) {
            Some(Cow::Owned(rw)) => {
                redacted_decision = Decision {
                    rewritten: Some(rw),
                    ..Decision::clone(&e.decision)
                };
                Part::new(&redacted_decision)
            }
            _ => e.decision,
        };
        let json = serde_json::to_string(&DecisionRecord {
            sql: &sql,
            fingerprint: &fingerprint,
            rewritten_sql: rewritten_sql.as_deref(),
            decision,
            ..*e
        })?;
        let wait = if self.strict() {
            Wait::Durable
        } else if self.shared().degraded.load(Ordering::Acquire) {
            Wait::Appended
        } else {
            Wait::No
        };
        self.room().await;
        self.submit(RecordKind::Decision, json, None, wait).await
    }

    /// Records the outcome of a decided statement. Never waits: nothing is held back by an
    /// outcome. While the decision record is still queued (batched mode, the writer not yet
    /// past it) the outcome is folded into it, so a statement costs one record, not two;
    /// otherwise it is queued as an outcome record linked to its decision.
    pub fn outcome(&self, e: &OutcomeEntry) -> Result<(), AuditError> {
        let result = serde_json::to_string(&e.result)?;
        if self.fold(&e.decision_id, &result)? {
            return Ok(());
        }
        let json = serde_json::to_string(e)?;
        self.enqueue(
            RecordKind::Outcome,
            json,
            Some(e.decision_id.clone()),
            Wait::No,
        )
        .map(drop)
    }

    /// Appends `"outcome": result` to the queued decision record `decision_id`; false when it
    /// is no longer queued (or already has one). The record's place, time and id stay as they
    /// were: it is sealed only when the writer takes it.
    fn fold(&self, decision_id: &str, result: &str) -> Result<bool, AuditError> {
        let Some(seq) = seq_in_id(decision_id) else {
            return Ok(false);
        };
        let mut q = self.shared().queue.lock();
        if q.closed {
            return Err(AuditError::Closed);
        }
        // Queued records hold consecutive sequence numbers: the decision's index is its offset.
        let Some(first) = q.items.first().map(|r| r.seq) else {
            return Ok(false);
        };
        let Some(r) = seq
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| q.items.get_mut(i))
        else {
            return Ok(false);
        };
        if r.seq != seq
            || r.id != decision_id
            || r.kind != RecordKind::Decision
            || r.folded
            || !r.entry_json.ends_with('}')
        {
            return Ok(false);
        }
        r.entry_json.pop();
        r.entry_json.push_str(",\"outcome\":");
        r.entry_json.push_str(result);
        r.entry_json.push('}');
        r.folded = true;
        Ok(true)
    }

    /// Writes a step of an approval trail. Always flushed before it returns: a verdict is on
    /// disk before the waiting client is released.
    pub async fn approval(&self, mut e: ApprovalEntry) -> Result<(), AuditError> {
        if let Some(r) = &mut e.rationale {
            redact_in_place(r);
        }
        let json = serde_json::to_string(&e)?;
        let link = Some(e.decision_id.clone());
        self.submit(RecordKind::Approval, json, link, Wait::Durable)
            .await
            .map(drop)
    }

    /// Writes a session lifecycle event (on disk before it returns in strict mode).
    pub async fn session_event(&self, e: SessionEvent) -> Result<(), AuditError> {
        let json = serde_json::to_string(&e)?;
        let wait = if self.strict() {
            Wait::Durable
        } else {
            Wait::No
        };
        self.submit(RecordKind::Session, json, None, wait)
            .await
            .map(drop)
    }

    /// Writes a gateway event (start, stop, policy reload). Always flushed: they are rare and
    /// an investigator needs them.
    pub async fn gateway_event(&self, e: GatewayEvent) -> Result<(), AuditError> {
        let json = serde_json::to_string(&e)?;
        self.submit(RecordKind::Gateway, json, None, Wait::Durable)
            .await
            .map(drop)
    }

    /// Appends and flushes everything queued so far.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        {
            let mut q = self.shared().queue.lock();
            if q.orphaned {
                return Err(AuditError::Closed);
            }
            let upto = q.next_seq - 1;
            q.flushes.push((upto, reply));
            q.urgent = true;
        }
        self.shared().wake.notify_one();
        rx.await.unwrap_or(Err(AuditError::Closed))
    }

    /// Returns once everything queued so far is appended (readable in the store), without
    /// waiting for a flush. Readers in this process call it first so they see every record
    /// written before their request.
    pub async fn settle(&self) {
        let (reply, rx) = oneshot::channel();
        {
            let mut q = self.shared().queue.lock();
            if q.orphaned || q.shutdown.is_some() {
                return;
            }
            let upto = q.next_seq - 1;
            q.settles.push((upto, reply));
            q.urgent = true;
        }
        self.shared().wake.notify_one();
        let _ = rx.await;
    }

    /// Appends what is queued, flushes, and stops the writer. Later calls fail with
    /// [`AuditError::Closed`]. Safe to call more than once.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        {
            let mut q = self.shared().queue.lock();
            if q.shutdown.is_some() || q.orphaned {
                return;
            }
            q.closed = true;
            q.shutdown = Some(reply);
        }
        self.shared().wake.notify_one();
        let _ = rx.await;
    }

    /// The store, for readers in the same process (the admin audit API).
    pub fn store(&self) -> Arc<dyn AuditStore> {
        self.store.clone()
    }

    /// The sequence number of the last appended record, updated live (`tail -f`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.clone()
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn strict(&self) -> bool {
        self.durability == Durability::Strict
    }

    fn shared(&self) -> &Shared {
        &self.owner.0
    }

    /// Waits while the queue is full.
    async fn room(&self) {
        loop {
            let notified = self.shared().room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared().queue.lock().items.len() < QUEUE {
                return;
            }
            self.shared().wake.notify_one();
            notified.await;
        }
    }

    async fn submit(
        &self,
        kind: RecordKind,
        entry_json: String,
        link: Option<String>,
        wait: Wait,
    ) -> Result<String, AuditError> {
        let (id, rx) = self.enqueue(kind, entry_json, link, wait)?;
        match rx {
            Some(rx) => rx.await.unwrap_or(Err(AuditError::Closed)),
            None => Ok(id),
        }
    }

    /// Fixes the record's place in the chain and queues it.
    #[allow(clippy::type_complexity)]
    fn enqueue(
        &self,
        kind: RecordKind,
        entry_json: String,
        link: Option<String>,
        wait: Wait,
    ) -> Result<
        (
            String,
            Option<oneshot::Receiver<Result<String, AuditError>>>,
        ),
        AuditError,
    > {
        let (reply, rx) = match wait {
            Wait::No => (None, None),
            _ => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
        };
        let wake = {
            let mut q = self.shared().queue.lock();
            if q.closed {
                return Err(AuditError::Closed);
            }
            let seq = q.next_seq;
            q.next_seq += 1;
            let time_us = q.tick();
            let id = record_id(time_us, seq);
            q.items.push(Queued {
                seq,
                id: id.clone(),
                time_us,
                kind,
                entry_json,
                link,
                durable: wait == Wait::Durable,
                reply,
                folded: false,
            });
            if wait != Wait::No {
                q.urgent = true;
            }
            // The first record of an empty queue starts the writer's tick; a long queue or a
            // waiting caller cuts it short.
            let n = q.items.len();
            let wake = wait != Wait::No || n == 1 || n == WAKE_AT;
            (wake, id)
        };
        if wake.0 {
            self.shared().wake.notify_one();
        }
        Ok((wake.1, rx))
    }
}

/// Applies [`redact_passwords`] without copying text that has nothing to redact.
fn redact_in_place(text: &mut String) {
    if let std::borrow::Cow::Owned(s) = redact_passwords(text) {
        *text = s;
    }
}

pub(super) async fn start(
    store: Arc<dyn AuditStore>,
    durability: Durability,
    flush_interval_ms: u64,
) -> Result<(AuditHandle, AuditWriter), AuditError> {
    start_with(store, durability, flush_interval_ms, APPEND_EVERY).await
}

/// [`start`] with another append tick: tests use a long one to decide when the writer takes
/// the queue (a settle, flush or shutdown) instead of racing its timer.
pub(super) async fn start_with(
    store: Arc<dyn AuditStore>,
    durability: Durability,
    flush_interval_ms: u64,
    append_every: Duration,
) -> Result<(AuditHandle, AuditWriter), AuditError> {
    let loader = store.clone();
    let chain = tokio::task::spawn_blocking(move || Chain::load(loader.as_ref()))
        .await
        .map_err(|e| AuditError::Store(format!("reading the chain head panicked: {e}")))??;
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            next_seq: chain.next_seq,
            last_time_us: chain.last_time_us,
            items: Vec::with_capacity(WAKE_AT),
            urgent: false,
            flushes: Vec::new(),
            settles: Vec::new(),
            shutdown: None,
            closed: false,
            orphaned: false,
        }),
        wake: Condvar::new(),
        room: Notify::new(),
        degraded: AtomicBool::new(false),
    });
    let (appended_tx, appended) = watch::channel(chain.next_seq - 1);
    let (done_tx, done) = oneshot::channel();
    let writer = Writer {
        shared: shared.clone(),
        store: store.clone(),
        chain,
        flush_interval: Duration::from_millis(flush_interval_ms.max(1)),
        append_every,
        appended: appended_tx,
        dirty: false,
        last_flush: Instant::now(),
    };
    let thread = std::thread::Builder::new()
        .name("airlock-audit".into())
        .spawn(move || {
            let result = writer.run();
            if let Err(e) = &result {
                tracing::error!(error = %e, "audit writer stopped");
            }
            let _ = done_tx.send(result);
        })?;
    let handle = AuditHandle {
        owner: Arc::new(Owner(shared)),
        durability,
        store,
        appended,
    };
    Ok((
        handle,
        AuditWriter {
            done,
            thread: Some(thread),
        },
    ))
}

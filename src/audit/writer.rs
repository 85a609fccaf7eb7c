//! The single audit writer and the handle sessions use to reach it.
//!
//! One writer owns the chain (next sequence number, previous hash, last time), so sealing needs
//! no lock. It runs on its own OS thread with a small current-thread runtime: sled appends and
//! fsyncs block, and they must never stall the gateway's runtime.
//!
//! Group commit: the writer takes whatever is queued (up to [`MAX_BATCH`]), seals it, appends it
//! as one atomic batch, then
//! * answers callers that only need the append (batched mode);
//! * flushes once and answers the callers that need durability (strict mode, approval verdicts,
//!   gateway events, explicit flushes). While it flushes, the next group queues up.
//!
//! In batched mode a timer flushes every `flush_interval_ms` in the background, so sessions never
//! wait on the disk.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::chain::{record_id, seal, RecordHeader, RecordKind, GENESIS_HASH};
use super::clock::now_micros;
use super::record::{ApprovalEntry, DecisionEntry, GatewayEvent, OutcomeEntry, SessionEvent};
use super::redact::redact_passwords;
use super::store::{AuditStore, SealedRecord};
use super::{AuditError, Durability};

/// Most records sealed into one append.
pub const MAX_BATCH: usize = 4096;
/// Queue between sessions and the writer; a full queue makes sessions wait (backpressure)
/// rather than grow memory without bound.
const QUEUE: usize = 16 * 1024;

type Reply = oneshot::Sender<Result<String, AuditError>>;

struct Pending {
    kind: RecordKind,
    entry_json: String,
    link: Option<String>,
    /// Answer only once flushed.
    durable: bool,
    reply: Reply,
}

enum Msg {
    Append(Pending),
    Flush(oneshot::Sender<Result<(), AuditError>>),
    Shutdown(oneshot::Sender<()>),
}

/// What the sessions, the approval registry and the gateway hold. Cheap to clone.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Msg>,
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

impl AuditHandle {
    /// Writes the decision record of a statement and returns its id. Returns once appended,
    /// and in strict mode once flushed: call it, and forward the statement only on `Ok`.
    pub async fn decision(&self, mut e: DecisionEntry) -> Result<String, AuditError> {
        redact_in_place(&mut e.sql);
        redact_in_place(&mut e.fingerprint);
        if let Some(rw) = &mut e.rewritten_sql {
            redact_in_place(rw);
        }
        if let Some(rw) = &mut e.decision.rewritten {
            redact_in_place(rw);
        }
        let json = serde_json::to_string(&e)?;
        self.submit(RecordKind::Decision, json, None, self.strict())
            .await
    }

    /// Writes the outcome of a decided statement (durable per the durability setting).
    pub async fn outcome(&self, e: OutcomeEntry) -> Result<(), AuditError> {
        let json = serde_json::to_string(&e)?;
        self.submit(
            RecordKind::Outcome,
            json,
            Some(e.decision_id),
            self.strict(),
        )
        .await
        .map(drop)
    }

    /// Writes a step of an approval trail. Always flushed before it returns: a verdict is on
    /// disk before the waiting client is released.
    pub async fn approval(&self, mut e: ApprovalEntry) -> Result<(), AuditError> {
        if let Some(r) = &mut e.rationale {
            redact_in_place(r);
        }
        let json = serde_json::to_string(&e)?;
        self.submit(RecordKind::Approval, json, Some(e.decision_id), true)
            .await
            .map(drop)
    }

    /// Writes a session lifecycle event (durable per the durability setting).
    pub async fn session_event(&self, e: SessionEvent) -> Result<(), AuditError> {
        let json = serde_json::to_string(&e)?;
        self.submit(RecordKind::Session, json, None, self.strict())
            .await
            .map(drop)
    }

    /// Writes a gateway event (start, stop, policy reload). Always flushed: they are rare and
    /// an investigator needs them.
    pub async fn gateway_event(&self, e: GatewayEvent) -> Result<(), AuditError> {
        let json = serde_json::to_string(&e)?;
        self.submit(RecordKind::Gateway, json, None, true)
            .await
            .map(drop)
    }

    /// Flushes everything appended so far.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        rx.await.unwrap_or(Err(AuditError::Closed))
    }

    /// Appends what is queued, flushes, and stops the writer. Later calls fail with
    /// [`AuditError::Closed`]. Safe to call more than once.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).await.is_ok() {
            let _ = rx.await;
        }
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

    async fn submit(
        &self,
        kind: RecordKind,
        entry_json: String,
        link: Option<String>,
        durable: bool,
    ) -> Result<String, AuditError> {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            kind,
            entry_json,
            link,
            durable,
            reply,
        };
        self.tx
            .send(Msg::Append(pending))
            .await
            .map_err(|_| AuditError::Closed)?;
        rx.await.unwrap_or(Err(AuditError::Closed))
    }
}

/// Applies [`redact_passwords`] without copying text that has nothing to redact.
fn redact_in_place(text: &mut String) {
    if let std::borrow::Cow::Owned(s) = redact_passwords(text) {
        *text = s;
    }
}

/// Where the chain continues.
struct Chain {
    next_seq: u64,
    prev_hash: [u8; 32],
    last_time_us: i64,
}

impl Chain {
    /// Continues from the store's head. If the last record is gone but the head remembers it,
    /// the head wins: reusing a deleted record's sequence number would hide the deletion.
    fn load(store: &dyn AuditStore) -> Result<Chain, AuditError> {
        let last = store.last()?;
        let head = store.head()?;
        let mut chain = Chain {
            next_seq: 1,
            prev_hash: GENESIS_HASH,
            last_time_us: i64::MIN,
        };
        if let Some(raw) = &last {
            let h = RecordHeader::decode(raw.seq, &raw.bytes, false)?;
            chain.next_seq = raw.seq + 1;
            chain.prev_hash = h.hash;
            chain.last_time_us = super::clock::parse_time(h.time).unwrap_or(i64::MIN);
        }
        if let Some(head) = head {
            if last.as_ref().map(|r| r.seq) != Some(head.seq) {
                tracing::warn!(
                    head_seq = head.seq,
                    last_seq = last.as_ref().map(|r| r.seq),
                    "audit store head does not match its last record; `airlock audit verify` will report the break"
                );
            }
            if head.seq + 1 > chain.next_seq {
                chain.next_seq = head.seq + 1;
                chain.prev_hash = head.hash;
            }
        }
        Ok(chain)
    }

    /// Record time: now, but never before the previous record, so time order is chain order
    /// (the time index and `--until` rely on it).
    fn tick(&mut self) -> i64 {
        let t = now_micros().max(self.last_time_us);
        self.last_time_us = t;
        t
    }
}

pub(super) async fn start(
    store: Arc<dyn AuditStore>,
    durability: Durability,
    flush_interval_ms: u64,
) -> Result<(AuditHandle, AuditWriter), AuditError> {
    let loader = store.clone();
    let chain = tokio::task::spawn_blocking(move || Chain::load(loader.as_ref()))
        .await
        .map_err(|e| AuditError::Store(format!("reading the chain head panicked: {e}")))??;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (appended_tx, appended) = watch::channel(chain.next_seq - 1);
    let (done_tx, done) = oneshot::channel();
    let writer = Writer {
        store: store.clone(),
        chain,
        durability,
        flush_interval: Duration::from_millis(flush_interval_ms.max(1)),
        appended: appended_tx,
    };
    let thread = std::thread::Builder::new()
        .name("airlock-audit".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt.block_on(writer.run(rx)),
                Err(e) => Err(AuditError::Io(e)),
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, "audit writer stopped");
            }
            let _ = done_tx.send(result);
        })?;
    let handle = AuditHandle {
        tx,
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

/// The periodic flush of batched mode, run on the blocking pool so appends go on meanwhile.
struct BackgroundFlush {
    /// Appended records not yet covered by a flush.
    dirty: bool,
    running: Option<tokio::task::JoinHandle<()>>,
    last_start: tokio::time::Instant,
}

impl BackgroundFlush {
    /// Starts a flush unless one is still running (the next chance will pick the rest up).
    fn start(&mut self, store: &Arc<dyn AuditStore>) {
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let store = store.clone();
        self.running = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = store.flush() {
                tracing::error!(error = %e, "audit flush failed");
            }
        }));
        self.dirty = false;
        self.last_start = tokio::time::Instant::now();
    }
}

struct Writer {
    store: Arc<dyn AuditStore>,
    chain: Chain,
    durability: Durability,
    flush_interval: Duration,
    appended: watch::Sender<u64>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<(), AuditError> {
        let batched = self.durability == Durability::Batched;
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + self.flush_interval,
            self.flush_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flusher = BackgroundFlush {
            dirty: false,
            running: None,
            last_start: tokio::time::Instant::now(),
        };
        let mut msgs = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                biased;
                first = rx.recv() => match first {
                    Some(m) => msgs.push(m),
                    None => break, // every handle dropped
                },
                // Idle with unflushed records: the timer flushes them.
                _ = ticker.tick(), if batched && flusher.dirty => {
                    flusher.start(&self.store);
                    continue;
                }
            }
            while msgs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            let stop = self.commit(&mut msgs, &mut flusher.dirty);
            if let Some(reply) = stop {
                // Take what is still queued, then stop for good.
                rx.close();
                while let Some(m) = rx.recv().await {
                    msgs.push(m);
                }
                let _ = self.commit(&mut msgs, &mut flusher.dirty);
                let _ = reply.send(());
                return Ok(());
            }
            // Under sustained load the queue is never empty and the timer branch above never
            // runs: flush on schedule from here too.
            if batched && flusher.dirty && flusher.last_start.elapsed() >= self.flush_interval {
                flusher.start(&self.store);
            }
        }
        self.store.flush()
    }

    /// Seals and appends one group, flushes when someone needs it, answers everyone.
    /// Returns the shutdown reply when a shutdown was asked for.
    fn commit(&mut self, msgs: &mut Vec<Msg>, dirty: &mut bool) -> Option<oneshot::Sender<()>> {
        let mut sealed: Vec<SealedRecord> = Vec::with_capacity(msgs.len());
        let mut waiters: Vec<(Reply, String, bool)> = Vec::with_capacity(msgs.len());
        let mut flushes = Vec::new();
        let mut shutdown = None;
        let saved = (
            self.chain.next_seq,
            self.chain.prev_hash,
            self.chain.last_time_us,
        );
        for m in msgs.drain(..) {
            match m {
                Msg::Append(p) => {
                    let seq = self.chain.next_seq;
                    let time_us = self.chain.tick();
                    let id = record_id(time_us, seq);
                    let rec = seal(
                        seq,
                        id.clone(),
                        time_us,
                        p.kind,
                        &self.chain.prev_hash,
                        &p.entry_json,
                        p.link,
                    );
                    self.chain.prev_hash = rec.hash;
                    self.chain.next_seq += 1;
                    sealed.push(rec);
                    waiters.push((p.reply, id, p.durable));
                }
                Msg::Flush(reply) => flushes.push(reply),
                Msg::Shutdown(reply) => shutdown = Some(reply),
            }
        }
        if !sealed.is_empty() {
            if let Err(e) = self.store.append(&sealed) {
                // Nothing of this group is stored: rewind so the chain stays contiguous, and
                // tell every caller (their statements must not run).
                (
                    self.chain.next_seq,
                    self.chain.prev_hash,
                    self.chain.last_time_us,
                ) = saved;
                let msg = e.to_string();
                for (reply, _, _) in waiters {
                    let _ = reply.send(Err(AuditError::Store(msg.clone())));
                }
                for reply in flushes {
                    let _ = reply.send(Err(AuditError::Store(msg.clone())));
                }
                return shutdown;
            }
            *dirty = true;
            let _ = self.appended.send(self.chain.next_seq - 1);
        }
        let mut durable_waiters = Vec::new();
        for (reply, id, durable) in waiters {
            if durable {
                durable_waiters.push((reply, id));
            } else {
                let _ = reply.send(Ok(id));
            }
        }
        if !durable_waiters.is_empty() || !flushes.is_empty() || shutdown.is_some() {
            let result = self.store.flush();
            if result.is_ok() {
                *dirty = false;
            }
            for (reply, id) in durable_waiters {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(id),
                    Err(e) => Err(AuditError::Store(e.to_string())),
                });
            }
            for reply in flushes {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(AuditError::Store(e.to_string())),
                });
            }
        }
        shutdown
    }
}

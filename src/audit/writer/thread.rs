//! The writer thread: takes groups off the queue, seals them onto the hash chain, appends and
//! flushes them, and answers whoever waits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::super::chain::{seal, RecordHeader, GENESIS_HASH};
use super::super::store::{AuditStore, SealedRecord};
use super::super::AuditError;
use super::{Queued, Reply, Shared, MAX_BATCH, WAKE_AT};

/// Where the stored chain ends.
pub(super) struct Chain {
    pub(super) next_seq: u64,
    pub(super) prev_hash: [u8; 32],
    pub(super) last_time_us: i64,
}

impl Chain {
    /// Continues from the store's head. If the last record is gone but the head remembers it,
    /// the head wins: reusing a deleted record's sequence number would hide the deletion.
    pub(super) fn load(store: &dyn AuditStore) -> Result<Chain, AuditError> {
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
            chain.last_time_us = super::super::clock::parse_time(h.time).unwrap_or(i64::MIN);
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
}

/// One round of work taken from the queue.
struct Group {
    items: Vec<Queued>,
    flushes: Vec<oneshot::Sender<Result<(), AuditError>>>,
    settles: Vec<oneshot::Sender<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Every handle is gone and the queue is empty: finish.
    orphaned: bool,
}

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) store: Arc<dyn AuditStore>,
    pub(super) chain: Chain,
    pub(super) flush_interval: Duration,
    pub(super) append_every: Duration,
    pub(super) appended: watch::Sender<u64>,
    /// Appended records not yet covered by a flush.
    pub(super) dirty: bool,
    pub(super) last_flush: Instant,
}

impl Writer {
    pub(super) fn run(mut self) -> Result<(), AuditError> {
        loop {
            let group = self.next_group();
            let stop = group.shutdown.is_some() || group.orphaned;
            self.commit(group);
            if stop {
                return Ok(());
            }
        }
    }

    /// Sleeps until there is something to do, then takes it.
    fn next_group(&mut self) -> Group {
        let mut q = self.shared.queue.lock();
        let mut ticked = false;
        loop {
            if q.urgent || q.shutdown.is_some() || q.orphaned || q.items.len() >= WAKE_AT {
                break;
            }
            if !q.items.is_empty() {
                if ticked {
                    break;
                }
                self.shared.wake.wait_for(&mut q, self.append_every);
                ticked = true;
                continue;
            }
            if self.dirty {
                let due = self.last_flush + self.flush_interval;
                if Instant::now() >= due {
                    break;
                }
                self.shared.wake.wait_until(&mut q, due);
                continue;
            }
            self.shared.wake.wait(&mut q);
        }
        let n = q.items.len().min(MAX_BATCH);
        let items: Vec<Queued> = q.items.drain(..n).collect();
        let rest = !q.items.is_empty();
        q.urgent = rest;
        // Everything up to `covered` is appended with this group.
        let covered = q.items.first().map_or(q.next_seq, |p| p.seq) - 1;
        let (flushes, waiting): (Vec<_>, Vec<_>) =
            q.flushes.drain(..).partition(|(upto, _)| *upto <= covered);
        q.flushes = waiting;
        let (settles, waiting): (Vec<_>, Vec<_>) =
            q.settles.drain(..).partition(|(upto, _)| *upto <= covered);
        q.settles = waiting;
        let group = Group {
            items,
            flushes: flushes.into_iter().map(|(_, r)| r).collect(),
            settles: settles.into_iter().map(|(_, r)| r).collect(),
            // Shutdown closed the queue: it ends once the queue is empty.
            shutdown: if rest { None } else { q.shutdown.take() },
            orphaned: !rest && q.orphaned,
        };
        drop(q);
        self.shared.room.notify_waiters();
        group
    }

    /// Seals and appends one group, flushes when someone needs it or the timer says so,
    /// answers everyone.
    fn commit(&mut self, group: Group) {
        let Group {
            items,
            flushes,
            settles,
            shutdown,
            orphaned,
        } = group;
        let saved = (self.chain.next_seq, self.chain.prev_hash);
        let mut sealed: Vec<SealedRecord> = Vec::with_capacity(items.len());
        let mut waiters: Vec<(Reply, String, bool)> = Vec::new();
        for p in items {
            debug_assert_eq!(p.seq, self.chain.next_seq, "queue order is chain order");
            let rec = seal(
                p.seq,
                p.id.clone(),
                p.time_us,
                p.kind,
                &self.chain.prev_hash,
                &p.entry_json,
                p.link,
            );
            self.chain.prev_hash = rec.hash;
            self.chain.next_seq = p.seq + 1;
            self.chain.last_time_us = p.time_us;
            sealed.push(rec);
            if let Some(reply) = p.reply {
                waiters.push((reply, p.id, p.durable));
            }
        }
        if !sealed.is_empty() {
            if let Err(e) = self.store.append(&sealed) {
                self.rewind(saved, sealed.len(), &e);
                let msg = e.to_string();
                for (reply, _, _) in waiters {
                    let _ = reply.send(Err(AuditError::Store(msg.clone())));
                }
                for reply in flushes {
                    let _ = reply.send(Err(AuditError::Store(msg.clone())));
                }
                for s in settles {
                    let _ = s.send(());
                }
                if let Some(s) = shutdown {
                    let _ = s.send(());
                }
                return;
            }
            if self.shared.degraded.swap(false, Ordering::AcqRel) {
                tracing::info!("audit store appends succeed again");
            }
            self.dirty = true;
            let _ = self.appended.send(self.chain.next_seq - 1);
        }
        for s in settles {
            let _ = s.send(());
        }
        let mut durable_waiters = Vec::new();
        for (reply, id, durable) in waiters {
            if durable {
                durable_waiters.push((reply, id));
            } else {
                let _ = reply.send(Ok(id));
            }
        }
        let due = self.dirty && self.last_flush.elapsed() >= self.flush_interval;
        if !durable_waiters.is_empty()
            || !flushes.is_empty()
            || shutdown.is_some()
            || orphaned
            || due
        {
            let result = self.store.flush();
            self.last_flush = Instant::now();
            match &result {
                Ok(()) => self.dirty = false,
                Err(e) => tracing::error!(error = %e, "audit flush failed"),
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
        if let Some(s) = shutdown {
            let _ = s.send(());
        }
    }

    /// Nothing of the failed group is stored: continue the chain from where it was, and fail
    /// every record queued after the group (their places in the chain are gone).
    fn rewind(&mut self, saved: (u64, [u8; 32]), lost: usize, e: &AuditError) {
        (self.chain.next_seq, self.chain.prev_hash) = saved;
        self.shared.degraded.store(true, Ordering::Release);
        let mut q = self.shared.queue.lock();
        q.next_seq = saved.0;
        let later = std::mem::take(&mut q.items);
        let flushes = std::mem::take(&mut q.flushes);
        let settles = std::mem::take(&mut q.settles);
        drop(q);
        for (_, reply) in flushes {
            let _ = reply.send(Err(AuditError::Store(e.to_string())));
        }
        for (_, s) in settles {
            let _ = s.send(());
        }
        self.shared.room.notify_waiters();
        let unanswered = later.iter().filter(|p| p.reply.is_none()).count();
        tracing::error!(
            error = %e,
            records = lost + later.len(),
            queued_only = unanswered,
            "audit append failed; these records are lost and statements now wait for the store"
        );
        for p in later {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(AuditError::Store(e.to_string())));
            }
        }
    }
}
